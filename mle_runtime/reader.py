"""Reader of .mle files. Every rule is checked before a byte of tensor data is used.

Rules (each failure raises ``FormatError`` naming the rule and the offset or tensor):
  header    the file holds a 64-byte header with the magic, a known version, known flag bits and a
            matching CRC-32
  manifest  the manifest starts right after the header, lies inside the file, is at most
            MAX_MANIFEST_BYTES, matches its CRC-32 and is UTF-8 JSON of the documented shape; under
            MANIFEST_ZSTD it is one zstd frame declaring a content size of at most MAX_MANIFEST_BYTES
  sections  the data section starts at the first 64-byte boundary after the manifest; sections end
            exactly at the end of the file (no trailing bytes); padding bytes are zero
  tensors   unique names; dtypes from the whitelist; non-negative shapes with shape x itemsize equal
            to the raw size; 64-byte-aligned offsets inside the data section, in order, not overlapping;
            stored size equal to the raw size unless compressed; CRC-32 of the stored bytes (for a
            large file, once per file version: see ``mle_runtime.verified``)
"""

from __future__ import annotations

import json
import math
import mmap
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import zstandard

from mle_runtime import verified
from mle_runtime.compression import CompressionUtils
from mle_runtime.errors import FormatError
from mle_runtime.format import (
    ALIGNMENT,
    COMPRESSIONS,
    DTYPES,
    HEADER,
    HEADER_SIZE,
    INFLATION_SLACK,
    KNOWN_FLAGS,
    MANIFEST_ZSTD,
    MAX_INFLATION,
    MAX_MANIFEST_BYTES,
    MAX_RANK,
    MAX_TENSORS,
    MLEFormat,
    align,
)
from mle_runtime.security import SecurityUtils


@dataclass(frozen=True)
class Header:
    magic: int
    version: int
    flags: int
    header_crc: int
    manifest_offset: int
    manifest_size: int
    data_offset: int
    data_size: int
    signature_offset: int
    signature_size: int
    manifest_crc: int


@dataclass
class MleFile:
    """A validated .mle file: header, manifest and (after ``load_tensors``) its tensors."""

    path: Path
    file_size: int
    header: Header
    manifest_bytes: bytes
    metadata: dict[str, Any]
    graph: dict[str, Any]
    tensor_table: list[dict[str, Any]]
    stat: os.stat_result
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def _fail(rule: str, message: str) -> FormatError:
    return FormatError(f"{rule}: {message}")


def _parse_header(raw: bytes, file_size: int) -> Header:
    if file_size < HEADER_SIZE or len(raw) < HEADER_SIZE:
        raise _fail("header", f"file is {file_size} bytes, smaller than the {HEADER_SIZE}-byte header")
    h = Header(*HEADER.unpack(raw[:HEADER_SIZE]))
    if h.magic != MLEFormat.MLE_MAGIC:
        raise _fail("header", f"bad magic 0x{h.magic:08X} at offset 0 (not an .mle file)")
    if h.version != MLEFormat.MLE_VERSION:
        raise _fail(
            "header", f"unsupported version {h.version} at offset 4 (this reader reads {MLEFormat.MLE_VERSION})"
        )
    if h.flags & ~KNOWN_FLAGS:
        raise _fail("header", f"unknown feature flags 0x{h.flags & ~KNOWN_FLAGS:X} at offset 8")
    zeroed = raw[:12] + bytes(4) + raw[16:HEADER_SIZE]
    if SecurityUtils.compute_checksum(zeroed) != h.header_crc:
        raise _fail("header", "header checksum mismatch at offset 12 (file corrupted)")
    if h.manifest_offset != HEADER_SIZE:
        raise _fail("manifest", f"manifest offset {h.manifest_offset} at offset 16, expected {HEADER_SIZE}")
    if h.manifest_size > MAX_MANIFEST_BYTES:
        raise _fail("manifest", f"manifest size {h.manifest_size} exceeds the {MAX_MANIFEST_BYTES}-byte cap")
    if HEADER_SIZE + h.manifest_size > file_size:
        raise _fail("manifest", f"manifest of {h.manifest_size} bytes runs past the end of the {file_size}-byte file")
    if h.data_offset != align(HEADER_SIZE + h.manifest_size):
        raise _fail("sections", f"data offset {h.data_offset} is not the first 64-byte boundary after the manifest")
    if h.flags & (MLEFormat.FEATURE_SIGNING | MLEFormat.FEATURE_ENCRYPTION):
        raise _fail("header", "signed or encrypted files are not supported by this reader version yet")
    if h.signature_offset or h.signature_size:
        raise _fail("sections", "signature fields set but the signing flag is not")
    end = h.data_offset + h.data_size
    if end != file_size:
        raise _fail("sections", f"data section ends at {end} but the file has {file_size} bytes")
    return h


def _parse_manifest(raw: bytes, h: Header) -> dict[str, Any]:
    if SecurityUtils.compute_checksum(raw) != h.manifest_crc:
        raise _fail("manifest", f"manifest checksum mismatch (bytes {HEADER_SIZE}..{HEADER_SIZE + len(raw)})")
    if h.flags & MANIFEST_ZSTD:
        raw = _inflate_manifest(raw)
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail("manifest", f"not valid UTF-8 JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise _fail("manifest", "top level must be an object")
    for key, kind in (("metadata", dict), ("graph", dict), ("tensors", list)):
        if not isinstance(manifest.get(key), kind):
            raise _fail("manifest", f"missing or mistyped {key!r} (expected {kind.__name__})")
    return manifest


def _inflate_manifest(raw: bytes) -> bytes:
    try:
        size = zstandard.frame_content_size(raw)
        if not 0 <= size <= MAX_MANIFEST_BYTES:
            raise _fail(
                "manifest", f"compressed manifest declares {size} bytes (cap {MAX_MANIFEST_BYTES}, -1: unknown)"
            )
        out = _decompressor().decompress(raw, max_output_size=size)
    except zstandard.ZstdError as e:
        raise _fail("manifest", f"corrupt zstd frame: {e}") from e
    if len(out) != size:
        raise _fail("manifest", f"compressed manifest inflated to {len(out)} bytes, its frame declares {size}")
    return out


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    # Making one costs ~8 us, more than inflating a manifest; an instance is not for concurrent use.
    d = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor()
    return d


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in a manifest")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_tensor_table(table: list[Any], data_size: int) -> None:
    if len(table) > MAX_TENSORS:
        raise _fail("tensors", f"{len(table)} tensors exceed the cap of {MAX_TENSORS}")
    names: set[str] = set()
    end = 0
    for i, t in enumerate(table):
        where = f"tensor #{i}"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise _fail("tensors", f"{where}: entry must be an object with a string name")
        where = f"tensor {t['name']!r}"
        if t["name"] in names:
            raise _fail("tensors", f"{where}: duplicate name")
        names.add(t["name"])
        if not isinstance(t.get("dtype"), str) or t["dtype"] not in DTYPES:
            raise _fail("tensors", f"{where}: dtype {t.get('dtype')!r} not in {sorted(DTYPES)}")
        shape = t.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) and d >= 0 for d in shape):
            raise _fail("tensors", f"{where}: shape {shape!r} must be a list of at most {MAX_RANK} non-negative ints")
        t.setdefault("compression", MLEFormat.COMPRESSION_NONE)
        for key in ("offset", "nbytes", "compression", "crc32"):
            if not _is_int(t.get(key)) or t[key] < 0:
                raise _fail("tensors", f"{where}: {key} must be a non-negative int, got {t.get(key)!r}")
        t["raw_nbytes"] = math.prod(shape) * DTYPES[t["dtype"]].itemsize
        if t["raw_nbytes"] > MAX_INFLATION * t["nbytes"] + INFLATION_SLACK:
            raise _fail("tensors", f"{where}: shape {shape} declares {t['raw_nbytes']} bytes from {t['nbytes']} stored")
        if t["compression"] not in COMPRESSIONS:
            raise _fail("tensors", f"{where}: unknown compression {t['compression']}")
        if t["compression"] == MLEFormat.COMPRESSION_NONE and t["nbytes"] != t["raw_nbytes"]:
            raise _fail("tensors", f"{where}: stored size {t['nbytes']} != raw size {t['raw_nbytes']}")
        if t["offset"] % ALIGNMENT:
            raise _fail("tensors", f"{where}: offset {t['offset']} is not {ALIGNMENT}-byte aligned")
        if t["offset"] < end:
            raise _fail("tensors", f"{where}: offset {t['offset']} overlaps the previous tensor (ends at {end})")
        end = t["offset"] + t["nbytes"]
        if end > data_size:
            raise _fail("tensors", f"{where}: bytes {t['offset']}..{end} run past the {data_size}-byte data section")


def _open(path: str | os.PathLike[str]) -> tuple[Path, BinaryIO]:
    p = Path(path)
    try:
        return p, open(p, "rb", buffering=0)
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"no such model file: {p}" + (" (it is a directory)" if p.is_dir() else "")) from None


def read_manifest(path: str | os.PathLike[str]) -> MleFile:
    """Read and validate the header and manifest only (no tensor data is touched)."""
    p, f = _open(path)
    with f:
        return _read_manifest(p, f)


# The first read takes this much, so that a small manifest comes with the header in one system call.
FIRST_READ = 4096


def _read_manifest(p: Path, f: BinaryIO) -> MleFile:
    st = os.fstat(f.fileno())
    size = st.st_size
    head = f.read(FIRST_READ)
    h = _parse_header(head, size)
    wanted = h.data_offset - HEADER_SIZE
    rest = head[HEADER_SIZE:]
    if len(rest) < wanted:
        rest += f.read(wanted - len(rest))
    raw, padding = rest[: h.manifest_size], rest[h.manifest_size : wanted]
    if padding.strip(b"\0"):
        raise _fail(
            "sections", f"non-zero padding between the manifest and the data section (offset {HEADER_SIZE + len(raw)})"
        )
    manifest = _parse_manifest(raw, h)
    _check_tensor_table(manifest["tensors"], h.data_size)
    return MleFile(p, size, h, raw, manifest["metadata"], manifest["graph"], manifest["tensors"], st)


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialised array at a 64-byte-aligned address: once read-only, ``jax.device_put`` on CPU
    shares its memory instead of copying it (numpy's own allocations are only 16-byte aligned)."""
    nbytes = math.prod(shape) * dtype.itemsize
    buf = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buf.ctypes.data % ALIGNMENT
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def _aligned_copy(data: bytes) -> np.ndarray:
    out = aligned_empty((len(data),), np.dtype(np.uint8))
    out[:] = np.frombuffer(data, np.uint8)
    return out


def _load_tensors(mf: MleFile, f: BinaryIO, verify_checksums: bool | str) -> dict[str, np.ndarray]:
    """Map the data section and return read-only arrays; uncompressed tensors are zero-copy views."""
    if verify_checksums not in (True, False, "always"):
        raise ValueError(f"verify_checksums must be True, False or 'always', got {verify_checksums!r}")
    remembered = verify_checksums is True and mf.header.data_size >= verified.MIN_DATA_BYTES
    if remembered and verified.is_verified(mf.stat, mf.header.header_crc):
        verify_checksums = False
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if len(mm) != mf.file_size:
        raise _fail("sections", f"file changed size while loading ({mf.file_size} -> {len(mm)} bytes)")
    base = mf.header.data_offset
    tensors = {}
    previous_end = base
    for t in mf.tensor_table:
        start = base + t["offset"]
        if mm[previous_end:start].strip(b"\0"):
            raise _fail("sections", f"non-zero padding at byte offset {previous_end} before tensor {t['name']!r}")
        previous_end = start + t["nbytes"]
        stored = memoryview(mm)[start : start + t["nbytes"]]
        if verify_checksums and SecurityUtils.compute_checksum(stored) != t["crc32"]:
            raise _fail("tensors", f"tensor {t['name']!r}: checksum mismatch at byte offset {start}")
        dtype = DTYPES[t["dtype"]]
        if t["compression"] == MLEFormat.COMPRESSION_NONE:
            flat = np.frombuffer(mm, dtype=dtype, count=t["raw_nbytes"] // dtype.itemsize, offset=start)
        else:
            raw = CompressionUtils.decompress_data(stored, t["compression"], t["raw_nbytes"])
            flat = _aligned_copy(raw).view(dtype)
            flat.flags.writeable = False
        tensors[t["name"]] = flat.reshape(t["shape"])
    if previous_end != base + mf.header.data_size:
        raise _fail(
            "sections", f"{base + mf.header.data_size - previous_end} bytes after the last tensor belong to none"
        )
    if remembered and verify_checksums:
        verified.remember(mf.stat, mf.header.header_crc)
    mf.tensors = tensors
    return tensors


def read_mle(path: str | os.PathLike[str], verify_checksums: bool | str = True) -> MleFile:
    """Read and validate the whole file; its tensors stay mapped for as long as they are referenced.

    ``verify_checksums``: True checks every tensor's CRC-32, once per version of a large file (see
    ``mle_runtime.verified``); "always" checks them on every read; False never does.
    """
    p, f = _open(path)
    with f:
        mf = _read_manifest(p, f)
        _load_tensors(mf, f, verify_checksums)
    return mf
