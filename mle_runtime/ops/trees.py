"""Tree ensembles: a gather traversal over (trees, rows), the form measured fastest on XLA CPU.

Layout (written by ``converters/trees.py``): all trees' nodes in one array, each tree numbered from 0
breadth-first so that a node's right child is its left child + 1. A node is one int32 word,

    bits 0 .. feature_bits-1   feature index
    next FLAG_BITS bits        flags: leaf, NaN goes left, categorical, LightGBM's NaN-as-zero and
                               zero-as-missing, an unknown category goes left
    the bits above             internal node: left child (tree-local); leaf: the leaf's row in
                               ``leaf_values`` (tree-local)

or, when feature and child indices do not fit 31 bits together, two words per node ([:, 0] feature and
flags, [:, 1] child). ``thresholds`` holds each node's split: go left when ``x <= threshold``; for a
categorical node it holds the row of ``cat_bits``, a bitset of the categories that go left among the
known ones, 0 .. ``cat_limits[row]`` - 1; NaN takes the missing-value direction, and a negative or larger
value the node's unknown-category direction.

Every row walks every tree for ``depth`` steps (a leaf stays where it is), so the loop has a fixed
count and no data-dependent control flow (deep trees excepted: their open pairs move to smaller arrays
and walk until done, see COMPACT_AFTER); rows go through in chunks of ``CHUNK_ROWS`` so that the
(trees, rows) working set stays in cache and memory stays bounded at any batch size (1,024-row chunks
measured 2.2x faster than one pass at 100,000 rows, and 27-47 MB instead of ~1 GB).

The perfect layout (``layout="perfect"``, trees of depth at most PERFECT_MAX_DEPTH) numbers each tree
as a heap, children of i at 2i + 1 and 2i + 2, with every leaf at level ``depth``: a leaf higher up
becomes splits that always go left (threshold +inf, missing values left) down to its leftmost slot. A
node word is then just feature | flags, and there is no leaf test in the loop.

How it runs is chosen by rules measured on XLA CPU (the constants below say what was measured); on a
GPU (``lowering_platform()``) a batch bucket goes through in one pass — a rule not yet measured there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mle_runtime.ops import lowering_platform, register_op, register_stacked_form
from mle_runtime.ops.math import rounded
from mle_runtime.x64 import x64

FLAG_BITS = 6
LEAF, DEFAULT_LEFT, CATEGORICAL, NAN_AS_ZERO, ZERO_MISSING, UNKNOWN_LEFT = (1 << i for i in range(FLAG_BITS))
CHUNK_ROWS = 1024
SPLIT_MIN_ROWS = 64  # (see _chunk_rows)
# Trees at most this deep may be stored in the perfect (heap) layout: measured on XLA CPU, 300
# depth-3 trees ran 1.6x faster at 1,000 rows and 1.14x at 100,000 than the breadth-first walk; at
# depths 5, 6 and 8 the two were within the run-to-run noise (+-20%), so deeper trees keep the compact
# breadth-first layout. The matrix form for such shallow trees (every split compared at once, the leaf
# as a one-hot path product summed against the leaf values) is not built: on XLA CPU it ran 4.8x slower
# than the heap walk (100 depth-3 GradientBoosting trees, 1,000 rows: 2.20 vs 0.46 ms) and 13x slower at
# depth 4 (300 trees: 28.9 vs 2.2 ms). It might pay on a GPU, not measured here.
PERFECT_MAX_DEPTH = 4
# A GPU wants every (tree, row) pair of a batch bucket in flight at once: no row chunks there, but for
# a walk of so many trees (a stack's forest of every model's trees) that a bucket's pairs would pass
# GPU_MAX_PAIRS, ~4 GB of walk state (a bound chosen, not measured: no GPU was at hand).
GPU_CHUNK_ROWS = 1 << 16
GPU_MAX_PAIRS = 1 << 28
# Deep trees (a full-depth forest: max depth 29-36, mean path 13) pay for the fixed loop count. After
# COMPACT_AFTER levels (14% of pairs still open in such a forest) the open (tree, row) pairs move to an
# array a quarter the size (all walk on until they fit); there they walk until they fit a quarter of
# that, and move again (COMPACT_MOVES times, while an array keeps COMPACT_MIN_PAIRS); the last array
# walks until every pair is at its leaf, not for a fixed count. A move is a popcount rank in 32-pair
# words, their prefix sum and one scatter (_open_slots: 1.4 ms for 512,000 pairs; jnp.nonzero took 5.9 ms,
# 3.9 of them in its cumsum, and the move with the fixed 20 levels after it cost as much as 16 levels).
# Measured on the benchmark's 500-tree forest (depth 36, 50 features), alternating calls of this and the
# single nonzero move: 1.16x at 1,000 and 8,192 rows, 1.06x at one row, for a first run (compile) of
# 1.1 s instead of 0.7 s; one move 4% slower than two, three even with two, compacting after 13 levels
# 5% slower.
# The first 16 levels remain ~60% of the time (each a gather of node records XLA keeps apart from the
# step that reads them: a gathered value with several users is not fused). CHUNK_ROWS 256 / 512 / 2,048
# measured no better. Compaction pays only with many levels left: 500 LightGBM trees of 63 leaves
# (depth 21, 0.8% of pairs open after 16 levels) ran 1.24x faster at 1,000 and 100,000 rows without it
# (with the slower move; not re-measured).
COMPACT_AFTER = 16
COMPACT_MIN_LEVELS_LEFT = 8
COMPACT_MIN_PAIRS = 4096
COMPACT_MOVES = 2
# A packed node word and its float32 threshold are read as one 64-bit record (two gathers a step
# instead of three) when the walk takes at least this many (tree, row, level) steps per node, so that
# building the records (once a call, over every node) costs little beside it. Measured (A/B in one
# process, benchmark models of bench_trees.py): 500 XGBoost trees of depth 8 1.23x at 1,000 rows and
# 1.25x at 100,000 and 1.6x at 300, HistGradientBoosting 1.68x, a 100-tree forest 1.35x at 1,000, the
# 500-tree forest 1.22x at 1,000 and 1.35x at 300; LightGBM's 500 trees, whose steps do more besides,
# unchanged. Forced on below the rule (the 500-tree forest at 50 rows, XGBoost at 10) they gained
# nothing; nor did pairing the first word of the two-word layout (200-tree forest, 1,000 rows: 114k rows/s
# either way). The records need 64-bit integers: built and read inside a local x64 scope, so the op's inputs
# and outputs keep their 32-bit types.
PAIR_MIN_STEPS_PER_NODE = 4
# Split tables (QuickScorer's bit vectors, after Lucchese et al. 2015), written by the converter
# (converters/trees.py says for which trees) when there is no categorical split. Trees go in groups of
# ``leaves`` (a power of two, at most 64) given by the attribute ``split_groups``, [[trees, leaves], ...];
# the tables, in group order: ``split_order`` the trees' indices (the groups' trees, then those left to
# the walk), and for each grouped tree, padded to its group's size, ``split_slots`` its internal nodes
# (breadth-first ids, padded with the root), ``split_ranges`` each one's leaves as in-order positions
# [lo, mid) left and [mid, hi) right (a padding slot 0, 0, 0), ``leaf_order`` the breadth-first rank of
# the leaf at each in-order position. Every split of a tree is compared at once and its losing side's
# leaves cleared from a 64-bit set; the lowest leaf left is the one reached (the bits past a tree's
# leaves are never cleared, and lie above it). Each split reads a whole column with one threshold, so a
# chunk's comparisons vectorize, where the walk's gathers cannot. Used on the CPU for batches of at least
# SPLIT_TABLE_MIN_PAIRS (rows x grouped trees), below which a call's fixed cost (each group's tables
# gathered, once a call) outweighs them. Measured against the walk: 500 LightGBM trees 1.3x at 32 rows,
# 1.03x at 16; 25 LightGBM trees 0.85x at 64 rows, 1.9x at 512; 45 of 75 XGBoost trees grouped 0.97x at
# 64, 1.4x at 512.
SPLIT_TABLES = ("split_order", "split_slots", "split_ranges", "leaf_order")
SPLIT_TABLE_MIN_PAIRS = 8192
# Their chunks: 256 rows measured best of 128-1,024 for 500 XGBoost trees (8,192 rows: 297k rows/s, 256k
# in 1,024-row chunks), LightGBM's 500 trees 1.2x faster than in 1,024-row chunks (1.4x in 128).
SPLIT_TABLE_CHUNK_ROWS = 256
# LightGBM's kZeroThreshold (1e-35f): it reads any |x| at most this as 0, before any split sees it.
LIGHTGBM_ZERO = 1.0000000180025095e-35


@register_op("TreeEnsemble", round_down=("thresholds",))
def tree_ensemble(
    x: jax.Array,
    nodes: jax.Array,
    thresholds: jax.Array,
    leaf_values: jax.Array,
    tree_nodes: jax.Array,
    tree_leaves: jax.Array,
    *extra: jax.Array,
    depth: int,
    feature_bits: int,
    n_outputs: int,
    compare_float32: bool = False,
    lightgbm_missing: bool = False,
    layout: str = "bfs",
    split_groups: list[list[int]] | None = None,
    linear_terms: int = 0,
    tree_counts: list[int] | None = None,
) -> jax.Array:
    """Sum of the leaf values each row reaches, (rows, n_outputs); trees add to every output when a leaf
    holds n_outputs values, else tree t adds to output t % n_outputs. ``extra``: cat_bits and cat_limits
    when some split is categorical, then with ``split_groups`` the four split tables (SPLIT_TABLES).
    ``linear_terms``: the leaves are linear models (see _linear_leaf_sums). ``tree_counts``: set by a
    stack on its merged graph (each model's trees before padding, see stacked_tree_ensemble); a single
    model's ensemble has no use for it."""
    if linear_terms:
        how: dict[str, Any] = dict(
            depth=depth,
            feature_bits=feature_bits,
            layout=layout,
            lightgbm_missing=lightgbm_missing,
            compare_float32=compare_float32,
            split_groups=split_groups,
        )

        def leaves(rows: jax.Array) -> jax.Array:
            return tree_leaf_indices(rows, nodes, thresholds, leaf_values, tree_nodes, tree_leaves, *extra, **how)

        return _linear_leaf_sums(x, leaf_values, tree_leaves, n_outputs, linear_terms, leaves)
    _check_layout(x, nodes, thresholds, leaf_values, tree_nodes, tree_leaves, depth, feature_bits, n_outputs, layout)
    spec = WalkSpec(depth, feature_bits, lightgbm_missing, layout == "perfect")
    forest = (nodes, thresholds, leaf_values, tree_nodes, tree_leaves)
    return _sums(x, forest, extra, split_groups, spec, compare_float32, lambda v, t: _sum_leaf_values(v, n_outputs, t))


AddUp = Callable[[jax.Array, "jax.Array | None"], jax.Array]


def _sums(
    x: jax.Array,
    forest: tuple[jax.Array, ...],
    extra: tuple[jax.Array, ...],
    split_groups: list[list[int]] | None,
    spec: WalkSpec,
    compare_float32: bool,
    add_up: AddUp,
    models: int = 0,
    listed: jax.Array | None = None,
) -> jax.Array:
    """The forest's (nodes, thresholds, leaf_values, tree_nodes, tree_leaves) leaf values summed over x's
    rows: ``add_up(values, trees)`` turns a chunk's (trees, rows, width) leaf values of the trees listed
    (None: all, in order) into that chunk's rows of the output. ``models``: x holds that many models'
    inputs, (models, rows, features), and the forest is theirs in turn, each tree reading its own model's
    (a stack's per-model inputs; their chunks' columns are laid side by side, see TreeModels). ``listed``:
    the only trees to walk where no split tables take any (a stack's, less the trees padding added)."""
    nodes, thresholds, leaf_values, tree_nodes, tree_leaves = forest
    cat_bits, cat_limits, tables = _extra_inputs(extra, split_groups)
    x, thresholds = _comparable(x, thresholds, compare_float32)
    width, per_model = x.shape[-1], tree_nodes.shape[0] // max(models, 1)
    if models:
        x = x.transpose(1, 0, 2).reshape(x.shape[1], models * width)

    def owners(trees: jax.Array) -> TreeModels | None:
        return TreeModels(models, trees.astype(jnp.int32) // per_model) if models else None

    def side_by_side(columns: jax.Array) -> jax.Array:
        """A chunk's (models x features, rows) columns as (features, models x rows)."""
        return columns.reshape(models, width, -1).transpose(1, 0, 2).reshape(width, -1) if models else columns

    groups = _table_groups(x, nodes, thresholds, tree_nodes, tables, split_groups, spec, cat_bits, cat_limits, owners)
    grouped = None
    if groups is not None:
        leaf_tables = groups.leaf_tables(leaf_values, tree_leaves)
        sums = functools.partial(groups.sums, leaf_tables=leaf_tables, add_up=add_up)
        grouped = _in_chunks(x, lambda columns: sums(side_by_side(columns)), split=True, rows=SPLIT_TABLE_CHUNK_ROWS)
        if not groups.walked.shape[0]:
            return grouped
    # The trees no group holds go through in a pass of their own: inside the groups' chunks they ran half
    # as fast (65 of 500 XGBoost trees took as long as the other 435).
    walked = listed if groups is None else groups.walked
    every = jnp.arange(tree_nodes.shape[0]) if walked is None else walked
    forest = (nodes, thresholds, leaf_values, tree_nodes, tree_leaves)
    walk = _walk(forest, x.shape[0], cat_bits, cat_limits, spec, walked, owners(every))
    walked_sums = _in_chunks(x, lambda columns: add_up(walk(side_by_side(columns)), walked), trees=every.shape[0])
    return walked_sums if grouped is None else grouped + walked_sums


def _walk(
    forest: tuple[jax.Array, ...],
    rows: int,
    cat_bits: jax.Array | None,
    cat_limits: jax.Array | None,
    spec: WalkSpec,
    walked: jax.Array | None = None,
    tree_models: TreeModels | None = None,
) -> Callable[[jax.Array], jax.Array]:
    """The walk of a batch of ``rows`` over a chunk's columns, giving each (tree, row) pair's leaf values,
    (trees, rows, width): every tree's, or those ``walked`` lists (``tree_models``: see _leaves)."""
    nodes, thresholds, leaf_values, tree_nodes, tree_leaves = forest
    trees = tree_nodes if walked is None else tree_nodes[walked]
    offsets = (tree_leaves if walked is None else tree_leaves[walked]).astype(jnp.int32)[:, None]
    table = _node_table(nodes, thresholds, trees.shape[0], rows, spec.depth)

    def walk(columns: jax.Array) -> jax.Array:
        return leaf_values[_leaves(columns, table, trees, cat_bits, cat_limits, spec, tree_models) + offsets]

    return walk


@register_stacked_form("TreeEnsemble")
def stacked_tree_ensemble(
    batched: tuple[bool, ...],
    x: jax.Array,
    nodes: jax.Array,
    thresholds: jax.Array,
    leaf_values: jax.Array,
    tree_nodes: jax.Array,
    tree_leaves: jax.Array,
    *extra: jax.Array,
    **attrs: Any,
) -> jax.Array | None:
    """A stack of models' ensembles (a leading model axis on every tree array, ``model_stack.py`` padded
    them to one shape), walked as one forest, each model's trees then summed on their own, (models, rows,
    n_outputs); with a shared input, or one per model (each tree reads its own model's rows: the
    narrowed float64 input of trees that split in float64 is one per model). Measured on XLA CPU (2 cores),
    50 forests of 20 trees of depth 10 at 10,000 rows (benchmarks/bench_stack.py): 95 ms, where
    ``jax.vmap`` of the op over the models took 147 ms (its gathers, with a model axis, run slower than one
    forest's); one forest of those 1,000 trees took as long as the stack.

    Split tables come shared (no model axis): the stack merged the models' groups into one forest's
    (``model_stack._merged_split_tables``). Category bitsets come per model: a categorical node's threshold
    (its row of them) moves to its model's rows of the one forest's (2 LightGBM models with a categorical
    column, 3,000 rows: 33.6 -> 22.4 ms). Linear trees go through ``jax.vmap`` of the op (None), without
    the split tables (they number the one forest's trees). ``attrs``: tree_ensemble's."""
    split_groups = attrs.get("split_groups")
    tables = len(SPLIT_TABLES) if split_groups is not None else 0
    categorical = len(extra) - tables == 2  # (cat_bits and cat_limits, a model axis on each)
    models, n_nodes, n_leaves, trees = nodes.shape[0], nodes.shape[1], leaf_values.shape[1], tree_nodes.shape[1]
    cat_rows = extra[1].shape[1] if categorical else 0
    if (
        not all(batched[1:6])
        or len(extra) not in (tables, tables + 2)
        or not all(batched[6 : len(batched) - tables])
        or any(batched[len(batched) - tables :])
        or models * cat_rows >= 1 << 24  # (a categorical node's threshold, a row number, stays exact in float32)
        or attrs.get("linear_terms")
    ):
        if not tables:
            return None
        kept = len(batched) - tables  # (the shared tables number the trees of the one forest: dropped)
        walk_all = functools.partial(tree_ensemble, **{k: v for k, v in attrs.items() if k != "split_groups"})
        axes = tuple(0 if b else None for b in batched[:kept])
        return jax.vmap(walk_all, in_axes=axes)(
            x, nodes, thresholds, leaf_values, tree_nodes, tree_leaves, *extra[: kept - 6]
        )
    depth, feature_bits, n_outputs = attrs["depth"], attrs["feature_bits"], attrs["n_outputs"]
    layout, compare_float32 = attrs.get("layout", "bfs"), attrs.get("compare_float32", False)
    shift = jnp.arange(models, dtype=jnp.int32)[:, None]
    if categorical:  # a categorical node's threshold is its row of the model's cat_bits: rows of all models
        words = nodes if nodes.ndim == 2 else nodes[..., 0]
        at_category = ((words >> feature_bits) & CATEGORICAL) != 0
        thresholds = jnp.where(at_category, thresholds + (shift * cat_rows).astype(thresholds.dtype), thresholds)
        extra = (extra[0].reshape(models * cat_rows, -1), extra[1].reshape(-1), *extra[2:])
    forest = (
        nodes.reshape(models * n_nodes, *nodes.shape[2:]),
        thresholds.reshape(-1),
        leaf_values.reshape(models * n_leaves, *leaf_values.shape[2:]),
        (tree_nodes.astype(jnp.int32) + shift * n_nodes).reshape(-1),
        (tree_leaves.astype(jnp.int32) + shift * n_leaves).reshape(-1),
    )
    _check_layout(x[0] if batched[0] else x, *forest, depth, feature_bits, n_outputs, layout)
    spec = WalkSpec(depth, feature_bits, attrs.get("lightgbm_missing", False), layout == "perfect")

    def add_up(values: jax.Array, listed: jax.Array | None) -> jax.Array:
        """(trees, rows, width) -> (rows, models, n_outputs), tree t of the forest being tree t % trees of
        model t // trees."""
        if listed is None:  # every tree, model by model
            per_model = values.reshape(models, trees, *values.shape[1:])
            return jax.vmap(functools.partial(_sum_leaf_values, n_outputs=n_outputs), out_axes=1)(per_model)
        model = listed // trees
        if values.shape[-1] == n_outputs:
            summed = jax.ops.segment_sum(values, model, num_segments=models)  # (models, rows, n_outputs)
            return summed.transpose(1, 0, 2)
        segment = model * n_outputs + listed % n_outputs
        summed = jax.ops.segment_sum(values[..., 0], segment, num_segments=models * n_outputs)
        return summed.reshape(models, n_outputs, -1).transpose(2, 0, 1)

    # Padded trees (zero single leaves) would each take the walk's every step: left out. 10 forests of 10,
    # 20, ..., 100 trees at 5,000 rows: 47.5 -> 30.0 ms (a loop of their runtimes: 38 ms).
    counts = attrs.get("tree_counts")
    real = None
    if counts is not None and len(counts) == models and sum(counts) < models * trees:
        real = jnp.asarray(
            np.concatenate([m * trees + np.arange(min(int(c), trees)) for m, c in enumerate(counts)]), jnp.int32
        )
    per_model = models if batched[0] else 0
    sums = _sums(x, forest, extra, split_groups, spec, compare_float32, add_up, per_model, real)
    return sums.transpose(1, 0, 2)


def _linear_leaf_sums(
    x: jax.Array,
    leaf_values: jax.Array,
    tree_leaves: jax.Array,
    n_outputs: int,
    terms: int,
    leaves: Callable[[jax.Array], jax.Array],
) -> jax.Array:
    """LightGBM's linear trees (Tree::Predict): a leaf's row of ``leaf_values`` holds its value, its
    constant, ``terms`` coefficients and the features they multiply, numbered from 1 (0: none, so that a
    row of zeros, as a stack pads with, is the constant 0). A tree gives the constant plus each coefficient
    times the row's value of its feature, added in that order, or the leaf value where one of those values
    is NaN; tree t adds to output t % n_outputs."""
    offsets = tree_leaves.astype(jnp.int32)[None, :]

    def chunk(columns: jax.Array) -> jax.Array:
        rows = columns.T
        ranks = leaves(rows)
        leaf = leaf_values[ranks + offsets]  # (rows, trees, 2 + 2 * terms)
        total, nan_found = leaf[..., 1], jnp.zeros(ranks.shape, bool)
        for j in range(terms):
            feature = leaf[..., 2 + terms + j].astype(jnp.int32) - 1
            used = feature >= 0
            value = jnp.take_along_axis(rows, jnp.maximum(feature, 0).reshape(rows.shape[0], -1), axis=1)
            value = value.reshape(feature.shape)
            nan_found = nan_found | (used & jnp.isnan(value))
            total = total + jnp.where(used, rounded(leaf[..., 2 + j] * value), 0)
        out = jnp.where(nan_found, leaf[..., 0], total)
        return _sum_leaf_values(out.T[..., None], n_outputs)

    return _in_chunks(x, chunk)


def tree_leaf_indices(
    x: jax.Array,
    nodes: jax.Array,
    thresholds: jax.Array,
    _leaf_values: jax.Array,
    tree_nodes: jax.Array,
    tree_leaves: jax.Array,
    *extra: jax.Array,
    **attrs: Any,
) -> jax.Array:
    """The leaf each row reaches in each tree, (rows, trees), for a TreeEnsemble node's inputs and
    attributes: its rank among the tree's leaves in breadth-first order, or its heap slot in the perfect
    layout (what ``apply`` / ``pred_leaf`` report, renumbered); found as tree_ensemble would find it."""
    x, thresholds = _comparable(x, thresholds, attrs.get("compare_float32", False))
    spec = WalkSpec(
        attrs["depth"], attrs["feature_bits"], attrs.get("lightgbm_missing", False), attrs.get("layout") == "perfect"
    )
    split_groups = attrs.get("split_groups")
    cat_bits, cat_limits, tables = _extra_inputs(extra, split_groups)
    groups = _table_groups(x, nodes, thresholds, tree_nodes, tables, split_groups, spec, cat_bits, cat_limits)
    if groups is not None:
        ranks = _in_chunks(x, lambda columns: groups.ranks(columns).T, split=True, rows=SPLIT_TABLE_CHUNK_ROWS)
        if not groups.walked.shape[0]:
            return ranks
        trees = tree_nodes[groups.walked]
        walk_table = _node_table(nodes, thresholds, trees.shape[0], x.shape[0], spec.depth)
        walked = _in_chunks(x, lambda columns: _leaves(columns, walk_table, trees, cat_bits, cat_limits, spec).T)
        return ranks.at[:, groups.walked].set(walked)
    table = _node_table(nodes, thresholds, tree_nodes.shape[0], x.shape[0], spec.depth)
    return _in_chunks(x, lambda columns: _leaves(columns, table, tree_nodes, cat_bits, cat_limits, spec).T)


def _check_layout(
    x: jax.Array,
    nodes: jax.Array,
    thresholds: jax.Array,
    leaf_values: jax.Array,
    tree_nodes: jax.Array,
    tree_leaves: jax.Array,
    depth: int,
    feature_bits: int,
    n_outputs: int,
    layout: str,
) -> None:
    """Attributes a file could set to anything, checked against the tensors' shapes at trace time: a
    walk deeper than there are nodes, or an output layout the leaves cannot fill, is a malformed file
    (gathers themselves stay in bounds whatever the indices: JAX clamps them)."""
    n_nodes = nodes.shape[0]
    problems = []
    if nodes.ndim not in (1, 2) or (nodes.ndim == 2 and nodes.shape[1] != 2) or thresholds.shape != (n_nodes,):
        problems.append(f"nodes {nodes.shape} and thresholds {thresholds.shape} disagree")
    if not 0 <= depth <= n_nodes:
        problems.append(f"depth {depth} outside 0..{n_nodes}")
    if not 1 <= feature_bits <= 24 or (1 << feature_bits) < x.shape[-1]:
        problems.append(f"feature_bits {feature_bits} does not fit {x.shape[-1]} features")
    trees, width = tree_nodes.shape[0], leaf_values.shape[-1] if leaf_values.ndim == 2 else -1
    if tree_leaves.shape != (trees,) or trees == 0:
        problems.append(f"{trees} tree offsets but {tree_leaves.shape} leaf offsets")
    if n_outputs < 1 or width not in (1, n_outputs) or (width == 1 and trees % n_outputs):
        problems.append(f"{trees} trees with {width}-wide leaves cannot make {n_outputs} outputs")
    if layout not in ("bfs", "perfect"):
        problems.append(f"unknown layout {layout!r}")
    elif layout == "perfect" and (
        depth > PERFECT_MAX_DEPTH or n_nodes != trees * ((1 << depth) - 1) or leaf_values.shape[0] != trees << depth
    ):
        problems.append(f"a perfect layout of depth {depth} needs {trees} x {(1 << depth) - 1} nodes")
    if problems:
        raise ValueError("TreeEnsemble: malformed layout: " + "; ".join(problems))


def _comparable(x: jax.Array, thresholds: jax.Array, compare_float32: bool) -> tuple[jax.Array, jax.Array]:
    if compare_float32:  # scikit-learn and XGBoost compare float32 inputs with float32 thresholds
        return x.astype(jnp.float32), thresholds.astype(jnp.float32)
    return x.astype(thresholds.dtype), thresholds


def _in_chunks(
    x: jax.Array, fn: Callable[[jax.Array], jax.Array], split: bool = False, rows: int = CHUNK_ROWS, trees: int = 0
) -> jax.Array:
    """fn over the columns, (features, rows), of row chunks of at most CHUNK_ROWS (the last one padded),
    its (rows, ...) outputs concatenated; ``rows``, ``split`` and ``trees``: see _chunk_rows.

    XLA makes ``x.T`` a free change of layout, so that reading a column reads values a row apart; only a
    loop's input is laid out as its shape says, which is why the chunks are transposed before ``lax.map``
    rather than inside it. An oblivious level compares a whole column with one border: contiguous, its
    loads vectorize (500 CatBoost trees of depth 6 on XLA CPU: 1.1M rows/s strided, 3.3M contiguous at
    8,192 rows). The breadth-first walk reads one value per (tree, row) and measured the same either way."""
    n = x.shape[0]
    chunk = _chunk_rows(n, split, rows, trees)
    pad = -n % chunk
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)])
    if x.shape[0] == chunk:
        return fn(x.T)
    out = jax.lax.map(fn, x.reshape(-1, chunk, x.shape[1]).transpose(0, 2, 1))
    return out.reshape(-1, *out.shape[2:])[:n]


def _chunk_rows(n: int, split: bool = False, rows: int = CHUNK_ROWS, trees: int = 0) -> int:
    """The rows of each chunk of an n-row batch, at most ``rows`` on the CPU. With ``split``, a batch of
    one chunk on the CPU is cut in two when each half keeps SPLIT_MIN_ROWS: a loop of two gets contiguous
    columns (above), where a single chunk's ``x.T`` stays strided (the oblivious trees at 1,024 rows:
    1.1M -> 2.2M rows/s; at 128 and 512 rows 1.1-2x; the walk gained nothing from it). On a GPU, a walk of
    ``trees`` trees takes at most GPU_MAX_PAIRS (tree, row) pairs a chunk."""
    if lowering_platform() != "cpu":
        bound = GPU_CHUNK_ROWS if not trees else max(1024, 1 << max((GPU_MAX_PAIRS // trees).bit_length() - 1, 0))
        return min(n, GPU_CHUNK_ROWS, bound)
    return -(-n // 2) if split and 2 * SPLIT_MIN_ROWS <= n <= rows else min(n, rows)


def _sum_leaf_values(values: jax.Array, n_outputs: int, trees: jax.Array | None = None) -> jax.Array:
    """(trees, rows, width) -> (rows, n_outputs): all trees add to all outputs, or round-robin, tree t to
    output t % n_outputs (``trees``: the trees' indices, when not all of them in order)."""
    if values.shape[-1] == n_outputs:
        return jnp.sum(values, axis=0)
    if trees is not None:
        return jax.ops.segment_sum(values[..., 0], trees % n_outputs, num_segments=n_outputs).T
    return jnp.sum(values[..., 0].reshape(-1, n_outputs, values.shape[1]), axis=0).T


class TreeModels(NamedTuple):
    """Whose trees a walk takes, when its columns hold several models' rows side by side (a stack's
    per-model inputs): ``of_tree`` each tree's model, (trees,) int32, among ``models``."""

    models: int
    of_tree: jax.Array


class WalkSpec(NamedTuple):
    depth: int
    feature_bits: int
    lightgbm_missing: bool
    perfect: bool


class NodeTable(NamedTuple):
    nodes: jax.Array
    thresholds: jax.Array
    records: jax.Array | None  # one packed word and its float32 threshold a uint64, when worth building


def _node_table(nodes: jax.Array, thresholds: jax.Array, trees: int, rows: int, depth: int) -> NodeTable:
    """The walk's node arrays for a batch of ``rows``; the paired records are built (once a call, outside
    the row chunks) when a chunk's walk takes at least PAIR_MIN_STEPS_PER_NODE steps per node."""
    if (
        nodes.ndim != 1
        or thresholds.dtype != jnp.float32
        or trees * _chunk_rows(rows) * depth < PAIR_MIN_STEPS_PER_NODE * nodes.shape[0]
    ):
        return NodeTable(nodes, thresholds, None)
    with x64():
        low = jax.lax.bitcast_convert_type(nodes, jnp.uint32).astype(jnp.uint64)
        high = jax.lax.bitcast_convert_type(thresholds, jnp.uint32).astype(jnp.uint64)
        return NodeTable(nodes, thresholds, low | (high << 32))


def _leaves(
    columns: jax.Array,
    table: NodeTable,
    tree_nodes: jax.Array,
    cat_bits: jax.Array | None,
    cat_limits: jax.Array | None,
    spec: WalkSpec,
    tree_models: TreeModels | None = None,
) -> jax.Array:
    """(trees, rows) leaf ranks (heap slots in the perfect layout). The state is laid out trees-major:
    neighbouring (tree, row) pairs read the same tree's nodes, which measured 1.5x faster than rows-major
    on XLA CPU. ``tree_models``: the columns hold several models' rows side by side, each tree reading its
    own model's."""
    depth, feature_bits, lightgbm_missing, perfect = spec
    nodes, thresholds, records = table
    packed = nodes.ndim == 1
    child_shift = feature_bits + FLAG_BITS if packed else 0
    feature_mask = (1 << feature_bits) - 1
    base = tree_nodes[:, None].astype(jnp.int32)
    columns = _read_columns(columns, lightgbm_missing)
    rows = columns.shape[1] // (1 if tree_models is None else tree_models.models)
    row_index = jnp.arange(rows, dtype=jnp.int32)[None, :]
    if tree_models is not None:
        row_index = row_index + (tree_models.of_tree * rows)[:, None]

    def word_of(g: jax.Array) -> jax.Array:
        return nodes[g] if packed else nodes[g, 0]

    def child_of(word: jax.Array, g: jax.Array) -> jax.Array:
        return word >> child_shift if packed else nodes[g, 1]

    def word_and_threshold(g: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _unpaired(records, g) if records is not None else (word_of(g), thresholds[g])

    def goes_left(word: jax.Array, threshold: jax.Array, rows: jax.Array) -> jax.Array:
        value = columns[word & feature_mask, rows]
        return _goes_left(value, word >> feature_bits, threshold, lightgbm_missing, cat_bits, cat_limits)

    if perfect and not depth:  # every tree a single leaf (a constant target): no node to read, even in a trace
        return jnp.zeros((tree_nodes.shape[0], rows), jnp.int32)
    if perfect:  # heap numbering: children of i are 2i + 1 and 2i + 2, every leaf at level depth

        def heap_step(_: int, node: jax.Array) -> jax.Array:
            return 2 * node + jnp.where(goes_left(*word_and_threshold(node + base), row_index), 1, 2)

        node = jax.lax.fori_loop(0, depth, heap_step, jnp.zeros((tree_nodes.shape[0], rows), jnp.int32))
        return node - ((1 << depth) - 1)

    def step(node: jax.Array, base: jax.Array, rows: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The pairs one level on, and which of them were at an internal node."""
        g = node + base
        word, threshold = word_and_threshold(g)
        moved = child_of(word, g) + jnp.where(goes_left(word, threshold, rows), 0, 1)
        internal = ((word >> feature_bits) & LEAF) == 0
        return jnp.where(internal, moved, node), internal

    def walk(node: jax.Array, base: jax.Array, rows: jax.Array, steps: int) -> jax.Array:
        return jax.lax.fori_loop(0, steps, lambda _, n: step(n, base, rows)[0], node)

    def walk_open(
        node: jax.Array, base: jax.Array, rows: jax.Array, steps: jax.Array, internal: jax.Array, fits: int
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """At most ``steps`` levels on, until at most ``fits`` pairs were at an internal node in the last
        step (``internal``: in the step before). Returns the pairs, the steps left, and which pairs the
        last step found internal: those still open, and those it moved onto a leaf."""
        State = tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # steps taken, pairs, internal, their count

        def level(state: State) -> State:
            i, node, _, _ = state
            node, internal = step(node, base, rows)
            return i + 1, node, internal, jnp.sum(internal, dtype=jnp.int32)

        start: State = (jnp.int32(0), node, internal, jnp.sum(internal, dtype=jnp.int32))
        i, node, internal, _ = jax.lax.while_loop(lambda s: (s[0] < steps) & (s[3] > fits), level, start)
        return node, steps - i, internal

    def finish(
        node: jax.Array, base: jax.Array, rows: jax.Array, steps: jax.Array, internal: jax.Array, moves: int
    ) -> jax.Array:
        """Flat (tree, row) pairs after at most ``steps`` more levels: they walk until the open ones fit a
        quarter of the array, which they then move to, ``moves`` times while an array holds at least
        4 x COMPACT_MIN_PAIRS; the last array walks until every pair is at its leaf."""
        capacity = node.shape[0] // 4
        if not moves or capacity < COMPACT_MIN_PAIRS:
            return walk_open(node, base, rows, steps, internal, 0)[0]
        node, steps, internal = walk_open(node, base, rows, steps, internal, capacity)
        index, count = _open_slots(internal, capacity)

        def compacted(node: jax.Array) -> jax.Array:
            part = finish(node[index], base[index], rows[index], steps, internal[index], moves - 1)
            return node.at[index].set(part)  # (a padding slot repeats a pair at its leaf, and writes it back)

        # (more than fit only when the steps ran out: every pair is at its leaf)
        return jax.lax.cond((steps > 0) & (count <= capacity), compacted, lambda node: node, node)

    trees_rows = (tree_nodes.shape[0], rows)
    first = depth if depth - COMPACT_AFTER < COMPACT_MIN_LEVELS_LEFT else COMPACT_AFTER
    node = jnp.zeros(trees_rows, jnp.int32)
    if depth <= first:
        node = walk(node, base, row_index, depth)
    else:  # (the last of the first levels peeled off for its open pairs: 6% faster than a loop carrying them)
        node, internal = step(walk(node, base, row_index, first - 1), base, row_index)
        flat = (node.reshape(-1), jnp.broadcast_to(base, trees_rows).reshape(-1))
        flat_rows = jnp.broadcast_to(row_index, trees_rows).reshape(-1)
        steps = jnp.int32(depth - first)
        node = finish(*flat, flat_rows, steps, internal.reshape(-1), COMPACT_MOVES).reshape(trees_rows)
    g = node + base
    return child_of(word_of(g), g)


def _read_columns(columns: jax.Array, lightgbm_missing: bool) -> jax.Array:
    """The columns as the splits read them: LightGBM reads any |x| <= kZeroThreshold as 0, whichever node
    reads it."""
    return jnp.where(jnp.abs(columns) <= LIGHTGBM_ZERO, 0.0, columns) if lightgbm_missing else columns


def _goes_left(
    value: jax.Array,
    flags: jax.Array,
    threshold: jax.Array,
    lightgbm_missing: bool,
    cat_bits: jax.Array | None,
    cat_limits: jax.Array | None,
) -> jax.Array:
    """Whether ``value`` goes left at a node of these flags (a node word shifted past its feature) and
    threshold: missing values the node's way, categories by their bitset, numbers by ``<=``."""
    default_left = (flags & DEFAULT_LEFT) != 0
    if lightgbm_missing:
        value = jnp.where(((flags & NAN_AS_ZERO) != 0) & jnp.isnan(value), 0.0, value)
        missing = jnp.isnan(value) | (((flags & ZERO_MISSING) != 0) & (value == 0))
    else:
        missing = jnp.isnan(value)
    go_left = jnp.where(missing, default_left, value <= threshold)
    if cat_bits is not None and cat_limits is not None:
        row = jnp.where((flags & CATEGORICAL) != 0, threshold, 0).astype(jnp.int32)
        known = (value >= 0) & (value < cat_limits[row])  # False for NaN
        category = jnp.where(known, value, 0).astype(jnp.int32)
        bit = (cat_bits[row, category >> 5] >> (category & 31).astype(cat_bits.dtype)) & 1
        by_category = jnp.where(known, bit == 1, (flags & UNKNOWN_LEFT) != 0)
        go_left = jnp.where((flags & CATEGORICAL) != 0, jnp.where(missing, default_left, by_category), go_left)
    return go_left


def _extra_inputs(
    extra: tuple[jax.Array, ...], split_groups: list[list[int]] | None
) -> tuple[jax.Array | None, jax.Array | None, tuple[jax.Array, ...] | None]:
    """(cat_bits, cat_limits, split tables) from a TreeEnsemble's inputs after tree_leaves."""
    count = len(SPLIT_TABLES) if split_groups is not None else 0
    tables = extra[len(extra) - count :] if count else None
    categorical = extra[: len(extra) - count]
    if len(categorical) not in (0, 2) or (tables is not None and len(tables) != count):
        raise ValueError(
            f"TreeEnsemble: malformed layout: {len(extra)} inputs after the leaf offsets "
            f"(0 or 2 categorical{f', then {count} split tables' if count else ''} expected)"
        )
    cat_bits, cat_limits = categorical or (None, None)
    return cat_bits, cat_limits, tables


def _table_groups(
    x: jax.Array,
    nodes: jax.Array,
    thresholds: jax.Array,
    tree_nodes: jax.Array,
    tables: tuple[jax.Array, ...] | None,
    split_groups: list[list[int]] | None,
    spec: WalkSpec,
    cat_bits: jax.Array | None,
    cat_limits: jax.Array | None,
    owners: Callable[[jax.Array], TreeModels | None] | None = None,
) -> _TreeGroups | None:
    """The split tables' groups when a batch of x's rows goes through them rather than the walk: on the
    CPU, from SPLIT_TABLE_MIN_PAIRS rows x grouped trees. ``owners``: the TreeModels of listed trees,
    where the columns hold several models' rows (see _sums)."""
    if tables is None or split_groups is None or lowering_platform() != "cpu":
        return None
    if x.shape[0] * sum(int(n) for n, _ in split_groups) < SPLIT_TABLE_MIN_PAIRS:
        return None
    return _TreeGroups(nodes, thresholds, tree_nodes, tables, split_groups, spec, cat_bits, cat_limits, owners)


class _TreeGroups:
    """An ensemble's trees as its split tables group them, each group evaluated by _SplitTableWalk; the
    trees no group holds (``walked``) are left to the walk."""

    def __init__(
        self,
        nodes: jax.Array,
        thresholds: jax.Array,
        tree_nodes: jax.Array,
        tables: tuple[jax.Array, ...],
        groups: list[list[int]],
        spec: WalkSpec,
        cat_bits: jax.Array | None,
        cat_limits: jax.Array | None,
        owners: Callable[[jax.Array], TreeModels | None] | None = None,
    ):
        order, slots, ranges, leaf_order = tables
        sizes = [(int(n), int(leaves)) for n, leaves in groups]
        if (
            not sizes
            or order.shape != tree_nodes.shape
            or sum(n for n, _ in sizes) > order.shape[0]
            or any(n < 1 or not 2 <= leaves <= 64 for n, leaves in sizes)
            or slots.shape != (sum(n * (leaves - 1) for n, leaves in sizes),)
            or ranges.shape != (*slots.shape, 3)
            or leaf_order.shape != (sum(n * leaves for n, leaves in sizes),)
        ):
            raise ValueError(
                f"TreeEnsemble: malformed split tables for groups {groups}: order {order.shape}, slots "
                f"{slots.shape}, ranges {ranges.shape}, leaf order {leaf_order.shape}, {tree_nodes.shape[0]} trees"
            )
        order = order.astype(jnp.int32)
        self.trees = tree_nodes.shape[0]
        self.parts: list[tuple[jax.Array, _SplitTableWalk]] = []
        first = slot = leaf = 0
        for n, leaves in sizes:
            trees = order[first : first + n]
            table = (
                slots[slot : slot + n * (leaves - 1)].reshape(n, leaves - 1),
                ranges[slot : slot + n * (leaves - 1)].reshape(n, leaves - 1, 3),
                leaf_order[leaf : leaf + n * leaves].reshape(n, leaves),
            )
            models = None if owners is None else owners(trees)
            walker = _SplitTableWalk(nodes, thresholds, tree_nodes[trees], cat_bits, cat_limits, table, spec, models)
            self.parts.append((trees, walker))
            first, slot, leaf = first + n, slot + n * (leaves - 1), leaf + n * leaves
        self.walked = order[first:]
        self.lightgbm_missing = spec.lightgbm_missing

    def leaf_tables(self, leaf_values: jax.Array, tree_leaves: jax.Array) -> list[_LeafTable]:
        """Each group's leaf values in in-order positions (built once a call, outside the chunks)."""
        return [walker.leaf_values_in_order(leaf_values, tree_leaves[trees]) for trees, walker in self.parts]

    def sums(self, columns: jax.Array, leaf_tables: list[_LeafTable], add_up: AddUp) -> jax.Array:
        """The sums of the leaf values the grouped trees reach, from (features, rows) columns: each group's
        (trees, rows, width) values through ``add_up`` (see _sums), added."""
        columns = _read_columns(columns, self.lightgbm_missing)
        parts = [
            add_up(table.gather(walker.positions(columns)), trees)
            for (trees, walker), table in zip(self.parts, leaf_tables, strict=True)
        ]
        return sum(parts[1:], start=parts[0])

    def ranks(self, columns: jax.Array) -> jax.Array:
        """(trees, rows) breadth-first leaf ranks of the grouped trees, trees in their own order (the
        walked trees' rows left 0)."""
        columns = _read_columns(columns, self.lightgbm_missing)
        ranks = jnp.zeros((self.trees, columns.shape[1]), jnp.int32)
        for trees, walker in self.parts:
            ranks = ranks.at[trees].set(walker.ranks(walker.positions(columns)))
        return ranks


class _LeafTable(NamedTuple):
    values: jax.Array  # (trees * leaves, width): tree t's in-order leaf p at row t * leaves + p
    leaves: int

    def gather(self, positions: jax.Array) -> jax.Array:
        """(trees, rows) in-order positions -> (trees, rows, width) leaf values."""
        offsets = jnp.arange(positions.shape[0], dtype=jnp.int32)[:, None] * self.leaves
        return self.values[positions + offsets]


class _SplitTableWalk:
    """The split-table evaluation (see SPLIT_TABLES): every split of a tree compared at once, each
    clearing the leaves its other side holds from a 64-bit set; the one leaf left is the reached one."""

    def __init__(
        self,
        nodes: jax.Array,
        thresholds: jax.Array,
        tree_nodes: jax.Array,
        cat_bits: jax.Array | None,
        cat_limits: jax.Array | None,
        tables: tuple[jax.Array, ...],
        spec: WalkSpec,
        tree_models: TreeModels | None = None,
    ):
        self.tree_models = tree_models  # (see _leaves)
        slots, ranges, self.leaf_order = tables  # (trees, leaves - 1), (trees, leaves - 1, 3), (trees, leaves)
        g = tree_nodes.astype(jnp.int32)[:, None] + slots.astype(jnp.int32)
        word = nodes[g] if nodes.ndim == 1 else nodes[g, 0]
        self.feature = word & ((1 << spec.feature_bits) - 1)
        self.flags = word >> spec.feature_bits
        self.threshold = thresholds[g]
        self.lightgbm_missing, self.cat_bits, self.cat_limits = spec.lightgbm_missing, cat_bits, cat_limits
        # where NaN and 0 go at each split, decided once here rather than per row (half the time, measured)
        nan, zero = jnp.full_like(self.threshold, jnp.nan), jnp.zeros_like(self.threshold)
        self.nan_left = _goes_left(nan, self.flags, self.threshold, spec.lightgbm_missing, None, None)
        self.zero_left = _goes_left(zero, self.flags, self.threshold, spec.lightgbm_missing, None, None)
        lo, mid, hi = (ranges[..., i].astype(jnp.int32) for i in range(3))
        with x64():  # going left clears the right subtree's leaves [mid, hi), going right the left's [lo, mid)
            self.keep_left = ~(_low_bits(hi) & ~_low_bits(mid))
            self.keep_right = ~(_low_bits(mid) & ~_low_bits(lo))

    def leaf_values_in_order(self, leaf_values: jax.Array, tree_leaves: jax.Array) -> _LeafTable:
        """The trees' leaf values in in-order positions; ``tree_leaves``: their rows' offsets."""
        rows = tree_leaves.astype(jnp.int32)[:, None] + self.leaf_order.astype(jnp.int32)
        values = leaf_values[rows.reshape(-1)]
        return _LeafTable(values.reshape(values.shape[0], -1), self.leaf_order.shape[1])

    def positions(self, columns: jax.Array) -> jax.Array:
        """(trees, rows) in-order position of the leaf each row reaches, from the (features, rows) columns
        (as _read_columns reads them)."""
        trees, splits = self.feature.shape
        owned = self.tree_models
        if owned is not None:  # (features, models x rows): each tree reads its own model's rows
            columns = columns.reshape(columns.shape[0], owned.models, -1)
        with x64():
            left_in = jnp.full((trees, columns.shape[-1]), ~jnp.uint64(0), jnp.uint64)
            # unrolled: one fused pass over (trees, rows) per chunk, the sets kept in registers (a fori_loop
            # over the splits stores them every step: 1.4x slower, measured)
            for k in range(splits):
                value = columns[self.feature[:, k]] if owned is None else columns[self.feature[:, k], owned.of_tree]
                left = self._goes_left(value, k)
                left_in = left_in & jnp.where(left, self.keep_left[:, k, None], self.keep_right[:, k, None])
            lowest = left_in & (~left_in + jnp.uint64(1))
            return jax.lax.population_count(lowest - jnp.uint64(1)).astype(jnp.int32)

    def _goes_left(self, value: jax.Array, k: int) -> jax.Array:
        """_goes_left for split k of every tree, (trees, rows)."""
        flags, threshold = self.flags[:, k, None], self.threshold[:, k, None]
        if self.cat_bits is not None:
            return _goes_left(value, flags, threshold, self.lightgbm_missing, self.cat_bits, self.cat_limits)
        left = value <= threshold
        if self.lightgbm_missing:  # (only LightGBM's zero-as-missing sends 0 elsewhere than <= would)
            left = jnp.where(value == 0, self.zero_left[:, k, None], left)
        return jnp.where(jnp.isnan(value), self.nan_left[:, k, None], left)

    def ranks(self, positions: jax.Array) -> jax.Array:
        """In-order positions -> breadth-first leaf ranks, (trees, rows)."""
        order = self.leaf_order.astype(jnp.int32)
        return order[jnp.arange(order.shape[0])[:, None], positions]


def _open_slots(flags: jax.Array, capacity: int) -> tuple[jax.Array, jax.Array]:
    """The indices of a flat bool array's True entries, in order, in ``capacity`` slots (those past
    ``capacity`` dropped), and their count. The slots past them hold the first False entry (0 if none): a
    pair already at its leaf, which neither moves nor counts as open where they walk. Each entry's rank
    among the True ones is counted in 32-entry words (the popcount of the bits below it) plus the words'
    prefix sum."""
    n = flags.shape[0]
    lane = jnp.arange(32, dtype=jnp.uint32)
    words = jnp.sum(jnp.pad(flags, (0, -n % 32)).reshape(-1, 32).astype(jnp.uint32) << lane, axis=1, dtype=jnp.uint32)
    counts = jax.lax.population_count(words).astype(jnp.int32)
    below = jax.lax.population_count(words[:, None] & ((jnp.uint32(1) << lane) - 1)).astype(jnp.int32)
    before, total = _exclusive_prefix(counts)
    slot = jnp.where(flags, (before[:, None] + below).reshape(-1)[:n], capacity)
    # the first False entry, from the words (an argmin over every flag made the forest 3% slower)
    first = jnp.argmax(words != ~jnp.uint32(0))
    unset = ~words[first]
    lowest = jax.lax.population_count((unset & (~unset + 1)) - 1).astype(jnp.int32)
    found = 32 * first.astype(jnp.int32) + lowest
    closed = jnp.where((unset != 0) & (found < n), found, 0)  # (past n: the padding of the last word)
    index = jnp.full(capacity, closed).at[slot].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    return index, total


def _exclusive_prefix(counts: jax.Array, width: int = 128) -> tuple[jax.Array, jax.Array]:
    """(exclusive prefix sum, total) of small non-negative int32 counts (at most 32 each): the sums within
    ``width``-wide rows as a product with a triangle of ones (exact: float32 holds them), the rows'
    offsets by cumsum. XLA's CPU cumsum is slow at length (512k entries: 3.9 ms; this, 0.4 ms)."""
    b = counts.shape[0]
    rows = jnp.pad(counts, (0, -b % width)).reshape(-1, width)
    triangle = jnp.triu(jnp.ones((width, width), jnp.float32))
    within = jnp.matmul(rows.astype(jnp.float32), triangle, precision=jax.lax.Precision.HIGHEST).astype(jnp.int32)
    offsets = jnp.cumsum(within[:, -1]) - within[:, -1]
    inclusive = (within + offsets[:, None]).reshape(-1)[:b]
    return inclusive - counts, inclusive[-1]


def _low_bits(count: jax.Array) -> jax.Array:
    """uint64 with bits 0 .. count - 1 set, count in 0 .. 64 (inside an x64 scope)."""
    shifted = jnp.left_shift(jnp.uint64(1), jnp.minimum(count, 63).astype(jnp.uint64)) - jnp.uint64(1)
    return jnp.where(count >= 64, ~jnp.uint64(0), shifted)


def _unpaired(records: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(word, threshold) of the nodes ``g`` from their paired records: one gather instead of two."""
    with x64():
        record = records[g]
        word = jax.lax.bitcast_convert_type(record.astype(jnp.uint32), jnp.int32)
        threshold = jax.lax.bitcast_convert_type((record >> 32).astype(jnp.uint32), jnp.float32)
    return word, threshold


@register_op("CategoryCodes")
def category_codes(x: jax.Array, *tables: jax.Array, columns: list[int], recoded: bool = False) -> jax.Array:
    """Columns ``columns`` of x replaced by their category's code: the position of the value in the
    column's sorted categories (one tensor per column), or with ``recoded`` the code stored beside it
    (tables in pairs: sorted categories, their codes; a framework numbers categories in its own order,
    the search needs them sorted). A value that is not a category becomes NaN (scikit-learn's
    OrdinalEncoder with unknown and missing values encoded as NaN, as HistGradientBoosting uses it;
    LightGBM's pandas categories alike)."""
    per_column = zip(tables[::2], tables[1::2], strict=True) if recoded else ((t, None) for t in tables)
    out = x
    for column, (known, codes) in zip(columns, per_column, strict=True):
        value = x[:, column]
        known = known.astype(x.dtype)
        position = jnp.clip(jnp.searchsorted(known, value), 0, known.shape[0] - 1)
        code = position.astype(x.dtype) if codes is None else codes.astype(x.dtype)[position]
        out = out.at[:, column].set(jnp.where(known[position] == value, code, jnp.nan))
    return out


@register_op("IsolationScore")
def isolation_score(depths: jax.Array, denominator: jax.Array) -> jax.Array:
    """scikit-learn's IsolationForest.score_samples from the summed path lengths: -2 ** (-depths /
    denominator), and -0.5 when the denominator is 0 (a single training sample)."""
    ratio = jnp.where(denominator != 0, depths / jnp.where(denominator != 0, denominator, 1), 1.0)
    return -jnp.exp2(-ratio)


@register_op("ObliviousEnsemble")
def oblivious_ensemble(
    x: jax.Array,
    features: jax.Array,
    borders: jax.Array,
    leaf_values: jax.Array,
    *,
    n_outputs: int,
) -> jax.Array:
    """CatBoost's oblivious trees: tree t's level d tests ``x[features[t, d]] > borders[t, d]`` (float32,
    as CatBoost binarizes) and sets bit d of the leaf index; leaf_values is (trees * 2**depth, width).
    Sum over trees, (rows, n_outputs), laid out as in TreeEnsemble."""
    trees, depth = features.shape
    width = leaf_values.shape[-1] if leaf_values.ndim == 2 else -1
    if (
        borders.shape != features.shape
        or depth > 30
        or leaf_values.shape[0] != trees << depth
        or n_outputs < 1
        or width not in (1, n_outputs)
        or (width == 1 and trees % n_outputs)
    ):
        raise ValueError(
            f"ObliviousEnsemble: malformed layout: features {features.shape}, borders {borders.shape}, "
            f"leaf values {leaf_values.shape}, n_outputs {n_outputs}"
        )
    x, borders = x.astype(jnp.float32), borders.astype(jnp.float32)
    offsets = jnp.arange(trees, dtype=jnp.int32) * (1 << depth)

    def walk(columns: jax.Array) -> jax.Array:
        index = _oblivious_leaves(columns, features, borders) + offsets[:, None]
        return _sum_leaf_values(leaf_values[index], n_outputs)

    return _in_chunks(x, walk, split=True)


def oblivious_leaf_indices(
    x: jax.Array, features: jax.Array, borders: jax.Array, *_: jax.Array, **__: int
) -> jax.Array:
    """The leaf index each row reaches in each oblivious tree, (rows, trees), as CatBoost numbers it."""
    x, borders = x.astype(jnp.float32), borders.astype(jnp.float32)
    return _in_chunks(x, lambda columns: _oblivious_leaves(columns, features, borders).T, split=True)


def _oblivious_leaves(columns: jax.Array, features: jax.Array, borders: jax.Array) -> jax.Array:
    """(trees, rows) leaf indices from the (features, rows) columns; each level reads a whole column."""
    depth = features.shape[1]
    value = columns[features]  # (trees, depth, rows)
    bits = jnp.where(value > borders[:, :, None], jnp.left_shift(1, jnp.arange(depth, dtype=jnp.int32))[:, None], 0)
    return jnp.sum(bits, axis=1)
