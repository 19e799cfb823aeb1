"""Records of the Keras ops (mle_runtime/ops/keras.py) for test_ops: inputs, attributes, and Keras's own
layer (float64, TensorFlow backend) given the same weights as the reference."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

R = np.random.default_rng(2)
L = keras.layers


def _deprecated_rms_scaling(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """LayerNormalization(rms_scaling=True), which Keras 3.15 deprecates (saved models still hold it)."""
    import warnings

    make = lambda: keras.layers.LayerNormalization(rms_scaling=True, dtype="float64")  # noqa: E731
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You passed `rms_scaling=True`", UserWarning)
        warnings.filterwarnings("ignore", "Exception encountered when calling LayerNormalization", UserWarning)
        return _layer_reference(make, lambda x, g, b: [g])(x, gamma, beta)


def _layer_reference(
    make: Callable[[], Any], weights: Callable[..., list[np.ndarray]], n_inputs: int = 1
) -> Callable[..., np.ndarray]:
    """A reference that builds the Keras layer in float64, sets ``weights(*inputs)`` and calls it."""

    def reference(*inputs: np.ndarray) -> np.ndarray:
        with float64_keras():
            layer = make()
            args = [keras.ops.convert_to_tensor(a, dtype="float64") for a in inputs[:n_inputs]]
            layer(*args)  # builds it
            layer.set_weights(weights(*inputs))
            return np.asarray(keras.ops.convert_to_numpy(layer(*args)))

    return reference


@contextlib.contextmanager
def float64_keras() -> Iterator[None]:
    """Keras's default float and dtype policy as float64 (sublayers and constants follow them), then back.
    The policy is fixed from ``floatx`` at its first use in the process, so both are set."""
    before = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    """Keras's tanh approximation as written (TensorFlow's float64 kernel differs from it by ~5e-10)."""
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _attention(query, value, key, wq, bq, wk, bk, wv, bv, wo, bo, *masks, causal=False):  # type: ignore[no-untyped-def]
    """MultiHeadAttention's arithmetic in numpy (Keras's own layer, even built in float64, differs from
    it by ~6e-7 relative here: not every part of it follows the float64 dtype); ``masks``: the query's,
    the value's, the key's, as _compute_attention_mask and TensorFlow's dot_product_attention apply them."""
    q = (np.einsum("abc,cde->abde", query, wq) + bq) / math.sqrt(wq.shape[-1])
    k, v = np.einsum("abc,cde->abde", key, wk) + bk, np.einsum("abc,cde->abde", value, wv) + bv
    scores = np.einsum("aecd,abcd->acbe", k, q)
    if masks or causal:
        keep = np.ones(scores.shape, bool)
        if masks:
            query_mask, value_mask, key_mask = masks
            keep &= query_mask[:, None, :, None] & value_mask[:, None, None, :] & key_mask[:, None, None, :]
        if causal:
            keep &= np.tril(np.ones(scores.shape[-2:], bool))
        scores = np.where(keep, scores, -0.7 * 3.38953e38)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.einsum("abcd,cde->abe", np.einsum("acbe,aecd->abcd", scores, v), wo) + bo


def _masked_layer(make: Callable[[], Any], n_weights: int) -> Callable[..., np.ndarray]:
    """A reference calling the Keras layer (float64) on x with the given weights and the mask last."""

    def reference(x: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        weights, mask = list(rest[:n_weights]), rest[-1]
        with float64_keras():
            layer = make()
            args = keras.ops.convert_to_tensor(x, dtype="float64")
            layer(args)
            if weights:
                layer.set_weights(weights)
            return np.asarray(keras.ops.convert_to_numpy(layer(args, mask=keras.ops.convert_to_tensor(mask))))

    return reference


def _started_layer(make: Callable[[], Any], n_weights: int) -> Callable[..., np.ndarray]:
    """A reference calling the recurrent Keras layer (float64) on x from the initial states given after
    its weights."""

    def reference(x: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        weights, states = list(rest[:n_weights]), [keras.ops.convert_to_tensor(s) for s in rest[n_weights:]]
        with float64_keras():
            layer = make()
            args = keras.ops.convert_to_tensor(x, dtype="float64")
            layer(args, initial_state=states)
            layer.set_weights(weights)
            return np.asarray(keras.ops.convert_to_numpy(layer(args, initial_state=states)))

    return reference


class _WithCellState:
    """An LSTM with return_state (and not return_sequences), called as a layer that returns its output and
    its last c after it, (batch, 2, units): the op's ``append_cell_state``."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output, _, c = self.layer(*args, **kwargs)
        return keras.ops.stack([output, c], axis=1)

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.layer.set_weights(weights)


def _merged_mask(make: Callable[[], Any], masked: list[bool]) -> Callable[..., np.ndarray]:
    """The mask Keras's merge layer computes from its inputs and their masks (None where not ``masked``)."""

    def reference(*inputs_and_masks: np.ndarray) -> np.ndarray:
        inputs, masks = inputs_and_masks[: len(masked)], iter(inputs_and_masks[len(masked) :])
        layer = make()
        given = [keras.ops.convert_to_tensor(next(masks)) if m else None for m in masked]
        tensors = [keras.ops.convert_to_tensor(x) for x in inputs]
        return np.asarray(keras.ops.convert_to_numpy(layer.compute_mask(tensors, given)))

    return reference


def _dot(axes: list[int], normalize: bool = False) -> Callable[..., np.ndarray]:
    """Keras's Dot layer in float64 (it takes its two inputs as one list)."""

    def reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with float64_keras():
            pair = [keras.ops.convert_to_tensor(a, dtype="float64") for a in (x, y)]
            layer = L.Dot(axes=axes, normalize=normalize, dtype="float64")
            return np.asarray(keras.ops.convert_to_numpy(layer(pair)))

    return reference


def _luong_bahdanau(score_mode: str, causal: bool) -> Callable[..., np.ndarray]:
    """Keras's Attention layer in float64 with the given scale and concat weight (none where empty)."""

    def reference(
        q: np.ndarray, v: np.ndarray, k: np.ndarray, scale: np.ndarray, weight: np.ndarray, *masks: np.ndarray
    ) -> np.ndarray:
        with float64_keras():
            layer = L.Attention(use_scale=scale.size > 0, score_mode=score_mode, dtype="float64")
            inputs = [keras.ops.convert_to_tensor(a, dtype="float64") for a in (q, v, k)]
            layer(inputs)
            layer.set_weights([w.reshape(()) for w in (scale, weight) if w.size])
            mask = [keras.ops.convert_to_tensor(m) for m in masks] or None
            return np.asarray(keras.ops.convert_to_numpy(layer(inputs, mask=mask, use_causal_mask=causal)))

    return reference


def records() -> dict[str, tuple]:
    x2, x3, x4 = R.normal(size=(4, 6)), R.normal(size=(2, 7, 5)), R.normal(size=(2, 9, 8, 3))
    f64 = {"dtype": "float64"}
    kernel2, bias2 = R.normal(size=(6, 3)), R.normal(size=3)
    kernel_s, recurrent_s, bias_s = R.normal(size=(5, 4)), R.normal(size=(4, 4)) * 0.5, R.normal(size=4)
    conv_k, conv_b = R.normal(size=(3, 2, 3, 4)), R.normal(size=4)
    dw_k, dw_b = R.normal(size=(3, 3, 3, 2)), R.normal(size=6)
    gamma, beta, mean, var = R.normal(size=3), R.normal(size=3), R.normal(size=3), R.uniform(0.5, 2, size=3)
    units = 4
    lstm_k, lstm_r, lstm_b = R.normal(size=(5, 4 * units)), R.normal(size=(units, 4 * units)), R.normal(size=4 * units)
    gru_k, gru_r, gru_b = (
        R.normal(size=(5, 3 * units)),
        R.normal(size=(units, 3 * units)),
        R.normal(size=(2, 3 * units)),
    )
    mha = [R.normal(size=s) for s in ((5, 2, 3), (2, 3), (5, 2, 3), (2, 3), (5, 2, 3), (2, 3), (2, 3, 5), (5,))]
    # steps kept: masked at the start, the middle and the end; the second row's first step only
    steps = np.array([[False, True, True, False, True, True, False], [True] + [False] * 6])
    padded = np.where(steps[..., None], x3, -1.0)
    return {
        "keras.Activation": (
            (x2,),
            _gelu_tanh,
            {"activation_name": "gelu", "arguments": {"approximate": 1.0}},
        ),
        **{
            f"keras.Activation ({name})": (
                (x2 * 2.5,),
                lambda x, name=name: np.asarray(getattr(keras.activations, name)(keras.ops.convert_to_tensor(x))),
                {"activation_name": name},
            )
            for name in (
                "mish",
                "log_sigmoid",
                "hard_tanh",
                "hard_silu",
                "squareplus",
                "sparse_plus",
                "sparse_sigmoid",
                "celu",
                "tanh_shrink",
                "soft_shrink",
                "hard_shrink",
            )
        },
        "keras.Dense": (
            (x2, kernel2, bias2),
            _layer_reference(lambda: L.Dense(3, activation="selu", **f64), lambda x, k, b: [k, b]),
            {"activation_name": "selu"},
        ),
        "keras.Conv": (
            (x4, conv_k, conv_b),
            _layer_reference(
                lambda: L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", dilation_rate=1, activation="relu6", **f64),
                lambda x, k, b: [k, b],
            ),
            {"strides": [2, 1], "padding": "same", "dilation_rate": [1, 1], "activation_name": "relu6"},
        ),
        "keras.DepthwiseConv": (
            (x4, dw_k, dw_b),
            _layer_reference(
                lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", dilation_rate=2, **f64),
                lambda x, k, b: [k, b],
            ),
            {"strides": [1, 1], "padding": "same", "dilation_rate": [2, 2]},
        ),
        "keras.BatchNormalization": (
            (x4, gamma, beta, mean, var),
            _layer_reference(lambda: L.BatchNormalization(epsilon=1e-3, **f64), lambda x, *w: list(w)),
            {"axis": -1, "epsilon": 1e-3},
        ),
        "keras.LayerNormalization": (
            (x3, R.normal(size=(7, 5)), R.normal(size=(7, 5))),
            _layer_reference(lambda: L.LayerNormalization(axis=[1, 2], **f64), lambda x, g, b: [g, b]),
            {"axis": [1, 2], "epsilon": 1e-3},
        ),
        "keras.Operation": (
            (x3,),
            lambda x: 1.0 - x,
            {"function": "Subtract", "arguments": [{"value": 1.0}, {"input": 0}], "options": {}},
        ),
        "keras.Operation (two tensors)": (
            (np.abs(x3), x3[0, 0]),
            lambda x, p: np.asarray(keras.ops.convert_to_numpy(keras.ops.power(x, p))),
            {"function": "Power", "arguments": [{"input": 0}, {"input": 1}], "options": {}},
        ),
        "keras.Operation (reduction)": (
            (x3,),
            lambda x: np.asarray(keras.ops.convert_to_numpy(keras.ops.mean(x, axis=(1, 2), keepdims=True))),
            {"function": "Mean", "arguments": [{"input": 0}], "options": {"axis": [1, 2], "keepdims": True}},
        ),
        "keras.Operation (item)": (
            (x3,),
            lambda x: x[:, ::2, None, 1],
            {
                "function": "GetItem",
                "arguments": [{"input": 0}],
                "options": {
                    "key": [{"slice": [None, None, None]}, {"slice": [None, None, 2]}, {"newaxis": True}, {"index": 1}]
                },
            },
        ),
        "keras.LayerNormalization (rms_scaling)": (
            (x3, R.normal(size=(5,)), np.zeros(0)),
            _deprecated_rms_scaling,
            {"axis": [-1], "epsilon": 1e-3, "rms_scaling": True},
        ),
        "keras.Pool": (
            (x4,),
            _layer_reference(lambda: L.AveragePooling2D(3, strides=2, padding="same", **f64), lambda x: []),
            {"kind": "average", "pool_size": [3, 3], "strides": [2, 2], "padding": "same"},
        ),
        "keras.GlobalPool": (
            (x4,),
            _layer_reference(lambda: L.GlobalMaxPooling2D(keepdims=True, **f64), lambda x: []),
            {"kind": "max", "keepdims": True},
        ),
        "keras.Reshape": ((x3,), lambda x: x.reshape(2, 5, 7), {"target_shape": [5, 7]}),
        "keras.Merge": ((x2, x2 * 2, x2 - 1), lambda *xs: sum(xs) / 3, {"kind": "average"}),
        "keras.Embedding": ((np.array([[1.0, 3.0], [0.0, 0.0]]), x2), lambda i, w: w[i.astype(int)], {}),
        "keras.LSTM": (
            (x3, lstm_k, lstm_r, lstm_b),
            _layer_reference(lambda: L.LSTM(units, return_sequences=True, **f64), lambda x, *w: list(w)),
            {"return_sequences": True},
        ),
        "keras.LSTM (initial state)": (
            (x3, lstm_k, lstm_r, lstm_b, R.normal(size=(2, units)), R.normal(size=(2, units))),
            _started_layer(lambda: L.LSTM(units, return_sequences=True, **f64), 3),
            {"return_sequences": True, "initial_state": True},
        ),
        "keras.GRU (initial state, backwards)": (
            (x3, gru_k, gru_r, gru_b, R.normal(size=(2, units))),
            _started_layer(lambda: L.GRU(units, go_backwards=True, **f64), 3),
            {"go_backwards": True, "initial_state": True},
        ),
        "keras.ConvLSTM": (
            (
                R.normal(size=(2, 3, 7, 5, 3)),
                R.normal(size=(3, 3, 3, 8)),
                R.normal(size=(3, 3, 2, 8)) * 0.5,
                R.normal(size=8),
            ),
            _layer_reference(
                lambda: L.ConvLSTM2D(2, 3, strides=(2, 1), return_sequences=True, **f64), lambda x, *w: list(w)
            ),
            {"strides": [2, 1], "padding": "valid", "dilation_rate": [1, 1], "return_sequences": True},
        ),
        "keras.LSTM (cell state appended, masked)": (
            (x3, lstm_k, lstm_r, lstm_b, steps),
            _masked_layer(lambda: _WithCellState(L.LSTM(units, return_state=True, **f64)), 3),
            {"append_cell_state": True},
        ),
        "keras.LSTM (masked)": (
            (x3, lstm_k, lstm_r, lstm_b, steps),
            _masked_layer(lambda: L.LSTM(units, **f64), 3),
            {},
        ),
        "keras.GRU (masked backwards, zero output)": (
            (x3, gru_k, gru_r, gru_b, steps),
            _masked_layer(
                lambda: L.GRU(units, go_backwards=True, return_sequences=True, zero_output_for_mask=True, **f64), 3
            ),
            {"go_backwards": True, "return_sequences": True, "zero_output_for_mask": True},
        ),
        "keras.SimpleRNN (masked)": (
            (x3, kernel_s, recurrent_s, bias_s, steps),
            _masked_layer(lambda: L.SimpleRNN(4, return_sequences=True, **f64), 3),
            {"return_sequences": True},
        ),
        "keras.GlobalPool (masked)": (
            (x3, steps),
            _masked_layer(lambda: L.GlobalAveragePooling1D(**f64), 0),
            {"kind": "average"},
        ),
        "keras.MaskOf": (
            (np.array([[3.0, 0.0, 1.0], [0.0, 0.0, 2.0]]),),
            lambda i: np.asarray(L.Embedding(4, 2, mask_zero=True).compute_mask(i)),
            {"mask_value": 0.0, "last_axis": False},
        ),
        "keras.MaskOf (Masking)": (
            (padded,),
            lambda x: np.asarray(L.Masking(-1.0).compute_mask(keras.ops.convert_to_tensor(x))),
            {"mask_value": -1.0, "last_axis": True},
        ),
        "keras.Masking": (
            (padded,),
            _layer_reference(lambda: L.Masking(-1.0, **f64), lambda x: []),
            {"mask_value": -1.0},
        ),
        "keras.MaskOr": (
            (steps, steps[::-1]),
            lambda *masks: _merged_mask(L.Add, [True, True])(x3, x3, *masks),
            {},
        ),
        "keras.ConcatenateMask": (
            (x3, x3[:, :, :2], x3, steps, steps[::-1]),
            _merged_mask(L.Concatenate, [True, False, True]),
            {"masked": [True, False, True], "axis": -1},
        ),
        "keras.ConcatenateMask (steps)": (
            (x3, x3[:, :3], steps[:, 2:5]),
            _merged_mask(lambda: L.Concatenate(axis=1), [False, True]),
            {"masked": [False, True], "axis": 1},
        ),
        "keras.GRU": (
            (x3, gru_k, gru_r, gru_b),
            _layer_reference(lambda: L.GRU(units, go_backwards=True, **f64), lambda x, *w: list(w)),
            {"go_backwards": True},
        ),
        "keras.SimpleRNN": (
            (x3, kernel_s, recurrent_s, bias_s),
            _layer_reference(lambda: L.SimpleRNN(4, return_sequences=True, **f64), lambda x, *w: list(w)),
            {"return_sequences": True},
        ),
        "keras.GroupNormalization": (
            (x4[..., :2].repeat(3, axis=-1), R.normal(size=6), R.normal(size=6)),
            _layer_reference(lambda: L.GroupNormalization(groups=3, **f64), lambda x, g, b: [g, b]),
            {"groups": 3, "axis": -1, "epsilon": 1e-3},
        ),
        "keras.Dot": ((x2, x2[::-1]), _dot([1, 1]), {"axes": [1, 1]}),
        "keras.Dot (sequences)": ((x3, x3[:, :4]), _dot([2, 2]), {"axes": [2, 2]}),
        "keras.Dot (normalized)": ((x3, x3[:, :4]), _dot([2, 2], normalize=True), {"axes": [2, 2], "normalize": True}),
        "keras.CategoryEncoding": (
            (np.array([[1, 4, 4, 0], [6, 2, 9, 2]]),),
            lambda ids: np.asarray(L.CategoryEncoding(7, output_mode="count", dtype="float64")(ids)),
            {"num_tokens": 7, "output_mode": "count"},
        ),
        "keras.CategoryEncoding (multi_hot)": (
            (np.array([[1, 4, 4, 0], [6, 2, 9, 2]]),),
            lambda ids: np.asarray(L.CategoryEncoding(7, output_mode="multi_hot", dtype="float64")(ids)),
            {"num_tokens": 7, "output_mode": "multi_hot"},
        ),
        "keras.CategoryEncoding (one_hot)": (
            (np.array([[3], [0], [6]]),),
            lambda ids: np.asarray(L.CategoryEncoding(7, output_mode="one_hot", dtype="float64")(ids)),
            {"num_tokens": 7, "output_mode": "one_hot"},
        ),
        "keras.Discretization": (
            (np.array([[-2.0, 0.1, 0.3], [1e-9, 7.0, np.nan]]), np.array([0.0, 0.1, 1.0])),
            lambda x, bins: np.asarray(L.Discretization(bin_boundaries=list(bins))(x)),
            {},
        ),
        "keras.EinsumDense": (
            (x3, R.normal(size=(5, 2, 3)), R.normal(size=(2, 3))),
            _layer_reference(
                lambda: L.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de", **f64),
                lambda x, k, b: [k, b],
            ),
            {"equation": "abc,cde->abde"},
        ),
        "keras.RMSNormalization": (
            (x3, R.normal(size=5)),
            _layer_reference(lambda: L.RMSNormalization(epsilon=1e-5, **f64), lambda x, s: [s]),
            {"epsilon": 1e-5},
        ),
        "keras.Attention": (
            (x3, x3[:, ::-1], x3 * 0.5, np.array([0.7]), np.zeros(0)),
            _luong_bahdanau("dot", causal=True),
            {"score_mode": "dot", "causal": True},
        ),
        "keras.Attention (masked)": (
            (x3, x3[:, ::-1], x3 * 0.5, np.array([0.7]), np.zeros(0), steps, steps[:, ::-1]),
            _luong_bahdanau("dot", causal=True),
            {"score_mode": "dot", "causal": True, "masked": [True, True]},
        ),
        "keras.Attention (concat)": (
            (x3[:, :4], x3, x3[:, ::-1], np.zeros(0), np.array([1.3])),
            _luong_bahdanau("concat", causal=False),
            {"score_mode": "concat", "causal": False},
        ),
        "keras.Resizing": (  # TensorFlow resizes bilinearly in float32 whatever the input's dtype
            (x4,),
            _layer_reference(lambda: L.Resizing(5, 13, **f64), lambda x: []),
            {"size": [5, 13], "interpolation": "bilinear"},
            1e-6,
        ),
        "keras.Resizing (nearest)": (
            (x4,),
            _layer_reference(lambda: L.Resizing(14, 3, interpolation="nearest", **f64), lambda x: []),
            {"size": [14, 3], "interpolation": "nearest"},
        ),
        "keras.UnitNormalization": (
            (x3,),
            _layer_reference(lambda: L.UnitNormalization(axis=[1, 2], **f64), lambda x: []),
            {"axis": [1, 2]},
        ),
        "keras.MultiHeadAttention": (
            (x3, x3[::-1], x3, *mha),
            _attention,
            {},
        ),
        "keras.MultiHeadAttention (masked, causal)": (
            (x3, x3[::-1], x3, *mha, steps, steps[::-1], np.ones_like(steps)),
            lambda *inputs: _attention(*inputs, causal=True),
            {"masked": [True, True, True], "causal": True},
        ),
        "keras.ConvTranspose": (
            (x4, R.normal(size=(3, 2, 4, 3)), R.normal(size=4)),
            _layer_reference(
                lambda: L.Conv2DTranspose(4, (3, 2), strides=(2, 3), output_padding=(1, 0), activation="tanh", **f64),
                lambda x, k, b: [k, b],
            ),
            {
                "strides": [2, 3],
                "padding": "valid",
                "dilation_rate": [1, 1],
                "output_padding": [1, 0],
                "activation_name": "tanh",
            },
        ),
        "keras.ZeroPadding": (
            (x4,),
            _layer_reference(lambda: L.ZeroPadding2D(((1, 0), (2, 3)), **f64), lambda x: []),
            {"padding": [[1, 0], [2, 3]]},
        ),
        "keras.Cropping": (
            (x4,),
            _layer_reference(lambda: L.Cropping2D(((2, 1), (0, 3)), **f64), lambda x: []),
            {"cropping": [[2, 1], [0, 3]]},
        ),
        "keras.UpSampling": (  # (bilinear: TensorFlow resizes in float32 only; test_keras checks it)
            (x4,),
            _layer_reference(lambda: L.UpSampling2D((2, 3), **f64), lambda x: []),
            {"size": [2, 3], "interpolation": "nearest"},
        ),
        "keras.Permute": ((x3,), _layer_reference(lambda: L.Permute((2, 1), **f64), lambda x: []), {"dims": [2, 1]}),
        "keras.RepeatVector": ((x2,), _layer_reference(lambda: L.RepeatVector(3, **f64), lambda x: []), {"n": 3}),
        "keras.Reverse": ((x3,), lambda x: x[:, ::-1], {"axis": 1}),
        "keras.PReLU": (
            (x4, R.normal(size=(1, 1, 3))),
            _layer_reference(lambda: L.PReLU(shared_axes=[1, 2], **f64), lambda x, a: [a]),
            {},
        ),
    }
