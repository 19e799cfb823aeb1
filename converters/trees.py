"""The canonical tree IR every tree converter produces, and its packing into the tensors of the
``TreeEnsemble`` op (layout in ``mle_runtime/ops/trees.py``).

A converter describes each tree in its framework's own node numbering, with splits normalized to
"go left when x <= threshold" (XGBoost's ``x < split`` becomes ``x <= the float32 just below split``)
and leaf values already final (a forest's per-tree probabilities, a booster's scaled leaf weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mle_runtime.converters._builder import GraphBuilder
from mle_runtime.lowering import flush_safe_thresholds, to_float32_down
from mle_runtime.ops.trees import (
    CATEGORICAL,
    DEFAULT_LEFT,
    FLAG_BITS,
    LEAF,
    NAN_AS_ZERO,
    UNKNOWN_LEFT,
    ZERO_MISSING,
)


@dataclass
class Tree:
    """One tree. Node arrays are indexed by the framework's node ids; ``left[i] < 0`` marks a leaf."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray  # float64; unused at leaves and categorical nodes
    default_left: np.ndarray  # bool: where a missing value goes
    value: np.ndarray  # (n_nodes, width) float64, read at leaves
    # categorical node -> (categories going left, limit, unknown_left): categories are 0 .. limit - 1;
    # NaN goes the missing-value way, a negative or larger value left when unknown_left, else right
    categories: dict[int, tuple[np.ndarray, int, bool]] = field(default_factory=dict)
    nan_as_zero: np.ndarray | None = None  # LightGBM missing_type None and Zero: NaN reads as 0
    zero_missing: np.ndarray | None = None  # LightGBM missing_type Zero: |x| <= 1e-35 is missing
    source_leaf: np.ndarray | None = None  # the framework's own leaf numbers, where not the node ids


def bfs_order(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, int]:
    """Old node ids in breadth-first order with siblings adjacent (left, right), and the tree's depth."""
    order, frontier, depth = [np.array([0])], np.array([0]), 0
    while True:
        inner = frontier[left[frontier] >= 0]
        if inner.size == 0:
            return np.concatenate(order), depth
        frontier = np.empty(2 * inner.size, dtype=np.int64)
        frontier[0::2], frontier[1::2] = left[inner], right[inner]
        order.append(frontier)
        depth += 1


# A node's feature, flags and child share one int32 word when they fit (else two words a node).
PACKED_WORD_BITS = 31


def _index_dtype(bound: int) -> np.dtype[Any]:
    """The narrowest signed integer dtype for offsets below ``bound``."""
    return np.dtype(np.int16) if bound < 2**15 else np.dtype(np.int32)


def tree_ensemble(
    b: GraphBuilder,
    x: str,
    trees: list[Tree],
    n_features: int,
    n_outputs: int,
    *,
    compare_float32: bool,
    value_dtype: Any = np.float64,
) -> str:
    """Emit a ``TreeEnsemble`` node summing ``trees`` over ``x``; returns its (rows, n_outputs) output.

    ``compare_float32``: the framework compares float32 inputs with float32 thresholds (store them with
    ``to_float32_down``); otherwise thresholds stay float64 and float32 precision rounds them down at load.
    """
    width = trees[0].value.shape[1]
    if width not in (1, n_outputs) or (width == 1 and len(trees) % n_outputs):
        raise ValueError(f"{len(trees)} trees of width {width} cannot make {n_outputs} outputs")
    feature_bits = max(int(n_features - 1).bit_length(), 1)
    words, thresholds, values, tree_nodes, tree_leaves, cat_rows = [], [], [], [], [], []
    n_nodes = n_leaves = 0
    max_depth = max_local = 0
    lightgbm = any(t.nan_as_zero is not None for t in trees)
    for tree in trees:
        order, depth = bfs_order(tree.left, tree.right)
        new_id = np.empty(len(tree.left), dtype=np.int64)
        new_id[order] = np.arange(order.size)
        is_leaf = tree.left[order] < 0
        leaf_rank = np.cumsum(is_leaf) - 1
        child = np.where(is_leaf, leaf_rank, new_id[np.maximum(tree.left[order], 0)])
        flags = np.where(is_leaf, LEAF, 0) | np.where(tree.default_left[order], DEFAULT_LEFT, 0)
        if lightgbm and tree.nan_as_zero is not None and tree.zero_missing is not None:
            flags |= np.where(tree.nan_as_zero[order], NAN_AS_ZERO, 0)
            flags |= np.where(tree.zero_missing[order], ZERO_MISSING, 0)
        threshold = np.where(is_leaf, np.inf, tree.threshold[order]).astype(np.float64)
        for old, (left_set, limit, unknown_left) in tree.categories.items():
            position = int(new_id[old])
            flags[position] |= CATEGORICAL | (UNKNOWN_LEFT if unknown_left else 0)
            threshold[position] = len(cat_rows)
            cat_rows.append((np.asarray(left_set, dtype=np.int64), int(limit)))
        feature = np.where(is_leaf, 0, tree.feature[order]).astype(np.int64)
        words.append((feature, flags, child))
        thresholds.append(threshold)
        values.append(tree.value[order][is_leaf])
        tree_nodes.append(n_nodes)
        tree_leaves.append(n_leaves)
        n_nodes += order.size
        n_leaves += int(is_leaf.sum())
        max_depth = max(max_depth, depth)
        max_local = max(max_local, order.size)

    child_bits = max(int(max_local - 1).bit_length(), 1)
    feature_all = np.concatenate([w[0] for w in words])
    flags_all = np.concatenate([w[1] for w in words])
    child_all = np.concatenate([w[2] for w in words])
    if feature_bits + FLAG_BITS + child_bits <= PACKED_WORD_BITS:
        nodes = (feature_all | (flags_all << feature_bits) | (child_all << (feature_bits + FLAG_BITS))).astype(np.int32)
    else:
        nodes = np.stack([feature_all | (flags_all << feature_bits), child_all], axis=1).astype(np.int32)
    threshold_all = np.concatenate(thresholds)
    threshold_all = to_float32_down(threshold_all) if compare_float32 else flush_safe_thresholds(threshold_all)
    inputs = [
        x,
        b.const("tree_nodes", nodes),
        b.const("tree_thresholds", threshold_all),
        b.const("leaf_values", np.concatenate(values).astype(value_dtype)),
        b.const("tree_node_offsets", np.asarray(tree_nodes, dtype=_index_dtype(n_nodes))),
        b.const("tree_leaf_offsets", np.asarray(tree_leaves, dtype=_index_dtype(n_leaves))),
    ]
    if cat_rows:
        words_per_row = max((int(limit) + 31) // 32 for _, limit in cat_rows)
        bits = np.zeros((len(cat_rows), max(words_per_row, 1)), dtype=np.uint32)
        for row, (left_set, limit) in enumerate(cat_rows):
            kept = left_set[(left_set >= 0) & (left_set < limit)]
            np.bitwise_or.at(bits[row], kept >> 5, (np.uint32(1) << (kept & 31).astype(np.uint32)))
        inputs += [b.const("cat_bits", bits), b.const("cat_limits", np.array([r[1] for r in cat_rows], np.int32))]
    attrs: dict[str, Any] = {"depth": max_depth, "feature_bits": feature_bits, "n_outputs": n_outputs}
    if compare_float32:
        attrs["compare_float32"] = True
    if lightgbm:
        attrs["lightgbm_missing"] = True
    return b.op("TreeEnsemble", *inputs, **attrs)
