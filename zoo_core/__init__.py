"""zoo: a plugin-based model zoo for handwritten digit recognition on MNIST."""

from zoo_core.hookspecs import CONTRACT_VERSION, hookimpl

__version__ = "0.1.0"
__all__ = ["CONTRACT_VERSION", "__version__", "hookimpl"]
