"""Clustering and mixture models: KMeans (labels and distances to the centres), Gaussian mixtures
(labels, component probabilities and log-likelihoods), MeanShift, AffinityPropagation and Birch (the
nearest centre)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import cluster, mixture

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.converters.trees import Tree, tree_ensemble
from mle_runtime.errors import UnsupportedModelError


def _nearest(b: GraphBuilder, distances: str) -> str:
    """The column of each row's smallest distance (the first of equals)."""
    return b.op("ArgMax", b.op("Sub", b.const("zero", np.array(0.0)), distances))


@converts(cluster.KMeans, cluster.MiniBatchKMeans)
def kmeans(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """``predict``: the nearest centre; ``transform``: the distance to each centre."""
    centres = b.const("cluster_centers", est.cluster_centers_)
    label = _nearest(b, b.op("EuclideanDistances", x, centres, squared=True))
    distances = b.op("EuclideanDistances", x, centres)
    classes = np.arange(est.n_clusters, dtype=np.int32)  # scikit-learn's labels are int32
    outputs = {"label": label, "transformed": distances}
    return Converted("clusterer", outputs, ["label", "transformed"], classes=classes, n_outputs=est.n_clusters)


@converts(mixture.GaussianMixture, mixture.BayesianGaussianMixture)
def gaussian_mixture(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each component's weighted log density is offset[k] - 0.5 * |(x - mean[k]) @ P[k]|^2 with P[k] its
    precision's Cholesky factor (every covariance type written as a full matrix). offset[k] is the
    model's own weighted log density at mean[k], where the quadratic term vanishes: it carries the
    normalizer, the log weight and, for the Bayesian mixture, its expectation terms."""
    k, f = est.means_.shape
    chol = np.asarray(est.precisions_cholesky_, dtype=np.float64)
    transforms = {
        "full": lambda: chol,
        "tied": lambda: np.broadcast_to(chol, (k, f, f)),
        "diag": lambda: np.stack([np.diag(c) for c in chol]),
        "spherical": lambda: chol[:, None, None] * np.eye(f),
    }[est.covariance_type]()
    offset = np.diag(est._estimate_weighted_log_prob(np.asarray(est.means_, dtype=np.float64)))
    scores = b.op(
        "QuadraticScores",
        x,
        b.const("means", est.means_),
        b.const("precisions_chol", transforms),
        b.const("offset", offset),
    )
    outputs = {
        "label": b.op("ArgMax", scores),
        "probabilities": b.op("Softmax", scores),
        "scores": b.op("LogSumExp", scores),
    }
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.arange(k, dtype=np.int64))


@converts(cluster.MeanShift, cluster.AffinityPropagation)
def nearest_centre(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """``predict``: the nearest cluster centre (euclidean; the first of equals), as
    pairwise_distances_argmin gives it. An AffinityPropagation that did not converge has no centres."""
    centres = np.asarray(getattr(est, "cluster_centers_", np.empty((0, n_features))), dtype=np.float64)
    if getattr(est, "affinity", "euclidean") == "precomputed" or len(centres) == 0:
        raise UnsupportedModelError(f"{type(est).__name__} without cluster centres (precomputed, or not converged)")
    squared = b.op("EuclideanDistances", x, b.const("cluster_centers", centres), squared=True)
    return Converted("clusterer", {"label": _nearest(b, squared)}, ["label"], classes=np.arange(len(centres)))


@converts(cluster.Birch)
def birch(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """``predict``: the label of the nearest subcluster centre; ``transform``: the distance to each."""
    centres = b.const("subcluster_centers", np.asarray(est.subcluster_centers_, dtype=np.float64))
    distances = b.op("EuclideanDistances", x, centres)
    classes = np.unique(est.subcluster_labels_)
    positions = np.searchsorted(classes, est.subcluster_labels_).astype(np.int32)
    label = b.op("TakeColumns", b.const("subcluster_labels", positions), _nearest(b, distances))
    outputs = {"label": label, "transformed": distances}
    width = len(positions)
    return Converted("clusterer", outputs, ["label", "transformed"], classes=classes, n_outputs=width)


@converts(cluster.BisectingKMeans)
def bisecting_kmeans(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """``predict`` walks the bisecting tree as scikit-learn does: at each split, to the half whose centre
    is nearer (the first on a tie), until a cluster that was never split; ``transform``: the distance to
    each centre. The walk is one tree over the splits' distance differences, split at 0."""
    offset = np.asarray(getattr(est, "_X_mean", 0.0), dtype=np.float64)  # (the halves' centres are centred)
    left, right, feature, value, centres = [], [], [], [], []
    pending = [est._bisecting_tree]
    while pending:  # node ids in the order they are met; a node's children get the next two ids
        node = pending.pop(0)
        if node.left is None:
            left.append(-1), right.append(-1), feature.append(-2), value.append(float(node.label))
            continue
        first = len(left) + len(pending) + 1
        left.append(first), right.append(first + 1), feature.append(len(centres) // 2), value.append(0.0)
        centres += [node.left.center + offset, node.right.center + offset]
        pending += [node.left, node.right]
    splits = len(centres) // 2
    if splits == 0:  # one cluster: every row's label is 0
        label = b.op("Cast", b.op("ConstantRows", x, b.const("label", np.zeros(1))), dtype="int32")
    else:
        squared = b.op("EuclideanDistances", x, b.const("split_centres", np.stack(centres)), squared=True)
        signs = np.zeros((2 * splits, splits))
        split = np.arange(splits)
        signs[2 * split, split], signs[2 * split + 1, split] = 1.0, -1.0
        nearer = b.op("Gemm", squared, b.const("left_minus_right", signs))  # <= 0: the left half
        n = len(left)
        walk = Tree(
            left=np.array(left),
            right=np.array(right),
            feature=np.array(feature),
            threshold=np.zeros(n),
            default_left=np.ones(n, dtype=bool),
            value=np.array(value)[:, None],
        )
        label = b.op(
            "Cast",
            b.op("SqueezeLast", tree_ensemble(b, nearer, [walk], splits, 1, compare_float32=False)),
            dtype="int32",
        )
    distances = b.op("EuclideanDistances", x, b.const("cluster_centers", est.cluster_centers_))
    classes = np.arange(est.n_clusters, dtype=np.int32)
    outputs = {"label": label, "transformed": distances}
    return Converted("clusterer", outputs, ["label", "transformed"], classes=classes, n_outputs=est.n_clusters)
