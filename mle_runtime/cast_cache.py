"""Parameters in the runtime's precision, and the cast copies of large files kept for later loads.

Under the default float32 precision a file's float64 weights are cast on every load: for 12.8 MB of
weights that is ~0.7 ms of page faults, reading and converting, more than all the rest of a load. So the
cast copy of a large file is kept, one file per model version in the compile cache's folders (beside the
model, else the user's cache folder; ``cache_dir`` and ``MLE_CACHE_DIR`` apply), and a later load maps
it (zero-copy, like the model itself) instead of casting again.

A copy is named by a hash of the model file's version token (``mle_runtime.verified.version_token``: an
HMAC, under the compile cache's local-user key, of the identity of the file version: device, inode,
size, times, header CRC), the precision, this package's version and the fingerprint of the code that
decides the cast. A changed model file has a new identity, so its old copy is never used; another user
can neither predict a name nor alter a copy, and a copy not owned by this user or writable by others is
ignored (so one planted in a shared folder is); a copy of the wrong size or header is ignored and
written again. As for checksums, damage that bypasses the file system would go unseen. ``cache=False``
casts on every load and keeps nothing. Only files whose cast tensors come to at least ``MIN_BYTES`` get
a copy: below that, casting costs less than opening one. Like compiled executables, copies of old model
versions stay until their folder is cleared (``mle cache --clear``, cache_contents.py).
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import stat
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mle_runtime import verified
from mle_runtime._version import __version__
from mle_runtime.cache import code_fingerprint, mark_used
from mle_runtime.format import ALIGNMENT, align
from mle_runtime.lowering import to_float32_down
from mle_runtime.reader import MleFile, aligned_empty
from mle_runtime.writer import write_atomic

log = logging.getLogger("mle_runtime.cast_cache")

# Below this casting costs less than finding and mapping a copy: measured together with
# verified.MIN_DATA_BYTES, of which a float64 model's cast tensors are half.
MIN_BYTES = verified.MIN_DATA_BYTES // 2
MAGIC = b"MLECAST1"
HEADER_BYTES = ALIGNMENT

# How the parameters were had, as get_model_info()["cache"]["parameters"] reports it.
AS_STORED, CAST, MAPPED, WRITTEN = "as stored", "cast", "mapped from the cast cache", "cast and cached"


def target_dtype(a: np.ndarray, dtype: np.dtype[Any], threshold: bool) -> np.dtype[Any] | None:
    """The dtype a parameter takes in the runtime's precision, or None when it is used as stored.
    Split thresholds narrow toward -inf and never widen: an op compares them as stored (a float32
    threshold of a float32 comparison stays float32 in float64 mode, uncopied from the mmap)."""
    if a.dtype.kind != "f" or a.dtype == dtype:
        return None
    if threshold:
        return None if a.itemsize <= dtype.itemsize else np.dtype(np.float32)
    return dtype


def _cast_into(out: np.ndarray, a: np.ndarray, threshold: bool) -> np.ndarray:
    np.copyto(out, to_float32_down(a) if threshold else a, casting="unsafe")
    out.flags.writeable = False
    return out


def parameters(
    mf: MleFile,
    names: Sequence[str],
    dtype: np.dtype[Any],
    thresholds: set[str],
    folders: Callable[[], list[str]],
) -> tuple[list[np.ndarray], str]:
    """The named parameters in the runtime's precision, 64-byte aligned and read-only (so that
    ``jax.device_put`` shares their memory on CPU), and how they were had. ``folders`` gives the cache
    folders (none: keep nothing); it is called only for a file large enough to have a copy."""
    arrays = [mf.tensors[n] for n in names]
    cast: list[tuple[int, np.dtype[Any]]] = []
    for i, (n, a) in enumerate(zip(names, arrays, strict=True)):
        target = target_dtype(a, dtype, n in thresholds)
        if target is not None:
            cast.append((i, target))
    if not cast:
        return arrays, AS_STORED
    layout, size = _layout([(arrays[i].shape, t) for i, t in cast])
    dirs = folders() if size - HEADER_BYTES >= MIN_BYTES else []
    name = _entry_name(mf, dtype) if dirs else None
    header = (MAGIC + name.encode()).ljust(HEADER_BYTES, b"\0") if name else b""
    paths = [os.path.join(d, f"{name}.cast") for d in dirs] if name else []
    mapped = next((m for m in (_map(p, header, layout, size) for p in paths) if m is not None), None)
    how = MAPPED
    if mapped is None:
        mapped = [_cast_into(aligned_empty(arrays[i].shape, t), arrays[i], names[i] in thresholds) for i, t in cast]
        how = WRITTEN if _store(paths, header, mapped, layout, size, mf) else CAST
    for (i, _), a in zip(cast, mapped, strict=True):
        arrays[i] = a
    return arrays, how


def _layout(specs: list[tuple[tuple[int, ...], np.dtype[Any]]]) -> tuple[list[tuple[int, Any]], int]:
    """Offsets of the cast tensors in a copy (each 64-byte aligned, after the header) and its size."""
    layout, offset = [], HEADER_BYTES
    for shape, dtype in specs:
        layout.append((offset, (shape, dtype)))
        offset = align(offset + math.prod(shape) * dtype.itemsize)
    return layout, offset


def _entry_name(mf: MleFile, dtype: np.dtype[Any]) -> str | None:
    token = mf.version_token
    if token is None:
        return None
    return verified.derived_name(token, f"cast|{dtype.str}|{__version__}|{code_fingerprint()}")


def _map(path: str, header: bytes, layout: list[tuple[int, Any]], size: int) -> list[np.ndarray] | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or not stat.S_ISREG(st.st_mode):
            log.info("ignoring cast cache entry %s: not private to this user", path)
            return None
        if st.st_size != size:
            log.info("ignoring cast cache entry %s: %d bytes, expected %d", path, st.st_size, size)
            return None
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except OSError:
        return None
    finally:
        os.close(fd)
    if mm[:HEADER_BYTES] != header:
        log.info("ignoring cast cache entry %s: its header does not match", path)
        return None
    mark_used(path, st.st_mtime)
    return [
        np.frombuffer(mm, dtype, count=math.prod(shape), offset=offset).reshape(shape)
        for offset, (shape, dtype) in layout
    ]


def _store(
    paths: list[str], header: bytes, arrays: list[np.ndarray], layout: list[tuple[int, Any]], size: int, mf: MleFile
) -> bool:
    """Keep the cast copy in the first folder that takes it, only for a model file whose identity would
    show a later change. Best effort."""
    if not paths:
        return False
    if not (verified.is_settled(mf.stat) or verified.is_verified(mf.stat, mf.header.header_crc, mf.version_token)):
        return False
    chunks: list[bytes | memoryview] = [header]
    for a, (offset, _), end in zip(arrays, layout, [o for o, _ in layout[1:]] + [size], strict=True):
        chunks.append(a.reshape(-1).view(np.uint8).data)
        chunks.append(bytes(end - offset - a.nbytes))
    for path in paths:
        try:
            write_atomic(path, chunks)
        except OSError as e:
            log.debug("could not keep the cast parameters in %s (%s)", path, e)
            continue
        return True
    return False
