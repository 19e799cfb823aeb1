"""The canonical tree IR every tree converter produces, and its packing into the tensors of the
``TreeEnsemble`` op (layout in ``mle_runtime/ops/trees.py``).

A converter describes each tree in its framework's own node numbering, with splits normalized to
"go left when x <= threshold" (XGBoost's ``x < split`` becomes ``x <= the float32 just below split``)
and leaf values already final (a forest's per-tree probabilities, a booster's scaled leaf weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mle_runtime.converters._builder import GraphBuilder
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.lowering import flush_safe_thresholds, to_float32_down
from mle_runtime.ops.trees import (
    CATEGORICAL,
    DEFAULT_LEFT,
    FLAG_BITS,
    LEAF,
    NAN_AS_ZERO,
    PERFECT_MAX_DEPTH,
    SPLIT_TABLES,
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


# A perfect layout stores 2**depth slots a tree: used only when that is at most this many times the
# nodes the trees really have (deep, lopsided trees would balloon).
PERFECT_MAX_WASTE = 4


def heap_positions(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each node's heap position (children of p at 2p + 1 and 2p + 2)."""
    position = np.full(len(left), -1, dtype=np.int64)
    position[0] = 0
    frontier = np.array([0])
    while frontier.size:
        inner = frontier[left[frontier] >= 0]
        position[left[inner]] = 2 * position[inner] + 1
        position[right[inner]] = 2 * position[inner] + 2
        frontier = np.concatenate([left[inner], right[inner]])
    return position


def perfect_leaf_slots(position: np.ndarray, depth: int) -> np.ndarray:
    """The level-``depth`` slot a node at heap ``position`` leads to when every split below it goes left."""
    level = np.floor(np.log2(position + 1)).astype(np.int64)
    return (position + 1) * (1 << (depth - level)) - 1 - ((1 << depth) - 1)


def _index_dtype(bound: int) -> np.dtype[Any]:
    """The narrowest signed integer dtype for offsets below ``bound``."""
    return np.dtype(np.int16) if bound < 2**15 else np.dtype(np.int32)


class _Packed(NamedTuple):
    """Node-level arrays of every tree, concatenated, and per-tree offsets."""

    feature: np.ndarray
    flags: np.ndarray
    child: np.ndarray | None  # None in the perfect layout (children are implied)
    thresholds: np.ndarray
    values: np.ndarray
    tree_nodes: list[int]
    tree_leaves: list[int]
    widest_tree: int


def _node_flags(tree: Tree, nodes: np.ndarray, lightgbm: bool) -> np.ndarray:
    flags = np.where(tree.left[nodes] < 0, LEAF, 0) | np.where(tree.default_left[nodes], DEFAULT_LEFT, 0)
    if lightgbm and tree.nan_as_zero is not None and tree.zero_missing is not None:
        flags |= np.where(tree.nan_as_zero[nodes], NAN_AS_ZERO, 0)
        flags |= np.where(tree.zero_missing[nodes], ZERO_MISSING, 0)
    return flags


def _categorical(tree: Tree, new_id: np.ndarray, flags: np.ndarray, threshold: np.ndarray, cat_rows: list) -> None:
    """Mark the categorical nodes (at their new positions) and point their threshold at a bitset row."""
    for old, (left_set, limit, unknown_left) in tree.categories.items():
        position = int(new_id[old])
        flags[position] |= CATEGORICAL | (UNKNOWN_LEFT if unknown_left else 0)
        threshold[position] = len(cat_rows)
        cat_rows.append((np.asarray(left_set, dtype=np.int64), int(limit)))


def _renumbered(tree: Tree, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each old node's breadth-first id, and by new id each node's rank among the leaves before it."""
    new_id = np.empty(len(tree.left), dtype=np.int64)
    new_id[order] = np.arange(order.size)
    return new_id, np.cumsum(tree.left[order] < 0) - 1


def _breadth_first(trees: list[Tree], orders: list[np.ndarray], lightgbm: bool, cat_rows: list) -> _Packed:
    parts: list[tuple[np.ndarray, ...]] = []
    tree_nodes, tree_leaves, n_nodes, n_leaves = [], [], 0, 0
    for tree, order in zip(trees, orders, strict=True):
        new_id, leaf_rank = _renumbered(tree, order)
        is_leaf = tree.left[order] < 0
        child = np.where(is_leaf, leaf_rank, new_id[np.maximum(tree.left[order], 0)])
        flags = _node_flags(tree, order, lightgbm)
        threshold = np.where(is_leaf, np.inf, tree.threshold[order]).astype(np.float64)
        _categorical(tree, new_id, flags, threshold, cat_rows)
        feature = np.where(is_leaf, 0, tree.feature[order]).astype(np.int64)
        parts.append((feature, flags, child, threshold, tree.value[order][is_leaf]))
        tree_nodes.append(n_nodes)
        tree_leaves.append(n_leaves)
        n_nodes += order.size
        n_leaves += int(is_leaf.sum())
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return _Packed(*columns, tree_nodes, tree_leaves, max(o.size for o in orders))


def _perfect(trees: list[Tree], depth: int, lightgbm: bool, cat_rows: list) -> _Packed:
    inner, slots = (1 << depth) - 1, 1 << depth
    width = trees[0].value.shape[1]
    parts: list[tuple[np.ndarray, ...]] = []
    for tree in trees:
        position = heap_positions(tree.left, tree.right)
        reached = position >= 0  # (XGBoost keeps the nodes its pruning deleted, unreachable, in its arrays)
        internal = np.flatnonzero((tree.left >= 0) & reached)
        leaves = np.flatnonzero((tree.left < 0) & reached)
        # every slot not taken by a real split always goes left: threshold +inf, missing values left
        feature = np.zeros(inner, dtype=np.int64)
        flags = np.full(inner, DEFAULT_LEFT, dtype=np.int64)
        threshold = np.full(inner, np.inf)
        feature[position[internal]] = tree.feature[internal]
        flags[position[internal]] = _node_flags(tree, internal, lightgbm)
        threshold[position[internal]] = tree.threshold[internal]
        _categorical(tree, position, flags, threshold, cat_rows)
        values = np.zeros((slots, width))
        values[perfect_leaf_slots(position[leaves], depth)] = tree.value[leaves]
        parts.append((feature, flags, threshold, values))
    feature, flags, threshold, values = (np.concatenate(c) for c in zip(*parts, strict=True))
    count = len(trees)
    return _Packed(
        feature,
        flags,
        None,
        threshold,
        values,
        [t * inner for t in range(count)],
        [t * slots for t in range(count)],
        inner,
    )


def tree_ensemble(
    b: GraphBuilder,
    x: str,
    trees: list[Tree],
    n_features: int,
    n_outputs: int,
    *,
    compare_float32: bool,
    value_dtype: Any = np.float64,
    linear_terms: int = 0,
) -> str:
    """Emit a ``TreeEnsemble`` node summing ``trees`` over ``x``; returns its (rows, n_outputs) output.

    ``compare_float32``: the framework compares float32 inputs with float32 thresholds (store them with
    ``to_float32_down``); otherwise thresholds stay float64 and float32 precision rounds them down at load.
    Shallow ensembles (depth at most PERFECT_MAX_DEPTH, not too lopsided) get the perfect layout.
    ``linear_terms``: the leaves are linear models, each tree's value rows [value, constant, that many
    coefficients, as many features + 1] (LightGBM's linear trees; tree t adds to output t % n_outputs).
    """
    width = 1 if linear_terms else trees[0].value.shape[1]
    if width not in (1, n_outputs) or (width == 1 and len(trees) % n_outputs):
        raise ValueError(f"{len(trees)} trees of width {width} cannot make {n_outputs} outputs")
    feature_bits = max(int(n_features - 1).bit_length(), 1)
    lightgbm = any(t.nan_as_zero is not None for t in trees)
    shapes = [bfs_order(t.left, t.right) for t in trees]
    depth = max(d for _, d in shapes)
    cat_rows: list[tuple[np.ndarray, int]] = []
    total = sum(order.size for order, _ in shapes)
    perfect = depth <= PERFECT_MAX_DEPTH and len(trees) * (2 << depth) <= PERFECT_MAX_WASTE * total
    if perfect:
        packed = _perfect(trees, depth, lightgbm, cat_rows)
    else:
        packed = _breadth_first(trees, [order for order, _ in shapes], lightgbm, cat_rows)

    head = packed.feature | (packed.flags << feature_bits)
    if packed.child is None:
        nodes = head.astype(np.int32)
    elif feature_bits + FLAG_BITS + max(int(packed.widest_tree - 1).bit_length(), 1) <= PACKED_WORD_BITS:
        nodes = (head | (packed.child << (feature_bits + FLAG_BITS))).astype(np.int32)
    else:
        nodes = np.stack([head, packed.child], axis=1).astype(np.int32)
    thresholds = to_float32_down(packed.thresholds) if compare_float32 else flush_safe_thresholds(packed.thresholds)
    n_nodes, n_leaves = len(packed.feature), len(packed.values)
    inputs = [
        x,
        b.const("tree_nodes", nodes),
        b.const("tree_thresholds", thresholds),
        b.const("leaf_values", packed.values.astype(value_dtype)),
        b.const("tree_node_offsets", np.asarray(packed.tree_nodes, dtype=_index_dtype(n_nodes))),
        b.const("tree_leaf_offsets", np.asarray(packed.tree_leaves, dtype=_index_dtype(n_leaves))),
    ]
    if cat_rows:
        words_per_row = max((int(limit) + 31) // 32 for _, limit in cat_rows)
        bits = np.zeros((len(cat_rows), max(words_per_row, 1)), dtype=np.uint32)
        for row, (left_set, limit) in enumerate(cat_rows):
            kept = left_set[(left_set >= 0) & (left_set < limit)]
            np.bitwise_or.at(bits[row], kept >> 5, (np.uint32(1) << (kept & 31).astype(np.uint32)))
        inputs += [b.const("cat_bits", bits), b.const("cat_limits", np.array([r[1] for r in cat_rows], np.int32))]
    tables = None if perfect or cat_rows else split_tables(trees, [order for order, _ in shapes], depth)
    if tables is not None:
        inputs += [b.const_beside(inputs[1], s, a) for s, a in zip(SPLIT_TABLES, tables[1], strict=True)]
    attrs: dict[str, Any] = {"depth": depth, "feature_bits": feature_bits, "n_outputs": n_outputs}
    if compare_float32:
        attrs["compare_float32"] = True
    if lightgbm:
        attrs["lightgbm_missing"] = True
    if perfect:
        attrs["layout"] = "perfect"
    if tables is not None:
        attrs["split_groups"] = tables[0]
    if linear_terms:
        attrs["linear_terms"] = linear_terms
    return b.op("TreeEnsemble", *inputs, **attrs)


# Split tables (see SPLIT_TABLES in mle_runtime/ops/trees.py) group the trees by their leaves rounded up
# to a power of two, at most SPLIT_TABLE_MAX_LEAVES (one 64-bit set a tree); a tree goes in a group when
# the splits it compares there are at most SPLIT_TABLE_MAX_SPLITS_PER_LEVEL times the levels the walk
# steps through (the ensemble's depth: the walk takes every tree that far), else it is walked. Measured
# on XLA CPU against the walk, at 1,024 and 100,000 rows: 500 LightGBM trees of 63 leaves (62 splits,
# depth 21) 2.2x, 200 HistGradientBoosting iterations (30 splits, depth 18) 2.5x; 300 GradientBoosting
# trees of depth 5 all in one group of 31 splits 0.91-0.96x: the walk's five steps beat 31 comparisons.
# Tables are written when at least SPLIT_TABLE_MIN_SHARE of the trees have a group.
SPLIT_TABLE_MAX_LEAVES = 64
SPLIT_TABLE_MAX_SPLITS_PER_LEVEL = 4
SPLIT_TABLE_MIN_SHARE = 0.25


def _in_order(tree: Tree) -> tuple[list[int], dict[int, tuple[int, int, int]]]:
    """The tree's leaves left to right, and each split's leaves as positions among them: [lo, mid) on
    its left, [mid, hi) on its right."""
    in_order: list[int] = []
    spans: dict[int, tuple[int, int, int]] = {}

    def visit(node: int) -> tuple[int, int]:
        if tree.left[node] < 0:
            in_order.append(node)
            return len(in_order) - 1, len(in_order)
        lo, mid = visit(int(tree.left[node]))
        hi = visit(int(tree.right[node]))[1]
        spans[node] = (lo, mid, hi)
        return lo, hi

    visit(0)
    return in_order, spans


def split_tables(
    trees: list[Tree], orders: list[np.ndarray], depth: int
) -> tuple[list[list[int]], list[np.ndarray]] | None:
    """The ``split_groups`` attribute and the SPLIT_TABLES tensors of breadth-first trees, or None where
    too few trees would use them."""
    sizes = [max(2, 1 << (int((t.left[o] < 0).sum()) - 1).bit_length()) for t, o in zip(trees, orders, strict=True)]
    fits = [s <= SPLIT_TABLE_MAX_LEAVES and s - 1 <= SPLIT_TABLE_MAX_SPLITS_PER_LEVEL * depth for s in sizes]
    if sum(fits) < max(1, SPLIT_TABLE_MIN_SHARE * len(trees)):
        return None
    groups = sorted({s for s, fit in zip(sizes, fits, strict=True) if fit})
    members = [[t for t in range(len(trees)) if fits[t] and sizes[t] == size] for size in groups]
    order = [t for m in members for t in m] + [t for t in range(len(trees)) if not fits[t]]
    slots, ranges, leaf_order = [], [], []
    for size, m in zip(groups, members, strict=True):
        group_slots = np.zeros((len(m), size - 1), np.int64)  # padding: the root, with no leaves either side
        group_ranges = np.zeros((len(m), size - 1, 3), np.int64)
        group_order = np.zeros((len(m), size), np.int64)
        for row, t in enumerate(m):
            tree, bfs = trees[t], orders[t]
            new_id, leaf_rank = _renumbered(tree, bfs)
            in_order, spans = _in_order(tree)
            internal = [int(n) for n in bfs if tree.left[n] >= 0]
            group_slots[row, : len(internal)] = new_id[internal]
            group_ranges[row, : len(internal)] = np.array([spans[n] for n in internal], np.int64).reshape(-1, 3)
            group_order[row, : len(in_order)] = leaf_rank[new_id[in_order]]
        slots.append(group_slots.reshape(-1))
        ranges.append(group_ranges.reshape(-1, 3))
        leaf_order.append(group_order.reshape(-1))
    tensors = [
        np.asarray(order, dtype=_index_dtype(len(trees))),
        np.concatenate(slots).astype(np.uint8),
        np.concatenate(ranges).astype(np.uint8),
        np.concatenate(leaf_order).astype(np.uint8),
    ]
    return [[len(m), size] for size, m in zip(groups, members, strict=True)], tensors


def categories_as_codes(b: GraphBuilder, x: str, categories: dict[int, list[Any]], owner: str) -> str:
    """``x`` with each column of ``categories`` (column -> the framework's categories, in the order whose
    positions are their codes) holding the code of its value instead, NaN for a missing value or one that
    is no category: what XGBoost, LightGBM and HistGradientBoosting do with a DataFrame's categorical
    columns. String categories reach the graph as codes of the runtime's vocabulary step (sorted, so
    that the sorted categories' codes stay sorted for the search), numeric ones as they are."""
    tables = []
    for column, values in sorted(categories.items()):
        strings = all(isinstance(v, str) for v in values)
        if not strings and np.asarray(values).dtype.kind not in "biuf":
            raise UnsupportedModelError(
                f"{owner}: column {column} has categories {values[:5]}...; strings or numbers are supported"
            )
        order = sorted(range(len(values)), key=values.__getitem__)
        known = [values[i] for i in order]
        if not known:  # no categories: every value is unknown
            tables += [b.const("categories", np.array([np.nan])), b.const("category_codes", np.zeros(1))]
            continue
        if strings:
            tables.append(b.string_codes("categories", x, column, known, owner))
        else:
            tables.append(b.const("categories", np.asarray(known, dtype=np.float64)))
        tables.append(b.const("category_codes", np.asarray(order, dtype=np.float64)))
    coded = b.op("CategoryCodes", x, *tables, columns=sorted(categories), recoded=True)
    if x in b.columns_of:  # the other columns still hold the input's values (narrowing.py splits on them)
        b.columns_of[coded] = [None if i in categories else c for i, c in enumerate(b.columns_of[x])]
    return coded


def unknown_categories(b: GraphBuilder, x: str, coded: str, columns: list[int]) -> str:
    """(rows,) non-zero where one of ``columns`` of ``x`` holds a value (not a missing one) that
    ``categories_as_codes`` found among no categories: ``coded`` has NaN there."""
    index = b.const("categorical_columns", np.asarray(columns, dtype=np.int64))
    code_missing = b.op("IsMissing", b.op("TakeColumns", coded, index), missing="nan")
    value_missing = b.op("IsMissing", b.op("TakeColumns", x, index), missing="nan")
    return b.op("Gemm", b.op("Sub", code_missing, value_missing), b.const("ones", np.ones(len(columns))))
