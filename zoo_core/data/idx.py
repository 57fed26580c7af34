"""Read IDX files, the array format of the MNIST distribution, raw or gzip-compressed.

An IDX file starts with a 4-byte magic number: two zero bytes, a dtype code and the
number of dimensions. One big-endian uint32 per dimension follows, then the data in
big-endian C order with no padding.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from zoo_core.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype codes mapped to the big-endian numpy dtypes of the data.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file into an array with the header's shape and dtype in native byte order.

    The file may be gzip-compressed, which is detected by its magic bytes 1f 8b, not by
    its name. Raises DataError, naming the file and the fault, for a missing, empty,
    corrupt, truncated or oversized file and for an unsupported header.
    """
    path = Path(path)
    return parse_idx(read_idx_bytes(path), path)


def read_idx_bytes(path: str | Path) -> bytes:
    """Return the uncompressed contents of an IDX file, decompressing gzip if present.

    Raises DataError for a missing, unreadable or empty file, for a file whose name ends
    in .gz without gzip content, and for corrupt or truncated gzip data. The IDX header
    is not checked here, so callers can checksum the bytes before parsing them.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}. Check the path.") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, expected an IDX file.") from None
    except OSError as exc:
        raise DataError(f"Cannot read IDX file {path}: {exc.strerror}.") from None

    if not raw:
        raise DataError(f"IDX file {path} is empty (0 bytes). Replace it with a complete copy.")

    if raw.startswith(GZIP_MAGIC):
        return _decompress_gzip(raw, path)
    if path.name.endswith(".gz"):
        raise DataError(
            f"{path} is not a valid gzip file: its name ends in .gz, but it does not start "
            f"with the gzip magic bytes 1f 8b (found {raw[:2].hex(' ')}). "
            "Replace it with a complete copy, or rename it without .gz if it is an uncompressed IDX file."
        )
    return raw


def _decompress_gzip(raw: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(raw)
    # gzip raises BadGzipFile (an OSError) for a bad header or CRC, EOFError for a
    # truncated stream and zlib.error for corrupt deflate data.
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a valid gzip file: {exc}. "
            "The file is corrupt or truncated, so replace it with a complete copy."
        ) from None


def parse_idx(data: bytes, path: str | Path) -> np.ndarray:
    """Parse the uncompressed contents of an IDX file into a native-endian array.

    The path is used only in error messages. Raises DataError for a wrong magic number,
    an unsupported dtype code, a truncated header or data, and extra bytes after the data.
    """
    if len(data) < 4:
        raise DataError(
            f"IDX file {path} is truncated: it has {len(data)} bytes, "
            "but the IDX header alone needs at least 4."
        )

    magic = int.from_bytes(data[:4], "big")
    dtype_code = data[2]
    ndim = data[3]
    if data[0] != 0 or data[1] != 0 or ndim == 0:
        raise DataError(
            f"{path} is not an IDX file: wrong magic number 0x{magic:08x}. Expected 0x0000 "
            "followed by a dtype code byte and a non-zero number of dimensions "
            "(0x00000803 for MNIST images, 0x00000801 for MNIST labels)."
        )
    if dtype_code not in IDX_DTYPES:
        supported = ", ".join(f"0x{code:02x} ({dtype.name})" for code, dtype in IDX_DTYPES.items())
        raise DataError(
            f"IDX file {path} has an unsupported dtype code 0x{dtype_code:02x} "
            f"(magic number 0x{magic:08x}). Supported codes: {supported}."
        )
    dtype = IDX_DTYPES[dtype_code]

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file {path} is truncated: its header declares {ndim} dimensions and so needs "
            f"{header_size} bytes, but the file has only {len(data)}."
        )
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))

    # Multiply as Python integers, so that huge sizes in a corrupt header cannot overflow.
    expected = dtype.itemsize
    for size in shape:
        expected *= size
    actual = len(data) - header_size
    if actual < expected:
        raise DataError(
            f"IDX file {path} is truncated: its header promises {expected} bytes of data "
            f"(shape {shape}, {dtype.name}), but only {actual} are present. "
            "Replace it with a complete copy."
        )
    if actual > expected:
        raise DataError(
            f"IDX file {path} has {actual - expected} extra bytes after the data: its header "
            f"promises {expected} bytes (shape {shape}, {dtype.name}), but {actual} are present. "
            "The file is corrupt or not in IDX format."
        )

    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    # astype copies, which also makes the array writable (frombuffer on bytes is read-only).
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
