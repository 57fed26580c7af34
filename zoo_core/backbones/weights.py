"""Backbone weights: local files, and the pretrained download with a clear offline error."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from zoo_core.errors import ConfigError, ZooError

NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")
PREFIXES = ("module.", "model.")
MIN_MATCHED_FRACTION = 0.9


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors or PyTorch file without running pickled code.

    PyTorch files load with ``weights_only=True``, which rejects any object
    other than tensors and plain containers. A checkpoint that nests the
    weights under ``state_dict`` or ``model`` is unwrapped, and a ``module.``
    prefix (from DataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {str(path)!r} not found or not a file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    try:
        if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors, zipfile and pickle each raise their own error types
        # PyTorch's weights_only message spans many lines and suggests weights_only=False, which
        # would run the file's pickled code; zoo never does that, so the first line is enough.
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        first_line = text.splitlines()[0].split(". ")[0][:200] if text else type(error).__name__
        raise ConfigError(
            f"weights file {str(path)!r} is not a safetensors file or a PyTorch state dict of plain tensors "
            f"(files with other pickled objects are rejected); {type(error).__name__}: {first_line}"
        ) from error

    for key in NESTED_KEYS:
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"weights file {str(path)!r} does not contain a state dict of tensors")
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def file_digest(path: str | Path) -> str:
    """Return the first 16 hex digits of the file's sha256, for cache keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor], head_names: list[str], source: str) -> dict[str, Any]:
    """Copy every backbone tensor of ``state`` into ``model``; skip the head.

    Tensors of the head (a 1000-class ImageNet classifier, say) and tensors
    whose shape differs are dropped. Raises ZooError when the file does not
    match the architecture: fewer than 90% of the backbone's tensors found.
    Returns counts of loaded, dropped and missing tensors.
    """
    own = model.state_dict()
    head = set(head_names)
    usable = {}
    dropped = []
    for name, tensor in state.items():
        if name in head or name not in own or own[name].shape != tensor.shape:
            dropped.append(name)
        else:
            usable[name] = tensor
    backbone = [name for name in own if name not in head and not name.endswith("num_batches_tracked")]
    missing = [name for name in backbone if name not in usable]
    matched = 1 - len(missing) / max(len(backbone), 1)
    if matched < MIN_MATCHED_FRACTION:
        example = ", ".join(missing[:3])
        raise ZooError(
            f"weights from {source} do not fit this architecture: {len(missing)} of {len(backbone)} backbone "
            f"tensors are missing or have other shapes (for example {example}); check that the file is for this model"
        )
    model.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "dropped": len(dropped), "missing": len(missing)}


def download_state_dict(
    fetch: Callable[[], dict[str, torch.Tensor]],
    description: str,
    file_name: str,
    url: str,
    cache_name: str = "the torch hub cache",
    placement: str | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``fetch`` (a hub download that looks in a local cache first) with an offline-friendly error.

    ``cache_name`` and ``placement`` describe the cache that ``fetch`` reads,
    for the error message. ``placement`` is an instruction such as "Put the
    file F from URL into FOLDER", and by default it names the torch hub
    checkpoints folder.
    """
    if placement is None:
        placement = f"Put the file {file_name} from {url} into {Path(torch.hub.get_dir()) / 'checkpoints'}"
    try:
        return fetch()
    except ZooError:
        raise
    except Exception as error:  # urllib, http and ssl errors differ by platform and Python version
        raise ZooError(
            f"pretrained weights {description} are not in {cache_name} and the download failed "
            f"({type(error).__name__}: {error}). {placement}, "
            f"pass --weights FILE, or train from scratch with --no-pretrained"
        ) from error
