"""Records of the ATen ops (mle_runtime/ops/aten.py) for test_ops: inputs, attributes, and PyTorch's own
op as the reference (in float64), called with the same arguments by their schema names."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special
import torch
from torch.nn import functional as F

R = np.random.default_rng(1)
X2 = R.normal(size=(5, 4))
X3 = R.normal(size=(2, 3, 7))
X4 = R.normal(size=(2, 3, 6, 5))
POS = np.abs(X2) + 0.1
C3 = R.normal(size=3)
X5 = R.normal(size=(2, 2, 4, 6, 5))


def _torch(value: Any) -> Any:
    return torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, (tuple, list)):
        value = value[0]  # ops with several outputs: the graph reads the first
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _reference(op: Any, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    return lambda *inputs: _numpy(op(*(_torch(i) for i in inputs), **attrs))


def _second_output(op: Any, attrs: dict[str, Any]) -> Callable[..., np.ndarray]:
    return lambda *inputs: op(*(_torch(i) for i in inputs), **attrs)[1].detach().numpy()


def _entry(op: Any, inputs: tuple[Any, ...], attrs: dict[str, Any] | None = None, **torch_attrs: Any) -> tuple:
    """(inputs, reference, attrs): the runtime op and PyTorch's take the same attributes unless
    ``torch_attrs`` gives PyTorch's own."""
    attrs = attrs or {}
    return inputs, _reference(op, {**attrs, **torch_attrs}), attrs


def records() -> dict[str, tuple]:
    a = torch.ops.aten
    w_conv = R.normal(size=(4, 3, 3, 2))
    w_group = R.normal(size=(6, 1, 3, 3))
    w_transposed = R.normal(size=(3, 2, 3, 3))
    conv = {"stride": [1, 2], "padding": [1, 0], "dilation": [1, 1], "transposed": False, "output_padding": [0, 0]}
    table: dict[str, tuple] = {
        "aten.view": _entry(a.view.default, (X2,), {"size": [2, 10]}),
        "aten._unsafe_view": _entry(a._unsafe_view.default, (X2,), {"size": [-1, 2]}),
        "aten.reshape": _entry(a.reshape.default, (X2,), {"shape": [4, 5]}),
        "aten.expand": _entry(a.expand.default, (X2[:1],), {"size": [3, -1, 4]}),
        "aten.permute": _entry(a.permute.default, (X3,), {"dims": [2, 0, 1]}),
        "aten.t": _entry(a.t.default, (X2,)),
        "aten.transpose.int": _entry(a.transpose.int, (X3,), {"dim0": 0, "dim1": 2}),
        "aten.unsqueeze": _entry(a.unsqueeze.default, (X2,), {"dim": -1}),
        "aten.squeeze.dims": _entry(a.squeeze.dims, (X2[:, :1, None],), {"dim": [1, 2]}),
        "aten.squeeze.dim": _entry(a.squeeze.dim, (X2[:1],), {"dim": 0}),
        "aten.select.int": _entry(a.select.int, (X3,), {"dim": 2, "index": -2}),
        "aten.slice.Tensor": _entry(a.slice.Tensor, (X3,), {"dim": 2, "start": 1, "end": 2**63 - 1, "step": 2}),
        "aten.cat": ((X2, X2[:, :1]), lambda *t: np.concatenate(t, axis=1), {"dim": 1}),
        "aten.index.Tensor": (
            (X3, np.zeros(0), np.array([2.0, 0.0, 2.0])),
            lambda x, _, i: x[:, i.astype(int)],
            {},
        ),
        "aten.slice_scatter": _entry(a.slice_scatter.default, (X2, X2[:2] * 2), {"dim": 0, "start": 1, "end": 3}),
        "aten.copy": _entry(a.copy.default, (X2, X2[:1] * 3)),
        "aten.embedding": ((X2, np.array([[3.0, 0.0], [1.0, 1.0]])), lambda w, i: w[i.astype(int)], {}),
        "aten.constant_pad_nd": _entry(a.constant_pad_nd.default, (X3,), {"pad": [1, 2, 0, 1], "value": 0.5}),
        "aten.full": ((), lambda: np.full((2, 3), 1.5), {"size": [2, 3], "fill_value": 1.5}),
        "aten.full_like": _entry(a.full_like.default, (X2,), {"fill_value": -2.0}),
        "aten.zeros_like": _entry(a.zeros_like.default, (X2,)),
        "aten.ones_like": _entry(a.ones_like.default, (X2,)),
        "aten.empty.memory_format": ((), lambda: np.zeros((2, 2)), {"size": [2, 2]}),
        "aten.scalar_tensor": ((), lambda: np.asarray(2.5), {"s": 2.5}),
        "aten.arange.start_step": ((), lambda: np.arange(1, 9, 3), {"start": 1, "end": 9, "step": 3}),
        "aten._to_copy": _entry(a._to_copy.default, (X2,), {"dtype": "float64"}, dtype=torch.float64),
        "aten.add.Tensor": _entry(a.add.Tensor, (X2, X2[0]), {"alpha": 2}),
        "aten.sub.Tensor": _entry(a.sub.Tensor, (X2, X2[0]), {"alpha": 0.5}),
        "aten.add.Scalar": _entry(a.add.Scalar, (X2,), {"other": 1.5, "alpha": 2}),
        "aten.rsub.Scalar": _entry(a.rsub.Scalar, (X2,), {"other": 1.5}),
        "aten.mul.Tensor": _entry(a.mul.Tensor, (X2, X2[:, :1])),
        "aten.mul.Scalar": _entry(a.mul.Scalar, (X2,), {"other": -3.0}),
        "aten.div.Tensor": _entry(a.div.Tensor, (X2, POS)),
        "aten.div.Scalar": _entry(a.div.Scalar, (X2,), {"other": 4.0}),
        "aten.div.Tensor_mode": _entry(a.div.Tensor_mode, (X2 * 5, POS), {"rounding_mode": "floor"}),
        "aten.pow.Tensor_Scalar": _entry(a.pow.Tensor_Scalar, (POS,), {"exponent": 1.7}),
        "aten.pow.Tensor_Tensor": _entry(a.pow.Tensor_Tensor, (POS, X2)),
        "aten.gelu": _entry(a.gelu.default, (X2,), {"approximate": "tanh"}),
        "aten.leaky_relu": _entry(a.leaky_relu.default, (X2,), {"negative_slope": 0.2}),
        "aten.hardtanh": _entry(a.hardtanh.default, (X2,), {"min_val": -0.5, "max_val": 0.7}),
        "aten.clamp": _entry(a.clamp.default, (X2,), {"min": -0.3, "max": 0.4}),
        "aten.clamp_min": _entry(a.clamp_min.default, (X2,), {"min": 0.1}),
        "aten.maximum": _entry(a.maximum.default, (X2, X2.T[0][:, None])),
        "aten.minimum": _entry(a.minimum.default, (X2, X2.T[0][:, None])),
        "aten.where.self": _entry(a.where.self, (X2 > 0, X2, -X2)),
        "aten.logical_and": _entry(a.logical_and.default, (X2 > 0, X2 > 0.5)),
        "aten.logical_or": _entry(a.logical_or.default, (X2 > 0, X2 > 0.5)),
        "aten.mean.dim": _entry(a.mean.dim, (X3,), {"dim": [0, 2], "keepdim": True}),
        "aten.sum.dim_IntList": _entry(a.sum.dim_IntList, (X3,), {"dim": [-1]}),
        "aten.prod.dim_int": _entry(a.prod.dim_int, (X3,), {"dim": 1, "keepdim": True}),
        "aten.prod": _entry(a.prod.default, (X3,)),
        "aten.amax": _entry(a.amax.default, (X3,), {"dim": [1]}),
        "aten.amin": _entry(a.amin.default, (X3,), {"dim": [1], "keepdim": True}),
        "aten.any.dim": _entry(a.any.dim, (X2 > 1,), {"dim": 1}),
        "aten.any.dims": _entry(a.any.dims, (X3 > 1,), {"dim": [0, 2], "keepdim": True}),
        "aten.argmax": _entry(a.argmax.default, (X2,), {"dim": 1}),
        "aten._softmax": _entry(a._softmax.default, (X3,), {"dim": 1, "half_to_float": False}),
        "aten._log_softmax": _entry(a._log_softmax.default, (X3,), {"dim": -1, "half_to_float": False}),
        "aten.mm": _entry(a.mm.default, (X2, X2.T)),
        "aten.bmm": _entry(a.bmm.default, (X3, np.swapaxes(X3, 1, 2))),
        "aten.matmul": _entry(a.matmul.default, (X3, R.normal(size=(7, 2)))),
        "aten.addmm": _entry(a.addmm.default, (X2[0], X2, R.normal(size=(4, 4))), {"beta": 0.5, "alpha": 2}),
        "aten._native_batch_norm_legit_no_training": _entry(
            a._native_batch_norm_legit_no_training.default,
            (X4, C3, C3 * 2, C3 / 3, np.abs(C3) + 0.5),
            {"momentum": 0.1, "eps": 1e-5},
        ),
        "aten._native_batch_norm_legit.no_stats": _entry(
            a._native_batch_norm_legit.no_stats,
            (X4, C3, C3 * 2),
            {"training": True, "momentum": 0.1, "eps": 1e-5},
        ),
        "aten.native_layer_norm": (
            (X3, X3[0], X3[1]),
            lambda x, w, b: _numpy(a.native_layer_norm.default(_torch(x), [3, 7], _torch(w), _torch(b), 1e-5)),
            {"normalized_shape": [3, 7], "eps": 1e-5},
        ),
        "aten.native_group_norm": _entry(
            a.native_group_norm.default,
            (X4[:, :2].repeat(3, axis=1), np.arange(6.0), np.ones(6)),
            {"N": 2, "C": 6, "HxW": 30, "group": 3, "eps": 1e-5},
        ),
        "aten.convolution": _entry(a.convolution.default, (X4, w_conv, np.arange(4.0)), {**conv, "groups": 1}),
        "aten.max_pool2d_with_indices": _entry(
            a.max_pool2d_with_indices.default,
            (X4,),
            {"kernel_size": [3, 2], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": True},
        ),
        "aten.max_pool1d_with_indices": _entry(
            a.max_pool1d_with_indices.default, (X3,), {"kernel_size": [2], "stride": [2], "ceil_mode": True}
        ),
        "aten.avg_pool2d": _entry(
            a.avg_pool2d.default,
            (X4,),
            {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True, "count_include_pad": True},
        ),
        "aten.avg_pool1d": _entry(
            a.avg_pool1d.default,
            (X3,),
            {"kernel_size": [3], "stride": [2], "padding": [1], "ceil_mode": False, "count_include_pad": False},
        ),
        "aten._adaptive_avg_pool2d": _entry(a._adaptive_avg_pool2d.default, (X4,), {"output_size": [4, 3]}),
        "aten._adaptive_avg_pool3d": _entry(a._adaptive_avg_pool3d.default, (X5,), {"output_size": [2, 4, 3]}),
        "aten.adaptive_max_pool3d": _entry(a.adaptive_max_pool3d.default, (X5,), {"output_size": [3, 2, 3]}),
        "aten.max_pool3d_with_indices": _entry(
            a.max_pool3d_with_indices.default,
            (X5,),
            {
                "kernel_size": [2, 3, 2],
                "stride": [1, 2, 2],
                "padding": [1, 1, 0],
                "dilation": [1, 2, 1],
                "ceil_mode": True,
            },
        ),
        "aten.avg_pool3d": _entry(
            a.avg_pool3d.default,
            (X5,),
            {
                "kernel_size": [2, 3, 3],
                "stride": [1, 2, 2],
                "padding": [1, 1, 1],
                "ceil_mode": True,
                "count_include_pad": False,
                "divisor_override": None,
            },
        ),
        "aten.adaptive_max_pool2d": _entry(a.adaptive_max_pool2d.default, (X4,), {"output_size": [4, 3]}),
        "aten.flip": _entry(a.flip.default, (X3,), {"dims": [0, 2]}),
        "aten._embedding_bag": _entry(
            a._embedding_bag.default,
            (X2, np.array([0, 3, 1, 1, 2, 4, 0]), np.array([0, 2, 2, 5])),  # (bag 1 empty)
            {"mode": 1, "include_last_offset": False, "padding_idx": 1},
        ),
        "aten._embedding_bag (max, the last offset closing the last bag)": _entry(
            a._embedding_bag.default,
            (X2, np.array([0, 3, 1, 2]), np.array([0, 1, 4])),
            {"mode": 2, "include_last_offset": True},
        ),
        "aten.var.correction": _entry(a.var.correction, (X3,), {"dim": [0, 2], "keepdim": True}),
        "aten.std.correction": _entry(a.std.correction, (X3,), {"dim": [-1], "correction": 0}),
        "aten.linalg_vector_norm": _entry(a.linalg_vector_norm.default, (X3,), {"ord": 3.0, "dim": [1]}),
        "aten.upsample_nearest2d.vec": _entry(
            a.upsample_nearest2d.vec, (X4,), {"output_size": None, "scale_factors": [1.5, 2.0]}
        ),
        "aten.upsample_nearest1d.vec": _entry(
            a.upsample_nearest1d.vec, (X3,), {"output_size": [10], "scale_factors": None}
        ),
        "aten.upsample_bilinear2d.vec": _entry(
            a.upsample_bilinear2d.vec, (X4,), {"output_size": [9, 11], "align_corners": False, "scale_factors": None}
        ),
    }
    for norm_ord in (2.0, math.inf, 0.0):
        table[f"aten.linalg_vector_norm (ord {norm_ord})"] = _entry(
            a.linalg_vector_norm.default, (np.round(X3),), {"ord": norm_ord, "dim": [0, 2], "keepdim": True}
        )
    grid = R.uniform(-1.4, 1.4, size=(2, 4, 7, 2))
    for mode, padding, align in ((0, 0, False), (0, 2, True), (1, 1, False), (0, 2, False)):
        settings = {"interpolation_mode": mode, "padding_mode": padding, "align_corners": align}
        variant = f" (mode {mode}, padding {padding}, align_corners {align})" if mode or padding or align else ""
        table[f"aten.grid_sampler_2d{variant}"] = _entry(a.grid_sampler_2d.default, (X4, grid), settings)
    table["aten.upsample_bilinear2d.vec (align_corners, scale factors)"] = _entry(
        a.upsample_bilinear2d.vec, (X4,), {"output_size": None, "align_corners": True, "scale_factors": [2.0, 1.7]}
    )
    grouped = {**conv, "groups": 6}
    table["aten.convolution (grouped)"] = (
        (X4.repeat(2, axis=1), w_group, np.zeros(0)),  # no bias: a zero-size tensor in the graph
        lambda x, w, _: _numpy(a.convolution.default(_torch(x), _torch(w), None, **grouped)),
        grouped,
    )
    table["aten.convolution (transposed)"] = _entry(
        a.convolution.default,
        (X4, w_transposed, np.arange(2.0)),
        {
            "stride": [2, 1],
            "padding": [1, 1],
            "dilation": [1, 2],
            "transposed": True,
            "output_padding": [1, 0],
            "groups": 1,
        },
    )
    for name in ("clone", "alias", "detach", "lift_fresh_copy"):
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (X2,))
    table["aten.contiguous"] = ((X2,), lambda x: x, {})
    for name in ("neg", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal"):
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (POS,))
    for name in ("abs", "tanh", "sigmoid", "relu", "erf", "sin", "cos", "sign", "floor", "ceil"):
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (X2,))
    for name in ("exp2", "log2", "log10", "trunc", "isnan", "isinf", "tan", "atan", "sinh", "asinh"):
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (POS if name.startswith("log") else X2 * 3,))
    table["aten.round"] = _entry(a.round.default, (np.array([0.5, 1.5, -2.5, 2.4, -0.6]),))  # (half to even)
    for name in ("asin", "acos", "atanh", "erfinv"):
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (np.tanh(X2),))
    table["aten.cosh"] = _entry(a.cosh.default, (X2,))
    table["aten.acosh"] = _entry(a.acosh.default, (POS + 1,))
    table["aten.clamp.Tensor"] = _entry(a.clamp.Tensor, (X2, X2[0] - 0.5, X2[1] + 0.5))
    table["aten.elu"] = _entry(a.elu.default, (X2,), {"alpha": 1.3, "scale": 1.05, "input_scale": 0.8})
    for name in ("fmod", "remainder"):
        table[f"aten.{name}.Scalar"] = _entry(getattr(a, name).Scalar, (X2 * 3,), {"other": 0.7})
        table[f"aten.{name}.Tensor"] = _entry(getattr(a, name).Tensor, (X2 * 3, POS))
    table["aten.atan2"] = _entry(a.atan2.default, (X2, X2[::-1]))
    for name in ("copysign.Tensor", "hypot", "nextafter"):
        table[f"aten.{name}"] = _entry(
            getattr(a, name.split(".")[0]).Tensor if "." in name else getattr(a, name).default, (X2, X2[::-1])
        )
    for name in (
        "erfc",
        "i0",
        "special_i0e",
        "special_i1",
        "special_i1e",
        *("special_modified_bessel_i0", "special_modified_bessel_i1"),
    ):
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (X2 * 3,))
    points = np.concatenate([X2.ravel() * 10, [0.0, -0.0, 1e-4, np.inf, -np.inf, np.nan]])
    table["aten.special_spherical_bessel_j0"] = _entry(a.special_spherical_bessel_j0.default, (points,))
    for name in ("lgamma", "digamma"):  # (at the poles too: 0, -0, a negative integer)
        table[f"aten.{name}"] = _entry(getattr(a, name).default, (np.concatenate([X2.ravel() * 3, [0.0, -0.0, -2.0]]),))
    table["aten.special_erfcx"] = _entry(a.special_erfcx.default, (np.concatenate([X2.ravel() * 4, [30.0, -9.0]]),))
    # The orthogonal polynomials at their ends, inside and outside [-1, 1] ([0, 1] shifted), each degree
    # through the recurrence and past the closed form's threshold; not at NaN, where PyTorch's kernels
    # return an uninitialised value (their loop stops on a NaN before its first step). atol: the closed
    # form's cos/acos differ from glibc's in the last bits near the polynomials' roots.
    ends = np.array([-1.0, 1.0, 0.0, 0.5, -0.5, 2.0, -3.0, 1e-9])
    polynomial_points = np.concatenate([R.uniform(-1.2, 1.2, 40), ends])
    degrees = np.resize(np.array([-1, 0, 1, 2, 3, 6, 7, 9, 12, 2.7]), polynomial_points.shape)
    for kind in ("t", "u", "v", "w"):
        for name in (f"special_chebyshev_polynomial_{kind}", f"special_shifted_chebyshev_polynomial_{kind}"):
            table[f"aten.{name}"] = (*_entry(getattr(a, name).default, (polynomial_points, degrees)), 1e-12)
            for n in (0, 5, 12):
                table[f"aten.{name}.n_scalar (n {n})"] = (
                    *_entry(getattr(a, name).n_scalar, (polynomial_points,), {"n": n}),
                    1e-12,
                )
    for name in ("hermite_polynomial_h", "hermite_polynomial_he", "laguerre_polynomial_l", "legendre_polynomial_p"):
        op = getattr(a, f"special_{name}")
        table[f"aten.special_{name}"] = (*_entry(op.default, (polynomial_points, degrees)), 1e-12)
        table[f"aten.special_{name}.n_scalar"] = (*_entry(op.n_scalar, (polynomial_points,), {"n": 6}), 1e-12)
    # Against scipy: PyTorch's own float64 trigamma is ~4e-10 off (its series; mpmath agrees with scipy and
    # the runtime). Away from the poles, where PyTorch gives large finite numbers, the runtime infinities.
    for order in (1, 2, 3):
        variant = "" if order == 1 else f" (n {order})"
        table[f"aten.polygamma{variant}"] = (
            (X2 * 3 + 0.5,),
            lambda x, order=order: scipy.special.polygamma(order, x),
            {"n": order},
        )
    table["aten.special_ndtri"] = _entry(a.special_ndtri.default, (1 / (1 + np.exp(-X2 * 3)),))
    table["aten.embedding_renorm"] = (
        (X2 * 3, np.array([[3.0, 0.0], [3.0, 1.0]])),
        lambda w, i: _numpy(a.embedding_renorm.default(_torch(w), _torch(i.astype(np.int64)), 1.5, 3.0)),
        {"max_norm": 1.5, "norm_type": 3.0},
    )
    table["aten.special_zeta"] = _entry(a.special_zeta.default, (POS + 1, POS))
    table["aten.rrelu_with_noise_functional"] = (
        (X2, np.zeros_like(X2)),
        lambda x, _: _numpy(F.rrelu(_torch(x), 0.2, 0.4, training=False)),
        {"lower": 0.2, "upper": 0.4, "training": False},
    )
    bilinear = R.normal(size=(3, 4, 2))
    table["aten._trilinear"] = _entry(
        a._trilinear.default,
        (X2, bilinear, X2[:, :2]),
        {"expand1": [1, 3], "expand2": [0], "expand3": [1, 2], "sumdim": [2, 3]},
    )
    table["aten.cumsum"] = _entry(a.cumsum.default, (X3,), {"dim": 1})
    table["aten.cumprod"] = _entry(a.cumprod.default, (X3,), {"dim": 2})
    # (their schemas put dim before index: the reference names the index)
    order = np.argsort(X2, axis=1)[:, :3]
    table["aten.gather"] = ((X2, order), lambda x, i: _numpy(a.gather.default(_torch(x), 1, _torch(i))), {"dim": 1})
    picks = np.array([2, 0, 2])
    table["aten.index_select"] = (
        (X3, picks),
        lambda x, i: _numpy(a.index_select.default(_torch(x), 2, _torch(i))),
        {"dim": 2},
    )
    table["aten.repeat"] = _entry(a.repeat.default, (X2,), {"repeats": [2, 1, 3]})
    several = {
        "aten.sort": (a.sort.default, (X3,), {"dim": 1, "descending": True}),
        "aten.topk": (a.topk.default, (X3,), {"k": 2, "dim": -1, "largest": False, "sorted": True}),
        "aten.max.dim": (a.max.dim, (X3,), {"dim": 2, "keepdim": True}),
        "aten.min.dim": (a.min.dim, (X3,), {"dim": 0}),
        "aten.var_mean.correction": (a.var_mean.correction, (X3,), {"dim": [1], "correction": 0}),
    }
    for name, (op, inputs, attrs) in several.items():  # each output: the first, and the second by an op of its own
        table[name] = _entry(op, inputs, attrs)
        table[f"{name}:1"] = (inputs, _second_output(op, attrs), attrs)
    table["aten.logical_not"] = _entry(a.logical_not.default, (X2 > 0,))
    for name in ("eq", "ne", "gt", "ge", "lt", "le"):
        table[f"aten.{name}.Tensor"] = _entry(getattr(a, name).Tensor, (np.round(X2), np.round(X2[0])))
        table[f"aten.{name}.Scalar"] = _entry(getattr(a, name).Scalar, (np.round(X2),), {"other": 0.0})
    for d, x in ((1, X3), (2, X4), (3, X4)):
        pad = [1, 2, 2, 0, 1, 1][: 2 * d]
        table[f"aten.reflection_pad{d}d"] = _entry(getattr(a, f"reflection_pad{d}d").default, (x,), {"padding": pad})
        table[f"aten.replication_pad{d}d"] = _entry(getattr(a, f"replication_pad{d}d").default, (x,), {"padding": pad})
    return table
