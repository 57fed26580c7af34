"""Store the metrics of finished runs in one SQLite file that several processes can share.

Each finished run adds one row in its own transaction. The file uses WAL journal
mode and a busy timeout, so two runs that finish at the same moment both land
instead of one failing with "database is locked".
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import RunNotFoundError, ZooError

DB_NAME = "zoo.sqlite"

# Seconds a connection waits for another process's write lock before it fails.
BUSY_TIMEOUT_SECONDS = 30.0

# The first 16 bytes of every SQLite 3 database file (see the SQLite file format spec).
SQLITE_HEADER = b"SQLite format 3\x00"

# Schema version stored in PRAGMA user_version. MIGRATIONS[n] lists the statements
# that take a database from version n - 1 to version n, so a later version adds
# columns with ALTER TABLE instead of rewriting the table.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            plugin TEXT NOT NULL,
            settings_json TEXT NOT NULL,
            seed INTEGER NOT NULL,
            test_accuracy REAL NOT NULL,
            macro_f1 REAL NOT NULL,
            test_loss REAL NOT NULL,
            parameters INTEGER NOT NULL,
            train_seconds REAL NOT NULL,
            images_per_second REAL NOT NULL,
            device TEXT NOT NULL,
            versions_json TEXT NOT NULL,
            created TEXT NOT NULL,
            run_dir TEXT NOT NULL
        )
        """,
        "CREATE INDEX runs_model ON runs (model)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

_COLUMNS = (
    "run_id",
    "model",
    "plugin",
    "settings_json",
    "seed",
    "test_accuracy",
    "macro_f1",
    "test_loss",
    "parameters",
    "train_seconds",
    "images_per_second",
    "device",
    "versions_json",
    "created",
    "run_dir",
)
_INSERT_SQL = f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT_SQL = f"SELECT {', '.join(_COLUMNS)} FROM runs"
# The rowid breaks ties between runs created in the same second, in insertion order.
_ORDER_SQL = "ORDER BY created, rowid"


@dataclass
class RunRecord:
    """Metrics and metadata of one finished training run."""

    run_id: str
    model: str
    plugin: str
    settings: dict
    seed: int
    test_accuracy: float
    macro_f1: float
    test_loss: float
    parameters: int
    train_seconds: float
    images_per_second: float
    device: str
    versions: dict
    created: str
    run_dir: str


class ResultsStore:
    """A SQLite file of run records, opened with a fresh connection per operation.

    A connection per operation keeps the store safe to use from forked or spawned
    worker processes and holds no lock between calls.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._check_header()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ZooError(
                f"Failed to create the folder {self.path.parent} for the results database: {exc}. "
                "Check the path and its permissions."
            ) from exc
        self._create_schema()

    def add(self, record: RunRecord) -> None:
        """Insert one run in its own transaction, or raise ZooError and leave the file unchanged."""
        row = _record_to_row(record)
        connection = self._connect()
        try:
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(_INSERT_SQL, row)
                connection.execute("COMMIT")
            except BaseException:
                # An error or an interrupt between BEGIN and COMMIT must not leave
                # a half-written transaction or a held write lock behind.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as exc:
            raise ZooError(
                f"A run with id '{record.run_id}' is already in {self.path}. "
                "Each run needs a unique run_id, so start a new run instead of adding this one again."
            ) from exc
        except sqlite3.Error as exc:
            raise self._database_error(f"add run '{record.run_id}' to", exc) from exc
        finally:
            connection.close()

    def list(self, model: str | None = None) -> list[RunRecord]:
        """Return all runs, or only those of one qualified model name, oldest first."""
        if model is None:
            rows = self._query(f"{_SELECT_SQL} {_ORDER_SQL}", ())
        else:
            rows = self._query(f"{_SELECT_SQL} WHERE model = ? {_ORDER_SQL}", (model,))
        return [self._row_to_record(row) for row in rows]

    def get(self, run_id: str) -> RunRecord:
        """Return the run with this id, or raise RunNotFoundError."""
        rows = self._query(f"{_SELECT_SQL} WHERE run_id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(
                f"No run with id '{run_id}' in {self.path}. "
                "Run `zoo runs` to list the stored runs and their ids."
            )
        return self._row_to_record(rows[0])

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None turns off the sqlite3 module's implicit transactions,
        # so add() controls BEGIN, COMMIT and ROLLBACK itself.
        try:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._database_error("open", exc) from exc

    def _query(self, sql: str, parameters: tuple) -> list[tuple]:
        connection = self._connect()
        try:
            return connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise self._database_error("read", exc) from exc
        finally:
            connection.close()

    def _check_header(self) -> None:
        """Raise ZooError if the file exists but is not a SQLite database, before SQLite touches it."""
        if not self.path.exists():
            return
        if self.path.is_dir():
            raise ZooError(
                f"The results database path {self.path} is a folder. "
                f"Pass the path of a file, for example {self.path / DB_NAME}."
            )
        try:
            with self.path.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ZooError(f"Failed to read the results database {self.path}: {exc}. Check its permissions.") from exc
        # SQLite treats an empty file as a new, empty database.
        if header and header != SQLITE_HEADER:
            raise self._corrupt_error("it does not start with the SQLite file header")

    def _create_schema(self) -> None:
        connection = self._connect()
        try:
            # One read transaction, so the version and the table list come from the same snapshot
            # even while another process creates the schema.
            connection.execute("BEGIN")
            try:
                version = self._read_schema_version(connection)
            finally:
                connection.execute("COMMIT")
            if version == SCHEMA_VERSION:
                return
            self._enable_wal(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have created the schema while this one waited for the lock.
                version = self._read_schema_version(connection)
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[target]:
                        connection.execute(statement)
                # PRAGMA takes no bound parameters, and SCHEMA_VERSION is an int constant.
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._database_error("create the schema in", exc) from exc
        finally:
            connection.close()

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        """Switch the file to WAL journal mode, retrying while another process holds a lock.

        WAL lets readers run while one process writes, and the mode is stored in the
        file, so this runs only while the schema is created. When two processes create
        the file at once, SQLite 3.40 fails this PRAGMA with SQLITE_BUSY at once instead
        of waiting for the busy timeout, so this loop does the waiting.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                primary_code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
                if primary_code != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def _read_schema_version(self, connection: sqlite3.Connection) -> int:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ZooError(
                f"The results database {self.path} has schema version {version}, but this zoo "
                f"supports up to version {SCHEMA_VERSION}. Upgrade zoo, or pass another results file."
            )
        if version == 0:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            if tables:
                # Reject the file rather than add zoo tables to another program's database.
                names = ", ".join(sorted(name for (name,) in tables))
                raise ZooError(
                    f"The file {self.path} is a SQLite database but not a zoo results database "
                    f"(it contains the tables {names}). Pass another path, or move the file aside."
                )
        return version

    def _row_to_record(self, row: tuple) -> RunRecord:
        values = dict(zip(_COLUMNS, row))
        try:
            settings = json.loads(values.pop("settings_json"))
            versions = json.loads(values.pop("versions_json"))
        except json.JSONDecodeError as exc:
            raise self._corrupt_error(f"run '{values['run_id']}' has invalid JSON in its settings or versions") from exc
        return RunRecord(settings=settings, versions=versions, **values)

    def _database_error(self, action: str, exc: sqlite3.Error) -> ZooError:
        # sqlite_errorcode may be an extended result code, whose low byte is the primary code.
        primary_code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if primary_code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return self._corrupt_error(str(exc))
        if primary_code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return ZooError(
                f"Failed to {action} the results database {self.path}: timed out after "
                f"{BUSY_TIMEOUT_SECONDS:g} s waiting for another process's lock ({exc}). "
                "Wait for the other zoo process to finish and retry."
            )
        return ZooError(
            f"Failed to {action} the results database {self.path}: {exc}. "
            "Check that the disk has space and the file and its folder are writable."
        )

    def _corrupt_error(self, reason: str) -> ZooError:
        return ZooError(
            f"The results database {self.path} is corrupt or not a SQLite database ({reason}). "
            f"Move it aside, for example to {self.path.name}.corrupt, and zoo creates a new empty one "
            "on the next run. Zoo has not changed the file."
        )


def _record_to_row(record: RunRecord) -> tuple:
    """Validate a record and convert it to the column values, raising ZooError on the first invalid field."""
    if not isinstance(record, RunRecord):
        raise ZooError(f"Expected a RunRecord, got {type(record).__name__}. Build the record with RunRecord(...).")

    run_id = record.run_id
    label = f"run '{run_id}'" if isinstance(run_id, str) and run_id else "the run"
    for field in dataclasses.fields(RunRecord):
        if getattr(record, field.name) is None:
            raise ZooError(f"The field '{field.name}' of {label} is missing (None). Set it before adding the run.")

    texts = {name: _text(record, name, label) for name in ("run_id", "model", "plugin", "device", "run_dir")}
    if not texts["model"].startswith(texts["plugin"] + "/") or texts["model"].endswith("/"):
        raise ZooError(
            f"The model '{texts['model']}' of {label} is not qualified by its plugin '{texts['plugin']}'. "
            f"Use the form '{texts['plugin']}/<model>'."
        )

    settings = _mapping(record, "settings", label)
    if "seed" in settings:
        raise ZooError(
            f"The settings of {label} contain 'seed'. Pass the seed in the seed field only, "
            "because the leaderboard groups runs of different seeds by their settings."
        )
    versions = _mapping(record, "versions", label)
    for library, version in versions.items():
        if not isinstance(version, str):
            raise ZooError(
                f"The version of '{library}' in {label} is {version!r}, not a string. Store versions as text, e.g. '2.1.0'."
            )

    created = _text(record, "created", label)
    try:
        timestamp = datetime.fromisoformat(created)
    except ValueError as exc:
        raise ZooError(
            f"The created time '{created}' of {label} is not an ISO 8601 timestamp. "
            "Use for example datetime.now(timezone.utc).isoformat()."
        ) from exc
    if timestamp.utcoffset() is None or timestamp.utcoffset().total_seconds() != 0:
        raise ZooError(
            f"The created time '{created}' of {label} is not in UTC. "
            "Use for example datetime.now(timezone.utc).isoformat()."
        )

    return (
        texts["run_id"],
        texts["model"],
        texts["plugin"],
        _json_text(settings, "settings", label),
        _integer(record, "seed", label, minimum=None),
        _real(record, "test_accuracy", label, maximum=1.0),
        _real(record, "macro_f1", label, maximum=1.0),
        _real(record, "test_loss", label),
        _integer(record, "parameters", label, minimum=0),
        _real(record, "train_seconds", label),
        _real(record, "images_per_second", label),
        texts["device"],
        _json_text(versions, "versions", label),
        created,
        texts["run_dir"],
    )


def _text(record: RunRecord, name: str, label: str) -> str:
    value = getattr(record, name)
    if not isinstance(value, str) or not value.strip():
        raise ZooError(f"The field '{name}' of {label} is {value!r}, but it must be a non-empty string.")
    return value


def _mapping(record: RunRecord, name: str, label: str) -> dict:
    value = getattr(record, name)
    if not isinstance(value, dict):
        raise ZooError(f"The field '{name}' of {label} is a {type(value).__name__}, but it must be a dict.")
    return value


def _json_text(value: dict, name: str, label: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ZooError(
            f"The {name} of {label} cannot be stored as JSON ({exc}). "
            "Use only str keys and str, int, float, bool, None, list and dict values, with finite floats."
        ) from exc


def _integer(record: RunRecord, name: str, label: str, minimum: int | None) -> int:
    value = getattr(record, name)
    # bool is an int subclass, but True as a seed or parameter count is a bug.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ZooError(f"The field '{name}' of {label} is {value!r}, but it must be an integer.")
    if minimum is not None and value < minimum:
        raise ZooError(f"The field '{name}' of {label} is {value}, but it must be at least {minimum}.")
    # int() turns NumPy integers into Python ints, which sqlite3 can bind.
    return int(value)


def _real(record: RunRecord, name: str, label: str, maximum: float | None = None) -> float:
    """Return a finite float in [0, maximum], raising ZooError for NaN, infinity or a value out of range."""
    value = getattr(record, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ZooError(f"The field '{name}' of {label} is {value!r}, but it must be a number.")
    value = float(value)
    if not math.isfinite(value):
        raise ZooError(
            f"The field '{name}' of {label} is {value}, but it must be finite. "
            "A NaN or infinite metric usually means training diverged, so check the run's log."
        )
    if value < 0.0 or (maximum is not None and value > maximum):
        upper = f"{maximum:g}" if maximum is not None else "infinity"
        raise ZooError(f"The field '{name}' of {label} is {value}, but it must be between 0 and {upper}.")
    return value
