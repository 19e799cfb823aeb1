"""Kernel matrices and one-dimensional interpolation, in the forms scikit-learn computes them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special

from mle_runtime.ops import lowering_platform, register_op
from mle_runtime.ops.chunks import in_row_chunks
from mle_runtime.ops.math import divide

HIGHEST = jax.lax.Precision.HIGHEST
KERNELS = ("linear", "poly", "rbf", "sigmoid", "laplacian", "cosine")


def squared_euclidean(x: jax.Array, points: jax.Array) -> jax.Array:
    """(rows, points) squared distances as scikit-learn's euclidean_distances forms them: |x|^2 - 2 x.p +
    |p|^2 (one matrix product, no (rows, points, features) intermediate), floored at 0."""
    cross = jnp.matmul(x, points.T, precision=HIGHEST)
    sq = jnp.sum(x * x, axis=1)[:, None] - 2 * cross + jnp.sum(points * points, axis=1)[None, :]
    return jnp.maximum(sq, 0)


def unit(a: jax.Array) -> jax.Array:
    """Each vector along the last axis scaled to length 1; a zero vector stays zero (as sklearn's normalize)."""
    norm = jnp.sqrt(jnp.sum(a * a, axis=-1, keepdims=True))
    return divide(a, jnp.where(norm == 0, 1, norm))


def cosine_similarity(x: jax.Array, points: jax.Array) -> jax.Array:
    """(rows, points) x.p / (|x| |p|), a zero row giving 0 (as sklearn's normalize leaves it zero)."""
    return jnp.matmul(unit(x), unit(points).T, precision=HIGHEST)


@register_op("Kernel")
def kernel(
    x: jax.Array, points: jax.Array, *, kernel: str, gamma: float = 1.0, coef0: float = 0.0, degree: float = 3.0
) -> jax.Array:
    """(rows, points) kernel values k(x, p), as sklearn.metrics.pairwise_kernels defines them: linear
    x.p; poly (gamma x.p + coef0)**degree; rbf exp(-gamma |x - p|^2); sigmoid tanh(gamma x.p + coef0);
    laplacian exp(-gamma |x - p|_1); cosine x.p / (|x| |p|) (a zero row gives 0)."""
    if kernel in ("linear", "poly", "sigmoid"):
        dot = jnp.matmul(x, points.T, precision=HIGHEST)
        if kernel == "linear":
            return dot
        if kernel == "poly":
            return (gamma * dot + coef0) ** degree
        return jnp.tanh(gamma * dot + coef0)
    if kernel == "rbf":
        return jnp.exp(-gamma * squared_euclidean(x, points))
    if kernel == "laplacian":
        return jnp.exp(-gamma * over_features(x, points, jnp.abs))
    if kernel == "cosine":
        return cosine_similarity(x, points)
    raise ValueError(f"Kernel: unknown kernel {kernel!r}; known: {KERNELS}")


DIFFERENCE_BLOCK_ROWS = 128


def over_features(
    x: jax.Array,
    points: jax.Array,
    term: Callable[[jax.Array], jax.Array],
    combine: Callable[[jax.Array, jax.Array], jax.Array] = jnp.add,
) -> jax.Array:
    """(rows, points): ``combine`` folded from 0 over the features, in order, of ``term`` of the rows'
    differences from the points, x[:, f] - points[:, f]. Each step is elementwise over (rows, points),
    which XLA on CPU vectorizes, where a (rows, points, features) reduction over its short last axis ran
    far slower (measured, 128 rows x 2,000 points: 3-4x at 4 and 8 features, 1.7-2.9x at 50 and 200). On
    a GPU, where each step would be a kernel launch of its own, the reduction stays (not measured there)."""
    if lowering_platform() != "cpu":
        reduce = jnp.max if combine is jnp.maximum else jnp.sum
        return reduce(term(x[:, None, :] - points[None, :, :]), axis=-1)
    columns, point_columns = x.T, points.T

    def step(f: Any, total: jax.Array) -> jax.Array:
        return combine(total, term(columns[f][:, None] - point_columns[f][None, :]))

    start = jnp.zeros((x.shape[0], points.shape[0]), jnp.result_type(x, points))
    return jax.lax.fori_loop(0, x.shape[1], step, start)


def squared_differences(x: jax.Array, points: jax.Array) -> jax.Array:
    """(rows, points) squared distances summed from the differences, feature by feature as scipy's cdist
    sums them: no cancellation error (a point equal to a row is at exactly 0), at the cost of a pass per
    feature instead of one matrix product."""
    return over_features(x, points, lambda d: d * d)


def _squared_differences(x: jax.Array, points: jax.Array) -> jax.Array:
    """``squared_differences`` in blocks of rows, so that their sums stay in cache: a Gaussian
    process's mean multiplies the distances into large weights that cancel, where the expanded form's
    rounding (|x|^2 - 2 x.p + |p|^2) showed."""
    return in_row_chunks(x, lambda rows: squared_differences(rows, points), DIFFERENCE_BLOCK_ROWS)


@register_op("GaussianProcessKernel")
def gaussian_process_kernel(x: jax.Array, train: jax.Array, *, kernel: dict[str, Any]) -> jax.Array:
    """(rows, training rows) values of a scikit-learn Gaussian-process kernel, given as a tree: "sum",
    "product" (``left``, ``right``), "power" (``base``, ``exponent``), "constant" (``value``), "white"
    (0 between distinct sets), "rbf" and "matern" (``length_scale``, one or per feature; ``nu`` 0.5,
    1.5, 2.5 or "inf"), "rational_quadratic" (``length_scale``, ``alpha``), "exp_sine_squared"
    (``length_scale``, ``periodicity``), "dot_product" (``sigma_0``); each as its ``__call__`` computes it."""
    return _fold_kernel(kernel, lambda leaf: _kernel_values(x, train, leaf))


def _fold_kernel(kernel: dict[str, Any], leaf: Callable[[dict[str, Any]], jax.Array]) -> jax.Array:
    """A kernel tree's value: its sums, products and powers over ``leaf``'s value of each basic kernel."""
    kind = kernel["kind"]
    if kind in ("sum", "product"):
        left, right = _fold_kernel(kernel["left"], leaf), _fold_kernel(kernel["right"], leaf)
        return left + right if kind == "sum" else left * right
    if kind == "power":
        return _fold_kernel(kernel["base"], leaf) ** kernel["exponent"]
    return leaf(kernel)


def _kernel_values(x: jax.Array, train: jax.Array, kernel: dict[str, Any]) -> jax.Array:
    kind = kernel["kind"]
    shape = (x.shape[0], train.shape[0])
    if kind == "constant":
        return jnp.full(shape, kernel["value"], x.dtype)
    if kind == "white":
        return jnp.zeros(shape, x.dtype)
    if kind == "dot_product":
        return jnp.matmul(x, train.T, precision=HIGHEST) + kernel["sigma_0"] ** 2
    if kind in ("rbf", "matern"):
        scale = jnp.asarray(kernel["length_scale"], x.dtype)
        sq = _squared_differences(divide(x, scale), divide(train, scale))
        if kind == "rbf" or kernel["nu"] == "inf":
            return jnp.exp(-0.5 * sq)
        d = jnp.sqrt(sq)
        if kernel["nu"] == 0.5:
            return jnp.exp(-d)
        k = d * math.sqrt(3 if kernel["nu"] == 1.5 else 5)
        return (1.0 + k) * jnp.exp(-k) if kernel["nu"] == 1.5 else (1.0 + k + k**2 / 3.0) * jnp.exp(-k)
    sq = _squared_differences(x, train)
    if kind == "rational_quadratic":
        alpha = kernel["alpha"]
        return (1 + sq / (2 * alpha * kernel["length_scale"] ** 2)) ** -alpha
    if kind == "exp_sine_squared":
        d = jnp.sqrt(sq)
        return jnp.exp(-2 * (jnp.sin(math.pi / kernel["periodicity"] * d) / kernel["length_scale"]) ** 2)
    raise ValueError(f"GaussianProcessKernel: unknown kernel kind {kind!r}")


@register_op("GaussianProcessKernelDiagonal")
def gaussian_process_kernel_diagonal(x: jax.Array, *, kernel: dict[str, Any]) -> jax.Array:
    """(rows,) k(x, x) of the GaussianProcessKernel op's kernel tree, as its ``diag`` computes it: 1 for
    the stationary kernels, the noise level for "white", sigma_0**2 + |x|**2 for "dot_product"."""
    return _fold_kernel(kernel, lambda leaf: _diagonal_values(x, leaf))


def _diagonal_values(x: jax.Array, kernel: dict[str, Any]) -> jax.Array:
    kind = kernel["kind"]
    ones = jnp.ones(x.shape[:1], x.dtype)
    if kind == "constant":
        return ones * kernel["value"]
    if kind == "white":
        return ones * kernel["noise_level"]
    if kind == "dot_product":
        return jnp.einsum("ij,ij->i", x, x, precision=HIGHEST) + kernel["sigma_0"] ** 2
    if kind in ("rbf", "matern", "rational_quadratic", "exp_sine_squared"):
        return ones
    raise ValueError(f"GaussianProcessKernelDiagonal: unknown kernel kind {kind!r}")


# Williams & Barber's logistic sigmoid as 5 error functions (scikit-learn's _gpc.LAMBDAS and COEFS)
_LAPLACE_LAMBDAS = (0.41, 0.4, 0.37, 0.44, 0.39)
_LAPLACE_COEFS = (-1854.8214151, 3516.89893646, 221.29346712, 128.12323805, -2010.49422654)


@register_op("LaplaceProbability")
def laplace_probability(mean: jax.Array, var: jax.Array) -> jax.Array:
    """The positive-class probability of a binary Laplace Gaussian-process classifier from its latent
    mean and variance, as GaussianProcessClassifier.predict_proba approximates it. The coefficients
    cancel (~2,000 each for a result in [0, 1]): float32 keeps ~1e-4 of it."""
    lambdas = jnp.asarray(_LAPLACE_LAMBDAS, mean.dtype)
    alpha, mean, var = 1 / (2 * var[..., None]), mean[..., None], var[..., None]
    integrals = (
        jnp.sqrt(math.pi / alpha)
        * jax.scipy.special.erf(lambdas * mean * jnp.sqrt(alpha / (alpha + lambdas**2)))
        / (2 * jnp.sqrt(var * 2 * math.pi))
    )
    return jnp.sum(jnp.asarray(_LAPLACE_COEFS, mean.dtype) * integrals, axis=-1) + 0.5 * sum(_LAPLACE_COEFS)


@register_op("Interp1d")
def interp1d(x: jax.Array, xp: jax.Array, fp: jax.Array, *, outside: str = "nan") -> jax.Array:
    """Piecewise-linear interpolation of (xp, fp) at the single column of x, (rows,): scipy's interp1d
    (IsotonicRegression). Outside [xp[0], xp[-1]]: "nan", or "clip" to the end values."""
    t = x[:, 0]
    if outside == "clip":
        t = jnp.clip(t, xp[0], xp[-1])
    hi = jnp.clip(jnp.searchsorted(xp, t, side="left"), 1, xp.shape[0] - 1)
    x_lo, x_hi, y_lo, y_hi = xp[hi - 1], xp[hi], fp[hi - 1], fp[hi]
    y = (y_hi - y_lo) / (x_hi - x_lo) * (t - x_lo) + y_lo
    if outside == "nan":
        y = jnp.where((t < xp[0]) | (t > xp[-1]), jnp.nan, y)
    return y


@register_op("LogSumExp")
def log_sum_exp(x: jax.Array) -> jax.Array:
    """log(sum(exp(x))) over the last axis, computed stably."""
    return jax.nn.logsumexp(x, axis=-1)


@register_op("EuclideanDistances")
def euclidean_distances(x: jax.Array, points: jax.Array, *, squared: bool = False) -> jax.Array:
    """(rows, points) euclidean distances (squared with ``squared``), as sklearn's euclidean_distances."""
    sq = squared_euclidean(x, points)
    return sq if squared else jnp.sqrt(sq)


@register_op("AdditiveChi2")
def additive_chi2(x: jax.Array, *, sample_steps: int, sample_interval: float) -> jax.Array:
    """AdditiveChi2Sampler's features, (rows, features * (2 sample_steps - 1)): sqrt(x L), then for each
    step j, sqrt(2 x L / cosh(pi j L)) times cos and sin of j L log(x), blocks side by side as its
    ``_transform_dense`` stacks them; a zero entry gives zeros (its log is never used)."""
    nonzero = x != 0
    safe = jnp.where(nonzero, x, 1)
    blocks = [jnp.where(nonzero, jnp.sqrt(safe * sample_interval), 0)]
    log_step, step = sample_interval * jnp.log(safe), 2 * safe * sample_interval
    for j in range(1, sample_steps):
        factor = jnp.sqrt(step / math.cosh(math.pi * j * sample_interval))
        blocks += [
            jnp.where(nonzero, factor * jnp.cos(j * log_step), 0),
            jnp.where(nonzero, factor * jnp.sin(j * log_step), 0),
        ]
    return jnp.concatenate(blocks, axis=-1)


@register_op("SketchProduct")
def sketch_product(sketches: jax.Array, *, degree: int) -> jax.Array:
    """PolynomialCountSketch's features from its ``degree`` count sketches side by side, (rows, degree * n):
    the real part of the inverse FFT of the product of their FFTs (a circular convolution), (rows, n)."""
    spectra = jnp.fft.fft(sketches.reshape(*sketches.shape[:-1], degree, -1), axis=-1)
    return jnp.real(jnp.fft.ifft(jnp.prod(spectra, axis=-2), axis=-1)).astype(sketches.dtype)
