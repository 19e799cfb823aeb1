"""Every registered op has a record here: inputs, attributes and a numpy reference."""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aten_records
import jax
import keras_records
import numpy as np
import pytest
from scipy import special, stats
from scipy.special import expit, log_softmax, softmax

from mle_runtime.ops import all_ops, get_op, register_op
from mle_runtime.runtime import precision_scope

R = np.random.default_rng(0)
X = R.normal(size=(5, 4))
V = R.normal(size=4)
EPS64 = np.finfo(np.float64).eps
NANX = np.where(R.random((5, 4)) < 0.3, np.nan, X)


@dataclass(frozen=True)
class Record:
    inputs: tuple[np.ndarray, ...]
    reference: Callable[..., np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    atol: float = 1e-15  # looser only where the op's own arithmetic cancels (said at the record)


def _additive_chi2_reference(x: np.ndarray, steps: int, interval: float) -> np.ndarray:
    from sklearn.kernel_approximation import AdditiveChi2Sampler

    return AdditiveChi2Sampler._transform_dense(x, steps, interval)


def _dirichlet_doc_topics_reference(x: np.ndarray, exp_topic_word: np.ndarray) -> np.ndarray:
    """scikit-learn's own E-step (LatentDirichletAllocation.transform's, before normalizing)."""
    from sklearn.decomposition._lda import _update_doc_distribution

    return _update_doc_distribution(x, exp_topic_word, 0.3, 100, 1e-3, False, None)[0]  # type: ignore[no-any-return]


def barycenter_weights(x: np.ndarray, t: np.ndarray, i: np.ndarray, reg: float) -> np.ndarray:
    from sklearn.manifold._locally_linear import barycenter_weights as sklearn_weights

    return sklearn_weights(x, t, i, reg=reg)  # type: ignore[no-any-return]


def _yeo_johnson_inverse_reference(x: np.ndarray) -> np.ndarray:
    """Yeo-Johnson's inverse at lambdas 0, 0.7 and 2 (the first and last on their exp branches)."""
    with np.errstate(invalid="ignore"):  # (np.where computes both branches; the one taken is finite)
        return np.column_stack(
            [
                np.where(x[:, 0] >= 0, np.exp(x[:, 0]) - 1, 1 - np.power(-2 * x[:, 0] + 1, 1 / 2)),
                np.where(
                    x[:, 1] >= 0, np.power(0.7 * x[:, 1] + 1, 1 / 0.7) - 1, 1 - np.power(-1.3 * x[:, 1] + 1, 1 / 1.3)
                ),
                np.where(x[:, 2] >= 0, np.power(2 * x[:, 2] + 1, 1 / 2) - 1, 1 - np.exp(-x[:, 2])),
            ]
        )


def _omp_reference(cov: np.ndarray, gram: np.ndarray, n_nonzero: int) -> np.ndarray:
    from sklearn.linear_model import orthogonal_mp_gram

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # (the zero row: "Orthogonal matching pursuit ended prematurely")
        return orthogonal_mp_gram(gram, cov.T, n_nonzero_coefs=n_nonzero).T  # type: ignore[no-any-return]


def _kernel_density_reference(x: np.ndarray, t: np.ndarray, lw: np.ndarray, h: float, norm: float) -> np.ndarray:
    from scipy.special import logsumexp

    d = np.sqrt(((x[:, None, :] - t[None, :, :]) ** 2).sum(axis=-1))
    return logsumexp(-0.5 * d * d / (h * h) + lw, axis=1) + norm  # type: ignore[no-any-return]


def _ovr(p: np.ndarray) -> np.ndarray:
    s = p.sum(axis=-1, keepdims=True)
    return np.where(s == 0, 1.0 / p.shape[-1], p / np.where(s == 0, 1, s))


def _gaussian_process_record() -> Record:
    """Every kernel kind in one tree, against scikit-learn's own kernel object."""

    from mle_runtime.converters.sklearn.kernels import _gp_kernel

    tree = _gp_kernel_tree()
    train = R.normal(size=(6, 4))
    return Record((X, train), lambda x, t: tree(x, t), {"kernel": _gp_kernel(tree)})


def _gp_kernel_tree() -> Any:
    from sklearn.gaussian_process import kernels as k

    return (
        k.ConstantKernel(2.0) * k.RBF([1.0, 0.5, 2.0, 1.5])
        + k.Matern(0.7, nu=2.5)
        + k.RationalQuadratic(0.8, 1.3) * k.ExpSineSquared(1.1, 3.0)
        + k.DotProduct(0.5) ** 2
        + k.WhiteKernel(0.3)
        + k.Matern(1.2, nu=0.5)
        + k.Matern([0.5, 1.0, 1.5, 2.0], nu=1.5)
        + k.Matern(0.9, nu=np.inf)
    )


def _gaussian_process_diagonal_record() -> Record:
    from mle_runtime.converters.sklearn.kernels import _gp_kernel

    tree = _gp_kernel_tree()
    return Record((X,), lambda x: tree.diag(x), {"kernel": _gp_kernel(tree)})


def _laplace_record() -> Record:
    """Latent means and variances (small, large, both signs) against scikit-learn's own formula."""
    from scipy.special import erf
    from sklearn.gaussian_process._gpc import COEFS, LAMBDAS

    def reference(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        alpha = 1 / (2 * var)
        gamma = LAMBDAS * mean
        integrals = (
            np.sqrt(np.pi / alpha) * erf(gamma * np.sqrt(alpha / (alpha + LAMBDAS**2))) / (2 * np.sqrt(var * 2 * np.pi))
        )
        return (COEFS * integrals).sum(axis=0) + 0.5 * COEFS.sum()

    # the coefficients (~2,000) cancel to a probability: float64 sums agree to ~2e-13, whatever their order
    inputs = (np.array([-3.0, -0.2, 0.0, 0.4, 5.0]), np.array([0.3, 1.0, 2.0, 0.05, 4.0]))
    return Record(inputs, reference, atol=1e-12)


def _knn_impute_record() -> Record:
    """Training rows with gaps, one query row sharing no coordinate with the donors of its gap (it takes
    the column mean), inverse-distance weights; against scikit-learn's KNNImputer."""
    from sklearn.impute import KNNImputer

    train = R.normal(size=(30, 4))
    train[R.random(train.shape) < 0.2] = np.nan
    x = R.normal(size=(6, 4))
    x[R.random(x.shape) < 0.3] = np.nan
    x[0] = [np.nan, np.nan, np.nan, 0.5]
    train[:, 3] = np.where(np.isnan(train[:, 0]), train[:, 3], np.nan)  # donors of column 0 lack column 3
    present = ~np.isnan(train)
    means = np.where(present, train, 0).sum(axis=0) / present.sum(axis=0)
    donors = [int(d) for d in present.sum(axis=0)]

    def reference(x: np.ndarray, train: np.ndarray, _: np.ndarray) -> np.ndarray:
        return KNNImputer(n_neighbors=3, weights="distance").fit(train).transform(x)

    return Record((x, train, means), reference, {"k": 3, "weights": "distance", "donors": donors})


def _local_outlier_record() -> Record:
    """Four training rows on a line with their k-distances and densities; k = 2 neighbours."""
    train = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]])
    k_distance, lrd = np.array([1.0, 2.0, 2.0, 4.0]), np.array([0.7, 0.6, 0.5, 0.25])
    x = np.array([[0.5, 0.0], [5.0, 1.0], [-2.0, 0.0]])

    def reference(x: np.ndarray, train: np.ndarray, k_distance: np.ndarray, lrd: np.ndarray) -> np.ndarray:
        d = np.sqrt(((x[:, None, :] - train[None, :, :]) ** 2).sum(-1))
        index = np.argsort(d, axis=1, kind="stable")[:, :2]
        reach = np.maximum(np.take_along_axis(d, index, axis=1), k_distance[index])
        own = 1.0 / (reach.mean(axis=1) + 1e-10)
        return -(lrd[index] / own[:, None]).mean(axis=1)

    return Record((x, train, k_distance, lrd), reference, {"k": 2, "metric": "euclidean"})


def _quantile_record() -> Record:
    """Quantiles with repeated values (a jump to interpolate from both sides), inputs on them, past both
    ends and NaN; a normal output, so that the 1e-7 bounds and the clipping count too."""
    quantiles = np.array([[-2.0, 0.0], [-1.0, 1.0], [-1.0, 1.0], [0.5, 1.0], [3.0, 4.0]])
    references = np.linspace(0, 1, 5)
    x = np.array([[-1.0, 1.0], [-2.0, 0.0], [3.0, 4.0], [-5.0, 9.0], [0.25, 0.5], [np.nan, 4.0 - 5e-8]])
    top, bottom = quantiles[-1] - 1e-7, quantiles[0] + 1e-7
    clip = [float(stats.norm.ppf(1e-7 - np.spacing(1))), float(stats.norm.ppf(1 - (1e-7 - np.spacing(1))))]

    def reference(x: np.ndarray, q: np.ndarray, r: np.ndarray, *_: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for j in range(x.shape[1]):
            t = x[:, j]
            y = 0.5 * (np.interp(t, q[:, j], r) - np.interp(-t, -q[::-1, j], -r[::-1]))
            y[t + 1e-7 > q[-1, j]] = 1.0
            y[t - 1e-7 < q[0, j]] = 0.0
            out[:, j] = np.where(np.isnan(t), np.nan, np.clip(stats.norm.ppf(y), *clip))
        return out

    return Record((x, quantiles, references, top, -bottom), reference, {"normal": True, "clip": clip})


def _tree_record() -> Record:
    """Two copies of a 3-leaf tree: x1 <= 0 (NaN goes left) -> 1; else x2 <= 0.5 -> 2, else 3."""
    from mle_runtime.converters._builder import GraphBuilder
    from mle_runtime.converters.trees import Tree, tree_ensemble

    tree = Tree(
        left=np.array([1, -1, 3, -1, -1]),
        right=np.array([2, -1, 4, -1, -1]),
        feature=np.array([1, 0, 2, 0, 0]),
        threshold=np.array([0.0, 0, 0.5, 0, 0]),
        default_left=np.array([True, False, False, False, False]),
        value=np.array([[0.0], [1.0], [0.0], [2.0], [3.0]]),
    )
    b = GraphBuilder()
    tree_ensemble(b, "x", [tree, tree], 4, 1, compare_float32=False)
    node = b.nodes[-1]

    def reference(x: np.ndarray, *_: np.ndarray) -> np.ndarray:
        leaf = np.where(~(x[:, 1] > 0), 1.0, np.where(x[:, 2] <= 0.5, 2.0, 3.0))
        return 2 * leaf[:, None]

    return Record((NANX, *(b.tensors[n] for n in node.inputs[1:])), reference, node.attrs)


def _libsvm_probability(dec: np.ndarray, a: np.ndarray, b: np.ndarray, k: int = 3) -> np.ndarray:
    """libsvm's svm_predict_probability and multiclass_probability, transcribed loop for loop."""
    out = np.empty((len(dec), k))
    for row, values in enumerate(dec):
        f = values * a + b
        sig = np.where(f >= 0, np.exp(-np.abs(f)) / (1 + np.exp(-np.abs(f))), 1 / (1 + np.exp(-np.abs(f))))
        r = np.zeros((k, k))
        for p, (i, j) in enumerate(itertools.combinations(range(k), 2)):
            r[i, j] = min(max(sig[p], 1e-7), 1 - 1e-7)
            r[j, i] = 1 - r[i, j]
        q = np.array(
            [
                [-r[j, t] * r[t, j] if j != t else sum(r[s, t] ** 2 for s in range(k) if s != t) for j in range(k)]
                for t in range(k)
            ]
        )
        prob = np.full(k, 1.0 / k)
        for _ in range(max(100, k)):
            qp = q @ prob
            pqp = prob @ qp
            if np.max(np.abs(qp - pqp)) < 0.005 / k:
                break
            for t in range(k):
                diff = (-qp[t] + pqp) / q[t, t]
                prob[t] += diff
                pqp = (pqp + diff * (diff * q[t, t] + 2 * qp[t])) / (1 + diff) / (1 + diff)
                qp = (qp + diff * q[t]) / (1 + diff)
                prob /= 1 + diff
        out[row] = prob
    return out


TRAIN = R.normal(size=(9, 4))


def _nearest(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.abs(x[:, None, :] - TRAIN[None, :, :]).sum(axis=-1)  # manhattan
    index = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, index, axis=1), index


def _radius(x: np.ndarray, combine: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Radius-5 manhattan neighbourhoods of x in TRAIN combined; for votes, normalized with the outlier column."""
    inside = np.abs(x[:, None, :] - TRAIN[None, :, :]).sum(axis=-1) <= 5.0
    assert inside.any(axis=1).all()
    out = combine(inside).astype(np.float64)
    if out.shape[1] == 1:
        return out
    return np.hstack([out / out.sum(axis=1, keepdims=True), np.zeros((len(x), 1))])


def _vote(x: np.ndarray, _train: np.ndarray, labels: np.ndarray) -> np.ndarray:
    d, index = _nearest(x, 3)
    votes = np.stack([((labels[index] == c) / d).sum(axis=1) for c in range(2)], axis=1)
    return votes / votes.sum(axis=1, keepdims=True)


def _oblivious_reference(x: np.ndarray, features: np.ndarray, borders: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), values.shape[1]))
    for t in range(features.shape[0]):
        index = sum((x[:, features[t, d]] > borders[t, d]).astype(int) << d for d in range(features.shape[1]))
        out += values[t * 4 + index]
    return out


# Two text features' terms and counts after one input column, two term slots each (see ops/text.py).
TEXT_INPUT = np.array([[0.0, 3, 1, 2.0, 1.0, 0, 0, 5.0, 0.0], [0.0, 0, 0, 0.0, 0.0, 2, 4, 1.0, 3.0]])
TERMS = np.array([[3, 1, 0], [0, 2, 2]], dtype=np.int32)
TERM_VALUES = np.array([[2.0, 0.5, 0.0], [1.5, -1.0, 2.0]])


def _scattered(terms: np.ndarray, values: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(terms), width))
    for r in range(len(terms)):
        np.add.at(out[r], terms[r], values[r])
    return out


def _log_probability(p: np.ndarray) -> np.ndarray:
    return np.log(np.where(p == 0, np.finfo(p.dtype).smallest_normal, p))


OPS: dict[str, Record] = {
    "Add": Record((X, V), np.add),
    "Sub": Record((X, V), np.subtract),
    "Mul": Record((X, V), np.multiply),
    "Div": Record((X, V), np.divide),
    "Exp": Record((X,), np.exp),
    "Sigmoid": Record((X,), expit),
    "Softmax": Record((X,), lambda x: softmax(x, axis=-1)),
    "LogSoftmax": Record((X * 400,), lambda x: log_softmax(x, axis=-1)),
    "LogProbability": Record((np.array([[0.0, 0.25, 0.75], [1.0, 0.0, 0.0]]),), _log_probability),
    "LogMeanExp": Record((X * 400, X[::-1] * 400), lambda a, b: np.logaddexp(a, b) - np.log(2)),
    "Clip": Record((X,), lambda x: np.clip(x, -0.5, 0.5), {"low": -0.5, "high": 0.5}),
    "SqueezeLast": Record((X[:, :1],), lambda x: x[:, 0]),
    "Concat": Record((X, X[:, :2]), lambda a, b: np.concatenate([a, b], axis=-1)),
    "TakeColumns": Record((X, np.array([3, 0, 0])), lambda x, i: x[:, i]),
    "ArgMax": Record((np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]),), lambda x: np.argmax(x, axis=-1)),
    "IsPositive": Record((np.array([-1.0, 0.0, 2.0]),), lambda x: (x > 0).astype(np.int32)),
    "Identity": Record((X,), lambda x: x),
    "Gemm": Record((X, R.normal(size=(4, 3)), V[:3]), lambda x, w, b: x @ w + b),
    "BinaryProba": Record((V,), lambda s: np.stack([1 - expit(s), expit(s)], axis=-1)),
    "OvrNormalize": Record((np.vstack([np.abs(X), np.zeros((1, 4))]),), _ovr),
    "ModifiedHuberProba": Record((X,), lambda s: _ovr((np.clip(s, -1, 1) + 1) / 2), {"binary": False}),
    "Normalize": Record(
        (np.vstack([X, np.zeros((1, 4))]),),
        lambda x: x / np.where((n := np.linalg.norm(x, axis=1, keepdims=True)) == 0, 1, n),
        {"norm": "l2"},
    ),
    "Binarize": Record((X,), lambda x: (x > 0.1).astype(x.dtype), {"threshold": 0.1}),
    "TextTerms": Record((TEXT_INPUT,), lambda x: x[:, 5:7].astype(np.int32), {"start": 1, "features": 2, "feature": 1}),
    "TextCounts": Record((TEXT_INPUT,), lambda x: x[:, 3:5], {"start": 1, "features": 2, "feature": 0}),
    "GatherValues": Record((V, TERMS), lambda table, index: table[index]),
    "SparseGemm": Record(  # a repeated term (row 1) counts twice, as scattered columns would
        (TERMS, TERM_VALUES, R.normal(size=(4, 2)), V[:2]),
        lambda t, v, w, b: _scattered(t, v, 4) @ w + b,
    ),
    "ScatterColumns": Record((TERMS, TERM_VALUES), lambda t, v: _scattered(t, v, 5), {"width": 5}),
    "SublinearTf": Record(  # counts, a zero, and values scipy's sparse log would meet in a dense input
        (np.array([[0.0, 1.0, 3.0, 0.25], [7.0, 0.0, 2.0, 1e-3]]),),
        lambda x: np.where(x != 0, np.log(np.where(x != 0, x, 1)) + 1, 0),
    ),
    "Impute": Record((NANX, V), lambda x, f: np.where(np.isnan(x), f, x), {"missing": "nan"}),
    "IsMissing": Record((NANX,), lambda x: np.isnan(x).astype(x.dtype), {"missing": "nan"}),
    "PowerTransform": Record(  # lambdas 0 and 2 take scipy's logarithm branches
        (NANX, np.array([0.0, 2.0, 0.7, -1.3])),
        lambda x, lambdas: np.stack([stats.yeojohnson(x[:, j], lam) for j, lam in enumerate(lambdas)], axis=1),
        {
            "method": "yeo-johnson",
            "log_features": [True, False, False, False],
            "log_negative": [False, True, False, False],
        },
    ),
    "QuantileTransform": _quantile_record(),
    "TargetEncode": Record(  # feature 0: a missing-value category seen; feature 1: two classes, none
        (
            np.array([[1.0, 5.0], [np.nan, 7.0], [2.0, np.nan], [9.0, 5.0]]),
            *(np.array([1.0, 2.0]), np.array([[0.1], [0.2], [0.9]]), np.array([0.5])),
            *(np.array([5.0, 7.0]), np.array([[0.3, 0.7], [0.6, 0.4]]), np.array([0.45, 0.55])),
        ),
        lambda *_: np.array([[0.1, 0.3, 0.7], [0.9, 0.6, 0.4], [0.2, 0.45, 0.55], [0.5, 0.3, 0.7]]),
        {"missing_category": [True, False]},
    ),
    "LocalOutlierScores": _local_outlier_record(),
    "KNNImpute": _knn_impute_record(),
    "GaussianProcessKernel": _gaussian_process_record(),
    "GaussianProcessKernelDiagonal": _gaussian_process_diagonal_record(),
    "LaplaceProbability": _laplace_record(),
    "ConstantRows": Record((X, V[:2]), lambda x, v: np.tile(v, (len(x), 1))),
    "NonPositiveRows": Record(
        (np.array([[1.0, 2.0], [0.0, 3.0], [np.nan, 1.0], [4.0, -1e-300]]),),
        lambda x: np.array([0, 1, 0, 1]),
    ),
    "TreeEnsemble": _tree_record(),
    "ObliviousEnsemble": Record(
        (X, np.array([[0, 3], [2, 2]]), np.array([[0.1, -0.2], [0.0, 1.0]], np.float32), R.normal(size=(8, 2))),
        _oblivious_reference,
        {"n_outputs": 2},
    ),
    "CategoryCodes": Record(  # column 0: categories 5, 0, 2 in the framework's order, sorted with their codes
        (
            np.array([[0.0, 1.0], [2.0, 5.0], [7.0, 2.0], [np.nan, 0.0], [5.0, 1.0]]),
            np.array([0.0, 2.0, 5.0]),
            np.array([1.0, 2.0, 0.0]),
        ),
        lambda x, *_: np.stack([np.array([1.0, 2.0, np.nan, np.nan, 0.0]), x[:, 1]], axis=1),
        {"columns": [0], "recoded": True},
    ),
    "IsolationScore": Record((np.abs(V) * 4, np.array(3.0)), lambda d, n: -(2 ** (-d / n))),
    "Cast": Record((np.array([0, 1, 1], dtype=np.int32),), lambda x: x.astype(np.float64), {"dtype": "float"}),
    "SegmentArgMax": Record(
        (np.array([[1.0, 3.0, 3.0, 0.0, -1.0], [2.0, 0.0, 1.0, 5.0, 6.0]]),),
        lambda x: np.stack([np.argmax(x[:, :3], axis=1), np.argmax(x[:, 3:], axis=1)], axis=1),
        {"sizes": [3, 2]},
    ),
    "ProbaPair": Record((expit(V),), lambda p: np.stack([1 - p, p], axis=-1)),
    "Tanh": Record((X,), np.tanh),
    "CategoryOneHot": Record(
        (np.array([[1.0, 2.0], [np.nan, 3.0], [7.0, 2.0]]), np.array([1.0, 7.0, np.nan])),
        lambda x, c: np.array([[1.0, 0, 0], [0, 0, 1], [0, 1, 0]]),
        {"column": 0},
    ),
    "OrdinalCodes": Record(
        (np.array([[2.0], [np.nan], [5.0], [1.0]]), np.array([1.0, 2.0, 4.0])),
        lambda x, c: np.array([1.0, -2.0, -1.0, 0.0]),
        {"column": 0, "unknown": -1.0, "missing": -2.0},
    ),
    "BinIndex": Record(
        (np.array([[0.5, 3.0], [1.0, -1.0], [2.5, 9.0]]), np.array([[1.0, 2.0], [0.0, np.inf]])),
        lambda x, e: np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]]),
    ),
    "BinIndex@2": Record(
        (np.array([[0.5, 3.0], [1.0, -1.0], [2.5, 9.0]]), np.array([[np.nextafter(1.0, 0), 2.0], [0.0, np.inf]])),
        lambda x, t: np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]]),
    ),
    "Ufunc": Record((np.abs(X),), np.log1p, {"name": "log1p"}),
    "OneHot": Record((np.array([2, 0, 1, 2]),), lambda i: np.eye(3)[i], {"n": 3}),
    "ExpandLast": Record((V,), lambda v: v[:, None]),
    "WeightedSum": Record(
        (X, 2 * X, X**2), lambda a, b, c: (a * 0.5 + b * 2 + c * 1.5) / 4.0, {"weights": [0.5, 2, 1.5], "divisor": 4.0}
    ),
    "SammeDecision": Record(
        (np.array([0, 1, 2, 1]), np.array([1, 1, 0, 2])),
        lambda a, b: (
            (np.where(a[:, None] == np.arange(3), 0.7, -0.35) + np.where(b[:, None] == np.arange(3), 0.2, -0.1)) / 0.9
        ),
        {"weights": [0.7, 0.2], "n_classes": 3},
    ),
    "SammeProba": Record((X[:, :3],), lambda d: softmax(d / 2, axis=1), {"n_classes": 3}),
    "WeightedMedian": Record(
        (np.array([0.5, 0.3, 0.2]), np.array([1.0, 5.0]), np.array([3.0, 4.0]), np.array([2.0, 6.0])),
        lambda w, a, b, c: np.array([1.0, 5.0]),
    ),
    "KNeighborsVote": Record(
        (X, TRAIN, np.array([0, 1, 1, 0, 1, 0, 0, 1, 1])),
        _vote,
        {"k": 3, "n_classes": 2, "metric": "manhattan", "weights": "distance"},
    ),
    "RadiusNeighborsVote": Record(
        (X, TRAIN, np.array([0, 1, 1, 0, 1, 0, 0, 1, 1])),
        lambda x, t, y: _radius(x, lambda inside: np.stack([(inside & (y == c)).sum(1) for c in range(2)], axis=1)),
        {"radius": 5.0, "n_classes": 2, "metric": "manhattan"},
    ),
    "RadiusNeighborsMean": Record(
        (X, TRAIN, np.arange(9.0)),
        lambda x, t, y: _radius(x, lambda inside: (inside * y).sum(1, keepdims=True) / inside.sum(1, keepdims=True))[
            :, 0
        ],
        {"radius": 5.0, "metric": "manhattan"},
    ),
    "KNeighborsMean": Record(
        (X, TRAIN, np.arange(9.0)), lambda x, t, y: y[_nearest(x, 4)[1]].mean(axis=1), {"k": 4, "metric": "manhattan"}
    ),
    "CategoricalScores": Record(
        (np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 3.0]]), R.normal(size=(2, 3, 2)), np.array([3.0, 2.0])),
        lambda x, t, n: np.array(
            [
                [*(t[0, 0] + t[1, 1]), 0.0],
                [*(t[0, 2] + t[1, 0]), 0.0],
                [*(t[0, 1] + t[1, 0]), 1.0],  # 3 is no category of feature 1: flagged (its score reads code 0)
            ]
        ),
    ),
    "OvoCombine": Record(
        (np.array([[0, 1, 1], [1, 0, 0]]), np.array([[-0.5, 2.0, 0.3], [1.0, -1.0, -0.2]])),
        lambda pred, conf: np.array(
            [
                [1.0, 0.0, 2.0] + (s := np.array([0.5 - 2.0, -0.5 - 0.3, 2.0 + 0.3])) / (3 * (np.abs(s) + 1)),
                [1.0, 2.0, 0.0] + (t := np.array([-1.0 + 1.0, 1.0 + 0.2, -1.0 - 0.2])) / (3 * (np.abs(t) + 1)),
            ]
        ),
        {"n_classes": 3},
    ),
    "OvoVotes": Record(
        (np.array([[1.0, -2.0, 0.0], [-0.5, -0.1, 3.0], [0.2, 0.3, -0.4]]),),
        lambda d: np.array([[1.0, 0.0, 2.0], [0.0, 2.0, 1.0], [2.0, 0.0, 1.0]]),
        {"n_classes": 3},
    ),
    "LibsvmProbability": Record(
        (np.array([[1.0, -2.0, 0.0], [-0.5, -0.1, 3.0], [4.0, 0.3, -0.4]]), np.array([-1.5, -2.0, -0.7]), V[:3]),
        _libsvm_probability,
        {"n_classes": 3},
    ),
    "LogSumExp": Record((X,), lambda x: np.log(np.exp(x).sum(axis=-1))),
    "AdditiveChi2": Record(
        (np.where(X > 1, 0.0, np.abs(X)),),  # (zeros among the entries: their features are zero)
        lambda x: _additive_chi2_reference(x, 3, 0.4),
        {"sample_steps": 3, "sample_interval": 0.4},
    ),
    "DirichletDocTopics": Record(
        (
            np.vstack([np.floor(np.abs(X) * 3), np.zeros((1, 4))]),
            np.abs(R.normal(size=(3, 4))) / 4,
        ),  # (an empty document too)
        lambda x, beta: _dirichlet_doc_topics_reference(x, beta),
        {"prior": 0.3, "max_iter": 100, "tol": 1e-3, "eps": float(np.finfo(np.float64).eps)},
        atol=1e-13,  # (the counts-weighted sums run in another order than scikit-learn's loop over a document's terms)
    ),
    "KNeighbors": Record(
        (X, R.normal(size=(9, 4))),
        lambda x, t: np.argsort(((x[:, None, :] - t[None, :, :]) ** 2).sum(axis=-1), axis=1, kind="stable")[:, :3],
        {"k": 3, "metric": "euclidean"},
    ),
    "NeighborDistances": Record(
        (X, R.normal(size=(9, 4)), np.array([[0, 3], [8, 1], [2, 2], [5, 4], [7, 6]])),
        lambda x, t, i: np.abs(x[:, None, :] - t[i]).sum(axis=-1),
        {"metric": "manhattan"},
    ),
    "GeodesicDistances": Record(
        (
            np.abs(X[:, :3]),
            np.array([[0, 3, 1], [2, 2, 2], [4, 0, 3], [1, 2, 3], [3, 4, 0]]),
            np.abs(R.normal(size=(5, 5))),
        ),
        lambda d, i, paths: np.min(paths[i] + d[:, :, None], axis=1),
    ),
    "LocallyLinear": Record(
        (
            X,
            R.normal(size=(6, 4)),
            np.array([[0, 3, 1], [2, 5, 4], [4, 0, 3], [1, 2, 3], [3, 4, 0]]),
            R.normal(size=(6, 2)),
        ),
        lambda x, t, i, e: np.einsum("rk,rkc->rc", barycenter_weights(x, t, i, reg=0.01), e[i]),
        {"reg": 0.01},
        1e-14,  # (a Cholesky solve in another order than LAPACK's)
    ),
    "OrthogonalMatchingPursuit": Record(
        (np.vstack([X @ (d := R.normal(size=(6, 4))).T, np.zeros((1, 6))]), d @ d.T),  # (a zero row stops at once)
        lambda cov, gram: _omp_reference(cov, gram, 3),
        {"n_nonzero": 3},
        1e-14,  # (Cholesky solves in another order than LAPACK's)
    ),
    "SoftThreshold": Record((X,), lambda c: np.sign(c) * np.maximum(np.abs(c) - 0.5, 0), {"threshold": 0.5}),
    "SplitSign": Record((X,), lambda c: np.hstack([np.maximum(c, 0), -np.minimum(c, 0)])),
    "PowerTransformInverse": Record(
        (X[:, :3], np.array([0.0, 0.7, 2.0])),
        lambda x, lam: _yeo_johnson_inverse_reference(x),
        {"method": "yeo-johnson", "log_features": [True, False, False], "log_negative": [False, False, True]},
    ),
    "QuantileInverse": Record(
        (np.vstack([X[:, :2], [[-9.0, 9.0]]]), np.sort(R.normal(size=(6, 2)), axis=0), np.linspace(0, 1, 6)),
        lambda x, q, r: np.column_stack(
            [np.interp(stats.norm.cdf(x[:, i]), r, q[:, i]) for i in range(2)]
        ),  # (the row at +-9: within 1e-7 of the ends, the end quantiles, as interp gives them too)
        {"normal": True},
    ),
    "Float32Values": Record((X,), lambda x: x.astype(np.float32).astype(np.float64)),
    "GradientBoostingInit": Record(  # probabilities at 0 and 1 are clipped to float64's eps, as scikit-learn's
        (np.array([[0.2, 0.8], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]),),
        lambda p: special.logit(np.clip(p, EPS64, 1 - EPS64))[:, 1:],
        {"link": "logit"},
    ),
    "GradientBoostingInit (half logit)": Record(
        (np.array([[0.3, 0.7], [0.9, 0.1]]),), lambda p: 0.5 * special.logit(p)[:, 1:], {"link": "half_logit"}
    ),
    "GradientBoostingInit (multinomial logit)": Record(
        (np.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]]),),
        lambda p: (lambda c: np.log(c / stats.gmean(c, axis=1)[:, None]))(np.clip(p, EPS64, 1 - EPS64)),
        {"link": "multinomial_logit"},
    ),
    "GradientBoostingInit (identity)": Record((X[:, 0],), lambda v: v[:, None], {"link": "identity"}),
    "ReplaceColumn": Record(
        (X, np.arange(5.0), np.array([1.0, 0.0, 0.0, 1.0, 1.0])),
        lambda x, v, f: np.column_stack([x[:, 0], np.where(f != 0, v, x[:, 1]), x[:, 2:]]),
        {"column": 1},
    ),
    "KernelDensity": Record(
        (X, R.normal(size=(7, 4)), np.log(R.uniform(0.5, 2.0, 7))),
        lambda x, t, lw: _kernel_density_reference(x, t, lw, 0.7, 0.25),
        {"kernel": "gaussian", "bandwidth": 0.7, "metric": "euclidean", "log_norm": 0.25},
    ),
    "SketchProduct": Record(
        (R.normal(size=(5, 3 * 4)),),
        lambda s: np.real(np.fft.ifft(np.prod(np.fft.fft(s.reshape(5, 3, 4), axis=-1), axis=-2), axis=-1)),
        {"degree": 3},
    ),
    "EuclideanDistances": Record(
        (X, R.normal(size=(3, 4))),
        lambda x, p: np.sqrt(((x[:, None, :] - p[None, :, :]) ** 2).sum(axis=-1)),
    ),
    "Kernel": Record(
        (X, R.normal(size=(3, 4))),
        lambda x, p: np.exp(-0.3 * ((x[:, None, :] - p[None, :, :]) ** 2).sum(axis=-1)),
        {"kernel": "rbf", "gamma": 0.3},
    ),
    "Interp1d": Record(
        (
            np.array([[-1.0], [0.0], [0.25], [1.0], [2.5], [3.0], [4.0]]),
            np.array([0.0, 1.0, 3.0]),
            np.array([1.0, 2.0, -2.0]),
        ),
        lambda x, xp, fp: np.where((x[:, 0] < 0) | (x[:, 0] > 3), np.nan, np.interp(x[:, 0], xp, fp)),
    ),
    "Relu": Record((X,), lambda x: np.maximum(x, 0)),
    "DiagonalGaussianScores": Record(
        (X, R.normal(size=(3, 4)), R.uniform(0.5, 2, size=(3, 4)), R.normal(size=3)),
        lambda x, m, v, o: o - 0.5 * np.stack([(((x - m[c]) ** 2) / v[c]).sum(axis=1) for c in range(3)], axis=1),
    ),
    "QuadraticScores": Record(
        (X, R.normal(size=(2, 4)), R.normal(size=(2, 4, 4)), R.normal(size=2)),
        lambda x, m, t, o: o - 0.5 * np.stack([(((x - m[c]) @ t[c]) ** 2).sum(axis=1) for c in range(2)], axis=1),
    ),
    "SquaredDistances": Record(
        (X, R.normal(size=(3, 4))),
        lambda x, p: np.stack([(np.abs(x - p[c]).sum(axis=1)) ** 2 for c in range(3)], axis=1),
        {"metric": "manhattan"},
    ),
    "ColumnProducts": Record(
        (X, np.array([[0, 4], [1, 1], [2, 3]])),
        lambda x, i: np.stack([x[:, 0], x[:, 1] ** 2, x[:, 2] * x[:, 3]], axis=1),
    ),
}


def _spline_records() -> dict[str, Record]:
    """A cubic B-spline basis over two features (scipy's evaluation as the reference), its linear ends,
    the knot-range check, and per-channel int8 weights."""
    from scipy.interpolate import BSpline

    knots = np.stack([np.linspace(-2, 2, 9), np.linspace(-1, 3, 9)])
    coef = np.stack([np.eye(5), np.eye(5)])
    x = np.column_stack([np.linspace(-3, 3, 11), np.linspace(-2, 4, 11)])
    x[3, 1] = np.nan

    def basis(x: np.ndarray, knots: np.ndarray, coef: np.ndarray) -> np.ndarray:
        return np.hstack([BSpline(knots[f], coef[f], 3, extrapolate=True)(x[:, f]) for f in range(2)])

    low, high = knots[:, 3], knots[:, -4]
    ends = [R.normal(size=(2, 5)) for _ in range(4)]

    def with_ends(b, x, low, high, below, below_slope, above, above_slope):  # type: ignore[no-untyped-def]
        b3, v = b.reshape(len(x), 2, 5), x[..., None]
        lo, hi = below + (v - low[:, None]) * below_slope, above + (v - high[:, None]) * above_slope
        inside = np.where((low[:, None] <= v) & (v <= high[:, None]), b3, 0)
        return np.where(v < low[:, None], lo, np.where(v > high[:, None], hi, inside)).reshape(len(x), -1)

    q = R.integers(-128, 128, size=(3, 4)).astype(np.int8)
    return {
        "BSpline": Record((x, knots, coef), basis, {"degree": 3, "periodic": False, "missing": None}),
        "SplineEnds": Record((basis(x, knots, coef), x, low, high, *ends), with_ends, {"linear": True}),
        "FailedCheck": Record((np.array(False), x), lambda c, rows: np.ones(len(rows), np.int32)),
        "FailedCheck (passed)": Record((np.array(True), x), lambda c, rows: np.zeros(len(rows), np.int32)),
        "IndexOutOfRange": Record(
            (np.array([[0, 3, 1], [4, 0, 0], [-1, 2, 2], [3.9, 0, 0]]),),
            lambda ids: np.array([0, 1, 1, 0], np.int32),
            {"size": 4},
        ),
        "IndexOutOfRange (flattened)": Record(
            (np.array([0, 3, 1, 4]), x), lambda ids, rows: np.ones(len(rows), np.int32), {"size": 4}
        ),
        "OutsideRange": Record((x, low, high), lambda x, lo, hi: np.any((x < lo) | (x > hi), axis=1).astype(np.int32)),
        "DequantizeInt8": Record(
            (q, np.array([0.1, 0.2, 0.3]), np.array([0.0, -3.0, 5.0])),
            lambda q, s, z: (q - z[:, None]) * s[:, None],
        ),
    }


OPS.update(_spline_records())
OPS.update({name: Record(*entry) for name, entry in aten_records.records().items()})
OPS.update({name: Record(*entry) for name, entry in keras_records.records().items()})


def _op_key(record_name: str) -> tuple[str, int]:
    """The op and version a record is for: "aten.convolution (grouped)" is a second record of
    aten.convolution, "BinIndex@2" a record of BinIndex's version 2."""
    name, _, version = record_name.split(" (")[0].partition("@")
    return name, int(version or 1)


def test_every_registered_op_has_a_record() -> None:
    registered = set(all_ops())
    recorded = {_op_key(n) for n in OPS}
    assert registered == recorded, f"ops without a record: {registered - recorded}; stale: {recorded - registered}"


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_numpy(name: str) -> None:
    record = OPS[name]
    # jitted, as the runtime runs it (and one compile is a fraction of op-by-op dispatch's many)
    fn = jax.jit(functools.partial(get_op(*_op_key(name)).fn, **record.attrs))
    with precision_scope("float64"):
        out = np.asarray(fn(*(jax.numpy.asarray(a) for a in record.inputs)))
    np.testing.assert_allclose(out, record.reference(*record.inputs), rtol=1e-12, atol=record.atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_divide_rounds_every_quotient_as_numpy_does(dtype: type) -> None:
    from mle_runtime.ops.math import divide

    rng = np.random.default_rng(3)
    a = rng.normal(size=(500, 7)).astype(dtype)
    scale = rng.uniform(0.3, 3.0, size=7).astype(dtype)
    sums = a.sum(axis=1, keepdims=True)
    with precision_scope("float64"):
        for ours, theirs in [
            (jax.jit(divide)(a, scale), a / scale),  # a per-feature divisor
            (jax.jit(divide)(a, sums), a / sums),  # a per-row one
            (jax.jit(lambda a: divide(a, 3.0))(a), a / dtype(3.0)),  # a constant, a's dtype kept
            (jax.jit(lambda a: divide(a, a[::-1]))(a), a / a[::-1]),  # same shapes: XLA's own division
        ]:
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(np.asarray(ours), theirs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounded_products_are_not_fused_into_the_sums_after_them(dtype: type) -> None:
    from mle_runtime.ops.math import rounded

    rng = np.random.default_rng(4)
    a, b, c, d = (rng.normal(size=(800, 5)).astype(dtype) for _ in range(4))
    with precision_scope("float64"):
        # (h + w x) + v y, a de Boor step's shape: both products rounded before their sums, as numpy does
        ours = jax.jit(lambda a, b, c, d: (a + rounded(b * c)) + rounded(c * d))(a, b, c, d)
        np.testing.assert_array_equal(np.asarray(ours), (a + b * c) + c * d)
        np.testing.assert_array_equal(np.asarray(jax.jit(lambda p: rounded(p))(np.array([np.nan, 1.5]))), [np.nan, 1.5])


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_op("Gemm")(lambda x: x)


def test_unknown_op_version() -> None:
    from mle_runtime.errors import UnsupportedOpError

    with pytest.raises(UnsupportedOpError, match="has versions \\[1\\]"):
        get_op("Gemm", 9)


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_distances_over_features_agree_in_both_forms(platform: str) -> None:
    """A loop over the features on the CPU, one reduction where a GPU would run the loop as launches."""
    from mle_runtime.ops import lowering_for
    from mle_runtime.ops.kernels import over_features

    x, points = R.normal(size=(6, 5)), R.normal(size=(9, 5))
    diff = np.abs(x[:, None, :] - points[None, :, :])
    with precision_scope("float64"), lowering_for(platform):
        summed = over_features(jax.numpy.asarray(x), jax.numpy.asarray(points), jax.numpy.abs)
        largest = over_features(jax.numpy.asarray(x), jax.numpy.asarray(points), jax.numpy.abs, jax.numpy.maximum)
    np.testing.assert_allclose(np.asarray(summed), diff.sum(axis=-1), rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(largest), diff.max(axis=-1))
