"""Kernel models (KernelRidge) and isotonic regression."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import isotonic, kernel_ridge

from mle_runtime.converters._builder import Converted, GraphBuilder
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
    if est.out_of_bounds == "raise":
        raise UnsupportedModelError(
            "IsotonicRegression(out_of_bounds='raise') is not supported: a compiled graph cannot raise; "
            "refit with out_of_bounds='nan' or 'clip'"
        )
    xp, fp, outside = np.asarray(est.X_thresholds_), np.asarray(est.y_thresholds_), est.out_of_bounds
    if len(xp) == 1:  # scikit-learn predicts the one value everywhere
        xp, fp, outside = np.array([xp[0], xp[0] + 1.0]), np.repeat(fp, 2), "clip"
    y = b.op("Interp1d", x, b.const("X_thresholds", xp), b.const("y_thresholds", fp), outside=outside)
    return Converted("regressor", {"predictions": y}, ["predictions"])
