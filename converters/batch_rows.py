"""Whether a network keeps each row of a batch to itself. The runtime pads a batch to its bucket size and
cuts a large one into chunks (mle_runtime/buckets.py), which changes the answers of a network that mixes
rows along the batch axis: a sequence-first attention or RNN, a softmax or a concatenation along axis 0.
The frameworks capture such networks all the same, so the converters run them once to find out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mle_runtime.errors import UnsupportedModelError


def refuse_rows_that_mix(owner: str, outputs_for: Callable[[int], Sequence[Any]], advice: str) -> None:
    """``outputs_for(n)``: the network's outputs (arrays) for the first n of five fixed random rows. Raises
    UnsupportedModelError when the first two rows' answers differ between n = 5 and n = 2 (beyond what
    another batch size's arithmetic moves); a network that refuses the random rows is let through, as
    nothing can be told from it."""
    try:
        whole, first = list(outputs_for(5)), list(outputs_for(2))
    except Exception:
        return
    for a, b in zip(whole, first, strict=False):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind not in "fc":
            continue
        a, b = a.astype(np.float64), b.astype(np.float64)
        scale = float(np.max(np.abs(np.nan_to_num(a, posinf=0, neginf=0)), initial=0.0))
        if a.ndim == 0 or a[:2].shape != b.shape or not np.allclose(a[:2], b, 1e-4, 1e-5 * scale, equal_nan=True):
            raise UnsupportedModelError(
                f"{owner}: its answer for a row depends on the other rows of the batch (axis 0 of the inputs): the "
                f"runtime pads and cuts batches, so it cannot export it. {advice}"
            )
