"""The zoo command line, run as a subprocess the way a user runs it, with every run folder in tmp_path."""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import zoo_core
from zoo_core import cli
from zoo_core.results import DB_NAME

pytestmark = pytest.mark.usefixtures("isolated_zoo_env")

RUN_FILES = {
    "settings.yaml",
    "model",
    "metrics.json",
    "report.txt",
    "confusion_matrix.csv",
    "confusion_matrix.png",
    "learning_curves.png",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INTERRUPT_TIMEOUT_S = 120


@dataclass
class KeptRun:
    """The one MLP run that the tests of this module share."""

    workdir: Path
    runs_dir: Path
    run_dir: Path
    stdout: str
    stderr: str
    returncode: int


def lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def run_folder_entries(runs_dir: Path) -> list[str]:
    """List a runs folder, leaving out SQLite's -wal and -shm files, which come and go with readers."""
    return sorted(path.name for path in runs_dir.iterdir() if not path.name.startswith(f"{DB_NAME}-"))


def database_rows(runs_dir: Path) -> list[tuple]:
    connection = sqlite3.connect(f"file:{runs_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def kept_run(zoo_cli, tmp_path_factory) -> KeptRun:
    workdir = tmp_path_factory.mktemp("cli")
    runs_dir = workdir / "runs"
    result = zoo_cli("run", "mlp", "--limit", "2000", "--epochs", "1", "--runs-dir", str(runs_dir), cwd=workdir)
    run_dirs = [path for path in runs_dir.iterdir() if path.is_dir()] if runs_dir.is_dir() else []
    assert result.returncode == 0, result.stderr
    assert len(run_dirs) == 1
    return KeptRun(workdir, runs_dir, run_dirs[0], result.stdout, result.stderr, result.returncode)


@pytest.mark.slow
def test_run_prints_one_loss_line(kept_run):
    [line] = lines_starting(kept_run.stdout, "Test loss:")

    assert float(line.removeprefix("Test loss: ")) > 0


@pytest.mark.slow
def test_run_prints_one_accuracy_line(kept_run):
    [line] = lines_starting(kept_run.stdout, "Test accuracy:")

    accuracy = float(line.removeprefix("Test accuracy: ").removesuffix("%"))
    assert line.endswith("%")
    assert 50.0 < accuracy <= 100.0


@pytest.mark.slow
def test_run_prints_report_and_folder(kept_run):
    assert "precision    recall  f1-score   support" in kept_run.stdout
    assert lines_starting(kept_run.stdout, "Training keras/mlp on 2,000 images")
    assert f"Run kept in {kept_run.run_dir}" in kept_run.stdout
    assert "Traceback" not in kept_run.stderr


@pytest.mark.slow
def test_run_folder_files(kept_run):
    assert {path.name for path in kept_run.run_dir.iterdir()} == RUN_FILES
    assert any((kept_run.run_dir / "model").iterdir())


@pytest.mark.slow
def test_run_leaves_only_run_and_database(kept_run):
    assert run_folder_entries(kept_run.runs_dir) == [kept_run.run_dir.name, DB_NAME]


@pytest.mark.slow
def test_run_settings_file(kept_run):
    settings = yaml.safe_load((kept_run.run_dir / "settings.yaml").read_text(encoding="utf-8"))

    assert settings["plugin"] == "keras"
    assert settings["model"] == "keras/mlp"
    assert settings["epochs"] == 1
    assert settings["limit"] == 2000
    assert settings["settings"]["hidden"] == [512, 512]


@pytest.mark.slow
def test_run_metrics_match_report(kept_run):
    metrics = json.loads((kept_run.run_dir / "metrics.json").read_text(encoding="utf-8"))
    [line] = lines_starting(kept_run.stdout, "Test accuracy:")

    assert line == f"Test accuracy: {metrics['test_accuracy'] * 100:.2f}%"
    assert metrics["best_epoch"] == 1
    assert len(metrics["history"]) == 1


@pytest.mark.slow
def test_run_report_file_matches_output(kept_run):
    report = (kept_run.run_dir / "report.txt").read_text(encoding="utf-8")

    assert report in kept_run.stdout
    assert lines_starting(report, "Test accuracy:") == lines_starting(kept_run.stdout, "Test accuracy:")


@pytest.mark.slow
def test_run_confusion_csv(kept_run):
    rows = (kept_run.run_dir / "confusion_matrix.csv").read_text(encoding="utf-8").splitlines()
    counts = [[int(cell) for cell in row.split(",")[1:]] for row in rows[1:]]

    assert rows[0] == "true\\pred,0,1,2,3,4,5,6,7,8,9"
    assert len(counts) == 10
    assert sum(map(sum, counts)) == 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", ["confusion_matrix.png", "learning_curves.png"])
def test_run_figures_are_png(kept_run, name):
    assert (kept_run.run_dir / name).read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_runs_lists_kept_run(kept_run, zoo_cli):
    result = zoo_cli("runs", "--runs-dir", str(kept_run.runs_dir), cwd=kept_run.workdir)

    assert result.returncode == 0
    assert kept_run.run_dir.name in result.stdout
    assert "keras/mlp" in result.stdout


def test_runs_empty_folder(zoo_cli, tmp_path):
    result = zoo_cli("runs", "--runs-dir", str(tmp_path / "none"), cwd=tmp_path)

    assert result.returncode == 0
    assert "No runs in" in result.stdout


@pytest.mark.slow
def test_evaluate_prints_same_accuracy(kept_run, zoo_cli):
    result = zoo_cli("evaluate", kept_run.run_dir.name, "--runs-dir", str(kept_run.runs_dir), "--device", "cpu",
                     cwd=kept_run.workdir)

    assert result.returncode == 0, result.stderr
    assert lines_starting(result.stdout, "Test accuracy:") == lines_starting(kept_run.stdout, "Test accuracy:")
    assert lines_starting(result.stdout, "Test loss:") == lines_starting(kept_run.stdout, "Test loss:")


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "marker"), [("markdown", "| Rank | Model"), ("csv", "rank,model,settings"),
                                              ("html", "<table")])
def test_leaderboard_formats(kept_run, zoo_cli, fmt, marker):
    result = zoo_cli("leaderboard", "--format", fmt, "--runs-dir", str(kept_run.runs_dir), cwd=kept_run.workdir)

    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert "keras/mlp" in result.stdout


@pytest.mark.slow
def test_leaderboard_output_file(kept_run, zoo_cli, tmp_path):
    output = tmp_path / "leaderboard.md"

    result = zoo_cli("leaderboard", "--output", str(output), "--runs-dir", str(kept_run.runs_dir),
                     cwd=kept_run.workdir)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Leaderboard of 1 run(s) written to {output}\n"
    assert "keras/mlp" in output.read_text(encoding="utf-8")


@pytest.mark.slow
def test_leaderboard_unknown_format(kept_run, zoo_cli):
    result = zoo_cli("leaderboard", "--format", "xml", "--runs-dir", str(kept_run.runs_dir), cwd=kept_run.workdir)

    assert result.returncode == 2
    assert "Unknown leaderboard format 'xml'" in result.stderr


def test_version_flag(zoo_cli, tmp_path):
    result = zoo_cli("--version", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout == f"zoo {zoo_core.__version__}\n"


def test_list_shows_available_models(zoo_cli, tmp_path):
    result = zoo_cli("list", cwd=tmp_path)
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}

    assert result.returncode == 0, result.stderr
    assert rows["mlp"][1:3] == ["keras/mlp", "yes"]
    assert rows["lstm"][1:3] == ["keras/lstm", "yes"]


def test_unknown_model_suggests(zoo_cli, tmp_path):
    runs_dir = tmp_path / "runs"

    result = zoo_cli("run", "mlpp", "--runs-dir", str(runs_dir), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == "zoo: error: unknown model 'mlpp' (did you mean 'mlp'?); see `zoo list`\n"
    assert "Traceback" not in result.stderr
    assert not runs_dir.exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
        (["--limit", "1.5"], "argument --limit: invalid int value: '1.5'"),
        (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    ],
)
def test_unparsable_option_values(zoo_cli, tmp_path, arguments, message):
    result = zoo_cli("run", "mlp", *arguments, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--epochs", "0"], "zoo: error: option 'epochs' must be at least 1, got 0"),
        (["--limit", "0"], "zoo: error: option 'limit' must be at least 1, got 0"),
        (["--lr", "0"], "zoo: error: option 'lr' must be a positive number, got 0.0"),
        (["--batch-size", "-8"], "zoo: error: option 'batch_size' must be at least 1, got -8"),
        (["--device", "gpu"], "zoo: error: option 'device' has invalid value 'gpu': use auto, cpu, cuda, cuda:N or mps"),
        (["--seed", "-1"], "zoo: error: option 'seed' must be zero or positive, got -1"),
        (["--set", "dropot=0.3"], "zoo: error: model 'keras/mlp' has no setting 'dropot' (did you mean 'dropout'?)"),
        (["--set", "dropout=abc"], "zoo: error: model 'keras/mlp' setting 'dropout' has invalid value 'abc'"),
        (["--set", "dropout"], "zoo: error: --set 'dropout' is invalid: use --set key=value"),
        (["--config", "missing.yaml"], "zoo: error: config file 'missing.yaml' not found"),
    ],
)
def test_invalid_run_options(tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.chdir(tmp_path)

    status = cli.main(["run", "mlp", *arguments, "--runs-dir", str(tmp_path / "runs")])
    stderr = capsys.readouterr().err

    assert status == 2
    assert stderr.startswith(message)
    assert not (tmp_path / "runs").exists()


def test_config_file_unknown_option(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("epoch: 3\n", encoding="utf-8")

    status = cli.main(["run", "mlp", "--config", "run.yaml", "--runs-dir", str(tmp_path / "runs")])

    assert status == 2
    assert "unknown option 'epoch' (did you mean 'epochs'?)" in capsys.readouterr().err


def test_invalid_model_setting_discards_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs_dir = tmp_path / "runs"

    status = cli.main(["run", "mlp", "--set", "activation=bad", "--limit", "100", "--epochs", "1",
                       "--runs-dir", str(runs_dir)])
    captured = capsys.readouterr()

    assert status == 2
    assert "mlp setting 'activation' has invalid value 'bad'" in captured.err
    assert list(runs_dir.iterdir()) == []
    # The progress lines go to the sys.stdout of the call, not to the one of import time.
    assert captured.out.startswith("Training keras/mlp on 100 images")


def test_evaluate_unknown_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    status = cli.main(["evaluate", "nope", "--runs-dir", str(tmp_path)])

    assert status == 2
    assert "zoo: error: no run 'nope'" in capsys.readouterr().err


def read_lines_into(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.mark.slow
def test_interrupted_run_keeps_nothing(kept_run, zoo_cli):
    before_entries = run_folder_entries(kept_run.runs_dir)
    before_rows = database_rows(kept_run.runs_dir)

    process = zoo_cli.start("run", "lstm", "--limit", "2000", "--epochs", "3", "--log-interval", "1",
                            "--runs-dir", str(kept_run.runs_dir), cwd=kept_run.workdir)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=read_lines_into, args=(process.stdout, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + INTERRUPT_TIMEOUT_S
    saw_batch_line = False
    try:
        while not saw_batch_line and time.monotonic() < deadline:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            saw_batch_line = line.startswith("Epoch: ")
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=INTERRUPT_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    reader.join(timeout=10)

    assert saw_batch_line
    assert returncode == 130, stderr
    assert "interrupted; the run was discarded and nothing was stored" in stderr
    assert "Traceback" not in stderr
    assert run_folder_entries(kept_run.runs_dir) == before_entries
    assert database_rows(kept_run.runs_dir) == before_rows
