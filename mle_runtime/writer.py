"""Deterministic, atomic writer of .mle files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from mle_runtime.compression import CompressionUtils
from mle_runtime.format import (
    DTYPES,
    HEADER,
    HEADER_SIZE,
    INFLATION_SLACK,
    MANIFEST_ZSTD,
    MANIFEST_ZSTD_LEVEL,
    MAX_INFLATION,
    MLEFormat,
    align,
)
from mle_runtime.security import SecurityUtils

# Tensors smaller than this are stored raw: a frame header would outweigh any gain.
MIN_COMPRESS_BYTES = 256


def canonical_json(obj: Any) -> bytes:
    """The one JSON spelling of ``obj``: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def _stored_bytes(array: np.ndarray, compression: int) -> tuple[bytes | memoryview, int]:
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
    if compression == MLEFormat.COMPRESSION_NONE or raw.nbytes < MIN_COMPRESS_BYTES:
        return raw, MLEFormat.COMPRESSION_NONE
    packed = CompressionUtils.compress_data(raw, compression)
    # Stored raw when compression does not pay, or would exceed the ratio the reader accepts.
    if len(packed) >= raw.nbytes or raw.nbytes > MAX_INFLATION * len(packed) + INFLATION_SLACK:
        return raw, MLEFormat.COMPRESSION_NONE
    return packed, compression


def serialize(
    metadata: Mapping[str, Any],
    graph: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    compression: int = MLEFormat.COMPRESSION_NONE,
    compress_manifest: bool = True,
) -> list[bytes | memoryview]:
    """The file as a list of byte chunks (header, manifest, padding, tensor data).

    ``compress_manifest``: store the manifest as a zstd frame when that is smaller (the default).
    """
    table, chunks, offset, flags = [], [], 0, 0
    for name, value in tensors.items():
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype.name not in DTYPES:
            raise ValueError(f"tensor {name!r} has dtype {array.dtype}, not one of {sorted(DTYPES)}")
        array = array.astype(DTYPES[dtype.name], copy=False)
        stored, code = _stored_bytes(array, compression)
        if code != MLEFormat.COMPRESSION_NONE:
            flags |= MLEFormat.FEATURE_COMPRESSION
        start = align(offset)  # each tensor starts aligned; the last one is not padded after
        entry = {
            "name": name,
            "dtype": dtype.name,
            "shape": list(array.shape),
            "offset": start,
            "nbytes": len(stored),
            "crc32": SecurityUtils.compute_checksum(stored),
        }
        if code != MLEFormat.COMPRESSION_NONE:
            entry["compression"] = code
        table.append(entry)
        chunks += [bytes(start - offset), stored]
        offset = start + len(stored)

    manifest = canonical_json({"metadata": dict(metadata), "graph": dict(graph), "tensors": table})
    if compress_manifest:
        packed = zstandard.ZstdCompressor(
            level=MANIFEST_ZSTD_LEVEL, write_content_size=True, write_checksum=False
        ).compress(manifest)
        if len(packed) < len(manifest):
            manifest, flags = packed, flags | MANIFEST_ZSTD
    data_offset = align(HEADER_SIZE + len(manifest))
    fields = [
        MLEFormat.MLE_MAGIC,
        MLEFormat.MLE_VERSION,
        flags,
        0,
        HEADER_SIZE,
        len(manifest),
        data_offset,
        offset,
        0,
        0,
        SecurityUtils.compute_checksum(manifest),
    ]
    fields[3] = SecurityUtils.compute_checksum(HEADER.pack(*fields))
    head = HEADER.pack(*fields)
    return [head, manifest, bytes(data_offset - HEADER_SIZE - len(manifest)), *chunks]


def write_atomic(path: str | os.PathLike[str], chunks: list[bytes | memoryview]) -> int:
    """Write ``chunks`` to a temporary file beside ``path``, fsync, then rename over it."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a directory, expected a file path ending in .mle")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target.stat().st_size


def write_mle(
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    graph: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    compression: int = MLEFormat.COMPRESSION_NONE,
) -> int:
    """Write an .mle file; returns its size in bytes."""
    return write_atomic(path, serialize(metadata, graph, tensors, compression))
