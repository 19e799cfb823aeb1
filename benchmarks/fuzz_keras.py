"""Keras 3 models drawn at random from the layers and options the converter reads, held to Keras.

    python3 benchmarks/fuzz_keras.py [--runs 240] [--seed 0] [--only spatial] [--timeout 120]

tests/test_keras.py holds a model per family and a layer per option; here options meet each other and
shapes they were not written for. Each run draws a family and a stack of layers with their options, keeping
each layer only where Keras builds it on the shape it gets:

- spatial: 1- and 2-D inputs (channels last) through convolutions (padding "valid", "same" and a 1-D
  convolution's "causal", strides, dilation, groups, activation arguments), depthwise and separable
  convolutions, transposed convolutions, max and average pooling ("same" and "valid", strides), global
  pooling (keepdims), batch, layer and group normalization, zero padding, cropping, upsampling (nearest,
  bilinear), the activation layers (ReLU's max value, slope and threshold, PReLU's shared axes), and
  residual Add, Multiply, Subtract, Average, Maximum and Concatenate merges;
- sequence: feature or token inputs (an Embedding) through LSTM, GRU and SimpleRNN (sequences returned,
  backwards, GRU's reset_after, activations), Bidirectional (merge modes), MultiHeadAttention, layer
  normalization, Dense and Conv1D over time, then a global pooling or a last state;
- tensor: rows through Dense (activation arguments), EinsumDense, UnitNormalization, RMSNormalization,
  Rescaling, RepeatVector with Flatten, Reshape with Permute, and merges.

The model is exported and run at batches 1 and 5, compared with Keras's forward (``model(x,
training=False)``) within 1e-5 of the output's magnitude; where ours is not, it passes when it is within
1e-5 of the same model's answer in float64 (its weights cast, ``floatx`` and the dtype policy float64) and
no further from it than Keras's float32 answer, and the run says so. The float64 model is exported too and
run in float64 precision at batch 5, held to its forward at 1e-12 (1e-6 where it holds a layer of
INEXACT_IN_FLOAT64, which Keras computes partly in float32). A refusal is listed with its message
(not a difference); a file that exports and then fails to load or run is a difference. Writes
benchmarks/results/keras_fuzz.json and .md; exit 1 on any difference. Its float64 runs found float64
convolutions that XLA did not compile in minutes (a SeparableConv2D after a ZeroPadding2D).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from fuzzing import NetworkRun, chance, fuzz_networks, integer, network_verdict, pick, said

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from keras_records import float64_keras

FAMILIES = ("spatial", "sequence", "tensor")
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
# Layers that Keras's float64 models compute partly in float32, found in a run's layers by these patterns
# (TensorFlow's leaky_relu takes its slope as a float32 attribute, and so ReLU its max value and slope; its
# gelu and bilinear resize round in float32: 1e-8 to 4e-7 from the float64 answer, where ours is exact;
# measured), and where a float64 run is held to 1e-6 instead.
INEXACT_IN_FLOAT64 = (
    r"LeakyReLU",
    r"leaky_relu",
    r"gelu",
    r"bilinear",
    r"MultiHeadAttention",
    r"ReLU\(max_value=\d",
    r"ReLU\(max_value=\w+, negative_slope=(?!0\.0,)",
)
MAX_ACTIVATION = 200_000  # elements of one row's activation a drawn layer may make
ACTIVATIONS = ["relu", "gelu", "swish", "tanh", "sigmoid", "elu", "selu", "softplus", "softsign", "hard_sigmoid"]
ACTIVATIONS += ["relu6", "leaky_relu", "mish", "log_softmax", "softmax", "hard_silu", "linear", "exponential"]
# config entries that a results table need not repeat: the same in every drawn layer
UNSHOWN = {"name", "trainable", "dtype", "data_format", "momentum", "synchronized", "renorm", "renorm_clipping"}
UNSHOWN |= {"renorm_momentum", "stateful", "unroll", "zero_output_for_mask", "dropout", "recurrent_dropout", "seed"}
UNSHOWN |= {"return_state", "return_sequences", "activity_regularizer"}
layers = keras.layers


def activation_layer(rng: np.random.Generator) -> keras.layers.Layer:
    u = lambda low, high: float(rng.uniform(low, high))  # noqa: E731
    makers: list[Callable[[], keras.layers.Layer]] = [
        lambda: layers.Activation(pick(rng, ACTIVATIONS)),
        lambda: layers.ReLU(max_value=pick(rng, [None, u(0.5, 6)]), negative_slope=u(0, 0.3), threshold=u(-0.5, 0.5)),
        lambda: layers.LeakyReLU(u(0, 0.3)),
        lambda: layers.ELU(u(0.5, 2)),
        lambda: layers.PReLU(alpha_initializer=keras.initializers.RandomUniform(0, 0.5)),
        lambda: layers.Softmax(),
    ]
    return pick(rng, makers)()


def spatial_layer(rng: np.random.Generator, x: Any, dims: int) -> Callable[[Any], Any]:
    """A layer (or a small residual graph) for (batch, *spatial, channels) of ``dims`` spatial axes."""
    c = x.shape[-1]
    kinds = ["conv", "conv", "depthwise", "separable", "transpose", "max_pool", "avg_pool", "global_pool"]
    kinds += ["batch_norm", "layer_norm", "group_norm", "zero_pad", "crop", "upsample", "activation", "merge"]
    kind, k = pick(rng, kinds), integer(rng, 1, 3)
    suffix = f"{dims}D"
    padding = pick(rng, ["valid", "same", "causal"] if dims == 1 else ["valid", "same"])
    dilation = integer(rng, 1, 2)
    strides = 1 if dilation > 1 else integer(rng, 1, 2)
    act = pick(rng, [None, None, *ACTIVATIONS])
    if kind == "conv":
        groups = pick(rng, [g for g in (1, 2, c) if c % g == 0])
        return getattr(layers, f"Conv{suffix}")(
            groups * integer(rng, 1, 3),
            k,
            strides=strides,
            padding=padding,
            dilation_rate=dilation,
            groups=groups,
            use_bias=chance(rng, 0.7),
            activation=act,
        )
    if padding == "causal":
        padding = "valid"
    if kind == "depthwise":
        return getattr(layers, f"DepthwiseConv{suffix}")(
            k,
            strides=strides,
            padding=padding,
            depth_multiplier=integer(rng, 1, 2),
            dilation_rate=dilation,
            activation=act,
        )
    if kind == "separable":
        return getattr(layers, f"SeparableConv{suffix}")(
            integer(rng, 1, 6),
            k,
            strides=strides,
            padding=padding,
            depth_multiplier=integer(rng, 1, 2),
            dilation_rate=dilation,
        )
    if kind == "transpose":
        # (TensorFlow's CPU kernels take no dilated transposed convolution)
        return getattr(layers, f"Conv{suffix}Transpose")(
            integer(rng, 1, 6), k, strides=integer(rng, 1, 2), padding=padding, use_bias=chance(rng, 0.7)
        )
    if kind in ("max_pool", "avg_pool"):
        pool = getattr(layers, f"{'Max' if kind == 'max_pool' else 'Average'}Pooling{suffix}")
        return pool(integer(rng, 1, 3), strides=pick(rng, [None, 1, 2]), padding=padding)
    if kind == "global_pool":
        pool = getattr(layers, f"Global{pick(rng, ['Max', 'Average'])}Pooling{suffix}")(keepdims=True)
        return pool
    if kind == "batch_norm":
        return _batch_norm(rng, x, epsilon=pick(rng, [1e-3, 1e-5]), center=chance(rng, 0.8), scale=chance(rng, 0.8))
    if kind == "layer_norm":
        return layers.LayerNormalization(center=chance(rng, 0.7), scale=chance(rng, 0.7))
    if kind == "group_norm":
        return layers.GroupNormalization(pick(rng, [g for g in (1, 2, c) if c % g == 0]))
    if kind in ("zero_pad", "crop"):
        most = 2 if kind == "zero_pad" else 1
        sides = [(integer(rng, 0, most), integer(rng, 0, most)) for _ in range(dims)]
        layer = getattr(layers, f"{'ZeroPadding' if kind == 'zero_pad' else 'Cropping'}{suffix}")
        return layer(sides[0] if dims == 1 else tuple(sides))
    if kind == "upsample":
        if dims == 1:
            return layers.UpSampling1D(integer(rng, 1, 3))
        return layers.UpSampling2D(
            (integer(rng, 1, 3), integer(rng, 1, 2)), interpolation=pick(rng, ["nearest", "bilinear"])
        )
    if kind == "merge":
        body = getattr(layers, f"Conv{suffix}")(c, 3, padding="same", activation=pick(rng, ACTIVATIONS))
        how = pick(rng, ["Add", "Multiply", "Subtract", "Average", "Maximum", "Concatenate"])
        return Composite(f"{how} of x and {_describe(body)}", lambda x: getattr(layers, how)()([x, body(x)]))
    return activation_layer(rng)


def sequence_layer(rng: np.random.Generator, x: Any) -> Callable[[Any], Any]:
    """A layer for (batch, time, features) that keeps the time axis."""
    kind = pick(rng, ["lstm", "gru", "simple_rnn", "bidirectional", "attention", "layer_norm", "dense", "conv"])
    recurrent = dict(
        activation=pick(rng, ["tanh", "relu", "sigmoid"]),
        use_bias=chance(rng, 0.8),
        return_sequences=True,
        go_backwards=chance(rng, 0.3),
    )
    if kind == "lstm":
        return layers.LSTM(
            integer(rng, 2, 10), recurrent_activation=pick(rng, ["sigmoid", "hard_sigmoid"]), **recurrent
        )
    if kind == "gru":
        return layers.GRU(integer(rng, 2, 10), reset_after=chance(rng, 0.5), **recurrent)
    if kind == "simple_rnn":
        return layers.SimpleRNN(integer(rng, 2, 10), **recurrent)
    if kind == "bidirectional":
        inner = pick(rng, [layers.LSTM, layers.GRU])(integer(rng, 2, 8), return_sequences=True)
        return layers.Bidirectional(inner, merge_mode=pick(rng, ["concat", "sum", "mul", "ave"]))
    if kind == "attention":
        attention = layers.MultiHeadAttention(
            integer(rng, 1, 3),
            integer(rng, 2, 8),
            value_dim=pick(rng, [None, integer(rng, 2, 6)]),
            use_bias=chance(rng, 0.8),
        )
        return Composite(f"self-{_describe(attention)}", lambda x: attention(x, x))
    if kind == "layer_norm":
        return layers.LayerNormalization(epsilon=pick(rng, [1e-3, 1e-6]))
    if kind == "dense":
        return layers.Dense(integer(rng, 2, 12), activation=pick(rng, [None, *ACTIVATIONS]))
    return layers.Conv1D(integer(rng, 2, 10), integer(rng, 1, 3), padding=pick(rng, ["same", "causal"]))


def tensor_layer(rng: np.random.Generator, x: Any) -> Callable[[Any], Any]:
    """A layer for (batch, width)."""
    width = x.shape[-1]
    kind = pick(rng, ["dense", "dense", "einsum", "unit_norm", "rms_norm", "rescale", "repeat", "reshape"])
    kind = pick(rng, [kind, "activation", "merge", "batch_norm"])
    if kind == "dense":
        return layers.Dense(integer(rng, 1, 20), activation=pick(rng, [None, *ACTIVATIONS]), use_bias=chance(rng, 0.7))
    if kind == "einsum":
        return layers.EinsumDense("ab,bc->ac", output_shape=integer(rng, 1, 12), bias_axes=pick(rng, ["c", None]))
    if kind == "unit_norm":
        return layers.UnitNormalization()
    if kind == "rms_norm":
        return layers.RMSNormalization(epsilon=pick(rng, [1e-6, 1e-3]))
    if kind == "rescale":
        return layers.Rescaling(float(rng.uniform(-2, 2)), offset=float(rng.normal()))
    if kind == "repeat":
        repeat = integer(rng, 1, 3)
        return Composite(f"RepeatVector({repeat}), Flatten", lambda x: layers.Flatten()(layers.RepeatVector(repeat)(x)))
    if kind == "reshape" and width % 2 == 0:
        return Composite(
            "Reshape, Permute, Flatten",
            lambda x: layers.Flatten()(layers.Permute((2, 1))(layers.Reshape((2, width // 2))(x))),
        )
    if kind == "merge":
        dense = layers.Dense(width, activation=pick(rng, ACTIVATIONS))
        how = pick(rng, ["Add", "Multiply", "Subtract", "Average", "Minimum", "Concatenate"])
        return Composite(f"{how} of x and {_describe(dense)}", lambda x: getattr(layers, how)()([x, dense(x)]))
    if kind == "batch_norm":
        return _batch_norm(rng, x)
    return activation_layer(rng)


def _stack(
    rng: np.random.Generator, x: Any, draw: Callable[[Any], Callable[[Any], Any]], count: int
) -> tuple[Any, list[str]]:
    """``x`` through ``count`` layers, each redrawn (up to ten times) until Keras builds it on the shape it
    gets, keeping the rank, not empty and not too large."""
    names = []
    for _ in range(count):
        for _attempt in range(10):
            try:
                layer = draw(x)
                y = layer(x)
            except Exception:  # (options this shape does not take: drawn again)
                continue
            sizes = y.shape[1:]
            if len(y.shape) == len(x.shape) and all(d and d > 0 for d in sizes) and np.prod(sizes) <= MAX_ACTIVATION:
                names.append(_describe(layer))
                x = y
                break
    return x, names


class Composite:
    """Layers applied together (a merge with its branch, a reshape and what undoes it), named."""

    def __init__(self, name: str, apply: Callable[[Any], Any]) -> None:
        self.name, self.apply = name, apply

    def __call__(self, x: Any) -> Any:
        return self.apply(x)


def _describe(layer: Any) -> str:
    """A layer and the options in its config that say what it computes."""
    if isinstance(layer, Composite):
        return layer.name
    shown = {
        k: v
        for k, v in layer.get_config().items()
        if k not in UNSHOWN and not k.endswith(("initializer", "regularizer", "constraint"))
    }
    return f"{type(layer).__name__}({', '.join(f'{k}={_option(v)}' for k, v in shown.items())})"


def _option(value: Any) -> Any:
    """A config value as the table shows it: a wrapped layer's by its class."""
    return value.get("class_name", value) if isinstance(value, dict) else value


def _batch_norm(rng: np.random.Generator, x: Any, **options: Any) -> keras.layers.Layer:
    """BatchNormalization with moving statistics away from (0, 1), so that the normalization shows."""
    norm = layers.BatchNormalization(**options)
    norm.build(x.shape)
    norm.moving_mean.assign(rng.uniform(-1, 1, norm.moving_mean.shape))
    norm.moving_variance.assign(rng.uniform(0.5, 2, norm.moving_variance.shape))
    return norm


@dataclass
class Drawn:
    model: keras.Model
    layers: list[str]
    shape: tuple[int, ...]  # one row's
    tokens: int = 0  # token inputs: the vocabulary's size (0: float inputs)

    def inputs(self, n: int, seed: int, dtype: type = np.float32) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if self.tokens:
            return rng.integers(0, self.tokens, (n, *self.shape)).astype(np.int32)
        return rng.normal(size=(n, *self.shape)).astype(dtype)


def draw_model(seed: int, index: int, family: str) -> Drawn:
    """The run's model, in ``keras.config.floatx()``: drawn again in float64 gives the same model."""
    rng = np.random.default_rng([seed, index])
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))
    tokens = 0
    if family == "spatial":
        dims = pick(rng, [1, 2, 2])
        shape: tuple[int, ...] = (*[integer(rng, 5, 16) for _ in range(dims)], integer(rng, 1, 5))
        inputs = keras.Input(shape)
        out, names = _stack(rng, inputs, lambda x: spatial_layer(rng, x, dims), integer(rng, 2, 6))
    elif family == "sequence":
        steps, features = integer(rng, 1, 9), pick(rng, [4, 8])
        if chance(rng, 0.5):
            tokens = integer(rng, 5, 40)
            shape = (steps,)
            inputs = keras.Input(shape, dtype="int32")
            x = layers.Embedding(tokens, features)(inputs)
        else:
            shape = (steps, features)
            inputs = keras.Input(shape)
            x = inputs
        out, names = _stack(rng, x, lambda x: sequence_layer(rng, x), integer(rng, 1, 3))
        head = pick(rng, ["GlobalAveragePooling1D", "GlobalMaxPooling1D", "last"])
        out = getattr(layers, head)()(out) if head != "last" else layers.LSTM(integer(rng, 2, 6))(out)
        names.append(head if head != "last" else "LSTM (last state)")
    else:
        shape = (integer(rng, 1, 16),)
        inputs = keras.Input(shape)
        out, names = _stack(rng, inputs, lambda x: tensor_layer(rng, x), integer(rng, 2, 6))
    if chance(rng, 0.5):
        out = layers.Dense(integer(rng, 1, 8))(layers.Flatten()(out))
        names.append("Flatten, Dense")
    return Drawn(keras.Model(inputs, out), names, shape, tokens)


def _float64_twin(seed: int, index: int, family: str, drawn: Drawn) -> keras.Model | None:
    """The same model in float64 with the float32 weights, or None where it cannot be had (built under the
    tests' ``float64_keras``, which sets Keras's dtype policy beside ``floatx``)."""
    try:
        with float64_keras():
            twin = draw_model(seed, index, family).model
            twin.set_weights([np.asarray(w, np.float64) for w in drawn.model.get_weights()])
        return twin
    except Exception:
        return None


def one_run(index: int, seed: int, only: str, folder: Path) -> NetworkRun | None:
    import mle_runtime as mle

    family = FAMILIES[index % len(FAMILIES)]
    if only and only != family:
        return None
    drawn = draw_model(seed, index, family)
    run = NetworkRun(index, family, " / ".join(drawn.layers))
    path = folder / "k.mle"
    try:
        mle.export_model(drawn.model, path)
    except Exception as e:  # (a refusal lists what the converter does not take)
        run.refused = said(e, 300)
        return run
    twin = functools.cache(lambda: _float64_twin(seed, index, family, drawn))  # (drawn where a check needs it)

    def exact(x: np.ndarray) -> np.ndarray | None:
        wide = twin()
        return None if wide is None else np.asarray(wide(x if drawn.tokens else x.astype(np.float64), training=False))

    for n in (1, 5):
        x = drawn.inputs(n, index * 10 + n)
        try:
            expected = np.asarray(drawn.model(x, training=False))
        except Exception as e:  # (a model Keras builds and cannot run: not ours to answer)
            run.skipped = said(e, 200)
            return run
        try:
            ours = mle.load_model(path).predict(x)
        except Exception as e:
            run.outcome[f"batch {n}"] = f"run: {said(e, 300)}"
            continue
        verdict = network_verdict(ours, expected, functools.partial(exact, x), TOLERANCE["float32"], "Keras")
        run.outcome[f"batch {n}"] = verdict
    run.outcome["float64"] = _float64_verdict(twin(), drawn, index, path)
    return run


def _float64_verdict(wide: keras.Model | None, drawn: Drawn, index: int, path: Path) -> str:
    """The model in float64 exported and run in float64 precision, held to its own forward at 1e-12
    (1e-6 with a layer of INEXACT_IN_FLOAT64)."""
    import mle_runtime as mle

    if wide is None:
        return "not run: no float64 model"
    x = drawn.inputs(5, index * 10, np.float64)
    try:
        # (a direct call: predict's data adapter would round float64 inputs to float32 first)
        expected = np.asarray(wide(x, training=False))
    except Exception as e:  # (a model Keras builds in float32 and cannot run in float64: not ours)
        return f"not run: Keras cannot run it in float64: {said(e, 200)}"
    try:
        mle.export_model(wide, path)
        ours = mle.load_model(path, precision="float64").predict(x)
    except Exception as e:
        return f"run: {said(e, 300)}"
    verdict = network_verdict(ours, expected, None, TOLERANCE["float64"], "Keras")
    inexact = [name for name in INEXACT_IN_FLOAT64 if any(re.search(name, layer) for layer in drawn.layers)]
    if verdict != "ok" and inexact and network_verdict(ours, expected, None, 1e-6, "Keras") == "ok":
        return f"ok, inexact reference: Keras's float64 {', '.join(inexact)} rounds in float32 ({verdict})"
    return verdict


def main() -> int:
    return fuzz_networks(__doc__, FAMILIES, 240, one_run, "Keras", "keras_fuzz", before=keras.backend.clear_session)


if __name__ == "__main__":
    sys.exit(main())
