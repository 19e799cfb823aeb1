"""Exact float32 narrowing of float64 inputs for trees and bins that split in float64.

HistGradientBoosting and LightGBM compare a float64 input with a float64 threshold. In float32 precision
the runtime compares float32(x) with the threshold rounded down to float32 (t32), which agrees except when
x lies within one float32 rounding of t: float32(x) can land on the other side of t32 (seen: 1 row in
100,000 of random data; 14 of 600 rows placed on thresholds). For the features such trees split on, a
narrowed value can only have crossed a threshold if it equals some t32 or the float32 just above it: one
binary search a column finds those (about 40 ms per million values here), and only they are compared
with the float64 thresholds; one that crossed is replaced by the float32 next to t32 on x's side, so the
trees take every branch the float64 comparison takes. Only two thresholds that round down to the same
float32 could leave an x no float32 value represents; those are left as they are. The binary search runs
only on the values a table of the near values' hashed bits (65,536 entries a split feature) lets through,
a few percent of them, every column of a block of rows hashed and looked up at once: searching each
10,000-row column took 0.36 ms, which for a 100-iteration HistGradientBoosting model on 10,000 x 20
float64 values was half the call (14.4 ms against 4.6 ms for float32 input); hashing each column on its
own (strided), 34 ms for 100,000 x 50 values, the blocks 25 ms. Trees that compare in
float32 (scikit-learn's other trees, XGBoost) need none of this. KBinsDiscretizer's bins are splits too
(an edge e as the threshold just below it: e <= x is x > t). Splits on a model input's columns are covered
whether read directly or through a tensor the file says holds some of them (metadata ``split_input_columns``:
column selections, a ColumnTransformer's columns side by side, ``CategoryCodes``' uncoded columns; older
files: ``CategoryCodes`` of the input, found in the graph); splits on any other computed tensor (a scaler's
output) are not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mle_runtime.graph import Graph
from mle_runtime.lowering import to_float32_down
from mle_runtime.ops.trees import CATEGORICAL, FLAG_BITS, LEAF, LIGHTGBM_ZERO

# LightGBM reads -Z <= x <= Z as 0 (Z its kZeroThreshold) before any split: two more splits, x <= Z and
# x < -Z (x <= the float64 below -Z), on every feature its trees split.
LIGHTGBM_ZERO_SPLITS = np.array([LIGHTGBM_ZERO, np.nextafter(-LIGHTGBM_ZERO, -np.inf)])

# Rows hashed at a time: bounds the temporaries (about 9 bytes a value) whatever the batch.
HASH_BLOCK_ROWS = 16_384


class SplitNarrowing:
    """For one model input: each split feature's sorted float64 thresholds and their float32 round-downs."""

    def __init__(self, thresholds: dict[int, np.ndarray]):
        self.columns = {}
        for feature, t64 in sorted(thresholds.items()):
            if not len(t64):
                continue
            t32 = to_float32_down(t64)
            # Only a narrowed value equal to some t32 or to the float32 just above it can have crossed t.
            with np.errstate(over="ignore"):  # (above float32's largest: inf, which crosses nothing)
                above = np.nextafter(t32, np.float32(np.inf))
            self.columns[feature] = (t64, t32, np.unique(np.concatenate([t32, above])))
        # One 65,536-entry slice of the table per split feature (slice 0, all False, for the others): a
        # value whose hashed bits are not marked in its column's slice equals none of its near values.
        self.slices = {feature: i + 1 for i, feature in enumerate(self.columns)}
        self.table = np.zeros((len(self.columns) + 1) << 16, bool)
        for feature, (_, _, near) in self.columns.items():
            marked = np.concatenate([near, -near[near == 0]])  # (-0.0 equals 0.0 but hashes apart)
            self.table[(self.slices[feature] << 16) + _hashed(marked).astype(np.int64)] = True

    def apply(self, wide: np.ndarray, narrow: np.ndarray) -> None:
        """Correct ``narrow`` (``wide`` cast to float32, rows x features) in place."""
        if not self.columns:
            return
        width = narrow.shape[1]
        offsets = np.array([self.slices.get(f, 0) << 16 for f in range(width)], np.uint32)
        keys = np.empty((min(HASH_BLOCK_ROWS, narrow.shape[0]), width), np.uint32)
        for start in range(0, narrow.shape[0], HASH_BLOCK_ROWS):  # (bounded temporaries)
            block = np.ascontiguousarray(narrow[start : start + HASH_BLOCK_ROWS])
            key = keys[: len(block)]
            np.add(_hashed(block), offsets, out=key, casting="unsafe")
            at = np.flatnonzero(np.take(self.table, key))  # (np.nonzero of the 2-D hits: 13x slower)
            rows, columns = at // width, at % width
            for feature in np.unique(columns):
                self._correct(wide, narrow, int(feature), start + rows[columns == feature])

    def _correct(self, wide: np.ndarray, narrow: np.ndarray, feature: int, maybe: np.ndarray) -> None:
        """Correct the ``maybe`` rows of one split feature's column (those its hashed bits let through)."""
        t64, t32, near = self.columns[feature]
        x32 = narrow[:, feature]
        at = np.minimum(np.searchsorted(near, x32[maybe]), len(near) - 1)
        suspects = maybe[near[at] == x32[maybe]]
        if suspects.size:
            below64 = np.searchsorted(t64, wide[suspects, feature], side="left")  # thresholds < x
            below32 = np.searchsorted(t32, x32[suspects], side="left")
            crossed = below64 != below32
            k = below64[crossed]
            up = below32[crossed] < k  # narrowed too low: the smallest float32 above t32[k - 1]
            fixed = np.where(
                up,
                np.nextafter(t32[np.maximum(k - 1, 0)], np.float32(np.inf)),
                t32[np.minimum(k, len(t32) - 1)],  # too high: t32[k] itself, still left of split k
            )
            narrow[suspects[crossed], feature] = fixed


def _hashed(values: np.ndarray) -> np.ndarray:
    """C-contiguous float32 values' bits folded to 16, uint16 (a value's high and low halves mixed, so that
    round numbers, whose low bits are 0, spread too)."""
    halves = values.view(np.uint16)
    return halves[..., 0::2] ^ halves[..., 1::2]


def plan(
    graph: Graph, tensors: dict[str, np.ndarray], input_columns: dict[str, list[int | None]] | None = None
) -> dict[int, SplitNarrowing]:
    """Model input position -> the narrowing its float64 splits need (empty: none). The splits are those
    of trees comparing in float64 and of KBinsDiscretizer's bins (BinIndex v2), on a model input's columns
    read directly or through the tensors ``input_columns`` maps to the one input's columns (the file's
    metadata: column selections, a ColumnTransformer's side by side, category coding)."""
    sources = _column_sources(graph, input_columns or {})
    found: dict[int, dict[int, list[np.ndarray]]] = {}
    for node in graph.nodes:
        if not node.inputs or node.inputs[0] not in sources:
            continue
        if node.op == "TreeEnsemble" and not node.attrs.get("compare_float32"):
            nodes, thresholds = tensors.get(node.inputs[1]), tensors.get(node.inputs[2])
            if nodes is None or thresholds is None or thresholds.dtype != np.float64:
                continue
            splits = _split_thresholds(nodes, thresholds, int(node.attrs["feature_bits"]))
            if node.attrs.get("lightgbm_missing"):
                splits = {f: np.concatenate([t, LIGHTGBM_ZERO_SPLITS]) for f, t in splits.items()}
        elif node.op == "BinIndex" and node.version == 2 and node.inputs[1] in tensors:
            rows = np.asarray(tensors[node.inputs[1]], dtype=np.float64)
            splits = {f: row[np.isfinite(row)] for f, row in enumerate(rows)}
        else:
            continue
        position, columns = sources[node.inputs[0]]
        per_feature = found.setdefault(position, {})
        for feature, values in splits.items():
            column = columns(feature)
            if column is not None:
                per_feature.setdefault(column, []).append(values)
    return {
        position: SplitNarrowing({f: np.unique(np.concatenate(v)) for f, v in features.items()})
        for position, features in found.items()
    }


def _column_sources(graph: Graph, input_columns: dict[str, list[int | None]]) -> dict[str, tuple[int, Any]]:
    """Tensor -> (model input position, its column j -> the input's column j holds, None where another
    value does) for the model inputs, the tensors ``input_columns`` maps (a one-input model's: the file
    names them), and, for files written before it did, category coding of a model input (CategoryCodes:
    the input less the columns it codes)."""
    sources: dict[str, tuple[int, Any]] = {vi.name: (i, lambda j: j) for i, vi in enumerate(graph.inputs)}
    if len(graph.inputs) == 1:
        for name, held in input_columns.items():
            sources[name] = (0, lambda j, held=held: held[j] if j < len(held) else None)
    for node in graph.nodes:
        if node.op == "CategoryCodes" and node.inputs[0] in sources and node.outputs[0] not in sources:
            position, columns = sources[node.inputs[0]]
            coded = set(node.attrs.get("columns", ()))
            sources[node.outputs[0]] = (position, lambda j, c=columns, coded=coded: None if j in coded else c(j))
    return sources


def _split_thresholds(nodes: np.ndarray, thresholds: np.ndarray, feature_bits: int) -> dict[int, np.ndarray]:
    words = (nodes if nodes.ndim == 1 else nodes[:, 0]).astype(np.int64)
    features = words & ((1 << feature_bits) - 1)
    flags = (words >> feature_bits) & ((1 << FLAG_BITS) - 1)
    numeric = ((flags & (LEAF | CATEGORICAL)) == 0) & np.isfinite(thresholds)
    out: dict[int, Any] = {}
    for feature in np.unique(features[numeric]):
        out[int(feature)] = thresholds[numeric & (features == feature)]
    return out
