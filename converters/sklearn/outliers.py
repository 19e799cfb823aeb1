"""Covariance estimators (``mahalanobis``: the squared Mahalanobis distance to the fitted location) and
novelty detectors: EllipticEnvelope (that distance to its robust location), LocalOutlierFactor with
``novelty=True`` (a neighbour search) and SGDOneClassSVM (a linear decision). Like IsolationForest and
OneClassSVM: ``predict`` is +1 where the decision is at least 0, else -1; ``decision_function`` and
``score_samples`` too."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import covariance, linear_model, neighbors

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.converters.sklearn.neighbors import metric_attrs
from mle_runtime.errors import UnsupportedModelError


def _detector(b: GraphBuilder, scores: str, offset: Any, label_dtype: Any = np.int64) -> Converted:
    decision = b.op("Sub", scores, b.const("offset", np.asarray(offset, dtype=np.float64).reshape(())))
    outputs = {"label": b.op("IsPositive", decision, or_zero=True), "decision": decision, "scores": scores}
    return Converted("classifier", outputs, ["label", "decision"], classes=np.array([-1, 1], dtype=label_dtype))


def _squared_mahalanobis(est: Any, b: GraphBuilder, x: str, n_features: int) -> str:
    """(x - location_) P (x - location_)' per row, P the estimator's precision (``get_precision``: the
    pseudo-inverse of ``covariance_`` where it stored none)."""
    centred = b.op("Sub", x, b.const("location", np.asarray(est.location_, dtype=np.float64)))
    weighted = b.op("Gemm", centred, b.const("precision", np.asarray(est.get_precision(), dtype=np.float64)))
    return str(b.op("Gemm", b.op("Mul", weighted, centred), b.const("ones", np.ones(n_features))))


@converts(
    covariance.EmpiricalCovariance,
    covariance.ShrunkCovariance,
    covariance.LedoitWolf,
    covariance.OAS,
    covariance.MinCovDet,
    covariance.GraphicalLasso,
    covariance.GraphicalLassoCV,
)
def covariance_estimator(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """mahalanobis, the only method they give new rows (``score`` sums a whole set's log-likelihood)."""
    return Converted("covariance", {"mahalanobis": _squared_mahalanobis(est, b, x, n_features)}, ["mahalanobis"])


@converts(covariance.EllipticEnvelope)
def elliptic_envelope(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """score_samples: minus the squared Mahalanobis distance to ``location_`` under ``precision_``."""
    distance = _squared_mahalanobis(est, b, x, n_features)
    converted = _detector(b, b.op("Sub", b.const("zero", np.array(0.0)), distance), est.offset_)
    converted.outputs["mahalanobis"] = distance
    return converted


@converts(neighbors.LocalOutlierFactor)
def local_outlier_factor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """For new rows (``novelty=True``): score_samples from the k nearest training rows' reach distances
    and local reachability densities; without novelty scikit-learn only labels its training set."""
    if not est.novelty:
        raise UnsupportedModelError(
            "LocalOutlierFactor(novelty=False) has no predict for new data; fit it with novelty=True"
        )
    k = int(est.n_neighbors_)
    scores = b.op(
        "LocalOutlierScores",
        x,
        b.const("fit_X", est._fit_X),
        b.const("k_distance", np.asarray(est._distances_fit_X_, dtype=np.float64)[:, k - 1]),
        b.const("lrd", np.asarray(est._lrd, dtype=np.float64)),
        k=k,
        **metric_attrs(est),
    )
    return _detector(b, scores, est.offset_)


@converts(linear_model.SGDOneClassSVM)
def sgd_one_class_svm(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """score_samples: x . coef_; the decision is it less ``offset_``."""
    scores = b.op("Gemm", x, b.const("coef", np.asarray(est.coef_, dtype=np.float64).reshape(-1)))
    return _detector(b, scores, est.offset_, np.int32)  # (its predict gives int32 labels)
