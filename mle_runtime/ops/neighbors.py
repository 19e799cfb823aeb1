"""Nearest neighbours against a training set stored in the file: the k nearest found block by block
(memory stays bounded whatever the training set's size), then a vote or a mean over them, as
scikit-learn's KNeighborsClassifier / Regressor compute them. Among equal distances the training row
that comes first wins. Kernel density estimates sum over the same blocks."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op
from mle_runtime.ops.chunks import in_row_chunks
from mle_runtime.ops.kernels import (
    HIGHEST,
    cosine_similarity,
    over_features,
    squared_differences,
    squared_euclidean,
    unit,
)
from mle_runtime.ops.math import divide, mean

# Training rows compared with the queries at a time: a (rows, BLOCK) distance block per step, or, for
# fewer queries than QUERY_CHUNK, as many more as keep the block within QUERY_CHUNK x BLOCK distances:
# each step is a dozen small programs, which a few queries pay for (measured, 20,000 training rows: one
# query 1.45 ms in 2,048-row blocks, 0.52 ms in one; 64 queries 3.9 against 2.4 ms; 1,000 queries
# 49 ms against 77 ms in one block).
BLOCK = 2048
# Queries searched at a time: their distance block stays in cache (measured: 2.6x faster than 4,096
# queries at once, with GROUP, on 20,000 training rows of 50 features).
QUERY_CHUNK = 1024
# The k nearest of a block are found among the k groups of GROUP consecutive training rows whose nearest
# rows are nearest: two small top_k calls instead of one over the whole block (XLA's top_k on CPU costs
# about as much as the distances themselves over 2,048 columns).
GROUP = 16
METRICS = ("euclidean", "manhattan", "chebyshev", "minkowski", "cosine")


def _reduced(x: jax.Array, train: jax.Array, metric: str, p: float) -> jax.Array:
    """(rows, train rows) distances up to a monotone map: squared for euclidean, p-th power for minkowski."""
    if metric == "euclidean":
        return squared_euclidean(x, train)
    if metric == "cosine":
        return 1 - cosine_similarity(x, train)
    if metric == "manhattan":
        return over_features(x, train, jnp.abs)
    if metric == "chebyshev":
        return over_features(x, train, jnp.abs, jnp.maximum)
    if metric == "minkowski":
        return over_features(x, train, lambda d: jnp.abs(d) ** p)
    raise ValueError(f"unknown metric {metric!r}; known: {METRICS}")


def _distance(reduced: jax.Array, metric: str, p: float) -> jax.Array:
    if metric == "euclidean":
        return jnp.sqrt(reduced)
    if metric == "minkowski":
        return reduced ** (1.0 / p)
    return reduced


def _exact_reduced(x: jax.Array, train: jax.Array, metric: str, p: float) -> jax.Array:
    """As _reduced, with euclidean distances summed from the differences: a training row equal to the
    query is at distance exactly 0 (the weights single those out) and float32 carries no cancellation
    error — at the cost of a pass per feature (over_features) instead of one matrix product."""
    if metric != "euclidean":
        return _reduced(x, train, metric, p)
    return squared_differences(x, train)


Carry = Any
BlockStep = Callable[[Carry, jax.Array, jax.Array, list[jax.Array]], Carry]


def _over_blocks(
    n_train: int, arrays: list[jax.Array], step: BlockStep, carry: Carry, queries: int, multiple: int = 1
) -> Carry:
    """``step(carry, index, valid, blocks)`` over the training rows in blocks (a multiple of ``multiple``
    rows; see BLOCK for how many, for ``queries`` queries), in order: ``index`` holds the block's row
    numbers, ``valid`` which of them to count, and ``blocks`` the matching rows of each of ``arrays``.
    The rows past the last whole block are searched as the last rows of the training set, as few
    multiples of ``multiple`` as hold them, those already searched not valid: padding the training set
    instead would copy all of it on every call."""
    wanted = max(BLOCK, QUERY_CHUNK * BLOCK // max(queries, 1)) // multiple * multiple
    size = min(wanted, n_train // multiple * multiple)
    if size == 0:  # fewer training rows than ``multiple``: one block, padded
        padded = [jnp.concatenate([a, jnp.zeros((multiple - n_train, *a.shape[1:]), a.dtype)]) for a in arrays]
        index = jnp.arange(multiple, dtype=jnp.int32)
        return step(carry, index, index < n_train, padded)

    def block(state: Carry, start: Any, searched: Any, rows: int) -> Carry:
        index = start + jnp.arange(rows, dtype=jnp.int32)
        return step(state, index, index >= searched, [jax.lax.dynamic_slice_in_dim(a, start, rows) for a in arrays])

    whole = n_train // size
    if whole == 1:
        carry = block(carry, 0, 0, size)
    else:
        starts = jnp.arange(whole, dtype=jnp.int32) * size
        carry = jax.lax.scan(lambda state, start: (block(state, start, start, size), None), carry, starts)[0]
    rest = n_train - whole * size
    if rest:
        tail = -(-rest // multiple) * multiple  # (<= size <= n_train)
        carry = block(carry, n_train - tail, whole * size, tail)
    return carry


def _in_query_chunks(x: jax.Array, search: Callable[[jax.Array], tuple[jax.Array, ...]]) -> tuple[jax.Array, ...]:
    """``search`` over the rows of x QUERY_CHUNK at a time (the last chunk padded), results joined."""
    return tuple(in_row_chunks(x, search, QUERY_CHUNK))


def _block_candidates(keys: jax.Array, index: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Of a block's keys (rows, size), a subset sure to hold the k smallest by (key, training row): the
    rows of the k groups whose smallest (key, row) come first. Every one of the k smallest lies in such a
    group, since its group's smallest is no larger than it, hence than the k-th smallest group's. The
    chosen groups are kept in training-row order, so that top_k's earlier-wins rule still picks the
    lower row among equal keys."""
    rows, size = keys.shape
    groups = size // GROUP
    if groups <= k:
        return keys, jnp.broadcast_to(index, keys.shape)
    grouped = keys.reshape(rows, groups, GROUP)
    _, chosen = jax.lax.top_k(-jnp.min(grouped, axis=2), k)
    chosen = jnp.sort(chosen, axis=1)
    candidates = jnp.take_along_axis(grouped, chosen[:, :, None], axis=1).reshape(rows, k * GROUP)
    rows_of = index[0] + chosen[:, :, None] * GROUP + jnp.arange(GROUP, dtype=jnp.int32)
    return candidates, rows_of.reshape(rows, k * GROUP)


def nearest(x: jax.Array, train: jax.Array, k: int, metric: str, p: float) -> tuple[jax.Array, jax.Array]:
    """(distances, indices), each (rows, k), nearest first."""
    n_train = train.shape[0]
    if not 1 <= k <= n_train:
        raise ValueError(f"KNeighbors: k={k} outside 1..{n_train} (the training rows)")

    def search(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        def step(
            carry: tuple[jax.Array, jax.Array], index: jax.Array, valid: jax.Array, blocks: list[jax.Array]
        ) -> tuple[jax.Array, jax.Array]:
            best, best_index = carry
            keys = jnp.where(valid[None, :], _reduced(x, blocks[0], metric, p), jnp.inf)
            keys, rows_of = _block_candidates(keys, index, k)
            # the best so far come first: top_k keeps the earlier of equal keys, i.e. the lower training row
            neg, at = jax.lax.top_k(-jnp.concatenate([best, keys], axis=1), k)
            return -neg, jnp.take_along_axis(jnp.concatenate([best_index, rows_of], axis=1), at, axis=1)

        start = (jnp.full((x.shape[0], k), jnp.inf, x.dtype), jnp.zeros((x.shape[0], k), jnp.int32))
        return _over_blocks(n_train, [train], step, start, x.shape[0], multiple=GROUP)

    reduced, index = _in_query_chunks(x, search)
    if metric == "euclidean":
        # The search ranks by |x|^2 - 2 x.t + |t|^2 (one matrix product); the k found are measured again
        # directly (_exact_reduced, row by row).
        diff = x[:, None, :] - train[index]
        reduced = jnp.sum(diff * diff, axis=-1)
    return _distance(reduced, metric, p), index


@register_op("KNeighbors")
def k_neighbors(x: jax.Array, train: jax.Array, *, k: int, metric: str, p: float = 2.0) -> jax.Array:
    """kneighbors' row numbers: the k nearest training rows, (rows, k) int32, nearest first (among equal
    distances the earlier training row)."""
    return nearest(x, train, k, metric, p)[1]


@register_op("NeighborDistances")
def neighbor_distances(x: jax.Array, train: jax.Array, index: jax.Array, *, metric: str, p: float = 2.0) -> jax.Array:
    """(rows, k) distances from each row to the training rows ``index`` names (a second op rather than a
    second output of KNeighbors: measuring k rows again costs little beside the search)."""
    near = train[index.astype(jnp.int32)]  # (rows, k, features)
    if metric == "cosine":
        return 1 - jnp.sum(unit(x)[:, None, :] * unit(near), axis=-1)
    diff = jnp.abs(x[:, None, :] - near)
    if metric == "chebyshev":
        return jnp.max(diff, axis=-1)
    if metric == "manhattan":
        return jnp.sum(diff, axis=-1)
    if metric == "euclidean":
        return jnp.sqrt(jnp.sum(diff * diff, axis=-1))
    if metric == "minkowski":
        return jnp.sum(diff**p, axis=-1) ** (1.0 / p)
    raise ValueError(f"unknown metric {metric!r}; known: {METRICS}")


@register_op("GeodesicDistances")
def geodesic_distances(distances: jax.Array, index: jax.Array, paths: jax.Array) -> jax.Array:
    """(rows, train rows) shortest paths from each row through its nearest training rows (``index``, at
    ``distances``) on to every training row (``paths``, the training graph's shortest paths): Isomap's
    ``min_j(paths[index_j] + distance_j)``, one neighbour at a time."""
    index = index.astype(jnp.int32)
    shortest = paths[index[:, 0]] + distances[:, :1]
    for j in range(1, index.shape[1]):
        shortest = jnp.minimum(shortest, paths[index[:, j]] + distances[:, j : j + 1])
    return shortest


@register_op("LocallyLinear")
def locally_linear(x: jax.Array, train: jax.Array, index: jax.Array, embedding: jax.Array, *, reg: float) -> jax.Array:
    """LocallyLinearEmbedding.transform, (rows, components): each row as the weights that best rebuild it
    from its nearest training rows (``index``), applied to their embedding. The weights solve
    (G + R I) w = 1 with G the neighbours' Gram matrix about the row and R = reg x trace(G) (reg when the
    trace is 0), by Cholesky as scipy's ``assume_a="pos"``; then scaled to sum to 1."""
    index = index.astype(jnp.int32)
    centred = train[index] - x[:, None, :]  # (rows, k, features)
    gram = jnp.einsum("rif,rjf->rij", centred, centred, precision=HIGHEST)
    trace = jnp.trace(gram, axis1=1, axis2=2)
    ridge = jnp.where(trace > 0, reg * trace, reg)
    k = index.shape[1]
    gram = gram + ridge[:, None, None] * jnp.eye(k, dtype=gram.dtype)
    factor = jnp.linalg.cholesky(gram)
    ones = jnp.ones((x.shape[0], k, 1), gram.dtype)
    w = jax.scipy.linalg.solve_triangular(factor, ones, lower=True)
    w = jax.scipy.linalg.solve_triangular(factor, w, lower=True, trans="T")[:, :, 0]
    w = divide(w, jnp.sum(w, axis=1, keepdims=True))
    return jnp.einsum("rk,rkc->rc", w, embedding[index], precision=HIGHEST)


def neighbor_weights(distances: jax.Array, weights: str) -> jax.Array:
    """scikit-learn's _get_weights: 1 for "uniform"; 1 / d for "distance", except that a row with a
    neighbour at distance 0 weighs those neighbours 1 and the others 0."""
    if weights == "uniform":
        return jnp.ones_like(distances)
    if weights != "distance":
        raise ValueError(f"unknown weights {weights!r}; known: uniform, distance")
    exact = distances == 0
    return jnp.where(jnp.any(exact, axis=1, keepdims=True), exact.astype(distances.dtype), 1 / distances)


@register_op("KNeighborsVote")
def k_neighbors_vote(
    x: jax.Array,
    train: jax.Array,
    labels: jax.Array,
    *,
    k: int,
    n_classes: int,
    metric: str,
    p: float = 2.0,
    weights: str = "uniform",
) -> jax.Array:
    """(rows, n_classes) class probabilities: each class's share of the k nearest training rows' weights
    (``labels`` holds each training row's class index). A classifier of several outputs: ``labels`` is
    (train rows, outputs), each output's class index offset by the classes of the outputs before it, and
    each output's block of columns holds its probabilities."""
    distances, index = nearest(x, train, k, metric, p)
    w = neighbor_weights(distances, weights)
    onehot = jax.nn.one_hot(labels.astype(jnp.int32)[index], n_classes, dtype=w.dtype)  # (rows, k, [outputs,] classes)
    if labels.ndim == 2:  # (the outputs' classes do not overlap: one sum counts every output's votes)
        votes = jnp.sum(w[:, :, None] * jnp.sum(onehot, axis=2), axis=1)
        return divide(votes, jnp.sum(w, axis=1, keepdims=True))
    votes = jnp.sum(w[:, :, None] * onehot, axis=1)
    return divide(votes, jnp.sum(votes, axis=1, keepdims=True))


@register_op("KNeighborsMean")
def k_neighbors_mean(
    x: jax.Array,
    train: jax.Array,
    targets: jax.Array,
    *,
    k: int,
    metric: str,
    p: float = 2.0,
    weights: str = "uniform",
) -> jax.Array:
    """The k nearest training rows' targets averaged, weighted for "distance"; (rows,) or (rows, outputs)
    as ``targets`` is (train rows,) or (train rows, outputs)."""
    distances, index = nearest(x, train, k, metric, p)
    y = targets[index]  # (rows, k) or (rows, k, outputs)
    if weights == "uniform":
        return mean(y, axis=1)
    w = neighbor_weights(distances, weights)
    w = w if y.ndim == 2 else w[:, :, None]
    return jnp.sum(y * w, axis=1) / jnp.sum(w, axis=1)


@register_op("LocalOutlierScores")
def local_outlier_scores(
    x: jax.Array, train: jax.Array, k_distance: jax.Array, lrd: jax.Array, *, k: int, metric: str, p: float = 2.0
) -> jax.Array:
    """LocalOutlierFactor.score_samples of new rows (novelty=True), (rows,): minus the mean, over the k
    nearest training rows, of their local reachability density over the row's own, 1 / (the mean reach
    distance + 1e-10), a reach distance being the larger of the distance and the neighbour's k-distance."""
    distances, index = nearest(x, train, k, metric, p)
    own = 1.0 / (mean(jnp.maximum(distances, k_distance[index]), axis=1) + 1e-10)
    return -mean(divide(lrd[index], own[:, None]), axis=1)


def _within(
    x: jax.Array, train: jax.Array, radius: float, metric: str, p: float, weights: str, values: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Over the training rows within ``radius`` (distance <= radius, as scikit-learn's radius_neighbors),
    block by block: the sums of ``values`` (train rows, width), weighted, and how many rows are within.
    With "distance" weights a row with neighbours at distance 0 sums only those (scikit-learn's rule)."""
    n_train, width = train.shape[0], values.shape[1]
    reach = radius**2 if metric == "euclidean" else radius**p if metric == "minkowski" else radius
    Sums = tuple[jax.Array, jax.Array, jax.Array]

    def step(carry: Sums, index: jax.Array, valid: jax.Array, blocks: list[jax.Array]) -> Sums:
        weighted, exact, count = carry
        block, v = blocks
        reduced = _exact_reduced(x, block, metric, p)
        d = _distance(reduced, metric, p)
        # (compared before the root: in float32 a squared distance just past radius**2 can round to the
        # radius once its square root is taken, 5.0000002 to 5.0)
        inside = (reduced <= reach) & valid[None, :]
        w = jnp.where(inside, 1.0 if weights == "uniform" else 1 / jnp.where(d == 0, 1, d), 0.0).astype(x.dtype)
        zero = (inside & (d == 0)).astype(x.dtype)
        weighted = weighted + jnp.matmul(w, v, precision=HIGHEST)
        exact = exact + jnp.matmul(zero, v, precision=HIGHEST)
        return weighted, exact, count + jnp.sum(inside, axis=1, dtype=jnp.int32)  # (int64 under x64: the carry's type)

    sums = jnp.zeros((x.shape[0], width), x.dtype)
    weighted, exact, count = _over_blocks(
        n_train, [train, values], step, (sums, sums, jnp.zeros(x.shape[0], jnp.int32)), QUERY_CHUNK
    )
    if weights == "distance":
        weighted = jnp.where(jnp.any(exact != 0, axis=1, keepdims=True), exact, weighted)
    return weighted, count


@register_op("RadiusNeighborsVote")
def radius_neighbors_vote(
    x: jax.Array,
    train: jax.Array,
    labels: jax.Array,
    *,
    radius: float,
    n_classes: int,
    metric: str,
    p: float = 2.0,
    weights: str = "uniform",
    outlier_class: int | list[int] = -1,
    sizes: list[int] | None = None,
) -> jax.Array:
    """(rows, n_classes + 1): class probabilities from the training rows within ``radius``, then a column
    that is 1 for a row with none (an outlier: its probabilities are one-hot at ``outlier_class``, or all
    0 when that is -1). A classifier of several outputs: ``labels`` is (train rows, outputs), each
    output's class index offset by the classes of the outputs before it; ``sizes`` holds each output's
    class count, ``outlier_class`` each output's (offset) outlier class, and each output's block of
    columns is normalized on its own."""
    onehot = jax.nn.one_hot(labels.astype(jnp.int32), n_classes, dtype=x.dtype)
    if labels.ndim == 2:  # (the outputs' classes do not overlap: one sum counts every output's votes)
        onehot = jnp.sum(onehot, axis=1)
    votes, count = _within(x, train, radius, metric, p, weights, onehot)
    outlier = count == 0
    outlier_classes = [outlier_class] if isinstance(outlier_class, int) else list(outlier_class)
    if min(outlier_classes) >= 0:
        fill = jnp.sum(jax.nn.one_hot(jnp.asarray(outlier_classes), n_classes, dtype=x.dtype), axis=0)
        votes = jnp.where(outlier[:, None], fill, votes)
    blocks, start = [], 0
    for size in sizes or [n_classes]:
        block = votes[:, start : start + size]
        total = jnp.sum(block, axis=1, keepdims=True)
        blocks.append(divide(block, jnp.where(total == 0, 1, total)))
        start += size
    return jnp.concatenate([*blocks, outlier[:, None].astype(x.dtype)], axis=1)


@register_op("RadiusNeighborsMean")
def radius_neighbors_mean(
    x: jax.Array,
    train: jax.Array,
    targets: jax.Array,
    *,
    radius: float,
    metric: str,
    p: float = 2.0,
    weights: str = "uniform",
) -> jax.Array:
    """The targets of the training rows within ``radius`` averaged (weighted for "distance"); NaN for a
    row with none, as scikit-learn. (rows,) or (rows, outputs) as ``targets``."""
    y = targets if targets.ndim == 2 else targets[:, None]
    ones = jnp.ones((y.shape[0], 1), x.dtype)
    sums, count = _within(x, train, radius, metric, p, weights, jnp.concatenate([y.astype(x.dtype), ones], axis=1))
    mean = divide(sums[:, :-1], sums[:, -1:])
    mean = jnp.where((count == 0)[:, None], jnp.nan, mean)
    return mean if targets.ndim == 2 else mean[:, 0]


KDE_KERNELS = ("gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine")


def _log_kernel(d: jax.Array, h: float, kernel: str) -> jax.Array:
    """scikit-learn's log kernels (unnormalized, K(0) = 1) as its binary trees compute them; the bounded
    ones are -inf from distance h on."""
    if kernel == "gaussian":
        return -0.5 * (d * d) / (h * h)
    if kernel == "exponential":
        return -d / h
    inside = d < h
    if kernel == "tophat":
        value = jnp.zeros_like(d)
    elif kernel == "epanechnikov":
        value = jnp.log(jnp.where(inside, 1.0 - (d * d) / (h * h), 1.0))
    elif kernel == "linear":
        value = jnp.log(jnp.where(inside, 1 - d / h, 1.0))
    elif kernel == "cosine":
        value = jnp.log(jnp.where(inside, jnp.cos(0.5 * math.pi * d / h), 1.0))
    else:
        raise ValueError(f"KernelDensity: unknown kernel {kernel!r}; known: {KDE_KERNELS}")
    return jnp.where(inside, value, -jnp.inf)


@register_op("KernelDensity")
def kernel_density(
    x: jax.Array,
    train: jax.Array,
    log_weights: jax.Array,
    *,
    kernel: str,
    bandwidth: float,
    metric: str,
    log_norm: float,
    p: float = 2.0,
) -> jax.Array:
    """(rows,) log(sum_i w_i K(d(x, train_i))) + log_norm, KernelDensity.score_samples with ``log_norm`` the
    kernel's normalization less the log of the total weight; -inf where no training row is within a
    bounded kernel's reach. Summed block by block as a running maximum and the sum of exponentials under it."""
    n_train = train.shape[0]

    def search(x: jax.Array) -> tuple[jax.Array]:
        def step(
            carry: tuple[jax.Array, jax.Array], index: jax.Array, valid: jax.Array, blocks: list[jax.Array]
        ) -> tuple[jax.Array, jax.Array]:
            top, total = carry
            block, weights = blocks
            d = _distance(_exact_reduced(x, block, metric, p), metric, p)
            terms = jnp.where(valid[None, :], _log_kernel(d, bandwidth, kernel) + weights[None, :], -jnp.inf)
            higher = jnp.maximum(top, jnp.max(terms, axis=1))
            shift = jnp.where(jnp.isfinite(higher), higher, 0)
            total = total * jnp.exp(top - shift) + jnp.sum(jnp.exp(terms - shift[:, None]), axis=1)
            return higher, total

        start = (jnp.full(x.shape[0], -jnp.inf, x.dtype), jnp.zeros(x.shape[0], x.dtype))
        top, total = _over_blocks(n_train, [train, log_weights], step, start, x.shape[0])
        return (jnp.where(total > 0, top + jnp.log(total), -jnp.inf) + log_norm,)

    return _in_query_chunks(x, search)[0]
