"""Shared fixtures: fake plugin distributions on sys.path, a clean zoo environment, and the CLI in a subprocess."""

from __future__ import annotations

import gzip
import importlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo_core.data import load_mnist

PLUGIN_PACKAGES = Path(__file__).resolve().parent / "plugin_packages"
ZOO_ENVIRONMENT = ("ZOO_REGISTRY", "ZOO_RUNS_DIR", "ZOO_DATA_DIR", "ZOO_DEBUG")
CLI_TIMEOUT_S = 300


class PluginSite:
    """A folder on sys.path holding fake plugin distributions that importlib.metadata discovers.

    Each distribution is one module plus a ``NAME-VERSION.dist-info`` folder with
    METADATA and an entry_points.txt that registers the module in the
    ``zoo.plugins`` group, which is exactly what pip writes for a real package.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def install(
        self,
        entry_point: str,
        source: str,
        *,
        distribution: str | None = None,
        module: str | None = None,
        version: str = "1.0",
    ) -> str:
        """Write a module and its distribution metadata, and return the module name.

        ``distribution`` defaults to ``zoo-test-ENTRY_POINT`` and ``module`` to
        ``zoo_test_ENTRY_POINT``.
        """
        module = module or f"zoo_test_{entry_point}"
        distribution = distribution or f"zoo-test-{entry_point}"
        (self.root / f"{module}.py").write_text(source, encoding="utf-8")

        folder_name = re.sub(r"[-_.]+", "_", distribution)
        dist_info = self.root / f"{folder_name}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[zoo.plugins]\n{entry_point} = {module}\n", encoding="utf-8"
        )
        (dist_info / "top_level.txt").write_text(f"{module}\n", encoding="utf-8")

        self.modules.append(module)
        # importlib.metadata caches folder listings, so drop them to make the new distribution visible.
        importlib.invalidate_caches()
        return module

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """Return an environment for a child process that puts this folder first on its PYTHONPATH."""
        env = isolated_environment()
        previous = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.root) if not previous else f"{self.root}{os.pathsep}{previous}"
        env.update(extra)
        return env


def isolated_environment() -> dict[str, str]:
    """Return a copy of os.environ without the ZOO_* variables, with unbuffered output."""
    env = {key: value for key, value in os.environ.items() if key not in ZOO_ENVIRONMENT}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def plugin_site(tmp_path: Path):
    """Yield a PluginSite on sys.path, and remove the folder from sys.path and its modules from sys.modules afterwards."""
    root = tmp_path / "site-packages"
    root.mkdir()
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    site = PluginSite(root)
    try:
        yield site
    finally:
        sys.path.remove(str(root))
        for module in site.modules:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


@pytest.fixture
def frequency_plugin_source() -> str:
    """Return the source of the tiny frequency-model plugin in tests/plugin_packages."""
    return (PLUGIN_PACKAGES / "frequency_plugin.py").read_text(encoding="utf-8")


@pytest.fixture
def isolated_zoo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the ZOO_* variables so that a developer's own settings cannot change a test."""
    for name in ZOO_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def zoo_command() -> list[str]:
    """Return the installed ``zoo`` console script next to this interpreter, else ``python -m zoo_core.cli``."""
    script = Path(sys.executable).with_name("zoo")
    if script.is_file():
        return [str(script)]
    found = shutil.which("zoo")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [found]
    return [sys.executable, "-m", "zoo_core.cli"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ZooCli:
    """Runs the zoo CLI in a subprocess. The child gets isolated_environment() unless ``env`` is given."""

    def __init__(self) -> None:
        self.command = zoo_command()

    def __call__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
        """Run ``zoo ARGS`` in ``cwd`` to the end and return its exit status and output."""
        completed = subprocess.run(
            [*self.command, *args],
            cwd=cwd,
            env=env if env is not None else isolated_environment(),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    def start(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``zoo ARGS`` in ``cwd`` with stdout and stderr as text pipes.

        The child starts with the default SIGINT action even where this process
        ignores SIGINT (as a background job of a non-interactive shell does),
        so that sending it SIGINT raises KeyboardInterrupt in the child.
        """
        return subprocess.Popen(
            [*self.command, *args],
            cwd=cwd,
            env=env if env is not None else isolated_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )


@pytest.fixture(scope="session")
def zoo_cli() -> ZooCli:
    """Return a ZooCli for the zoo console script installed with this interpreter."""
    return ZooCli()


@pytest.fixture
def no_network(monkeypatch) -> list[tuple]:
    """Fail the test on any name lookup, connection or download, and return the attempts (the code under test may catch the error)."""
    attempts: list[tuple] = []

    def reject_download(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", reject_download)
    monkeypatch.setattr(socket.socket, "connect", reject_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", reject_download)
    return attempts


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def kit_data():
    """The conformance kit's default subset: 1,000 training, 250 validation and 1,000 test images."""
    from zoo_core.conformance import small_mnist
    from zoo_core.data import load_mnist

    return small_mnist(load_mnist())


@pytest.fixture(scope="session")
def small_mnist_dir(tmp_path_factory) -> Path:
    """A 600-image training file and a 200-image test file cut from the shipped MNIST."""
    full = load_mnist()
    folder = tmp_path_factory.mktemp("small-mnist")
    _write_idx(folder / "train-images-idx3-ubyte.gz", full.train.images[:600])
    _write_idx(folder / "train-labels-idx1-ubyte.gz", full.train.labels[:600])
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", full.test.images[:200])
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", full.test.labels[:200])
    return folder


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch hub checkpoint folder under a temporary TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder
