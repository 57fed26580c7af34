"""Run folders: where a run is written while it trains and kept once it finishes.

A run writes into ``RUNS_DIR/.partial-RUN_ID`` and is renamed to
``RUNS_DIR/RUN_ID`` only after every file is written, so an interrupted run
never looks like a kept one. The results database is ``RUNS_DIR/zoo.sqlite``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml

from zoo_core.errors import RunNotFoundError, ZooError

PARTIAL_PREFIX = ".partial-"
SETTINGS_FILE = "settings.yaml"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.txt"
MODEL_DIR = "model"


def runs_root(runs_dir: str | None) -> Path:
    """Return the runs folder: the option, else $ZOO_RUNS_DIR, else ./runs."""
    return Path(runs_dir or os.environ.get("ZOO_RUNS_DIR") or "runs")


def new_run_id(plugin: str, model: str, seed: int, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    safe_model = re.sub(r"[^A-Za-z0-9_.-]+", "-", model)
    return f"{now:%Y%m%d-%H%M%S}-{plugin}-{safe_model}-s{seed}-{secrets.token_hex(2)}"


def start_run(root: Path, run_id: str) -> Path:
    """Create the run's partial folder; raise ZooError if the runs folder is unusable."""
    if root.exists() and not root.is_dir():
        raise ZooError(f"runs folder {str(root)!r} is a file; pass another folder with --runs-dir")
    partial = root / f"{PARTIAL_PREFIX}{run_id}"
    try:
        partial.mkdir(parents=True)
    except OSError as error:
        raise ZooError(f"cannot create a run folder in {str(root)!r}: {error.strerror}; pass a writable folder with --runs-dir") from None
    return partial


def finish_run(partial: Path, run_id: str) -> Path:
    final = partial.parent / run_id
    partial.rename(final)
    return final


def discard_run(partial: Path) -> None:
    shutil.rmtree(partial, ignore_errors=True)


def list_run_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / SETTINGS_FILE).is_file())


def find_run(root: Path, reference: str) -> Path:
    """Find a kept run by folder path, full run id, or a unique prefix of one."""
    path = Path(reference)
    if (path / SETTINGS_FILE).is_file():
        return path
    if (root / reference / SETTINGS_FILE).is_file():
        return root / reference
    matches = [p for p in list_run_dirs(root) if p.name.startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:5])
        raise RunNotFoundError(f"run {reference!r} matches {len(matches)} runs ({names}); give more of the id")
    raise RunNotFoundError(f"no run {reference!r} in {str(root)!r}; list the kept runs with `zoo runs`")


def read_settings(run_dir: Path) -> dict:
    """Read a kept run's settings.yaml; raise ZooError if it is damaged."""
    path = run_dir / SETTINGS_FILE
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ZooError(f"the run's settings file {str(path)!r} cannot be read ({type(error).__name__}); the run is damaged") from error
    if not isinstance(settings, dict) or "plugin" not in settings or "model" not in settings:
        raise ZooError(f"the run's settings file {str(path)!r} lacks 'plugin' or 'model'; the run is damaged")
    return settings
