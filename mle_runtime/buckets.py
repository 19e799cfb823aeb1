"""Batch-size buckets: every batch is padded up to a bucket between 1 and ``max_bucket`` rows (a power of
two up to FINE_FROM rows, a quarter step of one past it: 1,280, 1,536, 1,792, 2,048, 2,560, ...), and a
larger batch is cut into ``max_bucket``-row chunks. A model therefore compiles at most
``max_compiles(max_bucket)`` times per input signature, whatever batch sizes a job sends (23 on CPU, where
max_bucket is 8,192; 35 on GPUs, where it is 65,536)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from mle_runtime.format import ALIGNMENT
from mle_runtime.reader import aligned_empty

CPU_MAX_BUCKET = 8192
GPU_MAX_BUCKET = 65536


# A network runs on the CPU in chunks whose largest intermediate stays within this many bytes: past it
# the activations leave the caches (measured: a Transformer encoder whose attention scores take 64 KB a
# row ran 2.2x faster in 128-row chunks than in 1,024-row ones; a CNN with 128 KB a row was best at 64-256).
CPU_ACTIVATION_BUDGET = 8 << 20


def cpu_chunk(max_bucket: int, bytes_per_row: object) -> int:
    """The CPU's largest bucket for a model whose largest intermediate takes ``bytes_per_row`` a row (as
    its converter measured; absent or malformed: no limit): a power of two, at least 16 rows."""
    if not isinstance(bytes_per_row, int) or isinstance(bytes_per_row, bool) or bytes_per_row <= 0:
        return max_bucket
    rows = max(16, CPU_ACTIVATION_BUDGET // bytes_per_row)
    return min(max_bucket, 1 << (rows.bit_length() - 1))


# Past this many rows a batch pads to a quarter step (of the octave it falls in), not to the next power of
# two: at most 25% padding, not 100%, for four compiles an octave instead of one. Measured (2 cores, JAX
# 0.10): 5,000 rows through a 500-tree forest 105 -> 60 ms a call (8,192 -> 5,120 rows computed), through a
# (256, 256) MLPClassifier 4.2 -> 2.9 ms; below ~1,000 rows a call's fixed cost hides most of the padding.
FINE_FROM = 1024
STEPS_PER_OCTAVE = 4


def bucket_for(n: int, max_bucket: int) -> int:
    """The smallest bucket >= n (n >= 1), capped at max_bucket (a power of two)."""
    power = 1 << max(0, (n - 1).bit_length())
    if power > FINE_FROM:
        step = power // (2 * STEPS_PER_OCTAVE)
        power = -(-n // step) * step
    return min(max_bucket, power)


def chunks(n: int, max_bucket: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, bucket) for each chunk of an n-row batch."""
    for start in range(0, n, max_bucket):
        stop = min(n, start + max_bucket)
        yield start, stop, bucket_for(stop - start, max_bucket)


def max_compiles(max_bucket: int) -> int:
    """How many buckets there are up to ``max_bucket`` (a power of two)."""
    if max_bucket <= FINE_FROM:
        return max_bucket.bit_length()
    fine_octaves = max_bucket.bit_length() - FINE_FROM.bit_length()
    return FINE_FROM.bit_length() + STEPS_PER_OCTAVE * fine_octaves


def padded_rows(a: np.ndarray, rows: int, axis: int = 0) -> np.ndarray:
    """``a`` zero-padded to ``rows`` on ``axis`` (``a`` itself when it has them), padded into memory at a
    64-byte-aligned address: XLA on CPU uses such an argument where it lies and copies any other, slowly (a
    1,000 x 100 float32 argument cost a call 39 us unaligned, 7 us aligned; JAX 0.10, 2 cores). An input
    that needs no padding is not copied to align it here: in a loop of fresh inputs that cost as much as it
    saved (8,192 rows x 100: 0.60-0.82 against 0.57-0.63 ms a call); the synchronous client's are, where
    that pays, into reused buffers (Staging)."""
    if a.shape[axis] == rows:
        return a
    out = aligned_empty((*a.shape[:axis], rows, *a.shape[axis + 1 :]), a.dtype)
    lead = (slice(None),) * axis
    out[(*lead, slice(0, a.shape[axis]))] = a
    out[(*lead, slice(a.shape[axis], None))] = 0
    return out


# XLA's CPU client copies an argument that is not 64-byte aligned before running on it: inline, cheaply, up
# to this many bytes (its kSmallDataTransferByteSize); a larger one on a worker thread (see Staging).
XLA_INLINE_COPY_BYTES = 100 << 10


class Staging:
    """Aligned buffers for the inputs of a synchronous CPU client (devices.inline_cpu_device), one per
    input shape, reused from call to call.

    XLA's CPU client runs on an argument in place only at a 64-byte-aligned address (numpy aligns its
    allocations to 16 bytes); any other it copies, one over 100 KiB (XLA's kSmallDataTransferByteSize) on
    a worker thread, which a synchronous client then waits for. Copying such an input here, into a buffer
    already paged in, measured (2 cores, the runtime on an unaligned float32 batch with and without the
    copy, alternating calls): a 784-512-512-10 MLP at 64 rows (200 KB) 1.05-1.53x faster (six processes),
    20 trees over 784 features at 64 and 256 rows 1.48x and 1.08x; LogisticRegression over 100 features,
    whose call is little more than the copy, mixed: 0.78-1.13x at 512 and 2,048 rows (geometric mean of six
    ~1.0). A freshly allocated buffer instead gained at 200 KB only and lost from 400 KB on (its pages
    fault in on every call). Inputs of at most 100 KiB are left to XLA, whose inline copy beat this one
    (this one 9-11% slower at 25-50 KB: the call's own cost, not the copy's); those over MAX_BYTES too
    (LogisticRegression at 4,096 rows, 1.6 MB: 4% slower copied), which also keeps the buffers small: at
    most 13 bucket sizes of an input fall between the two bounds, ~6 MB of buffers an input at most.

    A buffer is taken for one call and given back after it, so threads sharing a runtime never share
    one (a thread that finds none allocates its own)."""

    MIN_BYTES = XLA_INLINE_COPY_BYTES
    MAX_BYTES = 1 << 20

    def __init__(self) -> None:
        self._free: dict[tuple[tuple[int, ...], str], np.ndarray] = {}

    def take(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """``arrays`` with each unaligned one of MIN_BYTES .. MAX_BYTES replaced by its copy in a taken
        buffer (in place); returns the buffers taken, for ``give_back`` once the call is done."""
        taken = []
        for i, a in enumerate(arrays):
            if not self.MIN_BYTES < a.nbytes <= self.MAX_BYTES:
                continue
            if a.ctypes.data % ALIGNMENT == 0 and a.flags.c_contiguous:
                continue
            buffer = self._free.pop((a.shape, a.dtype.str), None)
            if buffer is None:
                buffer = aligned_empty(a.shape, a.dtype)
            np.copyto(buffer, a)
            arrays[i] = buffer
            taken.append(buffer)
        return taken

    def give_back(self, buffers: list[np.ndarray]) -> None:
        for buffer in buffers:
            self._free[(buffer.shape, buffer.dtype.str)] = buffer


def gather_chunks(
    n: int, max_bucket: int, dispatch: Callable[[int, int, int], Sequence[Any]], axis: int = 0
) -> list[np.ndarray]:
    """An ``n``-row batch over the largest bucket, chunk by chunk, into one array per output (rows on
    ``axis``). ``dispatch(start, stop, bucket)`` starts the program on rows start:stop padded to ``bucket``
    and returns its outputs, perhaps still computing: the next chunk is dispatched before the previous one's
    outputs are copied out, so that copying overlaps computing where dispatch is asynchronous (a GPU), and
    at most two chunks' outputs are alive. A batch within one bucket returns views of its outputs, uncopied."""
    lead = (slice(None),) * axis
    if n <= max_bucket:
        running = dispatch(0, n, bucket_for(max(n, 1), max_bucket))
        return [np.asarray(o)[(*lead, slice(0, n))] for o in running]
    merged: list[np.ndarray] = []
    previous: tuple[int, int, Sequence[Any]] | None = None
    for start, stop, bucket in chunks(n, max_bucket):
        running = dispatch(start, stop, bucket)
        if previous is None:
            merged = [np.empty((*o.shape[:axis], n, *o.shape[axis + 1 :]), o.dtype) for o in running]
        else:
            _copy_rows(merged, *previous, axis)
        previous = (start, stop, running)
    assert previous is not None
    _copy_rows(merged, *previous, axis)
    return merged


def _copy_rows(merged: list[np.ndarray], start: int, stop: int, outputs: Sequence[Any], axis: int) -> None:
    lead = (slice(None),) * axis
    for whole, part in zip(merged, outputs, strict=True):
        whole[(*lead, slice(start, stop))] = np.asarray(part)[(*lead, slice(0, stop - start))]
