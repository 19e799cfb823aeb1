"""Linear models: classifiers, regressors and generalized linear models."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import cross_decomposition, svm
from sklearn import linear_model as lm

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError


def _affine(est: Any, b: GraphBuilder, x: str, one_column: bool) -> str:
    """x @ coef.T + intercept. With ``one_column`` (a 1-D coef_, or a binary classifier's single row) the
    weights are stored 1-D and the result is 1-D, (n,), with no reshaping node."""
    coef = np.asarray(est.coef_)
    dtype = coef.dtype if coef.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    intercept = np.asarray(est.intercept_, dtype=dtype)
    if one_column:
        w, bias = coef.reshape(-1).astype(dtype, copy=False), intercept.reshape(())
    else:
        w = coef.T.astype(dtype, copy=False)
        bias = np.broadcast_to(intercept, (w.shape[1],))
    return b.op("Gemm", x, b.const("coef", w), b.const("intercept", bias))


def _classifier(est: Any, b: GraphBuilder, x: str, proba: str | None) -> Converted:
    """Decision scores, labels (as scikit-learn's LinearClassifierMixin.predict) and a probability head."""
    if getattr(getattr(est, "_label_binarizer", None), "y_type_", "").startswith("multilabel"):
        return _multilabel_classifier(est, b, x)
    coef = np.asarray(est.coef_)
    binary = coef.ndim == 1 or coef.shape[0] == 1
    decision = _affine(est, b, x, one_column=binary)
    label = b.op("IsPositive", decision) if binary else b.op("ArgMax", decision)
    outputs = {"label": label, "decision": decision}
    if proba == "logistic":
        outputs["probabilities"] = b.op("BinaryProba", decision) if binary else b.op("Softmax", decision)
    elif proba == "ovr":
        outputs["probabilities"] = (
            b.op("BinaryProba", decision) if binary else b.op("OvrNormalize", b.op("Sigmoid", decision))
        )
    elif proba == "softmax2":  # softmax([-d, d])[:, 1] == sigmoid(2d)
        outputs["probabilities"] = b.op("BinaryProba", b.op("Mul", decision, b.const("two", np.array(2.0))))
    elif proba == "modified_huber":
        outputs["probabilities"] = b.op("ModifiedHuberProba", decision, binary=binary)
    run = ["label", "probabilities" if proba else "decision"]
    return Converted("classifier", outputs, run, classes=np.asarray(est.classes_))


def _multilabel_classifier(est: Any, b: GraphBuilder, x: str) -> Converted:
    """A RidgeClassifier of several labels: each label on where its score passes 0 (the indicator matrix
    scikit-learn's label binarizer gives back); no probabilities."""
    decision = _affine(est, b, x, one_column=False)
    outputs = {"label": b.op("IsPositive", decision), "decision": decision}
    classes = [np.array([0, 1], dtype=np.int64)] * np.asarray(est.coef_).shape[0]
    return Converted("classifier", outputs, ["label", "decision"], classes=classes, multilabel=True)


@converts(lm.LogisticRegression, lm.LogisticRegressionCV)
def logistic_regression(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return _classifier(est, b, x, _logistic_head(est))


def _logistic_head(est: Any) -> str:
    """How predict_proba turns scores into probabilities. scikit-learn >= 1.8 has no ``multi_class``: a
    sigmoid when binary, a softmax otherwise. Before 1.8 (kept for the >= 1.5 range we support; this
    branch is not exercised by the tests, which run on a current scikit-learn) OvR applied for
    multi_class="ovr" and for "auto" with two classes or liblinear, and a binary multinomial model took
    the softmax of [-d, d]."""
    multi_class = getattr(est, "multi_class", None)
    binary = len(est.classes_) <= 2
    if multi_class is None or multi_class in ("ovr", "warn"):
        return "logistic" if multi_class is None else "ovr"
    if multi_class in ("auto", "deprecated") and (binary or est.solver == "liblinear"):
        return "ovr"
    return "softmax2" if binary else "logistic"


@converts(lm.SGDClassifier)
def sgd_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    proba = {"log_loss": "ovr", "modified_huber": "modified_huber"}.get(est.loss)
    return _classifier(est, b, x, proba)


def _still_in_sklearn(*names: str) -> list[type]:
    """Classes scikit-learn has deprecated (PassiveAggressive*: removed in 1.10), where it still has them."""
    return [getattr(lm, n) for n in names if hasattr(lm, n)]


@converts(
    lm.RidgeClassifier,
    lm.RidgeClassifierCV,
    lm.Perceptron,
    svm.LinearSVC,
    *_still_in_sklearn("PassiveAggressiveClassifier"),
)
def margin_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return _classifier(est, b, x, None)


def _regression(est: Any, b: GraphBuilder, x: str, link: str = "identity") -> Converted:
    y = _affine(est, b, x, one_column=np.asarray(est.coef_).ndim == 1)
    if link == "log":
        y = b.op("Exp", y)
    elif link != "identity":
        raise UnsupportedModelError(f"{type(est).__name__}: link {link!r} is not supported")
    return Converted("regressor", {"predictions": y}, ["predictions"])


@converts(
    lm.LinearRegression,
    lm.Ridge,
    lm.RidgeCV,
    lm.Lasso,
    lm.LassoCV,
    lm.ElasticNet,
    lm.ElasticNetCV,
    lm.Lars,
    lm.LarsCV,
    lm.LassoLars,
    lm.LassoLarsCV,
    lm.LassoLarsIC,
    lm.OrthogonalMatchingPursuit,
    lm.OrthogonalMatchingPursuitCV,
    lm.MultiTaskLasso,
    lm.MultiTaskLassoCV,
    lm.MultiTaskElasticNet,
    lm.MultiTaskElasticNetCV,
    lm.SGDRegressor,
    lm.HuberRegressor,
    lm.QuantileRegressor,
    lm.TheilSenRegressor,
    svm.LinearSVR,
    *_still_in_sklearn("PassiveAggressiveRegressor"),
)
def linear_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return _regression(est, b, x)


@converts(lm.BayesianRidge, lm.ARDRegression)
def bayesian_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The posterior mean, as any linear model's; and its standard deviation (``return_std``, computed
    only when asked), as their ``predict`` forms it: sqrt(d sigma_ d + 1 / alpha_) with d = x - X_offset_,
    over ARDRegression's kept features (lambda_ below threshold_lambda), those sigma_ covers."""
    centred = b.op("Sub", x, b.const("X_offset", np.asarray(est.X_offset_, dtype=np.float64)))
    if isinstance(est, lm.ARDRegression):
        kept = np.flatnonzero(est.lambda_ < est.threshold_lambda)
        centred = b.op("TakeColumns", centred, b.const("kept_features", kept.astype(np.int32)))
    weighted = b.op("Mul", b.op("Gemm", centred, b.const("sigma", np.asarray(est.sigma_, dtype=np.float64))), centred)
    spread = b.op(
        "Gemm", weighted, b.const("ones", np.ones(len(est.sigma_))), b.const("noise", 1.0 / np.asarray(est.alpha_))
    )
    std = b.op("Ufunc", spread, name="sqrt")
    return Converted(
        "regressor", {"predictions": _regression(est, b, x).outputs["predictions"], "std": std}, ["predictions"]
    )


@converts(lm.PoissonRegressor, lm.GammaRegressor, lm.TweedieRegressor)
def glm_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    links = {"IdentityLink": "identity", "LogLink": "log"}
    name = type(est._base_loss.link).__name__
    if name not in links:
        raise UnsupportedModelError(f"{type(est).__name__}: link {name} is not supported")
    return _regression(est, b, x, links[name])


@converts(cross_decomposition.PLSRegression, cross_decomposition.PLSCanonical, cross_decomposition.CCA)
def partial_least_squares(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """predict: (x - the training mean) coef.T + intercept, one column per target (none for a 1-D one);
    transform: the x scores, the standardized rows times x_rotations_."""
    centred = b.op("Sub", x, b.const("x_mean", np.asarray(est._x_mean, dtype=np.float64)))
    coef = np.asarray(est.coef_, dtype=np.float64)
    y = b.op("Gemm", centred, b.const("coef", coef.T), b.const("intercept", np.asarray(est.intercept_, np.float64)))
    if est._predict_1d:
        y = b.op("SqueezeLast", y)
    scores = _pls_scores(b, centred, est._x_std, est.x_rotations_)
    return Converted("regressor", {"predictions": y, "transformed": scores}, ["predictions"])


@converts(cross_decomposition.PLSSVD)
def pls_svd(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """transform: the x scores, the standardized rows times x_weights_."""
    centred = b.op("Sub", x, b.const("x_mean", np.asarray(est._x_mean, dtype=np.float64)))
    return transformed(_pls_scores(b, centred, est._x_std, est.x_weights_), est.x_weights_.shape[1])


def _pls_scores(b: GraphBuilder, centred: str, std: np.ndarray, weights: np.ndarray) -> str:
    """(x - mean) / std times the weights, as the PLS models' transform computes it."""
    standardized = b.op("Div", centred, b.const("x_std", np.asarray(std, dtype=np.float64)))
    return b.op("Gemm", standardized, b.const("x_weights", np.asarray(weights, dtype=np.float64)))
