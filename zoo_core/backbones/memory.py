"""Reject a backbone that would not fit in memory before it is built.

Building and training a model too large for the machine ends in an
out-of-memory kill with no message. Counting its parameters on the meta
device costs no memory, so the estimate below runs first and a model that
does not fit is rejected with its size.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo_core.errors import ConfigError

# Estimated bytes per parameter. Fine-tuning with AdamW keeps four float32
# tensors per parameter: the weight, its gradient and the two moment
# estimates. A frozen backbone keeps its weights, plus a second copy while
# the pretrained weights are loaded. Activations are not counted.
FINE_TUNE_BYTES_PER_PARAMETER = 16
FROZEN_BYTES_PER_PARAMETER = 8
# Caps the memory that a backbone may use, in GB (10**9 bytes), below what the machine has available.
MEMORY_LIMIT_ENV = "ZOO_MEMORY_LIMIT_GB"
CGROUP_FOLDER = Path("/sys/fs/cgroup")


def _meminfo_available() -> int | None:
    """Return MemAvailable from /proc/meminfo in bytes, or None where there is no such file (not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the value is in kB
    except OSError:
        return None
    return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom() -> int | None:
    """Return memory.max minus memory.current of this process's cgroup (v2), or None without a limit."""
    try:
        limit = (CGROUP_FOLDER / "memory.max").read_text().strip()
        current = int((CGROUP_FOLDER / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(int(limit) - current, 0)


def available_memory() -> tuple[int | None, str]:
    """Return the bytes of memory a new model may use, and where that number comes from.

    The number is the smallest of MemAvailable (or, without /proc/meminfo,
    the free pages that sysconf reports), the headroom under a cgroup v2
    memory limit, and $ZOO_MEMORY_LIMIT_GB. It is None when none of them can
    be read.
    """
    candidates = []
    system = _meminfo_available()
    if system is None:
        system = _sysconf_available()
    if system is not None:
        candidates.append((system, "available"))
    cgroup = _cgroup_headroom()
    if cgroup is not None:
        candidates.append((cgroup, "available under this container's memory limit"))
    override = os.environ.get(MEMORY_LIMIT_ENV)
    if override:
        try:
            gigabytes = float(override)
        except ValueError:
            raise ConfigError(f"${MEMORY_LIMIT_ENV} must be a number of GB, got {override!r}") from None
        candidates.append((int(gigabytes * 1e9), f"allowed by ${MEMORY_LIMIT_ENV}"))
    if not candidates:
        return None, "unknown"
    return min(candidates)


def check_model_memory(name: str, parameters: int, frozen: bool) -> None:
    """Raise ConfigError when ``parameters`` need more memory than is available."""
    per_parameter = FROZEN_BYTES_PER_PARAMETER if frozen else FINE_TUNE_BYTES_PER_PARAMETER
    needed = parameters * per_parameter
    available, source = available_memory()
    if available is None or needed <= available:
        return
    use = "with a frozen backbone" if frozen else "to fine-tune"
    hint = "choose a smaller model" if frozen else "choose a smaller model or use --freeze"
    raise ConfigError(
        f"{name} has {parameters:,} parameters and needs about {needed / 1e9:.1f} GB of memory {use} "
        f"({per_parameter} bytes per parameter), but only {available / 1e9:.1f} GB is {source}; {hint}"
    )
