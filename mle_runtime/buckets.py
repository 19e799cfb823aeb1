"""Batch-size buckets: every batch is padded up to a power of two between 1 and ``max_bucket`` rows,
and a larger batch is cut into ``max_bucket``-row chunks. A model therefore compiles at most
``log2(max_bucket) + 1`` times per input signature, whatever batch sizes a job sends (14 on CPU,
where max_bucket is 8,192; 17 on GPUs, where it is 65,536)."""

from __future__ import annotations

from collections.abc import Iterator

CPU_MAX_BUCKET = 8192
GPU_MAX_BUCKET = 65536


def bucket_for(n: int, max_bucket: int) -> int:
    """The smallest power of two >= n (n >= 1), capped at max_bucket."""
    return min(max_bucket, 1 << max(0, (n - 1).bit_length()))


def chunks(n: int, max_bucket: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, bucket) for each chunk of an n-row batch."""
    for start in range(0, n, max_bucket):
        stop = min(n, start + max_bucket)
        yield start, stop, bucket_for(stop - start, max_bucket)


def max_compiles(max_bucket: int) -> int:
    return max_bucket.bit_length()
