"""MNIST data: the IDX file reader and the loader for train, validation and test splits."""

from zoo_core.data.idx import read_idx
from zoo_core.data.mnist import (
    FILES,
    IMAGE_SHAPE,
    MNIST,
    NUM_CLASSES,
    SHIPPED_DIR,
    SPLIT_SEED,
    Split,
    data_dir_from_env,
    load_mnist,
    split_indices,
)

__all__ = [
    "FILES",
    "IMAGE_SHAPE",
    "MNIST",
    "NUM_CLASSES",
    "SHIPPED_DIR",
    "SPLIT_SEED",
    "Split",
    "data_dir_from_env",
    "load_mnist",
    "read_idx",
    "split_indices",
]
