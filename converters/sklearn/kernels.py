"""Kernel models (support vector machines, KernelRidge, KernelPCA, the kernel approximations) and
isotonic regression. An SVM is the Kernel op
against its support vectors, one matrix product with the dual coefficients, and libsvm's rules on top
(ops in ``mle_runtime/ops/svm.py``)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from sklearn import (
    decomposition,
    gaussian_process,
    isotonic,
    kernel_approximation,
    kernel_ridge,
    preprocessing,
    semi_supervised,
    svm,
)

from mle_runtime.converters._builder import Converted, GraphBuilder, as_built_labels, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError

# scikit-learn's kernel names -> the Kernel op's ("polynomial" is an alias of "poly")
KERNEL_NAMES = {
    "linear": "linear",
    "poly": "poly",
    "polynomial": "poly",
    "rbf": "rbf",
    "sigmoid": "sigmoid",
    "laplacian": "laplacian",
    "cosine": "cosine",
}


def kernel_attrs(name: Any, gamma: float | None, coef0: float, degree: float, n_features: int) -> dict[str, Any]:
    """The Kernel op's attributes for a scikit-learn kernel; gamma None means 1 / n_features, as
    pairwise_kernels defaults it."""
    if not isinstance(name, str) or name not in KERNEL_NAMES:
        raise UnsupportedModelError(
            f"kernel {name!r} is not supported (a callable is arbitrary code); supported: {sorted(KERNEL_NAMES)}"
        )
    attrs: dict[str, Any] = {"kernel": KERNEL_NAMES[name]}
    if attrs["kernel"] in ("poly", "rbf", "sigmoid", "laplacian"):
        attrs["gamma"] = float(1.0 / n_features if gamma is None else gamma)
    if attrs["kernel"] in ("poly", "sigmoid"):
        attrs["coef0"] = float(coef0)
    if attrs["kernel"] == "poly":
        attrs["degree"] = float(degree)
    return attrs


@converts(kernel_ridge.KernelRidge)
def kernel_ridge_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    if est.kernel_params:
        raise UnsupportedModelError(f"KernelRidge with kernel_params {est.kernel_params} is not supported")
    attrs = kernel_attrs(est.kernel, est.gamma, est.coef0, est.degree, n_features)
    k = b.op("Kernel", x, b.const("X_fit", est.X_fit_), **attrs)
    return Converted(
        "regressor", {"predictions": b.op("Gemm", k, b.const("dual_coef", est.dual_coef_))}, ["predictions"]
    )


@converts(isotonic.IsotonicRegression)
def isotonic_regression(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Interpolation between the thresholds; outside them NaN, the end values ("clip"), or, for
    out_of_bounds="raise", a ValueError naming the rows, as scipy's interp1d raises in scikit-learn."""
    xp, fp, outside = np.asarray(est.X_thresholds_), np.asarray(est.y_thresholds_), est.out_of_bounds
    if len(xp) == 1:  # scikit-learn predicts the one value everywhere (and never raises)
        xp, fp, outside = np.array([xp[0], xp[0] + 1.0]), np.repeat(fp, 2), "clip"
    if outside == "raise":
        beyond = b.op("OutsideRange", x, b.const("lowest", xp[:1]), b.const("highest", xp[-1:]))
        b.refuse_rows(beyond, "A value in x_new is outside the interpolation range (out_of_bounds='raise')")
        outside = "nan"
    y = b.op("Interp1d", x, b.const("X_thresholds", xp), b.const("y_thresholds", fp), outside=outside)
    return Converted("regressor", {"predictions": y}, ["predictions"])


def _svm_kernel(est: Any, b: GraphBuilder, x: str, n_features: int) -> str:
    if est.kernel == "precomputed":
        raise UnsupportedModelError(f"{type(est).__name__}(kernel='precomputed') takes a kernel matrix, not features")
    attrs = kernel_attrs(est.kernel, est._gamma, est.coef0, est.degree, n_features)
    return b.op("Kernel", x, b.const("support_vectors", est.support_vectors_), **attrs)


def _ovo_weights(est: Any) -> np.ndarray:
    """(support vectors, pairs): libsvm's pair (i, j) sums class i's vectors with dual_coef_[j - 1] and
    class j's with dual_coef_[i]; every other vector weighs 0 in that pair."""
    k = len(est.classes_)
    starts = np.concatenate([[0], np.cumsum(est.n_support_)])
    pairs = list(itertools.combinations(range(k), 2))
    w = np.zeros((est.support_vectors_.shape[0], len(pairs)))
    for p, (i, j) in enumerate(pairs):
        w[starts[i] : starts[i + 1], p] = est.dual_coef_[j - 1, starts[i] : starts[i + 1]]
        w[starts[j] : starts[j + 1], p] = est.dual_coef_[i, starts[j] : starts[j + 1]]
    return w


class _Dual:
    """Kernel values against the support vectors, times dual coefficients: ``times(w)`` is x's kernel row
    @ w. A linear kernel folds the support vectors into the weights at export (w' = SV.T @ w, in
    float64): one (features, outputs) product instead of two, and no float32 sum of hundreds of
    cancelling terms."""

    def __init__(self, est: Any, b: GraphBuilder, x: str, n_features: int):
        self.est, self.b, self.x = est, b, x
        self.linear = est.kernel == "linear"
        self.kernel = None if self.linear else _svm_kernel(est, b, x, n_features)

    def times(self, hint: str, weights: np.ndarray, bias: np.ndarray) -> str:
        if self.linear:
            folded = np.asarray(self.est.support_vectors_, dtype=np.float64).T @ weights
            return self.b.op("Gemm", self.x, self.b.const(hint, folded), self.b.const(f"{hint}_intercept", bias))
        return self.b.op("Gemm", self.kernel, self.b.const(hint, weights), self.b.const(f"{hint}_intercept", bias))


@converts(svm.SVC, svm.NuSVC)
def support_vector_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    dual = _Dual(est, b, x, n_features)
    k = len(est.classes_)
    # scikit-learn 1.9 deprecates probability=True (its default is then the string "deprecated") and its
    # probA_ / probB_ (which warn); the fitted model says what it did in _effective_probability and _probA
    probability = bool(getattr(est, "_effective_probability", est.probability))
    outputs: dict[str, str] = {}
    if k == 2:
        # scikit-learn stores the binary model's dual_coef_ and intercept_ negated, so that a positive
        # decision means the second class; libsvm's own value is the negation (and predicts class 0 when
        # positive, class 1 otherwise, zero included)
        decision = dual.times("dual_coef", est.dual_coef_[0], est.intercept_[0])
        outputs["decision"] = decision
        outputs["label"] = b.op("IsPositive", decision, or_zero=True)
        if probability:  # (rows, 1): negated coefficients give exactly the negated products and sums
            libsvm = dual.times("libsvm_coef", -est.dual_coef_.T, -est.intercept_)
    else:
        libsvm = dual.times("ovo_weights", _ovo_weights(est), est.intercept_)
        ovr = b.op("OvoVotes", libsvm, n_classes=k, rule="ovr")
        outputs["decision"] = ovr if est.decision_function_shape == "ovr" else libsvm
        if est.break_ties and est.decision_function_shape == "ovr":
            outputs["label"] = b.op("ArgMax", ovr)
        else:
            outputs["label"] = b.op("ArgMax", b.op("OvoVotes", libsvm, n_classes=k, rule="libsvm"))
    if probability:
        outputs["probabilities"] = b.op(
            "LibsvmProbability", libsvm, b.const("prob_a", est._probA), b.const("prob_b", est._probB), n_classes=k
        )
    run = ["label", "probabilities" if probability else "decision"]
    return Converted("classifier", outputs, run, classes=np.asarray(est.classes_))


@converts(svm.SVR, svm.NuSVR)
def support_vector_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    y = _Dual(est, b, x, n_features).times("dual_coef", est.dual_coef_[0], est.intercept_[0])
    return Converted("regressor", {"predictions": y}, ["predictions"])


@converts(svm.OneClassSVM)
def one_class_svm(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """decision_function (libsvm's value), score_samples (it plus offset_) and predict: +1 where the
    decision is positive, else -1, as libsvm predicts."""
    decision = _Dual(est, b, x, n_features).times("dual_coef", est.dual_coef_[0], est.intercept_[0])
    outputs = {
        "label": b.op("IsPositive", decision),
        "decision": decision,
        "scores": b.op("Add", decision, b.const("offset", np.asarray(est.offset_).reshape(()))),
    }
    return Converted("classifier", outputs, ["label", "decision"], classes=np.array([-1, 1]))


@converts(kernel_approximation.RBFSampler)
def rbf_sampler(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """cos(x W + offset) * sqrt(2 / n_components), as scikit-learn computes it."""
    weights = np.asarray(est.random_weights_, dtype=np.float64)
    projection = b.op("Gemm", x, b.const("random_weights", weights), b.const("offset", est.random_offset_))
    scale = b.const("scale", np.array((2.0 / est.n_components) ** 0.5))
    return transformed(b.op("Mul", b.op("Ufunc", projection, name="cos"), scale), weights.shape[1])


@converts(kernel_approximation.Nystroem)
def nystroem(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The kernel against the sampled components, times the normalization."""
    params = est._get_kernel_params()
    gamma, coef0, degree = params.get("gamma"), params.get("coef0", 1.0), params.get("degree", 3.0)
    k = b.op(
        "Kernel",
        x,
        b.const("components", est.components_),
        **kernel_attrs(est.kernel, gamma, coef0, degree, n_features),
    )
    normalization = np.asarray(est.normalization_, dtype=np.float64)
    return transformed(b.op("Gemm", k, b.const("normalization", normalization.T)), normalization.shape[0])


@converts(decomposition.KernelPCA)
def kernel_pca(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The kernel against the training rows, centred as the fitted KernelCenterer centres it, projected
    on the eigenvectors scaled by 1 / sqrt(eigenvalue) (zero eigenvalues give zero columns)."""
    attrs = kernel_attrs(est.kernel, est.gamma_, est.coef0, est.degree, n_features)
    return kernel_pca_projection(est, b, b.op("Kernel", x, b.const("X_fit", est.X_fit_), **attrs))


def kernel_pca_projection(est: Any, b: GraphBuilder, k: str) -> Converted:
    """A fitted KernelPCA's transform of ``k``, the rows' kernel against its training rows."""
    values, vectors = np.asarray(est.eigenvalues_, np.float64), np.asarray(est.eigenvectors_, np.float64)
    scaled = np.zeros_like(vectors)
    kept = np.flatnonzero(values)
    scaled[:, kept] = vectors[:, kept] / np.sqrt(values[kept])
    return transformed(b.op("Gemm", _centred(b, k, est._centerer), b.const("alphas", scaled)), scaled.shape[1])


@converts(preprocessing.KernelCenterer)
def kernel_centerer(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    return transformed(_centred(b, x, est), n_features)


def _centred(b: GraphBuilder, k: str, centerer: Any) -> str:
    """A kernel matrix against the training rows centred in feature space: less the training columns'
    means and the row's mean, plus the training mean (KernelCenterer.transform)."""
    column_means = np.asarray(centerer.K_fit_rows_, dtype=np.float64)
    row_means = b.op("Gemm", k, b.const("row_mean", np.full(len(column_means), 1.0 / len(column_means))))
    centred = b.op("Sub", b.op("Sub", k, b.const("K_fit_rows", column_means)), b.op("ExpandLast", row_means))
    return b.op("Add", centred, b.const("K_fit_all", np.asarray(centerer.K_fit_all_, dtype=np.float64)))


@converts(semi_supervised.LabelPropagation, semi_supervised.LabelSpreading)
def label_propagation(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """predict_proba: the rbf kernel against the training rows times their label distributions,
    normalized per row; the "knn" kernel (a neighbour search) is refused."""
    if est.kernel != "rbf":
        raise UnsupportedModelError(f"{type(est).__name__}(kernel={est.kernel!r}): only the rbf kernel is supported")
    weights = b.op("Kernel", x, b.const("X_train", est.X_), **kernel_attrs("rbf", est.gamma, 0.0, 3.0, n_features))
    scores = b.op("Gemm", weights, b.const("label_distributions", np.asarray(est.label_distributions_, np.float64)))
    proba = b.op("Normalize", scores, norm="l1")
    outputs = {"label": b.op("ArgMax", proba), "probabilities": proba}
    return Converted("classifier", outputs, ["label", "probabilities"], classes=np.asarray(est.classes_))


@converts(gaussian_process.GaussianProcessRegressor)
def gaussian_process_regressor(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The posterior mean: the fitted kernel against the training rows times ``alpha_``, scaled back by
    the target's training mean and standard deviation (``normalize_y``); and its standard deviation
    (``return_std``, computed only when asked): sqrt(k(x, x) - |v|^2) with v = L^-1 k(X, x) (GPML
    Algorithm 2.1, lines 5-6; L^-1 solved here once, where scikit-learn solves L against each batch), a
    negative variance (rounding) taken as 0 as scikit-learn takes it, scaled by the target's deviation.
    ``return_cov`` (a (rows, rows) output) is not given."""
    from scipy.linalg import solve_triangular

    kernel = _gp_kernel(est.kernel_)
    k = b.op("GaussianProcessKernel", x, b.const("X_train", est.X_train_), kernel=kernel)
    alpha = np.asarray(est.alpha_, dtype=np.float64)
    mean = b.op("Gemm", k, b.const("alpha", alpha))
    scale = np.asarray(est._y_train_std, dtype=np.float64)
    y = b.op("Add", b.op("Mul", mean, b.const("y_std", scale)), b.const("y_mean", np.asarray(est._y_train_mean)))
    inverse = solve_triangular(est.L_, np.eye(len(est.L_)), lower=True)  # (scikit-learn's L_ is lower)
    v = b.op("Gemm", k, b.const("L_inverse", inverse.T))
    reduced = b.op("Gemm", b.op("Mul", v, v), b.const("ones", np.ones(len(inverse))))
    variance = b.op("Relu", b.op("Sub", b.op("GaussianProcessKernelDiagonal", x, kernel=kernel), reduced))
    if alpha.ndim == 2 and alpha.shape[1] > 1:  # one deviation per target: (rows, 1) x (targets,)
        variance = b.op("ExpandLast", variance)
    std = b.op("Ufunc", b.op("Mul", variance, b.const("y_variance", scale**2)), name="sqrt")
    if alpha.ndim == 2 and alpha.shape[1] == 1:
        y = b.op("SqueezeLast", y)
    return Converted("regressor", {"predictions": y, "std": std}, ["predictions"])


def _laplace_latent(part: Any, b: GraphBuilder, x: str) -> tuple[str, str]:
    """A binary Laplace Gaussian-process classifier's latent mean and variance (GPML Algorithm 3.2, lines
    4-6): k(x, X) (y - pi), and k(x, x) - |v|**2 with v = L^-1 (W^1/2 k(X, x)), L^-1 W^1/2 solved here
    once (scikit-learn solves L against each batch)."""
    from scipy.linalg import solve

    kernel = _gp_kernel(part.kernel_)
    k = b.op("GaussianProcessKernel", x, b.const("X_train", part.X_train_), kernel=kernel)
    residual = np.asarray(part.y_train_, np.float64) - np.asarray(part.pi_, np.float64)
    mean = b.op("Gemm", k, b.const("residual", residual))
    whitened = solve(part.L_, np.diag(np.asarray(part.W_sr_, np.float64)))  # (L^-1 W^1/2)
    v = b.op("Gemm", k, b.const("whitened", whitened.T))
    reduced = b.op("Gemm", b.op("Mul", v, v), b.const("ones", np.ones(len(residual))))
    var = b.op("Sub", b.op("GaussianProcessKernelDiagonal", x, kernel=kernel), reduced)
    return mean, var


@converts(gaussian_process.GaussianProcessClassifier)
def gaussian_process_classifier(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Binary: the latent mean's sign (predict) and the Laplace approximation's probability; more classes
    one-vs-rest (scikit-learn's default): each class's binary probability, normalized, the largest the
    label; or one-vs-one, which scikit-learn gives only ``predict``: each pair's label and second-class
    probability combined by OneVsOneClassifier's vote-and-confidence rule."""
    classes = np.asarray(est.classes_)
    if len(classes) == 2 or est.multi_class != "one_vs_one":  # (one-vs-one's labels index classes_)
        classes = as_built_labels(classes)
    if len(classes) == 2:
        mean, var = _laplace_latent(est.base_estimator_, b, x)
        proba = b.op("ProbaPair", b.op("LaplaceProbability", mean, var))
        label = b.op("IsPositive", mean)
        return Converted("classifier", {"label": label, "probabilities": proba}, ["label", "probabilities"], classes)
    if est.multi_class == "one_vs_one":
        labels, confidences = [], []
        for pair in est.base_estimator_.estimators_:
            mean, var = _laplace_latent(pair, b, x)
            labels.append(b.op("ExpandLast", b.op("IsPositive", mean)))
            confidences.append(b.op("ExpandLast", b.op("LaplaceProbability", mean, var)))
        scores = b.op("OvoCombine", b.op("Concat", *labels), b.op("Concat", *confidences), n_classes=len(classes))
        return Converted("classifier", {"label": b.op("ArgMax", scores)}, ["label"], classes)
    columns = [
        b.op("ExpandLast", b.op("LaplaceProbability", *_laplace_latent(part, b, x)))
        for part in est.base_estimator_.estimators_
    ]
    scores = b.op("Concat", *columns)
    proba = b.op("OvrNormalize", scores)
    return Converted(
        "classifier", {"label": b.op("ArgMax", scores), "probabilities": proba}, ["label", "probabilities"], classes
    )


def _gp_kernel(kernel: Any) -> dict[str, Any]:
    """A fitted scikit-learn Gaussian-process kernel as the GaussianProcessKernel op's tree."""
    gp = gaussian_process.kernels
    if isinstance(kernel, (gp.Sum, gp.Product)):
        kind = "sum" if isinstance(kernel, gp.Sum) else "product"
        return {"kind": kind, "left": _gp_kernel(kernel.k1), "right": _gp_kernel(kernel.k2)}
    if isinstance(kernel, gp.Exponentiation):
        return {"kind": "power", "base": _gp_kernel(kernel.kernel), "exponent": float(kernel.exponent)}
    if isinstance(kernel, gp.ConstantKernel):
        return {"kind": "constant", "value": float(kernel.constant_value)}
    if isinstance(kernel, gp.WhiteKernel):  # (0 between distinct sets: the noise level is its diagonal's)
        return {"kind": "white", "noise_level": float(kernel.noise_level)}
    if isinstance(kernel, gp.DotProduct):
        return {"kind": "dot_product", "sigma_0": float(kernel.sigma_0)}
    if isinstance(kernel, gp.Matern):  # (before RBF: Matern is one)
        if kernel.nu not in (0.5, 1.5, 2.5, np.inf):
            raise UnsupportedModelError(f"Matern(nu={kernel.nu}): only nu 0.5, 1.5, 2.5 and inf are supported")
        nu = "inf" if np.isinf(kernel.nu) else float(kernel.nu)
        return {"kind": "matern", "length_scale": np.atleast_1d(kernel.length_scale).tolist(), "nu": nu}
    if isinstance(kernel, gp.RBF):
        return {"kind": "rbf", "length_scale": np.atleast_1d(kernel.length_scale).tolist()}
    if isinstance(kernel, gp.RationalQuadratic):
        return {"kind": "rational_quadratic", "length_scale": float(kernel.length_scale), "alpha": float(kernel.alpha)}
    if isinstance(kernel, gp.ExpSineSquared):
        return {
            "kind": "exp_sine_squared",
            "length_scale": float(kernel.length_scale),
            "periodicity": float(kernel.periodicity),
        }
    raise UnsupportedModelError(
        f"Gaussian-process kernel {type(kernel).__name__} is not supported; supported: Sum, Product, "
        "Exponentiation, ConstantKernel, WhiteKernel, DotProduct, RBF, Matern, RationalQuadratic, ExpSineSquared"
    )


@converts(kernel_approximation.AdditiveChi2Sampler)
def additive_chi2_sampler(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The sampled chi-squared feature map (AdditiveChi2 op); a negative entry raises as scikit-learn's."""
    interval = est.sample_interval if est.sample_interval is not None else _CHI2_INTERVALS.get(est.sample_steps)
    if interval is None:
        raise UnsupportedModelError(
            f"AdditiveChi2Sampler(sample_steps={est.sample_steps}) without a sample_interval (scikit-learn refuses it)"
        )
    b.refuse_negative(x, n_features, "Negative values in data passed to X in AdditiveChi2Sampler.")
    y = b.op("AdditiveChi2", x, sample_steps=int(est.sample_steps), sample_interval=float(interval))
    return transformed(y, n_features * (2 * est.sample_steps - 1))


# AdditiveChi2Sampler's sample_interval for 1, 2 and 3 steps when none is given (Vedaldi and Zisserman's figure 2c)
_CHI2_INTERVALS = {1: 0.8, 2: 0.5, 3: 0.4}


@converts(kernel_approximation.SkewedChi2Sampler)
def skewed_chi2_sampler(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """cos(log(x + skewedness) W + offset) * sqrt(2) / sqrt(n_components), as scikit-learn computes it; an
    entry at or below -skewedness raises as there."""
    shifted = b.op("Add", x, b.const("skewedness", np.asarray(float(est.skewedness))))
    b.refuse_rows(b.op("NonPositiveRows", shifted), "X may not contain entries smaller than -skewedness.")
    weights = np.asarray(est.random_weights_, dtype=np.float64)
    projection = b.op(
        "Gemm",
        b.op("Ufunc", shifted, name="log"),
        b.const("random_weights", weights),
        b.const("offset", est.random_offset_),
    )
    scale = b.const("scale", np.asarray(np.sqrt(2.0) / np.sqrt(est.n_components)))
    return transformed(b.op("Mul", b.op("Ufunc", projection, name="cos"), scale), weights.shape[1])


@converts(kernel_approximation.PolynomialCountSketch)
def polynomial_count_sketch(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each of the ``degree`` count sketches of sqrt(gamma) x (and the constant sqrt(coef0) column) as one
    product with a signed 0/1 matrix, then their FFTs multiplied (SketchProduct op)."""
    degree, n = int(est.degree), int(est.n_components)
    hashed, signs = np.asarray(est.indexHash_), np.asarray(est.bitHash_, dtype=np.float64)
    counts = np.zeros((hashed.shape[1], degree * n))
    for d, j in itertools.product(range(degree), range(hashed.shape[1])):
        counts[j, d * n + hashed[d, j]] += signs[d, j]
    scaled = b.op("Mul", x, b.const("sqrt_gamma", np.asarray(np.sqrt(est.gamma))))
    constant = None
    if est.coef0 != 0:  # (the last hashed column is a constant sqrt(coef0))
        constant = b.const("constant_sketch", counts[-1] * np.sqrt(est.coef0))
        counts = counts[:-1]
    sketches = b.op("Gemm", scaled, b.const("count_sketch", counts), *([constant] if constant else []))
    return transformed(b.op("SketchProduct", sketches, degree=degree), n)
