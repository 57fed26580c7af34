"""Tests for the SQLite results store: round trip, validation, rollback, corruption and concurrency."""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
import sqlite3
from pathlib import Path

import pytest

from zoo_core.errors import RunNotFoundError, ZooError
from zoo_core.results import DB_NAME, SCHEMA_VERSION, ResultsStore, RunRecord

WRITES_PER_PROCESS = 20


def make_record(**overrides) -> RunRecord:
    values = dict(
        run_id="20261204-201500-keras-mlp-s0-a1b2",
        model="keras/mlp",
        plugin="keras",
        settings={"batch_size": 128, "epochs": 15, "hidden": [512, 512], "optimizer": {"name": "adam", "lr": 0.001}},
        seed=0,
        test_accuracy=0.9831,
        macro_f1=0.98297,
        test_loss=0.0612,
        parameters=669_706,
        train_seconds=41.25,
        images_per_second=51234.5,
        device="cpu",
        versions={"keras": "3.15.1", "numpy": "2.3.0"},
        created="2026-12-04T20:15:00+00:00",
        run_dir="/tmp/runs/20261204-201500-keras-mlp-s0-a1b2",
    )
    values.update(overrides)
    return RunRecord(**values)


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    return ResultsStore(tmp_path / "runs" / DB_NAME)


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_store_creates_folder_and_file(tmp_path):
    path = tmp_path / "nested" / "runs" / DB_NAME
    ResultsStore(path)
    assert path.is_file()


def test_store_sets_schema_version(store):
    with sqlite3.connect(store.path) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION


def test_store_uses_wal_journal(store):
    with sqlite3.connect(store.path) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_reopens_existing_file(store):
    store.add(make_record())
    reopened = ResultsStore(store.path)
    assert len(reopened.list()) == 1


def test_add_get_round_trip(store):
    record = make_record()
    store.add(record)
    assert store.get(record.run_id) == record


def test_add_get_keeps_nested_settings(store):
    store.add(make_record())
    settings = store.get(make_record().run_id).settings
    assert settings["optimizer"] == {"name": "adam", "lr": 0.001}


def test_add_accepts_numpy_numbers(store):
    # A NumPy integer is registered as numbers.Integral but is not an int subclass.
    numpy = pytest.importorskip("numpy")
    store.add(make_record(parameters=numpy.int64(1234), test_accuracy=numpy.float32(0.5)))
    assert store.get(make_record().run_id).parameters == 1234


def test_settings_stored_as_json_text(store):
    store.add(make_record())
    with sqlite3.connect(store.path) as connection:
        settings_json, versions_json = connection.execute("SELECT settings_json, versions_json FROM runs").fetchone()
    assert settings_json.startswith('{"batch_size": 128')
    assert versions_json == '{"keras": "3.15.1", "numpy": "2.3.0"}'


def test_list_oldest_first(store):
    store.add(make_record(run_id="late", created="2026-12-05T08:00:00+00:00"))
    store.add(make_record(run_id="early", created="2026-12-04T08:00:00+00:00"))
    store.add(make_record(run_id="late-second", created="2026-12-05T08:00:00+00:00"))
    assert [record.run_id for record in store.list()] == ["early", "late", "late-second"]


def test_list_filters_by_model(store):
    store.add(make_record(run_id="a"))
    store.add(make_record(run_id="b", model="keras/cnn"))
    store.add(make_record(run_id="c"))
    assert [record.run_id for record in store.list(model="keras/mlp")] == ["a", "c"]


def test_list_unknown_model_empty(store):
    store.add(make_record())
    assert store.list(model="keras/none") == []


def test_list_empty_store(store):
    assert store.list() == []


def test_get_unknown_id_error(store):
    with pytest.raises(RunNotFoundError) as caught:
        store.get("no-such-run")
    message = str(caught.value)
    assert "'no-such-run'" in message
    assert "`zoo runs`" in message


def test_add_duplicate_id_rejected(store):
    store.add(make_record())
    with pytest.raises(ZooError) as caught:
        store.add(make_record(test_accuracy=0.5))
    assert "'20261204-201500-keras-mlp-s0-a1b2'" in str(caught.value)
    assert count_rows(store.path) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"test_accuracy": float("nan")}, "'test_accuracy'"),
        ({"test_accuracy": 1.5}, "'test_accuracy'"),
        ({"test_accuracy": -0.01}, "'test_accuracy'"),
        ({"macro_f1": 1.01}, "'macro_f1'"),
        ({"test_loss": float("inf")}, "'test_loss'"),
        ({"parameters": -1}, "'parameters'"),
        ({"parameters": 12.5}, "'parameters'"),
        ({"seed": True}, "'seed'"),
        ({"train_seconds": -3.0}, "'train_seconds'"),
        ({"model": None}, "'model'"),
        ({"run_dir": None}, "'run_dir'"),
        ({"run_id": ""}, "'run_id'"),
        ({"model": "mlp"}, "'mlp'"),
        ({"model": "torch/mlp"}, "'torch/mlp'"),
        ({"settings": {"seed": 1}}, "'seed'"),
        ({"settings": {"lr": float("nan")}}, "settings"),
        ({"settings": {"path": Path("/tmp")}}, "settings"),
        ({"settings": [1, 2]}, "'settings'"),
        ({"versions": {"keras": 3}}, "'keras'"),
        ({"created": "yesterday"}, "'yesterday'"),
        ({"created": "2026-12-04T20:15:00"}, "UTC"),
    ],
)
def test_add_rejects_invalid_record(store, monkeypatch, overrides, expected):
    def fail_connect():
        raise AssertionError("add() opened the database before validating the record")

    monkeypatch.setattr(store, "_connect", fail_connect)
    with pytest.raises(ZooError) as caught:
        store.add(make_record(**overrides))
    assert expected in str(caught.value)


def test_add_rejects_missing_field(store):
    values = dataclasses.asdict(make_record())
    values["device"] = None
    with pytest.raises(ZooError, match="'device'"):
        store.add(RunRecord(**values))


def test_add_rejects_non_record(store):
    with pytest.raises(ZooError, match="RunRecord"):
        store.add({"run_id": "x"})


class CommitFailingConnection(sqlite3.Connection):
    """A connection whose COMMIT fails, as if the disk filled up after the INSERT ran."""

    def execute(self, sql, *args):
        if sql.strip().upper() == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def test_add_failure_rolls_back(store, monkeypatch):
    store.add(make_record(run_id="kept"))

    def connect_failing():
        return sqlite3.connect(store.path, timeout=1, isolation_level=None, factory=CommitFailingConnection)

    monkeypatch.setattr(store, "_connect", connect_failing)
    with pytest.raises(ZooError, match="disk I/O error"):
        store.add(make_record(run_id="lost"))
    monkeypatch.undo()

    assert [record.run_id for record in store.list()] == ["kept"]


def test_add_after_failure_not_locked(store, monkeypatch):
    # A failed add must release its write lock, or the next writer would wait for the busy timeout.
    def connect_failing():
        return sqlite3.connect(store.path, timeout=1, isolation_level=None, factory=CommitFailingConnection)

    monkeypatch.setattr(store, "_connect", connect_failing)
    with pytest.raises(ZooError):
        store.add(make_record(run_id="lost"))
    monkeypatch.undo()

    store.add(make_record(run_id="next"))
    assert count_rows(store.path) == 1


def test_corrupt_file_error(tmp_path):
    path = tmp_path / DB_NAME
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(ZooError) as caught:
        ResultsStore(path)
    message = str(caught.value)
    assert str(path) in message
    assert "Move it aside" in message


def test_corrupt_file_left_untouched(tmp_path):
    path = tmp_path / DB_NAME
    content = random.Random(1).randbytes(4096)
    path.write_bytes(content)
    with pytest.raises(ZooError):
        ResultsStore(path)
    assert path.read_bytes() == content
    assert not (tmp_path / (DB_NAME + "-wal")).exists()


def test_corrupt_pages_error(tmp_path):
    # A valid header followed by garbage passes the header check, so SQLite itself must report it.
    path = tmp_path / DB_NAME
    content = b"SQLite format 3\x00" + random.Random(2).randbytes(8192)
    path.write_bytes(content)
    with pytest.raises(ZooError, match="Move it aside"):
        ResultsStore(path)
    assert path.read_bytes() == content


def test_foreign_database_rejected(tmp_path):
    path = tmp_path / DB_NAME
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    content = path.read_bytes()
    with pytest.raises(ZooError, match="notes"):
        ResultsStore(path)
    assert path.read_bytes() == content


def test_newer_schema_rejected(tmp_path):
    path = tmp_path / DB_NAME
    ResultsStore(path)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(ZooError, match="Upgrade zoo"):
        ResultsStore(path)


def test_folder_path_rejected(tmp_path):
    with pytest.raises(ZooError, match="is a folder"):
        ResultsStore(tmp_path)


def add_records_in_process(path: str, worker: int, barrier) -> None:
    """Open the store and add records. A spawned process imports this function, so it lives at module level."""
    barrier.wait(timeout=30)
    store = ResultsStore(Path(path))
    for index in range(WRITES_PER_PROCESS):
        store.add(make_record(run_id=f"worker{worker}-{index:02d}", seed=index))


def test_concurrent_writers_all_land(tmp_path):
    # Both processes create the schema and write at once, which tests the busy timeout and WAL mode.
    path = tmp_path / DB_NAME
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [
        context.Process(target=add_records_in_process, args=(str(path), worker, barrier)) for worker in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [process.exitcode for process in processes] == [0, 0]
    run_ids = {record.run_id for record in ResultsStore(path).list()}
    assert len(run_ids) == 2 * WRITES_PER_PROCESS
