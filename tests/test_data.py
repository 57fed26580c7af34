"""Tests for the IDX reader and the MNIST loader, on small files in tmp_path and the shipped copy."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo_core.data import (
    FILES,
    IMAGE_SHAPE,
    MNIST,
    NUM_CLASSES,
    SHIPPED_DIR,
    Split,
    data_dir_from_env,
    load_mnist,
    read_idx,
    split_indices,
)
from zoo_core.data import mnist as mnist_module
from zoo_core.errors import ConfigError, DataError

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
             np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes: magic number, big-endian dimension sizes, big-endian data."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    sizes = np.array(array.shape, dtype=">u4").tobytes()
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, *IMAGE_SHAPE), dtype=np.uint8)


def make_labels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NUM_CLASSES, size=count, dtype=np.uint8)


def write_user_copy(folder: Path, n_train: int = 12, n_test: int = 5,
                    compress: bool = False, dotted: bool = False) -> dict[str, np.ndarray]:
    """Write the four MNIST files with random contents into folder and return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": make_images(n_train, seed=1),
        "train_labels": make_labels(n_train, seed=2),
        "test_images": make_images(n_test, seed=3),
        "test_labels": make_labels(n_test, seed=4),
    }
    for key, name in FILES.items():
        if dotted:
            name = name.replace("-idx", ".idx")
        if compress:
            name += ".gz"
        write_idx(folder / name, arrays[key], compress=compress)
    return arrays


@pytest.fixture(autouse=True)
def no_env_data_dir(monkeypatch):
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def shipped() -> MNIST:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ZOO_DATA_DIR", raising=False)
        return load_mnist()


# read_idx: valid files


def test_read_idx_raw(tmp_path):
    images = make_images(3)
    result = read_idx(write_idx(tmp_path / "images", images))
    assert result.shape == (3, 28, 28)
    assert result.dtype == np.uint8
    assert np.array_equal(result, images)


def test_read_idx_gzip(tmp_path):
    labels = make_labels(7)
    result = read_idx(write_idx(tmp_path / "labels.gz", labels, compress=True))
    assert np.array_equal(result, labels)


def test_read_idx_gzip_without_suffix(tmp_path):
    labels = make_labels(7)
    result = read_idx(write_idx(tmp_path / "labels-idx1-ubyte", labels, compress=True))
    assert np.array_equal(result, labels)


@pytest.mark.parametrize("dtype", ["i1", "i2", "i4", "f4", "f8"])
def test_read_idx_big_endian_dtypes(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 10).astype(dtype)
    result = read_idx(write_idx(tmp_path / "array", array))
    assert result.dtype == np.dtype(dtype)
    assert result.dtype.isnative
    assert np.array_equal(result, array)


def test_read_idx_writable(tmp_path):
    result = read_idx(write_idx(tmp_path / "labels", make_labels(4)))
    assert result.flags.writeable


def test_read_idx_zero_images(tmp_path):
    result = read_idx(write_idx(tmp_path / "images", np.zeros((0, 28, 28), np.uint8)))
    assert result.shape == (0, 28, 28)


# read_idx: bad files


def read_idx_error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        read_idx(path)
    return str(info.value)


def test_read_idx_missing(tmp_path):
    path = tmp_path / "absent-idx1-ubyte"
    message = read_idx_error(path)
    assert str(path) in message
    assert "not found" in message


def test_read_idx_folder(tmp_path):
    message = read_idx_error(tmp_path)
    assert str(tmp_path) in message
    assert "is a folder" in message


def test_read_idx_empty(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    message = read_idx_error(path)
    assert str(path) in message
    assert "empty" in message


def test_read_idx_empty_gz(tmp_path):
    path = tmp_path / "empty.gz"
    path.write_bytes(b"")
    message = read_idx_error(path)
    assert "empty" in message


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "wrong"
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    message = read_idx_error(path)
    assert str(path) in message
    assert "wrong magic number 0x12340801" in message
    assert "0x00000803" in message


def test_read_idx_zero_dimensions(tmp_path):
    path = tmp_path / "scalar"
    path.write_bytes(b"\x00\x00\x08\x00\x05")
    message = read_idx_error(path)
    assert "wrong magic number 0x00000800" in message


def test_read_idx_unsupported_dtype(tmp_path):
    path = tmp_path / "dtype"
    path.write_bytes(b"\x00\x00\x07\x01" + (2).to_bytes(4, "big") + b"\x01\x02")
    message = read_idx_error(path)
    assert str(path) in message
    assert "unsupported dtype code 0x07" in message
    assert "0x08 (uint8)" in message


def test_read_idx_gz_name_not_gzip(tmp_path):
    path = write_idx(tmp_path / "labels.gz", make_labels(4))
    message = read_idx_error(path)
    assert str(path) in message
    assert "not a valid gzip file" in message


def test_read_idx_gzip_corrupt(tmp_path):
    compressed = bytearray(gzip.compress(idx_bytes(make_images(20))))
    middle = len(compressed) // 2
    compressed[middle:middle + 16] = bytes(16)
    path = tmp_path / "images.gz"
    path.write_bytes(bytes(compressed))
    message = read_idx_error(path)
    assert str(path) in message
    assert "not a valid gzip file" in message


def test_read_idx_gzip_truncated(tmp_path):
    compressed = gzip.compress(idx_bytes(make_images(20)))
    path = tmp_path / "images.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    message = read_idx_error(path)
    assert str(path) in message
    assert "not a valid gzip file" in message


def test_read_idx_gzip_bad_crc(tmp_path):
    compressed = bytearray(gzip.compress(idx_bytes(make_labels(50))))
    compressed[-8] ^= 0xFF  # the CRC-32 field of the gzip trailer
    path = tmp_path / "labels"
    path.write_bytes(bytes(compressed))
    message = read_idx_error(path)
    assert "not a valid gzip file" in message


def test_read_idx_truncated_data(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(make_labels(10))[:-3])
    message = read_idx_error(path)
    assert str(path) in message
    assert "truncated" in message
    assert "promises 10 bytes" in message
    assert "only 7 are present" in message


def test_read_idx_truncated_gzip_payload(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(make_images(2))[:-100]))
    message = read_idx_error(path)
    assert "promises 1568 bytes" in message
    assert "only 1468 are present" in message


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big"))
    message = read_idx_error(path)
    assert str(path) in message
    assert "truncated" in message
    assert "needs 16 bytes" in message


def test_read_idx_shorter_than_magic(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00")
    message = read_idx_error(path)
    assert "truncated" in message


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(make_labels(10)) + b"xyz")
    message = read_idx_error(path)
    assert str(path) in message
    assert "3 extra bytes" in message
    assert "13 are present" in message


# data_dir_from_env


def test_data_dir_argument(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", "/elsewhere")
    assert data_dir_from_env(tmp_path) == tmp_path


def test_data_dir_string_argument(tmp_path):
    assert data_dir_from_env(str(tmp_path)) == tmp_path


def test_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    assert data_dir_from_env(None) == tmp_path


def test_data_dir_env_empty(monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", "")
    assert data_dir_from_env(None) is None


def test_data_dir_none():
    assert data_dir_from_env(None) is None


# split_indices


def test_split_indices_sizes():
    train, val = split_indices(60_000)
    assert len(train) == 50_000
    assert len(val) == 10_000


def test_split_indices_partition():
    train, val = split_indices(60_000)
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.union1d(train, val), np.arange(60_000))


def test_split_indices_sorted():
    train, val = split_indices(600)
    assert np.all(np.diff(train) > 0)
    assert np.all(np.diff(val) > 0)


def test_split_indices_deterministic():
    first_train, first_val = split_indices(600)
    second_train, second_val = split_indices(600)
    assert np.array_equal(first_train, second_train)
    assert np.array_equal(first_val, second_val)


# load_mnist: a user copy


def test_load_user_raw(tmp_path):
    arrays = write_user_copy(tmp_path)
    data = load_mnist(tmp_path)
    train, val = split_indices(12)
    assert data.source == str(tmp_path)
    assert np.array_equal(data.train.images, arrays["train_images"][train])
    assert np.array_equal(data.val.labels, arrays["train_labels"][val])
    assert np.array_equal(data.test.images, arrays["test_images"])
    assert np.array_equal(data.test.labels, arrays["test_labels"])


def test_load_user_sizes(tmp_path):
    write_user_copy(tmp_path, n_train=12, n_test=5)
    data = load_mnist(tmp_path)
    assert len(data.train) == 10
    assert len(data.val) == 2
    assert len(data.test) == 5


def test_load_user_dtypes(tmp_path):
    write_user_copy(tmp_path)
    data = load_mnist(tmp_path)
    assert data.train.images.dtype == np.uint8
    assert data.train.labels.dtype == np.int64
    assert data.test.labels.dtype == np.int64


def test_load_user_gzip_env(monkeypatch, tmp_path):
    arrays = write_user_copy(tmp_path, compress=True)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    data = load_mnist()
    assert data.source == str(tmp_path)
    assert np.array_equal(data.test.images, arrays["test_images"])


def test_load_user_dotted_names(tmp_path):
    arrays = write_user_copy(tmp_path, dotted=True, compress=True)
    data = load_mnist(tmp_path)
    assert np.array_equal(data.test.labels, arrays["test_labels"])


def test_load_argument_beats_env(monkeypatch, tmp_path):
    write_user_copy(tmp_path / "argument")
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "absent"))
    data = load_mnist(tmp_path / "argument")
    assert data.source == str(tmp_path / "argument")


def test_load_user_not_checksummed(tmp_path):
    write_user_copy(tmp_path, n_train=60, n_test=10)
    data = load_mnist(tmp_path)
    assert len(data.train) == 50


def load_error(folder: Path) -> str:
    with pytest.raises(DataError) as info:
        load_mnist(folder)
    return str(info.value)


def test_load_missing_folder(tmp_path):
    folder = tmp_path / "absent"
    message = load_error(folder)
    assert str(folder) in message
    assert "Data folder not found" in message
    assert "train-images-idx3-ubyte" in message


def test_load_folder_is_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a folder")
    message = load_error(path)
    assert str(path) in message
    assert "is a file" in message


def test_load_missing_file(tmp_path):
    write_user_copy(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    message = load_error(tmp_path)
    assert str(tmp_path) in message
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert "t10k-labels.idx1-ubyte" in message
    assert "not found" in message


def test_load_wrong_image_size(tmp_path):
    write_user_copy(tmp_path)
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 32, 32), np.uint8))
    message = load_error(tmp_path)
    assert str(path) in message
    assert "wrong image size" in message
    assert "(5, 32, 32)" in message


def test_load_images_not_3d(tmp_path):
    write_user_copy(tmp_path)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 784), np.uint8))
    message = load_error(tmp_path)
    assert str(path) in message
    assert "wrong image size" in message
    assert "(12, 784)" in message


def test_load_images_wrong_dtype(tmp_path):
    write_user_copy(tmp_path)
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 28, 28), np.float32))
    message = load_error(tmp_path)
    assert str(path) in message
    assert "wrong dtype float32" in message


def test_load_labels_not_1d(tmp_path):
    write_user_copy(tmp_path)
    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((12, 1), np.uint8))
    message = load_error(tmp_path)
    assert str(path) in message
    assert "wrong shape (12, 1)" in message


def test_load_labels_wrong_dtype(tmp_path):
    write_user_copy(tmp_path)
    path = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(12, np.int32))
    message = load_error(tmp_path)
    assert str(path) in message
    assert "wrong dtype int32" in message


def test_load_label_out_of_range(tmp_path):
    write_user_copy(tmp_path)
    labels = make_labels(5)
    labels[3] = 10
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    message = load_error(tmp_path)
    assert str(path) in message
    assert "invalid label 10 at index 3" in message


def test_load_count_mismatch(tmp_path):
    write_user_copy(tmp_path)
    labels_path = write_idx(tmp_path / "train-labels-idx1-ubyte", make_labels(11))
    message = load_error(tmp_path)
    assert str(tmp_path / "train-images-idx3-ubyte") in message
    assert str(labels_path) in message
    assert "12 images" in message
    assert "11 labels" in message


def test_load_too_few_train_images(tmp_path):
    write_user_copy(tmp_path, n_train=3)
    message = load_error(tmp_path)
    assert "3 images, too few" in message


def test_load_no_test_images(tmp_path):
    write_user_copy(tmp_path, n_test=0)
    message = load_error(tmp_path)
    assert "contains no images" in message


def test_load_corrupt_user_file(tmp_path):
    write_user_copy(tmp_path, compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    message = load_error(tmp_path)
    assert str(path) in message
    assert "not a valid gzip file" in message


# load_mnist: the shipped copy


def test_shipped_dir_files():
    for name in FILES.values():
        assert (SHIPPED_DIR / f"{name}.gz").is_file(), name


def test_shipped_source(shipped):
    assert shipped.source == "shipped"


def test_shipped_sizes(shipped):
    assert len(shipped.train) == 50_000
    assert len(shipped.val) == 10_000
    assert len(shipped.test) == 10_000


@pytest.mark.parametrize("split_name", ["train", "val", "test"])
def test_shipped_arrays(shipped, split_name):
    split = getattr(shipped, split_name)
    assert split.name == split_name
    assert split.images.shape == (len(split), 28, 28)
    assert split.images.dtype == np.uint8
    assert split.labels.shape == (len(split),)
    assert split.labels.dtype == np.int64
    assert split.labels.min() == 0
    assert split.labels.max() == 9


def test_shipped_ink_range(shipped):
    assert shipped.test.images.min() == 0
    assert shipped.test.images.max() == 255
    assert np.median(shipped.test.images) == 0  # background is 0, most pixels are background


def test_shipped_split_matches_file(shipped):
    images = read_idx(SHIPPED_DIR / "train-images-idx3-ubyte.gz")
    labels = read_idx(SHIPPED_DIR / "train-labels-idx1-ubyte.gz")
    train, val = split_indices(60_000)
    assert np.array_equal(shipped.train.images, images[train])
    assert np.array_equal(shipped.val.images, images[val])
    assert np.array_equal(shipped.train.labels, labels[train])
    assert np.array_equal(shipped.val.labels, labels[val])


def test_shipped_test_labels_start(shipped):
    # The first labels of the standard t10k-labels file.
    assert shipped.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_shipped_deterministic(shipped):
    again = load_mnist()
    assert np.array_equal(again.train.images, shipped.train.images)
    assert np.array_equal(again.val.labels, shipped.val.labels)


def copy_shipped(destination: Path) -> Path:
    destination.mkdir()
    for name in FILES.values():
        shutil.copyfile(SHIPPED_DIR / f"{name}.gz", destination / f"{name}.gz")
    return destination


def test_shipped_checksum_mismatch(monkeypatch, tmp_path):
    folder = copy_shipped(tmp_path / "mnist")
    path = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[100] = (data[100] + 1) % NUM_CLASSES
    path.write_bytes(gzip.compress(bytes(data)))
    monkeypatch.setattr(mnist_module, "SHIPPED_DIR", folder)

    with pytest.raises(DataError) as info:
        load_mnist()
    message = str(info.value)
    assert str(path) in message
    assert hashlib.md5(bytes(data)).hexdigest() in message
    assert "a25bea736e30d166cdddb491f175f624" in message
    assert "corrupt" in message
    assert "reinstall zoo" in message
    assert "--data-dir" in message


def test_shipped_gzip_corrupt(monkeypatch, tmp_path):
    folder = copy_shipped(tmp_path / "mnist")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    monkeypatch.setattr(mnist_module, "SHIPPED_DIR", folder)

    with pytest.raises(DataError) as info:
        load_mnist()
    message = str(info.value)
    assert str(path) in message
    assert "not a valid gzip file" in message
    assert "reinstall zoo" in message


def test_shipped_file_missing(monkeypatch, tmp_path):
    folder = copy_shipped(tmp_path / "mnist")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    monkeypatch.setattr(mnist_module, "SHIPPED_DIR", folder)

    with pytest.raises(DataError) as info:
        load_mnist()
    message = str(info.value)
    assert str(folder) in message
    assert "t10k-images-idx3-ubyte" in message
    assert "Reinstall zoo" in message


# Split and MNIST.limit


def test_split_len():
    split = Split("test", make_images(4), make_labels(4).astype(np.int64))
    assert len(split) == 4


def test_split_count_mismatch():
    with pytest.raises(ValueError, match="3 images but 4 labels"):
        Split("test", make_images(3), make_labels(4))


def test_limit_train(shipped):
    limited = shipped.limit(100)
    assert len(limited.train) == 100
    assert np.array_equal(limited.train.images, shipped.train.images[:100])
    assert np.array_equal(limited.train.labels, shipped.train.labels[:100])


def test_limit_keeps_val_test(shipped):
    limited = shipped.limit(100)
    assert limited.val is shipped.val
    assert limited.test is shipped.test
    assert limited.source == shipped.source


def test_limit_leaves_original(shipped):
    shipped.limit(100)
    assert len(shipped.train) == 50_000


def test_limit_none(shipped):
    assert shipped.limit(None) is shipped


def test_limit_all(shipped):
    assert len(shipped.limit(50_000).train) == 50_000


@pytest.mark.parametrize("n", [0, -1, 50_001])
def test_limit_out_of_range(shipped, n):
    with pytest.raises(ConfigError) as info:
        shipped.limit(n)
    message = str(info.value)
    assert f"Invalid limit {n}" in message
    assert "from 1 to 50000" in message


@pytest.mark.parametrize("n", [1.5, "10", True])
def test_limit_not_integer(shipped, n):
    with pytest.raises(ConfigError, match="Invalid limit"):
        shipped.limit(n)
