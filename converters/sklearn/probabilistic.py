"""Naive Bayes, discriminant analysis and nearest centroids: class scores (scikit-learn's joint log
likelihood, log posterior or discriminant), their argmax as the label and their normalized exponent as
``predict_proba``, computed in the form scikit-learn computes them."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import discriminant_analysis as da
from sklearn import naive_bayes as nb
from sklearn import neighbors

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converts
from mle_runtime.converters.sklearn.linear import _classifier
from mle_runtime.errors import UnsupportedModelError


def _from_scores(est: Any, b: GraphBuilder, scores: str, binary_decision: bool) -> Converted:
    """Label, probabilities (softmax of the scores), their log computed from the scores (as scikit-learn's
    predict_log_proba for these models: finite where a probability underflows) and decision (the scores;
    for two classes, as scikit-learn's discriminant analysis reports it, score 1 - score 0)."""
    outputs = {
        "label": b.op("ArgMax", scores),
        "probabilities": b.op("Softmax", scores),
        "log_probabilities": b.op("LogSoftmax", scores),
    }
    if binary_decision and len(est.classes_) == 2:
        # score 1 - score 0 as a two-term dot product: both products are exact, so one rounding, as a subtraction
        outputs["decision"] = b.op("Gemm", scores, b.const("difference", np.array([-1.0, 1.0])))
    elif binary_decision:
        outputs["decision"] = scores
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))


@converts(nb.GaussianNB)
def gaussian_nb(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    var = np.asarray(est.var_, dtype=np.float64)
    offset = np.log(est.class_prior_) - 0.5 * np.sum(np.log(2.0 * np.pi * var), axis=1)
    scores = b.op(
        "DiagonalGaussianScores", x, b.const("theta", est.theta_), b.const("var", var), b.const("offset", offset)
    )
    return _from_scores(est, b, scores, binary_decision=False)


@converts(nb.MultinomialNB, nb.ComplementNB, nb.BernoulliNB)
def discrete_nb(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """jll = x @ W + bias with W, bias as each model's ``_joint_log_likelihood`` forms them."""
    log_prob = np.asarray(est.feature_log_prob_, dtype=np.float64)
    if isinstance(est, nb.BernoulliNB):
        if est.binarize is not None:
            x = b.op("Binarize", x, threshold=float(est.binarize))
        negative = np.log(1 - np.exp(log_prob))
        weights, bias = (log_prob - negative).T, est.class_log_prior_ + negative.sum(axis=1)
    elif isinstance(est, nb.ComplementNB):
        weights = log_prob.T
        bias = est.class_log_prior_ if len(est.classes_) == 1 else np.zeros(len(est.classes_))
    else:
        weights, bias = log_prob.T, est.class_log_prior_
    scores = b.op("Gemm", x, b.const("feature_log_prob", weights), b.const("class_log_prior", bias))
    return _from_scores(est, b, scores, binary_decision=False)


@converts(nb.CategoricalNB)
def categorical_nb(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    counts = [len(p[0]) for p in est.feature_log_prob_]
    table = np.zeros((n_features, max(counts), len(est.classes_)))
    for f, log_prob in enumerate(est.feature_log_prob_):  # (classes, categories) per feature
        table[f, : counts[f]] = np.asarray(log_prob).T
    out = b.op(
        "CategoricalScores",
        x,
        b.const("feature_log_prob", table),
        b.const("n_categories", np.array(counts, np.float64)),
    )
    k = len(est.classes_)
    jll = b.op(
        "Add",
        b.op("TakeColumns", out, b.const("classes", np.arange(k, dtype=np.int32))),
        b.const("class_log_prior", est.class_log_prior_),
    )
    converted = _from_scores(est, b, jll, binary_decision=False)
    b.refuse_rows(
        b.op("TakeColumns", out, b.const("bad_column", np.array(k, np.int32))),
        "CategoricalNB: a value is not one of its feature's categories (0 .. n_categories_ - 1)",
    )
    return converted


@converts(da.LinearDiscriminantAnalysis)
def linear_discriminant(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """A linear classifier; with the svd and eigen solvers also ``transform`` (the projection onto the
    first ``_max_components`` discriminant directions)."""
    converted = _classifier(est, b, x, "logistic")
    converted.outputs["log_probabilities"] = b.op("LogProbability", converted.outputs["probabilities"])
    if est.solver in ("svd", "eigen"):
        scalings = np.asarray(est.scalings_)[:, : est._max_components]
        source = b.op("Sub", x, b.const("xbar", est.xbar_)) if est.solver == "svd" else x
        converted.outputs["transformed"] = b.op("Gemm", source, b.const("scalings", scalings))
    return converted


@converts(da.QuadraticDiscriminantAnalysis)
def quadratic_discriminant(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    transforms = np.stack([r * s**-0.5 for r, s in zip(est.rotations_, est.scalings_, strict=True)])
    offset = -0.5 * np.array([np.sum(np.log(s)) for s in est.scalings_]) + np.log(est.priors_)
    scores = b.op(
        "QuadraticScores", x, b.const("means", est.means_), b.const("transforms", transforms), b.const("offset", offset)
    )
    return _from_scores(est, b, scores, binary_decision=True)


@converts(neighbors.NearestCentroid)
def nearest_centroid(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    if est.metric not in ("euclidean", "manhattan"):
        raise UnsupportedModelError(f"NearestCentroid with metric {est.metric!r} is not supported")
    std = np.asarray(est.within_class_std_dev_, dtype=np.float64)
    divisor = np.where(std != 0, std, 1.0)
    scaled = b.op("Div", x, b.const("within_class_std", divisor))
    centroids = np.asarray(est.centroids_, dtype=np.float64) / divisor
    distances = b.op("SquaredDistances", scaled, b.const("centroids", centroids), metric=est.metric)
    scores = b.op("Sub", b.const("log_prior2", 2.0 * np.log(est.class_prior_)), distances)
    converted = _from_scores(est, b, scores, binary_decision=True)
    if est.metric != "euclidean":  # scikit-learn offers predict_proba and decision_function for euclidean only
        del converted.outputs["probabilities"], converted.outputs["log_probabilities"], converted.outputs["decision"]
        converted.run_outputs = ["label"]
    if np.isclose(est.class_prior_, 1 / len(est.classes_)).all():
        # scikit-learn's predict then takes the nearest raw centroid, without the per-feature scaling
        raw = b.op("SquaredDistances", x, b.const("raw_centroids", est.centroids_), metric=est.metric)
        converted.outputs["label"] = b.op("ArgMax", b.op("Sub", b.const("zero", np.array(0.0)), raw))
    return converted
