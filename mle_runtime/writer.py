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

from mle_runtime import encryption, signing
from mle_runtime.compression import CompressionUtils
from mle_runtime.format import (
    DTYPES,
    HEADER,
    HEADER_SIZE,
    INFLATION_SLACK,
    MANIFEST_ZSTD,
    MANIFEST_ZSTD_LEVEL,
    MAX_INFLATION,
    MAX_MANIFEST_BYTES,
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
    encryption_key: bytes | None = None,
    private_key: Any = None,
) -> list[bytes | memoryview]:
    """The file as a list of byte chunks (header, manifest, padding, tensor data, signature block).

    ``compress_manifest``: store the manifest as a zstd frame when that is smaller (the default).
    ``encryption_key``: 32 bytes; the tensor data is encrypted (``mle_runtime.encryption``).
    ``private_key``: an Ed25519 key (raw, PEM or object); the file is signed (``mle_runtime.signing``).
    """
    key = encryption.check_key(encryption_key, "encryption_key") if encryption_key is not None else None
    signer = signing.private_key(private_key) if private_key is not None else None
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

    document: dict[str, Any] = {"metadata": dict(metadata), "graph": dict(graph), "tensors": table}
    nonce = b""
    if key is not None:
        nonce = encryption.new_nonce()
        document["encryption"] = {"algorithm": encryption.ALGORITHM, "nonce": nonce.hex()}
        flags |= MLEFormat.FEATURE_ENCRYPTION
    manifest = canonical_json(document)
    if len(manifest) > MAX_MANIFEST_BYTES:  # the reader refuses a larger one: no file it cannot read
        raise ValueError(
            f"the manifest (metadata, graph, tensor table) takes {len(manifest):,} bytes, over the format's "
            f"{MAX_MANIFEST_BYTES:,}-byte cap (a vocabulary of millions of strings would)"
        )
    if compress_manifest:
        packed = zstandard.ZstdCompressor(
            level=MANIFEST_ZSTD_LEVEL, write_content_size=True, write_checksum=False
        ).compress(manifest)
        if len(packed) < len(manifest):
            manifest, flags = packed, flags | MANIFEST_ZSTD
    data_offset = align(HEADER_SIZE + len(manifest))
    data_size = offset + (encryption.TAG_SIZE if key is not None else 0)
    signature = (data_offset + data_size, signing.BLOCK_SIZE) if signer is not None else (0, 0)
    if signer is not None:
        flags |= MLEFormat.FEATURE_SIGNING
    head = pack_header(flags, manifest, data_offset, data_size, *signature)
    if key is not None:
        plain = b"".join(chunks)
        chunks = [encryption.encrypt(plain, key, nonce, encryption.associated_data(head, manifest))]
    out = [head, manifest, bytes(data_offset - HEADER_SIZE - len(manifest)), *chunks]
    if signer is not None:
        out.append(signing.block(out, signer))
    return out


def pack_header(
    flags: int, manifest: bytes, data_offset: int, data_size: int, signature_offset: int = 0, signature_size: int = 0
) -> bytes:
    fields = [
        MLEFormat.MLE_MAGIC,
        MLEFormat.MLE_VERSION,
        flags,
        0,
        HEADER_SIZE,
        len(manifest),
        data_offset,
        data_size,
        signature_offset,
        signature_size,
        SecurityUtils.compute_checksum(manifest),
    ]
    fields[3] = SecurityUtils.compute_checksum(HEADER.pack(*fields))
    return HEADER.pack(*fields)


def write_atomic(path: str | os.PathLike[str], chunks: list[bytes | memoryview], mode: int = 0o644) -> int:
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
        os.chmod(tmp, mode)
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
