"""Find and replace a classifier's head without per-family rules.

The head is whatever depends on the number of classes: building the same
architecture with 10 and with 11 classes, the parameters whose shapes differ
are exactly the head's, auxiliary heads included. The two builds keep their
tensors on PyTorch's meta device, so they cost neither memory nor
initialization time.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

from torch import nn

_BUILDING_EMPTY = contextvars.ContextVar("building_empty_weights", default=False)


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Move every parameter and buffer to the meta device as soon as a module registers it.

    ``with torch.device("meta")`` is not enough: RegNet's builder computes its
    block widths with tensors and calls ``.tolist()``, which fails on meta
    tensors. Here those computations run on the CPU, and only the weights
    (and the initialization that runs on them) go to the meta device.
    """
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def register_meta_parameter(module, name, parameter):
        register_parameter(module, name, parameter)
        if parameter is not None:
            moved = module._parameters[name]
            module._parameters[name] = nn.Parameter(moved.to("meta"), requires_grad=moved.requires_grad)

    def register_meta_buffer(module, name, buffer, persistent=True):
        register_buffer(module, name, buffer, persistent)
        if buffer is not None:
            module._buffers[name] = module._buffers[name].to("meta")

    nn.Module.register_parameter, nn.Module.register_buffer = register_meta_parameter, register_meta_buffer
    token = _BUILDING_EMPTY.set(True)
    try:
        yield
    finally:
        _BUILDING_EMPTY.reset(token)
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def building_empty_weights() -> bool:
    """Return True inside ``empty_weights()``.

    A builder that runs a forward pass while it constructs the model (timm's
    hybrid ViTs do, to measure their CNN stem) needs its input on the meta
    device too, so it checks this and creates its own tensors there.
    """
    return _BUILDING_EMPTY.get()


def head_parameter_names(build: Callable[[int], nn.Module]) -> list[str]:
    """Return the names of the parameters whose shapes depend on the number of classes.

    ``build(num_classes)`` must return the architecture with that many outputs.
    """
    with empty_weights():
        ten = dict(build(10).named_parameters())
        eleven = dict(build(11).named_parameters())
    return sorted(name for name, tensor in ten.items() if name not in eleven or eleven[name].shape != tensor.shape)


def head_module_names(parameter_names: list[str]) -> list[str]:
    """Return the modules that own the given parameters (``fc.weight`` -> ``fc``)."""
    return sorted({name.rpartition(".")[0] for name in parameter_names})


def replace_modules(model: nn.Module, names: list[str], make: Callable[[nn.Module], nn.Module]) -> None:
    """Replace each named submodule ``m`` in place by ``make(m)``."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(parent.get_submodule(child)))


def head_inputs(module: nn.Module) -> int:
    """Return the number of input features of a head layer (Linear or 1x1 Conv2d)."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.Conv2d):
        return module.in_channels
    raise TypeError(f"unsupported head layer {type(module).__name__}; expected Linear or Conv2d")


def is_global_average_pool(module: nn.Module) -> bool:
    """Return True for a module that averages a feature map down to one value per channel."""
    if isinstance(module, nn.AdaptiveAvgPool2d):
        size = module.output_size
        return size == 1 if isinstance(size, int) else tuple(size) == (1, 1)
    # timm's pooling module, recognized by its attributes so that this module needs no timm import.
    return type(module).__name__ == "SelectAdaptivePool2d" and getattr(module, "pool_type", "") == "avg"


def pool_over_grid(network: nn.Module, grid: int) -> str | None:
    """Make the network's final global average pool average over a ``grid`` x ``grid`` grid instead.

    The final pool is the last registered global average pool; pools inside
    blocks (squeeze-and-excitation) come before it. Its output keeps the
    layout the network expects: flattened where the pool flattened. Returns
    the replaced module's name, or None when the network has no such module
    (a transformer that pools its tokens in its forward code).
    """
    names = [name for name, module in network.named_modules() if name and is_global_average_pool(module)]
    if not names:
        return None
    name = names[-1]
    # timm's module flattens when its flatten attribute is an nn.Flatten; torch's never does.
    flatten = isinstance(getattr(network.get_submodule(name), "flatten", None), nn.Flatten)
    pool: nn.Module = nn.AdaptiveAvgPool2d(grid)
    if flatten:
        pool = nn.Sequential(pool, nn.Flatten(1))
    replace_modules(network, [name], lambda module: pool)
    return name
