"""Helpers for the tree tests: the leaves our graph selects, the framework's leaf numbers mapped to
ours, inputs placed on every split threshold and one ulp either side of it, and the scaled error of an
answer."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from mle_runtime.cast_cache import parameters
from mle_runtime.converters.trees import Tree, bfs_order, heap_positions, perfect_leaf_slots
from mle_runtime.graph import Graph
from mle_runtime.lowering import build_function, round_down_tensors
from mle_runtime.ops.trees import FLAG_BITS, LEAF, oblivious_leaf_indices, tree_leaf_indices
from mle_runtime.reader import read_mle
from mle_runtime.runtime import PRECISIONS, precision_scope

LEAF_FUNCTIONS = {"TreeEnsemble": tree_leaf_indices, "ObliviousEnsemble": oblivious_leaf_indices}


def our_leaves(path: Path, X: np.ndarray, precision: str) -> np.ndarray:
    """(rows, trees): the leaf each row reaches in the file's ensemble, evaluated as the runtime would
    (the graph's steps before the ensemble included)."""
    mf = read_mle(path)
    graph = Graph.from_json(mf.graph, set(mf.tensors))
    position, node = next((i, n) for i, n in enumerate(graph.nodes) if n.op in LEAF_FUNCTIONS)
    prefix = Graph(graph.inputs, (node.inputs[0],), graph.nodes[:position])
    dtype = PRECISIONS[precision]
    narrow = round_down_tensors(graph)
    with precision_scope(precision):
        names = list(mf.tensors)
        params = dict(zip(names, map(jnp.asarray, parameters(mf, names, dtype, narrow, list)[0]), strict=True))
        (source,) = build_function(prefix)(params, [jnp.asarray(X.astype(dtype))])
        leaves = LEAF_FUNCTIONS[node.op](source, *(params[n] for n in node.inputs[1:]), **node.attrs)
        return np.asarray(leaves)


def scaled_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """The largest difference scaled by its column's largest finite |value|, (rows, ...) arrays of the same
    size; infinite where NaN sits elsewhere than in ``ref`` (a linear tree answers an infinite input with
    an infinity or NaN: they must sit where the framework's do)."""
    ours, ref = np.asarray(ours, np.float64).reshape(len(ref), -1), np.asarray(ref, np.float64).reshape(len(ref), -1)
    if not np.array_equal(np.isnan(ours), np.isnan(ref)):
        return float("inf")
    same = (ours == ref) | np.isnan(ref)
    scale = np.maximum(np.max(np.abs(np.where(np.isfinite(ref), ref, 0)), axis=0), np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore"):  # (inf - inf where both are inf, left out by ``same``)
        return float(np.max(np.where(same, 0.0, np.abs(ours - ref)) / scale, initial=0.0))


def ranks_of(trees: list[Tree], framework_leaves: np.ndarray, path: Path) -> np.ndarray:
    """The framework's leaf numbers (rows, trees) as the file's leaf numbers: per-tree breadth-first
    leaf ranks, or heap slots where the file uses the perfect layout."""
    attrs = next(n for n in read_mle(path).graph["nodes"] if n["op"] == "TreeEnsemble").get("attrs", {})
    out = np.empty(framework_leaves.shape, dtype=np.int64)
    for t, tree in enumerate(trees):
        if attrs.get("layout") == "perfect":
            position = heap_positions(tree.left, tree.right)
            leaves = np.flatnonzero((tree.left < 0) & (position >= 0))  # (not nodes pruning left unreachable)
            numbers = perfect_leaf_slots(position[leaves], attrs["depth"])
        else:
            order, _ = bfs_order(tree.left, tree.right)
            leaves = order[tree.left[order] < 0]
            numbers = np.arange(leaves.size)
        ids = leaves if tree.source_leaf is None else tree.source_leaf[leaves]
        ours = dict(zip(ids.tolist(), numbers.tolist(), strict=True))
        out[:, t] = [ours[int(v)] for v in framework_leaves[:, t]]
    return out


def split_points(path: Path) -> list[tuple[int, float]]:
    """(feature, threshold) of every numeric split stored in the file."""
    mf = read_mle(path)
    node = next(n for n in mf.graph["nodes"] if n["op"] in LEAF_FUNCTIONS)
    tensors = [mf.tensors[name] for name in node["inputs"][1:]]
    if node["op"] == "ObliviousEnsemble":
        features, borders = tensors[0].reshape(-1), tensors[1].reshape(-1).astype(np.float64)
        keep = np.isfinite(borders)
        return list(zip(features[keep].tolist(), borders[keep].tolist(), strict=True))
    nodes, thresholds = tensors[0], tensors[1].astype(np.float64)
    bits = node["attrs"]["feature_bits"]
    word = nodes if nodes.ndim == 1 else nodes[:, 0]
    flags = (word >> bits) & ((1 << FLAG_BITS) - 1)
    numeric = (flags & LEAF) == 0
    if len(node["inputs"]) > 7:  # categorical splits hold a bitset row, not a threshold
        numeric &= (flags & 4) == 0
    feature = word & ((1 << bits) - 1)
    return list(zip(feature[numeric].tolist(), thresholds[numeric].tolist(), strict=True))


def edge_inputs(
    path: Path, X: np.ndarray, n: int, seed: int, float32: bool, nan: bool = True, inf: bool = True
) -> np.ndarray:
    """Rows of X with features moved onto split thresholds, one ulp (float64 and float32) either side,
    and (where the framework accepts them) NaN and infinities. ``float32``: every value representable
    in float32."""
    rng = np.random.default_rng(seed)
    points = split_points(path)
    rows = X[rng.integers(0, len(X), n)].astype(np.float64)
    for row in rows:
        for feature, t in (points[i] for i in rng.integers(0, len(points), 4)):
            t32 = np.float32(t) if abs(t) < np.finfo(np.float32).max else np.float32(np.copysign(np.inf, t))
            if not np.isfinite(t32):
                continue
            candidates = [
                t,
                np.nextafter(t, -np.inf),
                np.nextafter(t, np.inf),
                float(t32),
                float(np.nextafter(t32, np.float32(-np.inf))),
                float(np.nextafter(t32, np.float32(np.inf))),
            ]
            row[feature] = candidates[rng.integers(0, len(candidates))]
    # XLA on CPU flushes subnormals to zero (a documented limit): keep inputs normal, as near as can be
    tiny = float(np.finfo(np.float32).tiny)
    subnormal = (rows != 0) & (np.abs(rows) < tiny)
    rows[subnormal] = np.copysign(tiny, rows[subnormal])
    special = rng.random(rows.shape)
    if nan:
        rows[special < 0.02] = np.nan
    if inf:
        rows[(special >= 0.02) & (special < 0.03)] = np.inf
        rows[(special >= 0.03) & (special < 0.04)] = -np.inf
    return rows.astype(np.float32).astype(np.float64) if float32 else rows
