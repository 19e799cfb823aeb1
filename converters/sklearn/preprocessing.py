"""Scalers, normalizers, decompositions, polynomial features and numeric imputation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import cluster, decomposition, impute, neural_network, preprocessing, random_projection

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.inputs import NONE_CODE


def _f64(a: Any) -> np.ndarray:
    """A float array in the estimator's own dtype (float32 stays float32: lossless and zero-copy)."""
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _center_then_scale(b: GraphBuilder, x: str, n: int, center: Any, scale: Any) -> Converted:
    """(x - center) / scale, each part left out when the scaler has none (as scikit-learn does)."""
    if center is not None:
        x = b.op("Sub", x, b.const("center", _f64(center)))
    if scale is not None:
        x = b.op("Div", x, b.const("scale", _f64(scale)))
    return transformed(x, n)


@converts(preprocessing.StandardScaler)
def standard_scaler(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    # mean_ is fitted for the variance even with with_mean=False, but then not subtracted.
    return _center_then_scale(b, x, n, est.mean_ if est.with_mean else None, est.scale_)


def inverse_transform(est: Any, b: GraphBuilder, y: str) -> str | None:
    """The graph of ``est.inverse_transform`` on (rows, features) ``y``, in scikit-learn's order of
    operations, for the scalers, PowerTransformer and QuantileTransformer; None for any other estimator."""
    name = type(est).__name__
    if name == "StandardScaler" or name == "RobustScaler":
        scaling, centring = (
            (est.with_std, est.with_mean) if name == "StandardScaler" else (est.with_scaling, est.with_centering)
        )
        if scaling and est.scale_ is not None:
            y = b.op("Mul", y, b.const("scale", _f64(est.scale_)))
        if centring:
            y = b.op("Add", y, b.const("center", _f64(est.mean_ if name == "StandardScaler" else est.center_)))
        return y
    if name == "MinMaxScaler":
        return str(b.op("Div", b.op("Sub", y, b.const("min", _f64(est.min_))), b.const("scale", _f64(est.scale_))))
    if name == "MaxAbsScaler":
        return str(b.op("Mul", y, b.const("scale", _f64(est.scale_))))
    if name == "PowerTransformer":
        if est.standardize:
            y = str(inverse_transform(est._scaler, b, y))
        lambdas = np.asarray(est.lambdas_, dtype=np.float64)
        if est.method == "box-cox":  # scipy.special.inv_boxcox: exp(x) at lambda 0
            log, log_negative = lambdas == 0, np.zeros(len(lambdas), dtype=bool)
        else:  # scikit-learn's own inverse: within np.spacing(1.0) of 0, and of 2
            log, log_negative = np.abs(lambdas) < np.spacing(1.0), np.abs(lambdas - 2) <= np.spacing(1.0)
        return str(
            b.op(
                "PowerTransformInverse",
                y,
                b.const("lambdas", lambdas),
                method=est.method,
                log_features=log.tolist(),
                log_negative=log_negative.tolist(),
            )
        )
    if name == "QuantileTransformer":
        quantiles, references = np.asarray(est.quantiles_, np.float64), _f64(est.references_)
        normal = est.output_distribution == "normal"
        return str(
            b.op(
                "QuantileInverse", y, b.const("quantiles", quantiles), b.const("references", references), normal=normal
            )
        )
    return None


@converts(preprocessing.PowerTransformer)
def power_transformer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """scipy's Yeo-Johnson or Box-Cox per feature, then the fitted StandardScaler; Box-Cox refuses data
    that is not strictly positive with scikit-learn's message."""
    lambdas = np.asarray(est.lambdas_, dtype=np.float64)
    if est.method == "box-cox":  # scipy.special.boxcox: log(x) below |lambda| 1e-19
        log, log_negative = np.abs(lambdas) < 1e-19, np.zeros(n, dtype=bool)
    else:  # scipy.stats.yeojohnson: within the float64 epsilon of 0 and of 2
        eps = np.finfo(np.float64).eps
        log, log_negative = np.abs(lambdas) < eps, np.abs(lambdas - 2) <= eps
    y = b.op(
        "PowerTransform",
        x,
        b.const("lambdas", lambdas),
        method=est.method,
        log_features=log.tolist(),
        log_negative=log_negative.tolist(),
    )
    out = standard_scaler(est._scaler, b, y, n) if est.standardize else transformed(y, n)
    if est.method == "box-cox":
        b.refuse_rows(
            b.op("NonPositiveRows", x), "The Box-Cox transformation can only be applied to strictly positive data"
        )
    return out


@converts(preprocessing.QuantileTransformer)
def quantile_transformer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    from scipy import stats

    quantiles = np.asarray(est.quantiles_, dtype=np.float64)
    bound = 1e-7  # scikit-learn's BOUNDS_THRESHOLD: x + 1e-7 > the top quantile maps to 1 (normal output)
    clip = [float(stats.norm.ppf(bound - np.spacing(1))), float(stats.norm.ppf(1 - (bound - np.spacing(1))))]
    y = b.op(
        "QuantileTransform",
        x,
        b.const("quantiles", quantiles),
        b.const("references", _f64(est.references_)),
        b.const("top", quantiles[-1] - bound),
        b.const("negated_bottom", -(quantiles[0] + bound)),
        normal=est.output_distribution == "normal",
        clip=clip,
    )
    return transformed(y, n)


@converts(preprocessing.MinMaxScaler)
def min_max_scaler(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    y = b.op("Add", b.op("Mul", x, b.const("scale", _f64(est.scale_))), b.const("min", _f64(est.min_)))
    if est.clip:
        low, high = est.feature_range
        y = b.op("Clip", y, low=float(low), high=float(high))
    return transformed(y, n)


@converts(preprocessing.MaxAbsScaler)
def max_abs_scaler(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    return transformed(b.op("Div", x, b.const("scale", _f64(est.scale_))), n)


@converts(preprocessing.RobustScaler)
def robust_scaler(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    return _center_then_scale(b, x, n, est.center_, est.scale_)


@converts(preprocessing.Normalizer)
def normalizer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    return transformed(b.op("Normalize", x, norm=est.norm), n)


@converts(preprocessing.Binarizer)
def binarizer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    return transformed(b.op("Binarize", x, threshold=float(est.threshold)), n)


@converts(decomposition.PCA, decomposition.IncrementalPCA)
def pca(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    components = _f64(est.components_)
    # scikit-learn projects first and subtracts the projected mean (decomposition/_base.py, _transform).
    bias = -(_f64(est.mean_).reshape(1, -1) @ components.T).ravel().astype(components.dtype)
    projection = b.const("components", components.T)
    y = b.op("Gemm", x, projection, b.const("offset", bias))
    if est.whiten:
        scale = np.sqrt(_f64(est.explained_variance_))
        scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
        y = b.op("Div", y, b.const("whiten", scale))
    converted = transformed(y, components.shape[0])
    if isinstance(est, decomposition.PCA):  # (IncrementalPCA has no score_samples)
        scores = _pca_log_likelihood(est, b, x, n, projection)
        if scores is not None:
            converted.outputs["scores"] = scores
    return converted


def _pca_log_likelihood(est: Any, b: GraphBuilder, x: str, n: int, projection: str) -> str | None:
    """PCA's score_samples from get_precision()'s matrix inversion lemma, its parts kept apart (the
    features x features matrix is neither stored nor built): 1/noise_variance_ on the diagonal less
    C' M C / noise^2, C the components (``projection``: their transpose, already in the file), scaled by
    the explained variance's root when whitened; log det P by the determinant lemma from the same parts.
    With every component kept and no noise variance, the precision itself (no larger than the
    components). None where scikit-learn inverts a singular covariance (no noise variance with fewer
    components than features): its answer there is not a number to match."""
    from sklearn.utils.extmath import fast_logdet

    components, noise = _f64(est.components_), float(est.noise_variance_)
    if noise == 0.0 and len(components) < n:
        return None
    centred = b.op("Sub", x, b.const("mean", _f64(est.mean_)))
    if noise == 0.0:
        precision = np.asarray(est.get_precision(), dtype=np.float64)
        return _gaussian_log_likelihood(b, centred, n, fast_logdet(precision), dense=precision)
    diagonal = np.full(n, 1.0 / noise)
    if est.n_components_ == 0:
        return _gaussian_log_likelihood(b, centred, n, -n * np.log(noise), diagonal=diagonal)
    variance = _f64(est.explained_variance_)
    projected = b.op("Gemm", centred, projection)
    if est.whiten:
        components = components * np.sqrt(variance)[:, None]
        projected = b.op("Mul", projected, b.const("root_variance", np.sqrt(variance)))
    difference = np.where(variance > noise, variance - noise, 0.0)
    with np.errstate(divide="ignore"):
        inner = components @ components.T / noise + np.diag(1.0 / difference)
    # det of the covariance noise I + C' diag(difference) C' = noise^n det(diag(difference)) det(inner)
    if np.all(difference > 0):
        log_det = -n * np.log(noise) - np.sum(np.log(difference)) - fast_logdet(inner)
    else:  # (a component whose variance is the noise's: scikit-learn's inverse of an infinite diagonal)
        log_det = fast_logdet(np.asarray(est.get_precision(), dtype=np.float64))
    core = b.const("core", np.linalg.inv(inner) / noise**2)
    return _gaussian_log_likelihood(b, centred, n, log_det, diagonal=diagonal, projected=projected, core=core)


def _gaussian_log_likelihood(
    b: GraphBuilder,
    centred: str,
    n: int,
    log_det: float,
    *,
    diagonal: np.ndarray | None = None,
    projected: str | None = None,
    core: str | None = None,
    dense: np.ndarray | None = None,
) -> str:
    """Each row's Gaussian log-likelihood (score_samples of PCA and FactorAnalysis) under the precision
    P = diag(diagonal) - A M A' (``projected`` the rows' x A, ``core`` M) or ``dense``, whose log
    determinant is ``log_det``: -x P x' / 2 - (n log 2 pi - log det P) / 2 for the ``centred`` rows x."""
    if dense is not None:
        weighted = b.op("Mul", b.op("Gemm", centred, b.const("precision", dense)), centred)
        quadratic = b.op("Gemm", weighted, b.const("minus_halves", np.full(n, -0.5)))
    else:
        assert diagonal is not None
        squares = b.op("Mul", centred, centred)
        quadratic = b.op("Gemm", squares, b.const("minus_half_diagonal", -0.5 * diagonal))
        if projected is not None and core is not None:
            halves = b.const("halves", np.full(b.tensors[core].shape[0], 0.5))
            low_rank = b.op("Gemm", b.op("Mul", b.op("Gemm", projected, core), projected), halves)
            quadratic = b.op("Add", quadratic, low_rank)
    constant = -0.5 * (n * np.log(2.0 * np.pi) - log_det)
    return str(b.op("Add", quadratic, b.const("log_normalizer", np.asarray(constant, dtype=np.float64))))


@converts(decomposition.FactorAnalysis)
def factor_analysis(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """transform: the factors' posterior mean, ((x - mean_) Wpsi.T) cov_z with Wpsi = W / psi and
    cov_z = (I + Wpsi W.T)^-1, as scikit-learn computes it. score_samples: the Gaussian log-likelihood
    under get_precision()'s inversion lemma, diag(1 / psi) - Wpsi' cov_z Wpsi, from the same tensors."""
    from scipy import linalg

    components = _f64(est.components_)
    centred = b.op("Sub", x, b.const("mean", _f64(est.mean_)))
    noise = _f64(est.noise_variance_)
    wpsi = components / noise
    inverse = linalg.inv(np.eye(len(components)) + wpsi @ components.T)
    cov_z = b.const("cov_z", inverse)
    projected = b.op("Gemm", centred, b.const("Wpsi", wpsi.T))
    converted = transformed(b.op("Gemm", projected, cov_z), len(components))
    # det of the covariance W'W + diag(psi) = prod(psi) / det(cov_z) (the determinant lemma)
    log_det = np.linalg.slogdet(inverse)[1] - np.sum(np.log(noise))
    converted.outputs["scores"] = _gaussian_log_likelihood(
        b, centred, n, log_det, diagonal=1.0 / noise, projected=projected, core=cov_z
    )
    return converted


@converts(decomposition.LatentDirichletAllocation)
def latent_dirichlet_allocation(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """transform: each document's topic distribution, by the E-step scikit-learn runs (DirichletDocTopics
    op) with its float64 eps, normalized; negative counts raise as there."""
    b.refuse_negative(x, n, "Negative values in data passed to LatentDirichletAllocation.transform")
    weights = b.op(
        "DirichletDocTopics",
        x,
        b.const("exp_topic_word", np.asarray(est.exp_dirichlet_component_, dtype=np.float64)),
        prior=float(est.doc_topic_prior_),
        max_iter=int(est.max_doc_update_iter),
        tol=float(est.mean_change_tol),
        eps=float(np.finfo(np.float64).eps),
    )
    return transformed(b.op("Normalize", weights, norm="l1"), int(est.n_components))


@converts(decomposition.FastICA)
def fast_ica(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """The unmixing matrix applied to x, centred first when the model whitened."""
    components = _f64(est.components_)
    if est.whiten:
        x = b.op("Sub", x, b.const("mean", _f64(est.mean_)))
    return transformed(b.op("Gemm", x, b.const("components", components.T)), components.shape[0])


@converts(decomposition.SparsePCA, decomposition.MiniBatchSparsePCA)
def sparse_pca(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """``transform`` is a ridge regression of the centred rows on the components (a linear map, since the
    components are fixed): (x - mean) C^T (C C^T + ridge_alpha I)^-1, the inverse solved here once."""
    components = _f64(est.components_)
    gram = components @ components.T + est.ridge_alpha * np.eye(len(components))
    projection = components.T @ np.linalg.solve(gram, np.eye(len(components)))
    bias = -(_f64(est.mean_) @ projection)
    return transformed(b.op("Gemm", x, b.const("projection", projection), b.const("offset", bias)), len(components))


@converts(random_projection.GaussianRandomProjection, random_projection.SparseRandomProjection)
def random_projection_transform(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """x times the (dense) random components; the output is dense, as with ``dense_output=True``."""
    components = est.components_
    components = _f64(components.toarray() if hasattr(components, "toarray") else components)
    return transformed(b.op("Gemm", x, b.const("components", components.T)), components.shape[0])


@converts(neural_network.BernoulliRBM)
def bernoulli_rbm(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """The hidden units' mean activations: sigmoid(x W + hidden intercept)."""
    components = _f64(est.components_)
    hidden = b.op("Gemm", x, b.const("components", components.T), b.const("intercept", _f64(est.intercept_hidden_)))
    return transformed(b.op("Sigmoid", hidden), components.shape[0])


@converts(cluster.FeatureAgglomeration)
def feature_agglomeration(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """Each cluster's features averaged (the default pooling_func, np.mean; others are refused)."""
    if est.pooling_func is not np.mean:
        raise UnsupportedModelError(f"FeatureAgglomeration with pooling_func {est.pooling_func!r} (only np.mean)")
    labels = np.asarray(est.labels_)
    clusters = np.unique(labels)
    average = (labels[:, None] == clusters[None, :]).astype(np.float64)
    average /= average.sum(axis=0, keepdims=True)
    return transformed(b.op("Gemm", x, b.const("average", average)), len(clusters))


@converts(decomposition.TruncatedSVD)
def truncated_svd(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    components = _f64(est.components_)
    return transformed(b.op("Gemm", x, b.const("components", components.T)), components.shape[0])


@converts(preprocessing.PolynomialFeatures)
def polynomial_features(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    powers = np.asarray(est.powers_)
    degree = max(1, int(powers.sum(axis=1).max()))
    # Each output column as the list of input columns it multiplies; index n is the column of ones.
    index = np.full((powers.shape[0], degree), n, dtype=np.int32)
    for row, p in enumerate(powers):
        factors = np.repeat(np.arange(n), p)
        index[row, : len(factors)] = factors
    return transformed(b.op("ColumnProducts", x, b.const("powers", index)), powers.shape[0])


def _missing_marker(value: Any) -> float | str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    raise UnsupportedModelError(f"SimpleImputer: missing_values={value!r} is not numeric")


def _string_imputer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """Missing strings replaced by the fill string's code: NaN (the runtime's vocabulary step makes NaN of
    it), or None (its code, NONE_CODE) for missing_values=None; as in scikit-learn, the other passes
    through, None as a category of its own, NaN refused by the runtime's input check. The output carries
    the same input columns, for the encoder that follows."""
    if _missing_marker(est.missing_values) != "nan" or est.add_indicator:
        raise UnsupportedModelError("SimpleImputer on strings: only missing_values None or NaN, without add_indicator")
    codes = [b.string_codes(f"fill{i}", x, i, [s], "SimpleImputer") for i, s in enumerate(est.statistics_)]
    fills = b.op("Concat", *codes) if len(codes) > 1 else codes[0]
    y = b.op("Impute", x, fills, missing=NONE_CODE if est.missing_values is None else "nan")
    b.columns_of[y] = b.columns_of[x]
    return transformed(y, n)


@converts(impute.SimpleImputer)
def simple_imputer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    stats = np.asarray(est.statistics_)
    if stats.dtype.kind == "O":  # strategy="constant" keeps its fill value in an object array
        if any(s is None for s in stats):  # (most_frequent of strings where None is: fills with None)
            return _string_imputer(est, b, x, n)
        try:
            stats = stats.astype(np.float64)
        except (TypeError, ValueError):
            return _string_imputer(est, b, x, n)
    if stats.dtype.kind not in "biuf":
        return _string_imputer(est, b, x, n)
    missing = _missing_marker(est.missing_values)
    stats = _f64(stats)
    keep = np.flatnonzero(~np.isnan(stats)) if not est.keep_empty_features else np.arange(n)
    source = x
    if len(keep) != n:  # scikit-learn drops features that had no observed value at fit
        x = b.op("TakeColumns", x, b.const("kept", keep.astype(np.int32)))
    y = b.op("Impute", x, b.const("fill", stats[keep]), missing=missing)
    width = len(keep)
    return _with_indicator(est, b, transformed(y, width), source, n)


@converts(impute.KNNImputer)
def knn_imputer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """The k nearest training rows by nan-euclidean distance, per column among those that have it;
    columns with no value in training dropped (or 0 with ``keep_empty_features``), the missing-value
    indicator after them with ``add_indicator``."""
    if _missing_marker(est.missing_values) != "nan":
        raise UnsupportedModelError(f"KNNImputer: missing_values={est.missing_values!r} (only NaN is supported)")
    if est.metric != "nan_euclidean" or not isinstance(est.weights, str):
        raise UnsupportedModelError("KNNImputer: only metric='nan_euclidean' and weights 'uniform' or 'distance'")
    train = np.asarray(est._fit_X, dtype=np.float64)
    present = ~np.isnan(train)
    donors = present.sum(axis=0)
    sums = np.where(present, train, 0.0).sum(axis=0)
    means = np.divide(sums, donors, out=np.zeros(n), where=donors > 0)
    y = b.op(
        "KNNImpute",
        x,
        b.const("fit_X", train),
        b.const("column_means", means),
        k=int(est.n_neighbors),
        weights=est.weights,
        donors=[int(d) for d in donors],
    )
    kept = np.flatnonzero(donors > 0)
    if not est.keep_empty_features and len(kept) < n:
        y = b.op("TakeColumns", y, b.const("kept", kept.astype(np.int32)))
    width = n if est.keep_empty_features else len(kept)
    return _with_indicator(est, b, transformed(y, width), x, n)


def _iterative_imputer_class() -> list[type]:
    """IterativeImputer, from where it lives whether or not the user has enabled it (experimental)."""
    try:
        from sklearn.impute._iterative import IterativeImputer
    except ImportError:
        return []
    return [IterativeImputer]


@converts(*_iterative_imputer_class())
def iterative_imputer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """The initial imputation (its fitted SimpleImputer), then each round's fitted regressors in turn, each
    predicting its feature from the others' current values where that feature is missing (clipped to
    ``min_value`` / ``max_value``); the indicator after them with ``add_indicator``. scikit-learn skips
    the rounds for a batch whose every value is missing (returning the initial imputation); here each
    row is imputed as in any other batch."""
    from mle_runtime.converters._registry import converter_for

    if est.sample_posterior:
        raise UnsupportedModelError("IterativeImputer(sample_posterior=True) draws random samples; not supported")
    missing = _missing_marker(est.missing_values)
    initial = est.initial_imputer_
    current = converter_for(initial)(initial, b, x, n).outputs["transformed"]
    empty = np.asarray(est._is_empty_feature, dtype=bool)
    kept = np.arange(n) if est.keep_empty_features else np.flatnonzero(~empty)
    width = len(kept)
    flags = b.op(
        "IsMissing",
        x if width == n else b.op("TakeColumns", x, b.const("kept", kept.astype(np.int32))),
        missing=missing,
    )
    if est.keep_empty_features and empty.any():  # (their initial fill stands: never missing for the rounds)
        flags = b.op("Mul", flags, b.const("not_empty", (~empty).astype(np.float64)))
    low, high = np.broadcast_to(est._min_value, width), np.broadcast_to(est._max_value, width)
    for step in est.imputation_sequence_ if est.n_iter_ else []:
        feature, neighbours = int(step.feat_idx), np.asarray(step.neighbor_feat_idx, dtype=np.int32)
        inputs = b.op("TakeColumns", current, b.const("neighbours", neighbours))
        predicted = converter_for(step.estimator)(step.estimator, b, inputs, len(neighbours)).outputs["predictions"]
        if np.isfinite(low[feature]) or np.isfinite(high[feature]):
            predicted = b.op("Clip", predicted, low=float(low[feature]), high=float(high[feature]))
        missing_here = b.op("TakeColumns", flags, b.const("feature", np.array(feature, dtype=np.int32)))
        current = b.op("ReplaceColumn", current, predicted, missing_here, column=feature)
    return _with_indicator(est, b, transformed(current, width), x, n)


def _with_indicator(est: Any, b: GraphBuilder, imputed: Converted, x: str, n: int) -> Converted:
    """An imputer's output, with its missing-value indicator's columns after it when ``add_indicator``."""
    if not est.add_indicator:
        return imputed
    indicator = missing_indicator(est.indicator_, b, x, n)
    y = b.op("Concat", imputed.outputs["transformed"], indicator.outputs["transformed"])
    return transformed(y, int(imputed.n_outputs or 0) + int(indicator.n_outputs or 0))


@converts(impute.MissingIndicator)
def missing_indicator(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """1 where a feature that had missing values in training has one; with ``error_on_new``, a missing
    value in any other feature raises, as scikit-learn does."""
    missing = _missing_marker(est.missing_values)
    features = np.asarray(est.features_, dtype=np.int32)
    flags = b.op("IsMissing", b.op("TakeColumns", x, b.const("indicated", features)), missing=missing)
    others = np.setdiff1d(np.arange(n), features).astype(np.int32)
    if est.error_on_new and len(others):
        new = b.op("IsMissing", b.op("TakeColumns", x, b.const("not_indicated", others)), missing=missing)
        b.refuse_rows(
            b.op("Gemm", new, b.const("ones", np.ones(len(others)))),
            "MissingIndicator: features that had no missing values in fit have missing values in transform",
        )
    return transformed(flags, len(features))


@converts(preprocessing.SplineTransformer)
def spline_transformer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """Each feature's B-spline basis (scipy's evaluation, reproduced), with the transformer's
    extrapolation: "continue" and "periodic" inside the spline op, "constant" and "linear" from the end
    values and slopes scikit-learn takes at the first and last knot, "error" as rows the runtime refuses.
    The output is dense, also where ``sparse_output`` asks scikit-learn for a sparse matrix."""
    k, extrapolation = int(est.degree), est.extrapolation
    splines = est.bsplines_
    knots = np.stack([np.asarray(s.t, dtype=np.float64) for s in splines])
    coef = np.stack([np.asarray(s.c, dtype=np.float64) for s in splines])
    missing = 0.0 if getattr(est, "handle_missing", "error") == "zeros" else None
    periodic = extrapolation == "periodic"
    y = b.op("BSpline", x, b.const("knots", knots), b.const("coef", coef), degree=k, periodic=periodic, missing=missing)
    if extrapolation in ("constant", "linear"):
        ends = _spline_ends(est)
        y = b.op("SplineEnds", y, x, *(b.const(name, v) for name, v in ends.items()), linear=extrapolation == "linear")
    n_splines = coef.shape[2]
    width = n * n_splines
    if not est.include_bias:  # scikit-learn drops each feature's last spline
        kept = np.array([j for j in range(width) if (j + 1) % n_splines != 0], dtype=np.int32)
        y, width = b.op("TakeColumns", y, b.const("kept_splines", kept)), len(kept)
    if extrapolation == "error":
        low, high = b.const("low", knots[:, k]), b.const("high", knots[:, -k - 1])
        b.refuse_rows(
            b.op("OutsideRange", x, low, high), "SplineTransformer: `X` contains values beyond the limits of the knots"
        )
    return transformed(y, width)


def _spline_ends(est: Any) -> dict[str, np.ndarray]:
    """Per feature, the range of the knots outside which scikit-learn extrapolates, and the basis values
    (for "linear" also the slopes) it sets below and above: "constant" gives the first and last
    ``degree`` splines their value at the end knot, "linear" continues the first and last ``degree``
    splines (at least 2, for degree 0 one) along their derivative there; the other splines are 0.
    scikit-learn's transform raises ``degree`` for "linear" once per feature while it is below 2, and
    keeps the raised value for the features after (it reads knot ``degree`` as the end, too); the raised
    values are reproduced as scikit-learn computes them."""
    degree, linear = int(est.degree), est.extrapolation == "linear"
    n_splines = est.bsplines_[0].c.shape[1]
    ends: dict[str, list[np.ndarray]] = {k: [] for k in ("low", "high", "below", "below_slope", "above", "above_slope")}
    for s in est.bsplines_:
        low, high = s.t[degree], s.t[-degree - 1]
        if linear and degree <= 1:
            degree += 1
        first, last = np.arange(n_splines) < degree, np.arange(n_splines) >= n_splines - degree
        ends["low"].append(np.asarray(low))
        ends["high"].append(np.asarray(high))
        for name, at, part in (("below", low, first), ("above", high, last)):
            ends[name].append(np.where(part, s(at), 0.0))
            slope = s(at, nu=1) if linear else np.zeros(n_splines)
            ends[f"{name}_slope"].append(np.where(part, slope, 0.0))
    return {name: np.stack(values).astype(np.float64) for name, values in ends.items()}
