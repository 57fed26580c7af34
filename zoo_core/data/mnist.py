"""Load MNIST as train, validation and test splits, from the shipped copy or a user folder."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo_core.data.idx import parse_idx, read_idx, read_idx_bytes
from zoo_core.errors import ConfigError, DataError

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# The validation split is drawn with this fixed seed, so every run uses the same split
# and results of different runs compare.
SPLIT_SEED = 1234

SHIPPED_DIR = Path(__file__).resolve().parent / "mnist"

ENV_DATA_DIR = "ZOO_DATA_DIR"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# md5 of the uncompressed standard MNIST files. The shipped .gz wrappers differ from the
# originally published ones, so the published .gz checksums would not match.
SHIPPED_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}


@dataclass(frozen=True, eq=False)
class Split:
    """One part of the dataset: images and their labels, in file order."""

    name: str  # "train", "val" or "test"
    images: np.ndarray  # (N, 28, 28) uint8, 0 = background, 255 = ink
    labels: np.ndarray  # (N,) int64 in 0..9

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"Split {self.name!r} has {len(self.images)} images but {len(self.labels)} labels, "
                "and the counts must match."
            )

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class MNIST:
    """The three splits and where they were read from."""

    train: Split
    val: Split
    test: Split
    source: str  # "shipped" or the data folder path

    def limit(self, n: int | None) -> MNIST:
        """Return a copy whose train split keeps only its first n images, or self if n is None.

        The validation and test splits are unchanged. Raises ConfigError unless n is an
        integer from 1 to the size of the train split.
        """
        if n is None:
            return self
        size = len(self.train)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= size:
            raise ConfigError(
                f"Invalid limit {n!r}: expected a number of training images from 1 to {size}, "
                "or no limit."
            )
        train = Split("train", self.train.images[:n], self.train.labels[:n])
        return dataclasses.replace(self, train=train)


def data_dir_from_env(data_dir: str | Path | None) -> Path | None:
    """Return the data folder to read: data_dir if given, else $ZOO_DATA_DIR if set and non-empty, else None.

    An empty string counts as not given, like an empty ZOO_DATA_DIR. A leading ~ is expanded.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    from_env = os.environ.get(ENV_DATA_DIR, "")
    if from_env:
        return Path(from_env).expanduser()
    return None


def split_indices(n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted (train, val) indices that divide the training file's n_total images.

    The validation part has round(n_total / 6) images, 10,000 of the standard 60,000,
    chosen by a permutation seeded with SPLIT_SEED.
    """
    permutation = np.random.default_rng(SPLIT_SEED).permutation(n_total)
    n_val = round(n_total / 6)
    val_indices = np.sort(permutation[:n_val])
    train_indices = np.sort(permutation[n_val:])
    return train_indices, val_indices


def load_mnist(data_dir: str | Path | None = None) -> MNIST:
    """Load MNIST from data_dir, else from $ZOO_DATA_DIR, else from the copy shipped with zoo.

    The shipped files are verified against the standard md5 checksums. A user folder is
    not, because it may contain the user's own digits, but every file is validated. Raises
    DataError naming the file and the fault.
    """
    folder = data_dir_from_env(data_dir)
    if folder is None:
        arrays, paths = _read_shipped()
        source = "shipped"
    else:
        arrays, paths = _read_folder(folder)
        source = str(folder)

    _validate(arrays, paths)

    train_indices, val_indices = split_indices(len(arrays["train_labels"]))
    if len(train_indices) == 0 or len(val_indices) == 0:
        raise DataError(
            f"{paths['train_images']} has {len(arrays['train_labels'])} images, too few to divide "
            "into train and validation splits. Use a training file with at least 4 images."
        )

    images = arrays["train_images"]
    labels = arrays["train_labels"].astype(np.int64)
    return MNIST(
        train=Split("train", images[train_indices], labels[train_indices]),
        val=Split("val", images[val_indices], labels[val_indices]),
        test=Split("test", arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        source=source,
    )


def _candidate_names(name: str) -> list[str]:
    # Some copies use a dot before "idx", as in train-images.idx3-ubyte.
    dotted = name.replace("-idx", ".idx", 1)
    return [name, name + ".gz", dotted, dotted + ".gz"]


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in _candidate_names(name):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def _read_shipped() -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    hint = "The shipped copy of MNIST is corrupt: reinstall zoo, or pass --data-dir with a folder of MNIST files."
    for key, name in FILES.items():
        path = _find_file(SHIPPED_DIR, name)
        if path is None:
            raise DataError(
                f"Shipped MNIST file {name}.gz not found in {SHIPPED_DIR}. "
                "Reinstall zoo, or pass --data-dir with a folder of MNIST files."
            )
        try:
            data = read_idx_bytes(path)
        except DataError as exc:
            raise DataError(f"{exc} {hint}") from None

        found_md5 = hashlib.md5(data).hexdigest()
        if found_md5 != SHIPPED_MD5[key]:
            raise DataError(
                f"Checksum mismatch for {path}: the md5 of its uncompressed contents is {found_md5}, "
                f"expected {SHIPPED_MD5[key]}. {hint}"
            )
        arrays[key] = parse_idx(data, path)
        paths[key] = path
    return arrays, paths


def _read_folder(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    if not folder.exists():
        raise DataError(
            f"Data folder not found: {folder}. Pass --data-dir or set {ENV_DATA_DIR} to a folder "
            f"that contains the four MNIST files ({', '.join(FILES.values())}, each raw or .gz)."
        )
    if not folder.is_dir():
        raise DataError(
            f"Data folder {folder} is a file, expected a folder that contains the four MNIST files."
        )

    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    for key, name in FILES.items():
        path = _find_file(folder, name)
        if path is None:
            raise DataError(
                f"MNIST file not found in {folder}: looked for {', '.join(_candidate_names(name))}. "
                "Add the file, or pass --data-dir with another folder."
            )
        arrays[key] = read_idx(path)
        paths[key] = path
    return arrays, paths


def _validate(arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
    for part in ("train", "test"):
        images_path = paths[f"{part}_images"]
        labels_path = paths[f"{part}_labels"]
        images = arrays[f"{part}_images"]
        labels = arrays[f"{part}_labels"]
        _validate_images(images, images_path)
        _validate_labels(labels, labels_path)
        if len(images) != len(labels):
            raise DataError(
                f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels. "
                "The counts must match, so use image and label files from the same set."
            )
        if len(images) == 0:
            raise DataError(f"{images_path} contains no images. Use a file with at least one image.")


def _validate_images(images: np.ndarray, path: Path) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{path} has the wrong image size: the array shape is {images.shape}, "
            f"expected (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})."
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path} has the wrong dtype {images.dtype} for images, expected uint8.")


def _validate_labels(labels: np.ndarray, path: Path) -> None:
    if labels.ndim != 1:
        raise DataError(
            f"{path} has the wrong shape {labels.shape} for labels, expected a 1-d array (N,)."
        )
    if labels.dtype != np.uint8:
        raise DataError(f"{path} has the wrong dtype {labels.dtype} for labels, expected uint8.")
    invalid = np.flatnonzero(labels >= NUM_CLASSES)
    if len(invalid):
        first = invalid[0]
        raise DataError(
            f"{path} has an invalid label {labels[first]} at index {first} "
            f"({len(invalid)} invalid in all), expected labels from 0 to {NUM_CLASSES - 1}."
        )
