"""Reader of .mle files. Every rule is checked before a byte of tensor data is used.

Rules (each failure raises ``FormatError`` naming the rule and the offset or tensor):
  header    the file holds a 64-byte header with the magic, a known version, known flag bits and a
            matching CRC-32
  manifest  the manifest starts right after the header, lies inside the file, is at most
            MAX_MANIFEST_BYTES, matches its CRC-32 and is UTF-8 JSON of the documented shape; under
            MANIFEST_ZSTD it is one zstd frame declaring a content size of at most MAX_MANIFEST_BYTES
  sections  the data section starts at the first 64-byte boundary after the manifest; sections end
            exactly at the end of the file (no trailing bytes); padding bytes are zero; a signed file's
            signature block follows the data section and ends the file, an unsigned file has none
  encryption  the encryption flag and the manifest's "encryption" entry (AES-256-GCM, a 12-byte nonce)
            come together; the data section then ends with the 16-byte tag
  tensors   unique names; dtypes from the whitelist; non-negative shapes with shape x itemsize equal
            to the raw size; 64-byte-aligned offsets inside the data section, in order, not overlapping;
            stored size equal to the raw size unless compressed; CRC-32 of the stored bytes (for a
            large file, once per file version: see ``mle_runtime.verified``)
"""

from __future__ import annotations

import functools
import json
import math
import mmap
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import zstandard

from mle_runtime import encryption, signing, verified
from mle_runtime.compression import CompressionUtils
from mle_runtime.errors import DecryptionError, FormatError, SignatureError
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


class Header(NamedTuple):
    """The 64-byte header's fields (a tuple: a frozen dataclass costs ~3 us to make, on every load)."""

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
    nonce: bytes | None = None  # set when the tensor data is encrypted
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def plain_data_size(self) -> int:
        """Bytes of tensor data (the data section less an encryption tag)."""
        return self.header.data_size - (encryption.TAG_SIZE if self.nonce is not None else 0)

    @functools.cached_property
    def version_token(self) -> str | None:
        """``verified.version_token`` of this version of the file (one HMAC per load, however many use it)."""
        return verified.version_token(self.stat, self.header.header_crc)


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
    end = h.data_offset + h.data_size
    if h.flags & MLEFormat.FEATURE_SIGNING:
        if h.signature_offset != end or h.signature_size != signing.BLOCK_SIZE:
            raise _fail(
                "sections",
                f"signature block at {h.signature_offset} of {h.signature_size} bytes, expected "
                f"{signing.BLOCK_SIZE} bytes right after the data section (at {end})",
            )
        end += h.signature_size
    elif h.signature_offset or h.signature_size:
        raise _fail("sections", "signature fields set but the signing flag is not")
    if end != file_size:
        raise _fail("sections", f"sections end at {end} but the file has {file_size} bytes")
    if h.flags & MLEFormat.FEATURE_ENCRYPTION and h.data_size < encryption.TAG_SIZE:
        raise _fail("encryption", f"data section of {h.data_size} bytes cannot hold the {encryption.TAG_SIZE}-byte tag")
    return h


def _parse_manifest(raw: bytes, h: Header) -> dict[str, Any]:
    if SecurityUtils.compute_checksum(raw) != h.manifest_crc:
        raise _fail("manifest", f"manifest checksum mismatch (bytes {HEADER_SIZE}..{HEADER_SIZE + len(raw)})")
    if h.flags & MANIFEST_ZSTD:
        raw = _inflate_manifest(raw)
    try:
        manifest = _MANIFEST_JSON.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail("manifest", f"not valid UTF-8 JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise _fail("manifest", "top level must be an object")
    for key, kind in (("metadata", dict), ("graph", dict), ("tensors", list)):
        if not isinstance(manifest.get(key), kind):
            raise _fail("manifest", f"missing or mistyped {key!r} (expected {kind.__name__})")
    _check_metadata(manifest["metadata"])
    return manifest


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


# The metadata entries the runtime acts on, and what each must be when present (null: absent).
_METADATA_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "run_outputs": ("a list of output names", _is_str_list),
    "feature_names": ("a list of strings", _is_str_list),
    "allow_nan": (
        "true, false or a list of column indices",
        lambda v: isinstance(v, bool) or (isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v)),
    ),
    "allow_inf": (
        "true, false or a list of column indices",
        lambda v: isinstance(v, bool) or (isinstance(v, list) and all(_is_int(i) and i >= 0 for i in v)),
    ),
    "one_dimensional_input": ("true or false", lambda v: isinstance(v, bool)),
    "columns_by_name": ("true or false", lambda v: isinstance(v, bool)),
    "neighbors_graph": (
        'an object {"mode": "distance" or "connectivity", "n_samples_fit", "n_neighbors": positive integers}',
        lambda v: (
            isinstance(v, dict)
            and v.get("mode") in ("distance", "connectivity")
            and all(_is_int(v.get(k)) and v[k] > 0 for k in ("n_samples_fit", "n_neighbors"))
        ),
    ),
    "multilabel": ("true or false", lambda v: isinstance(v, bool)),
    "largest_activation_bytes_per_row": ("a positive integer", lambda v: _is_int(v) and v > 0),
    "invalid_message": ("a string", lambda v: isinstance(v, str)),
    "invalid_messages": ("a list of strings", _is_str_list),
    "task": ("a string", lambda v: isinstance(v, str)),
    "estimator": ("a string", lambda v: isinstance(v, str)),
}


def _check_metadata(metadata: dict[str, Any]) -> None:
    for key, (what, ok) in _METADATA_RULES.items():
        value = metadata.get(key)
        if value is not None and not ok(value):
            raise _fail("metadata", f"{key} must be {what}, got {value!r:.80}")


def _nonce(manifest: dict[str, Any], h: Header) -> bytes | None:
    entry = manifest.get("encryption")
    if not h.flags & MLEFormat.FEATURE_ENCRYPTION:
        if entry is not None:
            raise _fail("encryption", "the manifest describes encryption but the header's flag is not set")
        return None
    if not isinstance(entry, dict) or entry.get("algorithm") != encryption.ALGORITHM:
        raise _fail("encryption", f"flag set but the manifest's entry is {entry!r}, expected {encryption.ALGORITHM}")
    nonce = entry.get("nonce")
    if not isinstance(nonce, str) or len(nonce) != 2 * encryption.NONCE_SIZE:
        raise _fail("encryption", f"nonce must be {encryption.NONCE_SIZE} bytes in hex, got {nonce!r}")
    try:
        return bytes.fromhex(nonce)
    except ValueError:
        raise _fail("encryption", f"nonce {nonce!r} is not hex") from None


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


# One decoder for every read (as json.loads keeps one): making it per call costs more than decoding.
_MANIFEST_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_tensor_table(table: list[Any], data_size: int) -> None:
    if len(table) > MAX_TENSORS:
        raise _fail("tensors", f"{len(table)} tensors exceed the cap of {MAX_TENSORS}")
    names: set[str] = set()
    end = 0
    for i, t in enumerate(table):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise _fail("tensors", f"tensor #{i}: entry must be an object with a string name")
        name = t["name"]  # (messages name it: formatting them up front cost more than the checks)
        if name in names:
            raise _fail("tensors", f"tensor {name!r}: duplicate name")
        names.add(name)
        if not isinstance(t.get("dtype"), str) or t["dtype"] not in DTYPES:
            raise _fail("tensors", f"tensor {name!r}: dtype {t.get('dtype')!r} not in {sorted(DTYPES)}")
        shape = t.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) and d >= 0 for d in shape):
            raise _fail(
                "tensors", f"tensor {name!r}: shape {shape!r} must be a list of at most {MAX_RANK} non-negative ints"
            )
        t.setdefault("compression", MLEFormat.COMPRESSION_NONE)
        for key in ("offset", "nbytes", "compression", "crc32"):
            if not _is_int(t.get(key)) or t[key] < 0:
                raise _fail("tensors", f"tensor {name!r}: {key} must be a non-negative int, got {t.get(key)!r}")
        t["raw_nbytes"] = math.prod(shape) * DTYPES[t["dtype"]].itemsize
        if t["raw_nbytes"] > MAX_INFLATION * t["nbytes"] + INFLATION_SLACK:
            raise _fail(
                "tensors", f"tensor {name!r}: shape {shape} declares {t['raw_nbytes']} bytes from {t['nbytes']} stored"
            )
        if t["compression"] not in COMPRESSIONS:
            raise _fail("tensors", f"tensor {name!r}: unknown compression {t['compression']}")
        if t["compression"] == MLEFormat.COMPRESSION_NONE and t["nbytes"] != t["raw_nbytes"]:
            raise _fail("tensors", f"tensor {name!r}: stored size {t['nbytes']} != raw size {t['raw_nbytes']}")
        if t["offset"] % ALIGNMENT:
            raise _fail("tensors", f"tensor {name!r}: offset {t['offset']} is not {ALIGNMENT}-byte aligned")
        if t["offset"] < end:
            raise _fail(
                "tensors", f"tensor {name!r}: offset {t['offset']} overlaps the previous tensor (ends at {end})"
            )
        end = t["offset"] + t["nbytes"]
        if end > data_size:
            raise _fail(
                "tensors", f"tensor {name!r}: bytes {t['offset']}..{end} run past the {data_size}-byte data section"
            )


def _open(path: str | os.PathLike[str]) -> tuple[Path, int, os.stat_result]:
    """The file's path, a descriptor open for reading (the caller closes it), and what the kernel says of
    it. A plain descriptor: a Python file object costs two more system calls and ~5 us on every load."""
    p = path if isinstance(path, Path) else Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0))  # (not inherited by children: PEP 446)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"no such model file: {p}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileNotFoundError(f"no such model file: {p} (it is a directory)")
    except BaseException:
        os.close(fd)
        raise
    return p, fd, st


def read_manifest(path: str | os.PathLike[str]) -> MleFile:
    """Read and validate the header and manifest only (no tensor data is touched)."""
    p, fd, st = _open(path)
    try:
        return _read_manifest(p, fd, st)
    finally:
        os.close(fd)


# The first read takes this much, so that a small manifest comes with the header in one system call.
FIRST_READ = 4096


def _read_manifest(p: Path, fd: int, st: os.stat_result) -> MleFile:
    # (a regular file's read returns short only at its end; a short manifest fails its checks)
    return _manifest_from(p, st, st.st_size, os.read(fd, FIRST_READ), functools.partial(os.read, fd))


def _manifest_from(p: Path, st: os.stat_result, size: int, head: bytes, read_more: Callable[[int], bytes]) -> MleFile:
    """Header and manifest from the file's first bytes (``head``), reading more where the manifest needs it."""
    h = _parse_header(head, size)
    wanted = h.data_offset - HEADER_SIZE
    rest = head[HEADER_SIZE:]
    if len(rest) < wanted:
        rest += read_more(wanted - len(rest))
    raw, padding = rest[: h.manifest_size], rest[h.manifest_size : wanted]
    if padding.strip(b"\0"):
        raise _fail(
            "sections", f"non-zero padding between the manifest and the data section (offset {HEADER_SIZE + len(raw)})"
        )
    manifest = _parse_manifest(raw, h)
    mf = MleFile(p, size, h, raw, manifest["metadata"], manifest["graph"], manifest["tensors"], st, _nonce(manifest, h))
    _check_tensor_table(mf.tensor_table, mf.plain_data_size)
    return mf


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


def _load_tensors(
    mf: MleFile, source: Any, verify_checksums: bool | str, decryption_key: bytes | None = None
) -> dict[str, np.ndarray]:
    """Read-only arrays of the tensors in ``source`` (the whole file: an mmap, or a read-only aligned
    buffer); uncompressed, unencrypted tensors are zero-copy views."""
    if verify_checksums not in (True, False, "always"):
        raise ValueError(f"verify_checksums must be True, False or 'always', got {verify_checksums!r}")
    h = mf.header
    if len(source) != mf.file_size:
        raise _fail("sections", f"file changed size while loading ({mf.file_size} -> {len(source)} bytes)")
    if h.flags & MLEFormat.FEATURE_SIGNING and bytes(source[h.signature_offset :][:8]) != signing.MAGIC:
        raise _fail("sections", f"no signature block at byte offset {h.signature_offset}")
    remembered = verify_checksums is True and h.data_size >= verified.MIN_DATA_BYTES
    if remembered and verified.is_verified(mf.stat, h.header_crc, mf.version_token):
        verify_checksums = False
    data, base = _data_section(mf, source, decryption_key)
    tensors = {}
    previous_end = base
    for t in mf.tensor_table:
        start = base + t["offset"]
        if bytes(data[previous_end:start]).strip(b"\0"):
            raise _fail("sections", f"non-zero padding at byte offset {previous_end} before tensor {t['name']!r}")
        previous_end = start + t["nbytes"]
        stored = memoryview(data)[start : start + t["nbytes"]]
        if verify_checksums and SecurityUtils.compute_checksum(stored) != t["crc32"]:
            raise _fail("tensors", f"tensor {t['name']!r}: checksum mismatch at byte offset {start}")
        dtype = DTYPES[t["dtype"]]
        if t["compression"] == MLEFormat.COMPRESSION_NONE:
            flat = np.frombuffer(data, dtype=dtype, count=t["raw_nbytes"] // dtype.itemsize, offset=start)
        else:
            raw = CompressionUtils.decompress_data(stored, t["compression"], t["raw_nbytes"])
            flat = _aligned_copy(raw).view(dtype)
            flat.flags.writeable = False
        tensors[t["name"]] = flat.reshape(t["shape"])
    if previous_end != base + mf.plain_data_size:
        left = base + mf.plain_data_size - previous_end
        raise _fail("sections", f"{left} bytes after the last tensor belong to none")
    if remembered and verify_checksums:
        verified.remember(mf.stat, h.header_crc, token=mf.version_token)
    mf.tensors = tensors
    return tensors


def _data_section(mf: MleFile, source: Any, decryption_key: bytes | None) -> tuple[Any, int]:
    """The buffer the tensor offsets index, and where in it the data section starts."""
    h = mf.header
    if mf.nonce is None:
        if decryption_key is not None:
            raise DecryptionError(f"{mf.path}: a decryption_key was given but the file is not encrypted")
        return source, h.data_offset
    if decryption_key is None:
        raise DecryptionError(f"{mf.path}: the tensor data is encrypted; pass decryption_key= (32 bytes)")
    key = encryption.check_key(decryption_key, "decryption_key")
    sealed = memoryview(source)[h.data_offset : h.data_offset + h.data_size]
    plain = aligned_empty((mf.plain_data_size + ALIGNMENT,), np.dtype(np.uint8))  # room update_into asks for
    aad = encryption.associated_data(bytes(source[:HEADER_SIZE]), mf.manifest_bytes)
    encryption.decrypt_into(sealed, plain, key, mf.nonce, aad)
    plain.flags.writeable = False
    return plain[: mf.plain_data_size], 0


def read_mle(
    path: str | os.PathLike[str],
    verify_checksums: bool | str = True,
    public_key: Any = None,
    decryption_key: bytes | None = None,
) -> MleFile:
    """Read and validate the whole file; its tensors stay mapped for as long as they are referenced.

    ``verify_checksums``: True checks every tensor's CRC-32, once per version of a large file (see
    ``mle_runtime.verified``); "always" checks them on every read; False never does.
    ``public_key``: verify the file's signature with it before anything else is read (see
    ``mle_runtime.signing``); the file is then read into memory, so that the bytes used are the bytes
    verified. ``decryption_key``: the 32-byte key of an encrypted file.
    """
    key = signing.public_key(public_key) if public_key is not None else None
    p, fd, st = _open(path)
    try:
        if key is None:
            mf = _read_manifest(p, fd, st)
            source: Any = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        else:
            mf, source = _read_signed(p, fd, st, key)
    finally:
        os.close(fd)
    _load_tensors(mf, source, verify_checksums, decryption_key)
    return mf


def read_verified(path: str | os.PathLike[str], public_key: Any) -> MleFile:
    """Verify the file's signature with ``public_key``, then every rule and checksum its bytes allow
    without a key (an encrypted file's tensors need its key: there, header and manifest only). One read."""
    key = signing.public_key(public_key)
    p, fd, st = _open(path)
    try:
        mf, buf = _read_signed(p, fd, st, key)
    finally:
        os.close(fd)
    if mf.nonce is None:
        _load_tensors(mf, buf, "always")
    return mf


def _read_signed(p: Path, fd: int, st: os.stat_result, key: Any) -> tuple[MleFile, np.ndarray]:
    buf = aligned_empty((st.st_size,), np.dtype(np.uint8))
    view, got = buf.data, 0
    with open(fd, "rb", buffering=0, closefd=False) as f:
        while got < st.st_size:  # one read returns at most ~2 GiB
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        extra = f.read(1)
    if got != st.st_size or extra:
        raise SignatureError(f"{p}: file changed size while being read ({st.st_size} -> {got} bytes)")
    buf.flags.writeable = False
    try:
        start = signing.verify(buf.data, key)
    except SignatureError as e:
        raise SignatureError(f"{p}: {e}") from None
    mf = _manifest_from(p, st, st.st_size, bytes(buf[:FIRST_READ]), lambda n: bytes(buf[FIRST_READ : FIRST_READ + n]))
    if not mf.header.flags & MLEFormat.FEATURE_SIGNING or mf.header.signature_offset != start:
        raise SignatureError(f"{p}: the signed header does not declare the signature block it ends with")
    return mf, buf
