"""Nearest-neighbour models: the training set goes into the file as tensors, and the KNeighbors ops
search it block by block at prediction time."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import neighbors

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError

# scikit-learn's effective metric -> the ops' (others, e.g. haversine or a callable, are refused)
METRICS = {
    "euclidean": "euclidean",
    "l2": "euclidean",
    "manhattan": "manhattan",
    "cityblock": "manhattan",
    "l1": "manhattan",
    "chebyshev": "chebyshev",
    "infinity": "chebyshev",
    "minkowski": "minkowski",
    "cosine": "cosine",
}


def _search_attrs(est: Any) -> dict[str, Any]:
    if not isinstance(est.weights, str):
        raise UnsupportedModelError(f"{type(est).__name__}: callable weights are arbitrary code and not supported")
    attrs: dict[str, Any] = {**metric_attrs(est), "weights": est.weights}
    if est.n_neighbors is not None:  # k-neighbour models; the radius models search by their radius
        attrs["k"] = int(est.n_neighbors)
    else:
        attrs["radius"] = float(est.radius)
    return attrs


def metric_attrs(est: Any) -> dict[str, Any]:
    """The neighbour search's metric (and Minkowski's p) for a fitted neighbours estimator."""
    name = est.effective_metric_
    if not isinstance(name, str) or name not in METRICS:
        raise UnsupportedModelError(
            f"{type(est).__name__}: metric {name!r} is not supported; supported: {sorted(METRICS)}"
        )
    params = dict(est.effective_metric_params_ or {})
    p = float(params.pop("p", 2.0))
    if params.get("w") is None:  # scikit-learn lists minkowski's weight vector w even when unset
        params.pop("w", None)
    if params:
        raise UnsupportedModelError(f"{type(est).__name__}: metric parameters {sorted(params)} are not supported")
    metric = METRICS[name]
    if metric == "minkowski" and p == 2.0:
        metric = "euclidean"
    return {"metric": metric, "p": p} if metric == "minkowski" else {"metric": metric}


def _with_kneighbors(
    converted: Converted, est: Any, b: GraphBuilder, x: str, fit_x: str, k: int | None = None
) -> Converted:
    """``converted`` with kneighbors' outputs: the fitted n_neighbors (or ``k``) nearest training rows'
    distances and row numbers (computed only by calls that ask for them: the runtime's ON_DEMAND_OUTPUTS)."""
    metric = metric_attrs(est)
    indices = b.op("KNeighbors", x, fit_x, k=int(est.n_neighbors if k is None else k), **metric)
    distances = b.op("NeighborDistances", x, fit_x, indices, **metric)
    converted.outputs.update(neighbor_distances=distances, neighbor_indices=indices)
    return converted


@converts(neighbors.NearestNeighbors)
def nearest_neighbors(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """kneighbors with the fitted n_neighbors (radius_neighbors' ragged answer is not converted)."""
    converted = Converted("neighbors", {}, ["neighbor_distances", "neighbor_indices"])
    return _with_kneighbors(converted, est, b, x, b.const("fit_X", est._fit_X))


@converts(neighbors.KNeighborsTransformer)
def k_neighbors_transformer(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """transform: the neighbour graph as scikit-learn builds it (kneighbors_graph with n_neighbors, plus one
    in "distance" mode), a scipy sparse matrix the runtime assembles from the kneighbors outputs; only as
    a model's last step (what reads it is an estimator with a precomputed metric, not converted)."""
    graph = {"mode": str(est.mode), "n_samples_fit": int(est.n_samples_fit_), "n_neighbors": int(est.n_neighbors)}
    converted = Converted("neighbors", {}, ["neighbor_distances", "neighbor_indices"], neighbors_graph=graph)
    k = int(est.n_neighbors) + (est.mode == "distance")
    return _with_kneighbors(converted, est, b, x, b.const("fit_X", est._fit_X), k)


@converts(neighbors.KNeighborsClassifier)
def k_neighbors_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each class's share of the neighbours' votes; with several outputs, each output's classes in a block
    of columns (its labels offset by the classes before them), the label the first largest of each block."""
    fit_x = b.const("fit_X", est._fit_X)
    y = np.asarray(est._y, dtype=np.int32)
    sizes = [len(c) for c in est.classes_] if est.outputs_2d_ else [len(est.classes_)]
    if est.outputs_2d_:
        y = y + np.cumsum([0, *sizes[:-1]], dtype=np.int32)
    proba = b.op("KNeighborsVote", x, fit_x, b.const("fit_y", y), n_classes=sum(sizes), **_search_attrs(est))
    if est.outputs_2d_:
        label, classes = b.op("SegmentArgMax", proba, sizes=sizes), [np.asarray(c) for c in est.classes_]
    else:
        label, classes = b.op("ArgMax", proba), np.asarray(est.classes_)
    outputs = {"label": label, "probabilities": proba}
    converted = Converted("classifier", outputs, ["label", "probabilities"], classes=classes)
    return _with_kneighbors(converted, est, b, x, fit_x)


@converts(neighbors.KNeighborsRegressor)
def k_neighbors_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    fit_x = b.const("fit_X", est._fit_X)
    y = b.op("KNeighborsMean", x, fit_x, b.const("fit_y", est._y), **_search_attrs(est))
    return _with_kneighbors(Converted("regressor", {"predictions": y}, ["predictions"]), est, b, x, fit_x)


@converts(neighbors.RadiusNeighborsClassifier)
def radius_neighbors_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Probabilities from the training rows within the radius. A row with none is an outlier: with
    ``outlier_label`` it gets that class, without one scikit-learn raises, and so does the runtime. With
    several outputs, each output's classes in a block of columns (as KNeighborsClassifier's)."""
    several = bool(est.outputs_2d_)
    classes = [np.asarray(c) for c in est.classes_] if several else [np.asarray(est.classes_)]
    sizes = [len(c) for c in classes]
    offsets = np.cumsum([0, *sizes[:-1]], dtype=np.int32)
    y = np.asarray(est._y, dtype=np.int32) + (offsets if several else 0)
    outlier_classes = [-1] * len(classes)
    if est.outlier_label_ is not None:
        for k, (output_classes, label) in enumerate(zip(classes, est.outlier_label_, strict=True)):
            where = np.flatnonzero(output_classes == label)
            if where.size != 1:
                raise UnsupportedModelError(
                    f"RadiusNeighborsClassifier: outlier_label {label!r} is not one of the classes "
                    f"{output_classes.tolist()}"
                )
            outlier_classes[k] = int(offsets[k] + where[0])
    k = sum(sizes)
    out = b.op(
        "RadiusNeighborsVote",
        x,
        b.const("fit_X", est._fit_X),
        b.const("fit_y", y),
        n_classes=k,
        **({"outlier_class": outlier_classes, "sizes": sizes} if several else {"outlier_class": outlier_classes[0]}),
        **_search_attrs(est),
    )
    proba = b.op("TakeColumns", out, b.const("class_columns", np.arange(k, dtype=np.int32)))
    label = b.op("SegmentArgMax", proba, sizes=sizes) if several else b.op("ArgMax", proba)
    outputs = {"label": label, "probabilities": proba}
    if est.outlier_label_ is None:
        b.refuse_rows(
            b.op("TakeColumns", out, b.const("outlier_column", np.array(k, dtype=np.int32))),
            "No neighbors found for some test samples; use a larger radius or give an outlier_label",
        )
    return Converted("classifier", outputs, ["label", "probabilities"], classes=classes if several else classes[0])


@converts(neighbors.RadiusNeighborsRegressor)
def radius_neighbors_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The mean target within the radius; NaN for a row with none (scikit-learn warns and returns NaN)."""
    y = b.op("RadiusNeighborsMean", x, b.const("fit_X", est._fit_X), b.const("fit_y", est._y), **_search_attrs(est))
    return Converted("regressor", {"predictions": y}, ["predictions"])


@converts(neighbors.NeighborhoodComponentsAnalysis)
def neighborhood_components_analysis(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """transform: the learnt linear map, x components_.T."""
    components = np.asarray(est.components_)
    return transformed(b.op("Gemm", x, b.const("components", components.T)), components.shape[0])


@converts(neighbors.KernelDensity)
def kernel_density(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """score_samples: the log density over the training rows (stored in the file, with their sample
    weights), summed block by block, plus the kernel's normalization (scikit-learn's kernel_norm) less the
    log of the total weight. Exact: scikit-learn's tree skips rows only as far as its ``atol`` / ``rtol``
    allow (0 by default), so with other tolerances its answer is within them of this one."""
    from sklearn.neighbors._kd_tree import kernel_norm

    metric = METRICS.get(est.metric) if isinstance(est.metric, str) else None  # (its trees have no cosine)
    if metric is None:
        raise UnsupportedModelError(f"KernelDensity(metric={est.metric!r}): supported metrics are {sorted(METRICS)}")
    p = float((est.metric_params or {}).get("p", 2.0))
    if metric == "minkowski" and p == 2.0:
        metric = "euclidean"
    train = np.asarray(est.tree_.data, dtype=np.float64)
    weights = est.tree_.sample_weight
    weights = np.ones(len(train)) if weights is None else np.asarray(weights, dtype=np.float64)
    log_norm = kernel_norm(est.bandwidth_, n_features, est.kernel, return_log=True) - np.log(est.tree_.sum_weight)
    scores = b.op(
        "KernelDensity",
        x,
        b.const("train", train),
        b.const("log_weights", np.log(weights)),
        kernel=est.kernel,
        bandwidth=float(est.bandwidth_),
        metric=metric,
        log_norm=float(log_norm),
        p=p,
    )
    return Converted("density", {"scores": scores}, ["scores"])
