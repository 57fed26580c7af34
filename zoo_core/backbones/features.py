"""On-disk cache of frozen-backbone features.

A frozen backbone maps the same image to the same features, so features are
computed once per (model, weights, input size, data) and reused. An entry is
written into a temporary folder and renamed into place only when every split
is written, so a run interrupted during extraction leaves no usable entry.
Its temporary folder is removed by the next ``zoo cache clear``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
META_FILE = "meta.json"
TEMP_PREFIX = ".tmp-"


def cache_root(path: str | Path | None = None) -> Path:
    """Return the feature cache folder: the argument, $ZOO_CACHE_DIR/features, or ~/.cache/zoo/features."""
    if path:
        return Path(path)
    base = os.environ.get("ZOO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "zoo")
    return Path(base) / "features"


def cache_key(description: dict) -> str:
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class CacheEntry:
    key: str
    path: Path
    meta: dict
    bytes: int


class FeatureCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = cache_root(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """Return the cached features of every split, or None when the entry is absent or incomplete."""
        folder = self.path(key)
        if not (folder / META_FILE).is_file():
            return None
        try:
            return {split: np.load(folder / f"{split}.npy", mmap_mode="r") for split in SPLITS}
        except (OSError, ValueError):
            return None

    def store(self, key: str, features: dict[str, np.ndarray], meta: dict) -> Path:
        """Write an entry atomically and return its folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f"{TEMP_PREFIX}{key}-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir()
        try:
            for split in SPLITS:
                np.save(temp / f"{split}.npy", np.ascontiguousarray(features[split], dtype=np.float32))
            meta = {**meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "shapes": {s: list(features[s].shape) for s in SPLITS}}
            (temp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            final = self.path(key)
            if final.exists():
                shutil.rmtree(final)  # another run finished the same entry first; both are equal
            temp.rename(final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return final

    def entries(self) -> list[CacheEntry]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(TEMP_PREFIX) or not (folder / META_FILE).is_file():
                continue
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            found.append(CacheEntry(key=folder.name, path=folder, meta=meta, bytes=size))
        return found

    def clear(self, model: str | None = None) -> tuple[int, int]:
        """Delete entries (all, or one model's) and leftover temporary folders; return (entries, bytes)."""
        removed, freed = 0, 0
        for entry in self.entries():
            if model is None or entry.meta.get("model") == model:
                shutil.rmtree(entry.path)
                removed += 1
                freed += entry.bytes
        if model is None and self.root.is_dir():
            for folder in self.root.glob(f"{TEMP_PREFIX}*"):
                shutil.rmtree(folder, ignore_errors=True)
        return removed, freed
