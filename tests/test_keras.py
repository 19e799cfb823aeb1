"""Keras 3 models, defined here: exported layer by layer, compared with Keras's own predict at batch
sizes 1, 7 and 256; multi-input and multi-output models keep their order and names."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import keras
import numpy as np
import pytest

import mle_runtime as mle
from mle_runtime.errors import UnsupportedModelError

BATCHES = (1, 7, 256)
layers = keras.layers


def _randomize_statistics(model: keras.Model) -> keras.Model:
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.moving_mean.assign(rng.uniform(-1, 1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    return model


def dense_sequential() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((12,)),
            layers.Dense(32, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(32, activation="gelu"),
            layers.BatchNormalization(),
            layers.Dense(16),
            layers.LeakyReLU(0.1),
            layers.Dense(16, activation="tanh"),
            layers.Activation("swish"),
            layers.Dense(8, activation="elu"),
            layers.ReLU(max_value=6.0),
            layers.Dense(4),
            layers.Softmax(),
        ]
    )


def conv_functional() -> keras.Model:
    image = keras.Input((16, 14, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    x = layers.BatchNormalization()(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dilation_rate=1)(x)
    x = layers.SeparableConv2D(12, 3, activation="swish")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)
    y = layers.AveragePooling2D(2, strides=1, padding="same")(x)
    x = layers.Add()([x, y])
    x = layers.LayerNormalization()(x)
    flat = layers.Flatten()(x)
    pooled = layers.GlobalAveragePooling2D()(x)
    top = layers.GlobalMaxPooling2D()(x)
    side = keras.Input((5,), name="side")
    s = layers.Dense(6, activation="sigmoid")(side)
    z = layers.Concatenate()([flat, pooled, top, s])
    probs = layers.Dense(4, activation="softmax", name="probs")(z)
    value = layers.Dense(1, name="value")(layers.Multiply()([s, layers.Reshape((6,))(s)]))
    return keras.Model([image, side], [probs, value])


def channels_first() -> keras.Model:
    """Every layer of spatial data with data_format="channels_first": (batch, channels, *spatial) inputs."""
    first = {"data_format": "channels_first"}
    image = keras.Input((3, 16, 14), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", **first)(image)
    x = layers.BatchNormalization(axis=1)(x)
    x = layers.RandomFlip(**first)(x)
    x = layers.MaxPooling2D(2, **first)(x)
    x = layers.DepthwiseConv2D(3, padding="same", **first)(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", **first)(x)
    x = layers.ZeroPadding2D(((1, 0), (2, 1)), **first)(x)
    x = layers.Cropping2D(((0, 1), (1, 0)), **first)(x)
    x = layers.Conv2DTranspose(6, 3, strides=2, **first)(x)
    x = layers.SeparableConv2D(6, 3, strides=2, **first)(x)
    x = layers.CenterCrop(7, 6, **first)(layers.Resizing(10, 9, **first)(x))
    x = layers.AveragePooling2D(2, strides=1, padding="same", **first)(x)
    kept = layers.GlobalMaxPooling2D(keepdims=True, **first)(x)
    pooled = layers.GlobalAveragePooling2D(**first)(x)
    flat = layers.Flatten(**first)(x)
    series = keras.Input((4, 12), name="series")
    s = layers.Conv1D(5, 3, padding="causal", **first)(series)
    s = layers.MaxPooling1D(2, **first)(s)
    s = layers.GlobalAveragePooling1D(**first)(s)
    volume = keras.Input((2, 6, 6, 4), name="volume")
    v = layers.Conv3D(3, 3, **first)(volume)
    v = layers.GlobalMaxPooling3D(**first)(v)
    z = layers.Concatenate()([flat, pooled, s, v])
    model = keras.Model([image, series, volume], [layers.Dense(3, name="out")(z), kept])
    # TensorFlow runs a channels-first transposed convolution on the CPU only through oneDNN, which it
    # enables by default on some processors (an AVX-512 Intel one), not all (an AVX2 AMD one: "only supports
    # NHWC"); Keras's predict compiled by XLA runs it everywhere
    model.compile(jit_compile=True)
    return model


def sequence_model() -> keras.Model:
    tokens = keras.Input((10,), name="tokens")
    x = layers.Embedding(30, 16)(tokens)
    a = layers.MultiHeadAttention(num_heads=2, key_dim=8, value_dim=6, output_shape=16)(x, x)
    x = layers.LayerNormalization()(layers.Add()([x, a]))
    x = layers.Conv1D(16, 3, padding="causal", activation="relu")(x)
    # Luong's scaled dot-product attention of the sequence on itself, causal
    x = layers.Add()([x, layers.Attention(use_scale=True)([x, x], use_causal_mask=True)])
    x = layers.LSTM(12, return_sequences=True)(x)
    x = layers.GRU(8, go_backwards=True)(x)
    return keras.Model(tokens, layers.Dense(3)(x))


def pooling_1d() -> keras.Model:
    """1-D pooling, GroupNormalization, the merges, and Dot (of two sequences: every step against every
    other)."""
    signal = keras.Input((20, 4))
    x = layers.Conv1D(6, 5, strides=2, dilation_rate=1, padding="valid")(signal)
    x = layers.GroupNormalization(3)(layers.MaxPooling1D(2)(x))
    x = layers.AveragePooling1D(2, padding="same")(x)
    x = layers.Subtract()([x, layers.Average()([x, x])])
    y = layers.Conv1D(6, 1)(x)
    pooled = layers.GlobalAveragePooling1D()(layers.Minimum()([layers.Maximum()([x, y]), y]))
    return keras.Model(signal, layers.Concatenate()([pooled, layers.Flatten()(layers.Dot(axes=2)([x, y]))]))


def image_decoder() -> keras.Model:
    """Preprocessing layers, padding and (centre) cropping, nearest and bilinear upsampling and resizing, transposed
    convolutions (valid with output padding, same) and PReLU."""
    image = keras.Input((9, 8, 3))
    normalize = layers.Normalization()
    normalize.adapt(np.random.default_rng(0).normal(2.0, 3.0, size=(64, 9, 8, 3)).astype(np.float32))
    x = normalize(layers.Rescaling([0.5, 1.0, 2.0], offset=0.25)(image))
    x = layers.Resizing(11, 7, interpolation="nearest")(layers.Resizing(6, 13)(x))
    x = layers.CenterCrop(8, 6)(x)
    x = layers.Conv2D(4, 3, strides=2, padding="same")(layers.ZeroPadding2D(((1, 0), (2, 1)))(x))
    x = layers.Cropping2D(((1, 0), (0, 1)))(layers.UpSampling2D((2, 3), interpolation="bilinear")(x))
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.Conv2DTranspose(3, (3, 2), strides=(2, 3), output_padding=(1, 0))(x)
    x = layers.Conv2DTranspose(2, 3, strides=2, padding="same", activation="relu")(layers.UpSampling2D(2)(x))
    return keras.Model(image, layers.GlobalAveragePooling2D()(x))


def bidirectional_sequence() -> keras.Model:
    """Bidirectional LSTM, GRU and SimpleRNN (concatenated, averaged, summed), TimeDistributed Dense,
    Permute, RepeatVector, UnitNormalization, 1-D padding, cropping and upsampling, an inverted
    Normalization."""
    series = keras.Input((12, 5))
    x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(series)
    x = layers.TimeDistributed(layers.Dense(4, activation="tanh"))(x)
    x = layers.UpSampling1D(2)(layers.Cropping1D((2, 1))(layers.ZeroPadding1D((1, 2))(x)))
    x = layers.Permute((2, 1))(x)
    summary = layers.Bidirectional(layers.GRU(3), merge_mode="ave")(layers.Permute((2, 1))(x))
    summary = layers.UnitNormalization()(summary)
    x = layers.Bidirectional(layers.SimpleRNN(4, return_sequences=True, activation="relu"), merge_mode="sum")(x)
    denormalize = layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0], invert=True)
    repeated = layers.RepeatVector(2)(denormalize(summary))
    return keras.Model(series, [layers.Flatten()(repeated), layers.GlobalMaxPooling1D()(x)])


def masked_text() -> keras.Model:
    """Embedding(mask_zero=True): the mask through a Bidirectional LSTM, Dense and TimeDistributed (which
    pass it on), Concatenate and Add (which merge masks), a GRU that returns sequences, a backwards
    SimpleRNN and the masked mean of GlobalAveragePooling1D."""
    tokens = keras.Input((11,), dtype="int32")
    x = layers.Embedding(40, 8, mask_zero=True)(tokens)
    x = layers.Bidirectional(layers.LSTM(5, return_sequences=True))(x)
    y = layers.TimeDistributed(layers.Dense(4, activation="tanh"))(x)
    x = layers.Concatenate()([layers.GRU(4, return_sequences=True)(x), y])
    x = layers.Add()([layers.Dense(8)(layers.Dropout(0.2)(x)), x])
    last = layers.SimpleRNN(3, go_backwards=True)(x)
    return keras.Model(tokens, layers.Dense(2)(layers.Concatenate()([layers.GlobalAveragePooling1D()(x), last])))


def masked_attention() -> keras.Model:
    """Embedding(mask_zero=True) into MultiHeadAttention (query and value masks; then a masked key and a
    causal mask) and Attention (masked keys, 0 at masked queries, causal); the second output holds every
    step, the masked ones too."""
    tokens = keras.Input((11,), dtype="int32")
    embedded = layers.Embedding(40, 8, mask_zero=True)(tokens)
    plain = layers.Embedding(40, 8)(tokens)
    query = layers.Dense(8)(embedded)
    x = layers.LayerNormalization()(layers.MultiHeadAttention(2, 4)(query, query))
    causal = layers.MultiHeadAttention(2, 3)(plain, plain, layers.Dense(8)(embedded), use_causal_mask=True)
    attended = layers.Attention(use_scale=True)([x, x], use_causal_mask=True)
    pooled = layers.GlobalAveragePooling1D()(layers.Concatenate()([attended, causal]))
    return keras.Model(tokens, [layers.Dense(3)(pooled), layers.Dense(2)(attended)])


def einsum_features() -> keras.Model:
    """Two inputs: category ids counted and marked present (CategoryEncoding), a sequence through
    EinsumDense (with an activation), RMSNormalization, a spectrally normalized Dense, cosine similarities
    (Dot with normalize) and the rest of keras.activations."""
    ids = keras.Input((4,), dtype="int32", name="ids")
    series = keras.Input((5, 6), name="series")
    counts = layers.CategoryEncoding(9, output_mode="count")(ids)
    x = layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="e", activation="mish")(series)
    x = layers.RMSNormalization()(layers.Reshape((5, 6))(x))
    x = layers.SpectralNormalization(layers.Dense(6, activation="squareplus"))(x)
    cosines = layers.Flatten()(layers.Dot(axes=2, normalize=True)([x, series]))
    activated = [
        layers.Activation(name)(cosines)
        for name in ("log_sigmoid", "hard_tanh", "sparse_plus", "celu", "tanh_shrink", "soft_shrink", "hard_silu")
    ]
    merged = layers.Concatenate()([counts, layers.CategoryEncoding(9, output_mode="multi_hot")(ids), *activated])
    return keras.Model([ids, series], layers.Dense(3)(merged))


def generic_rnn() -> keras.Model:
    """keras.layers.RNN over one cell and over stacked cells (forwards, backwards, in a Bidirectional),
    on masked token embeddings."""
    tokens = keras.Input((11,), dtype="int32")
    x = layers.Embedding(40, 6, mask_zero=True)(tokens)
    x = layers.Bidirectional(layers.RNN([layers.LSTMCell(4), layers.GRUCell(3)], return_sequences=True))(x)
    back = layers.RNN([layers.SimpleRNNCell(3), layers.GRUCell(4, reset_after=False)], go_backwards=True)(x)
    last = layers.RNN(layers.LSTMCell(5), unroll=True)(x)
    return keras.Model(tokens, layers.Dense(2)(layers.Concatenate()([back, last])))


def nested_models() -> keras.Model:
    """Models as layers: a Sequential of image augmentations (built on its first call; every one of them
    returns its input at inference), a Functional encoder called on two inputs (its weights shared), a
    model of two inputs and two outputs; Discretization of a score into bins, counted."""
    augment = keras.Sequential(
        [layers.RandomFlip(), layers.RandomRotation(0.2), layers.RandomZoom(0.1), layers.RandomContrast(0.3)]
    )
    patch = keras.Input((6, 6, 2))
    encoded = layers.Dense(3, activation="tanh")(layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(patch)))
    encoder = keras.Model(patch, encoded)
    left, right = keras.Input((5,)), keras.Input((5,))
    both = keras.Model([left, right], [layers.Add()([left, right]), layers.Subtract()([left, right])])
    image, other = keras.Input((6, 6, 2), name="image"), keras.Input((6, 6, 2), name="other")
    first, second = encoder(layers.RandomCrop(6, 6)(augment(image))), encoder(other)
    total, difference = both([layers.Dense(5)(first), layers.Dense(5)(second)])
    bins = layers.Discretization(bin_boundaries=[-0.5, 0.0, 0.25], output_mode="count")(difference)
    return keras.Model([image, other], layers.Concatenate()([total, bins, layers.Dot(axes=1)([first, second])]))


def masking_series() -> keras.Model:
    """Masking: steps whose features all equal -1 skipped by an LSTM (unrolled: Keras loops in Python, to the
    same sums) and a GRU (its mask passed through BatchNormalization)."""
    series = keras.Input((9, 3))
    x = layers.LSTM(6, return_sequences=True, unroll=True)(layers.Masking(mask_value=-1.0)(series))
    x = layers.GRU(4)(layers.BatchNormalization()(x))
    return keras.Model(series, layers.Dense(3, activation="softmax")(x))


def _padded_tokens(n: int) -> np.ndarray:
    """Token rows with 0s (masked) at the end, the start and inside, and at least one token each."""
    rng = np.random.default_rng(n)
    tokens = rng.integers(1, 40, (n, 11))
    tokens[rng.random((n, 11)) < 0.25] = 0
    for row, length in enumerate(rng.integers(1, 12, n)):
        tokens[row, length:] = 0
        tokens[row, rng.integers(0, length)] = rng.integers(1, 40)
    return tokens.astype(np.int32)


def conditioned_recurrence() -> keras.Model:
    """Recurrent layers started from states computed from another input (initial_state=)."""
    sequence, features = keras.Input((6, 3), name="sequence"), keras.Input((4,), name="features")
    h0, c0 = layers.Dense(5, activation="tanh")(features), layers.Dense(5)(features)
    steps = layers.LSTM(5, return_sequences=True)(sequence, initial_state=[h0, c0])
    last = layers.GRU(5)(steps, initial_state=h0)
    backwards = layers.SimpleRNN(5, go_backwards=True)(sequence, initial_state=[h0])
    return keras.Model([sequence, features], layers.Concatenate()([last, backwards]))


def convolutional_lstms() -> keras.Model:
    """ConvLSTM1D/2D/3D: strides, "same" padding, dilation, no bias, go_backwards, hard_sigmoid gates."""
    frames, series, volumes = keras.Input((5, 8, 8, 2)), keras.Input((4, 9, 3)), keras.Input((3, 4, 5, 4, 1))
    y = layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True)(frames)
    y = layers.ConvLSTM2D(3, 3, strides=2, go_backwards=True, recurrent_activation="hard_sigmoid")(y)
    z = layers.ConvLSTM1D(2, 2, dilation_rate=2, use_bias=False, return_sequences=True)(series)
    u = layers.ConvLSTM3D(2, 2, padding="same")(volumes)
    flat = [layers.Flatten()(t) for t in (y, z, u)]
    return keras.Model([frames, series, volumes], layers.Dense(3)(layers.Concatenate()(flat)))


def recurrent_states() -> keras.Model:
    """return_state: an encoder's last h and c starting a decoder, a GRU's state beside its output, a
    Bidirectional LSTM's states (forward h and c, then backward), keras.layers.RNN's over one cell."""
    sequence = keras.Input((6, 3), name="sequence")
    steps, h, c = layers.LSTM(4, return_state=True, return_sequences=True, go_backwards=True)(sequence)
    decoded = layers.LSTM(3)(sequence, initial_state=[layers.Dense(3)(h), layers.Dense(3)(c)])
    _, state = layers.GRU(4, return_state=True)(sequence)
    both, forward_h, _, _, backward_c = layers.Bidirectional(layers.LSTM(3, return_state=True))(sequence)
    _, cell_h, cell_c = layers.RNN(layers.LSTMCell(2), return_state=True, go_backwards=True)(sequence)
    # stacked cells: every cell's states, an LSTM's h and c, a GRU's h
    cells = [layers.LSTMCell(3), layers.GRUCell(2), layers.LSTMCell(2)]
    stacked = keras.tree.flatten(layers.RNN(cells, return_state=True, go_backwards=True)(sequence))
    assert len(stacked) == 6  # (the output; h and c, h, h and c)
    states = layers.Concatenate()([decoded, state, both, forward_h, backward_c, cell_h, cell_c, *stacked])
    return keras.Model(sequence, [states, layers.GlobalAveragePooling1D()(steps)])


def keras_operations() -> keras.Model:
    """keras.ops on symbolic tensors, several named as layers are (Add, Multiply, Concatenate, Reshape,
    Softmax, Max): ``x + 0.5`` is an operation with a constant, not an Add layer."""
    from keras import ops

    a, b = keras.Input((6, 5), name="a"), keras.Input((5,), name="b")
    x = 1.0 - (2.0 * (a + 0.5) - b[:, None, :]) / 3
    x = ops.concatenate([x, ops.exp(-ops.abs(x))], axis=-1)
    x = ops.reshape(ops.transpose(x - ops.mean(x, axis=1, keepdims=True), (0, 2, 1)), (-1, 60))
    y = ops.softmax(layers.Dense(4)(x), axis=-1)
    z = ops.clip(ops.sqrt(ops.square(a[:, ::2, 1:4]) + 1), np.float32(1.1), 2.0)  # (Keras cannot pickle it)
    z = ops.squeeze(ops.expand_dims(ops.sum(z, axis=(1, 2)), -1), -1)
    w = ops.matmul(b, np.linspace(-1, 1, 15).reshape(5, 3).astype("float32")) ** 2
    c = ops.cast(ops.cast(b * 3, "int32"), "float32")
    out = ops.stack([ops.max(y, axis=1), z, ops.min(w, axis=1), ops.sum(c, axis=-1)], axis=1)
    return keras.Model([a, b], [y, out, a[..., 0]])


def _padded_series(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 9, 3)).astype(np.float32)
    x[rng.random((n, 9)) < 0.3] = -1.0
    x[:, 0, 0] = 2.0  # (every row keeps a step; none kept: test_rows_with_every_step_masked)
    x[::3, 0, 1] = -1.0  # (one feature equal to the mask value: the step is kept)
    return x


def _floats(*shape: int) -> Callable[[int], np.ndarray]:
    return lambda n: np.random.default_rng(n).normal(size=(n, *shape)).astype(np.float32)


MODELS: dict[str, tuple[Callable[[], keras.Model], Callable[[int], list[np.ndarray]]]] = {
    "dense-sequential": (dense_sequential, lambda n: [_floats(12)(n)]),
    "conv-two-inputs-two-outputs": (conv_functional, lambda n: [_floats(16, 14, 3)(n), _floats(5)(n)]),
    "channels-first": (channels_first, lambda n: [_floats(3, 16, 14)(n), _floats(4, 12)(n), _floats(2, 6, 6, 4)(n)]),
    "embedding-attention-lstm-gru": (
        sequence_model,
        lambda n: [np.random.default_rng(n).integers(0, 30, (n, 10)).astype(np.float32)],
    ),
    "conv1d-pooling-merges": (pooling_1d, lambda n: [_floats(20, 4)(n)]),
    "image-decoder": (image_decoder, lambda n: [_floats(9, 8, 3)(n)]),
    "bidirectional-sequence": (bidirectional_sequence, lambda n: [_floats(12, 5)(n)]),
    "masked-text": (masked_text, lambda n: [_padded_tokens(n)]),
    "masked-attention": (masked_attention, lambda n: [_padded_tokens(n)]),
    "masking-series": (masking_series, lambda n: [_padded_series(n)]),
    "generic-rnn": (generic_rnn, lambda n: [_padded_tokens(n)]),
    "nested-models": (
        nested_models,
        lambda n: [_floats(6, 6, 2)(n), np.random.default_rng(n + 1).normal(size=(n, 6, 6, 2)).astype(np.float32)],
    ),
    "keras-operations": (keras_operations, lambda n: [_floats(6, 5)(n), _floats(5)(n)]),
    "conditioned-recurrence": (conditioned_recurrence, lambda n: [_floats(6, 3)(n), _floats(4)(n)]),
    "recurrent-states": (recurrent_states, lambda n: [_floats(6, 3)(n)]),
    "convolutional-lstms": (
        convolutional_lstms,
        lambda n: [_floats(5, 8, 8, 2)(n), _floats(4, 9, 3)(n), _floats(3, 4, 5, 4, 1)(n)],
    ),
    "einsum-features": (
        einsum_features,
        lambda n: [np.random.default_rng(n).integers(0, 9, (n, 4)).astype(np.int32), _floats(5, 6)(n)],
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_keras_predict(name: str, tmp_path: Path) -> None:
    make, data = MODELS[name]
    keras.utils.set_random_seed(0)
    model = _randomize_statistics(make())
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    info = runtime.get_model_info()
    # each weight stored once, beside a few constants (a layer called twice stored its weights twice)
    assert info["num_parameters"] <= model.count_params() + 16
    assert [i["name"] for i in info["inputs"]] == [t.name for t in model.inputs]
    names = getattr(model, "output_names", None) or [model.layers[-1].name]  # (Sequential: the last layer)
    assert [o["name"] for o in info["outputs"]] == list(names)
    for n in BATCHES:
        inputs = data(n)
        want = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        want = want if isinstance(want, list) else [want]
        got = runtime.run(inputs)
        assert len(got) == len(want)
        for ours, theirs in zip(got, want, strict=True):
            assert ours.shape == theirs.shape
            err = float(np.abs(ours - theirs).max()) / max(float(np.abs(theirs).max()), 1e-30)
            assert err <= 1e-5, f"{name} at batch {n}: error {err:.3g} of the output's magnitude"


@pytest.mark.parametrize("name", ["ConvNeXtTiny", "EfficientNetB0"])
def test_keras_applications(name: str, tmp_path: Path) -> None:
    """Architectures as keras.applications builds them (randomly initialized: no download), at 32x32:
    ConvNeXt's LayerScale, LayerNormalization and GELU; EfficientNet's rescaling, normalization and
    squeeze-and-excitation products."""
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None, classes=5)
    mle.export_model(model, tmp_path / "m.mle")
    x = np.random.default_rng(0).uniform(0, 255, size=(3, 32, 32, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    got = mle.load_model(tmp_path / "m.mle").predict(x)
    assert float(np.abs(got - want).max()) <= 1e-5 * float(np.abs(want).max())


@pytest.mark.parametrize(
    "operation",
    [
        lambda x: keras.ops.sum(x, axis=0),
        lambda x: keras.ops.softmax(x, axis=0),
        lambda x: keras.ops.concatenate([x, x], axis=0),
        lambda x: keras.ops.reshape(x, (-1, 15)),
        lambda x: keras.ops.squeeze(keras.ops.expand_dims(x, -1)),
        lambda x: x + np.ones((3, 6, 5), "float32"),
    ],
)
def test_operations_across_the_batch_are_refused(operation: Callable[[Any], Any], tmp_path: Path) -> None:
    """By their settings (keras_operations.py), before the model is run to find out (batch_rows.py)."""
    x = keras.Input((6, 5))
    with pytest.raises(UnsupportedModelError, match="depend on the other rows of the batch"):
        mle.export_model(keras.Model(x, operation(x)), tmp_path / "m.mle")


@pytest.mark.parametrize(
    "layer",
    [layers.Softmax(axis=0), layers.Concatenate(axis=0), layers.UnitNormalization(axis=0)],
    ids=["softmax", "concatenate", "unit-normalization"],
)
def test_layers_across_the_batch_are_refused(layer: Any, tmp_path: Path) -> None:
    x = keras.Input((6, 5))
    y = layer([x, x]) if isinstance(layer, layers.Concatenate) else layer(x)
    with pytest.raises(UnsupportedModelError, match="depends on the other rows of the batch"):
        mle.export_model(keras.Model(x, y), tmp_path / "m.mle")


def test_an_lstm_returning_its_state_runs_its_loop_once(tmp_path: Path) -> None:
    """c comes from the loop that computes the output (not from a second run of it)."""
    sequence = keras.Input((9, 3))
    model = keras.Model(sequence, layers.LSTM(5, return_state=True, return_sequences=True)(sequence))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    fn, params = runtime.as_jax()
    X = np.random.default_rng(0).normal(size=(4, 9, 3)).astype(np.float32)
    assert jax.jit(fn).lower(params, X).as_text().count("stablehlo.while") == 1
    for ours, theirs in zip(runtime.run([X]), model.predict(X, verbose=0), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_channels_first_conv_lstm_is_refused(tmp_path: Path) -> None:
    frames = keras.Input((3, 2, 5, 5))  # (time, channels, height, width)
    y = layers.ConvLSTM2D(2, 3, data_format="channels_first")(frames)
    with pytest.raises(UnsupportedModelError, match="ConvLSTM2D\\) with data_format='channels_first'"):
        mle.export_model(keras.Model(frames, y), tmp_path / "m.mle")


def test_a_center_crop_that_would_resize_is_refused(tmp_path: Path) -> None:
    image = keras.Input((6, 9, 3))
    with pytest.raises(UnsupportedModelError, match="CenterCrop to 8x4 of 6x9 images is not supported"):
        mle.export_model(keras.Model(image, layers.CenterCrop(8, 4)(image)), tmp_path / "m.mle")


def test_a_layer_given_more_tensors_than_it_reads_is_refused(tmp_path: Path) -> None:
    sequence, h0 = keras.Input((6, 3)), keras.Input((4,))
    both = layers.Bidirectional(layers.GRU(4))(sequence, initial_state=[h0, h0])
    with pytest.raises(UnsupportedModelError, match="Bidirectional called on 3 tensors"):
        mle.export_model(keras.Model([sequence, h0], both), tmp_path / "m.mle")


def test_unsupported_layers_are_named_at_once(tmp_path: Path) -> None:
    x = keras.Input((6, 4))
    y = keras.ops.cumsum(layers.Dense(4)(x), axis=1)
    z = layers.RandomCrop(3, 3)(layers.Reshape((6, 4, 1))(layers.Lambda(lambda t: t * 2)(y)))
    with pytest.raises(UnsupportedModelError, match=r"\['Lambda', 'RandomCrop', 'keras.ops Cumsum'\]"):
        mle.export_model(keras.Model(x, z), tmp_path / "m.mle")


class Dense(layers.Dense):
    """A user's layer named as Keras's, computing otherwise."""

    def call(self, inputs: Any) -> Any:
        return super().call(inputs) * 2.0


class LSTMCell(layers.LSTMCell):
    def call(self, inputs: Any, states: Any, training: bool = False) -> Any:
        h, new_states = super().call(inputs, states, training)
        return h * 2.0, new_states


class Doubling(keras.Model):
    """A model built functionally whose call computes otherwise than its graph."""

    def __init__(self) -> None:
        x = keras.Input((4,))
        super().__init__(x, layers.Dense(3)(x))

    def call(self, inputs: Any, training: bool = False) -> Any:
        return super().call(inputs, training=training) * 2.0


@pytest.mark.parametrize("policy", ["mixed_float16", "bfloat16"])
def test_a_half_precision_model_computes_in_float32(policy: str, tmp_path: Path) -> None:
    """Its weights widened exactly: the answers are a float32 copy's, within half precision's rounding of
    Keras's own."""

    def make(dtype: str) -> keras.Model:
        keras.utils.set_random_seed(0)
        x = keras.Input((8,))
        h = layers.Dense(16, activation="relu", dtype=dtype)(x)
        return keras.Model(x, layers.Dense(3, dtype=dtype)(h))

    model, copy = make(policy), make("float32")
    copy.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    mle.export_model(model, tmp_path / "m.mle")
    X = np.random.default_rng(0).normal(size=(7, 8)).astype(np.float32)
    got = mle.load_model(tmp_path / "m.mle").predict(X)
    np.testing.assert_allclose(got, copy.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
    own = np.asarray(model.predict(X, verbose=0), np.float32)
    assert float(np.abs(got - own).max()) <= 2e-2 * float(np.abs(own).max())


def test_a_tensor_returned_twice_and_an_input_returned(tmp_path: Path) -> None:
    x = keras.Input((5, 3))
    output, h, _ = layers.LSTM(4, return_state=True)(x)  # (output and h: one tensor)
    model = keras.Model(x, [output, h, x])
    mle.export_model(model, tmp_path / "m.mle")
    X = np.random.default_rng(0).normal(size=(3, 5, 3)).astype(np.float32)
    for got, want in zip(mle.load_model(tmp_path / "m.mle").run([X]), model.predict(X, verbose=0), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_custom_classes_are_refused_whatever_their_names(tmp_path: Path) -> None:
    x = keras.Input((5, 4))
    model = keras.Model(x, [Dense(3)(x), layers.RNN(LSTMCell(2))(x), Doubling()(layers.Flatten()(x)[:, :4])])

    def relu(t: Any) -> Any:  # named as Keras's
        return keras.ops.maximum(t, 0.0) * 2.0

    with pytest.raises(UnsupportedModelError, match="a function of its own, not Keras's 'relu'"):
        mle.export_model(keras.Model(x, layers.Dense(2, activation=relu)(x)), tmp_path / "m.mle")
    with pytest.raises(UnsupportedModelError) as info:
        mle.export_model(model, tmp_path / "m.mle")
    for name in ("test_keras.Dense", "test_keras.LSTMCell", "Doubling (a model that overrides call())"):
        assert name in str(info.value)
    with pytest.raises(UnsupportedModelError, match="Doubling overrides call"):
        mle.export_model(Doubling(), tmp_path / "m.mle")
    assert not (tmp_path / "m.mle").exists()


def test_rows_with_every_step_masked(tmp_path: Path) -> None:
    """A row with no step kept: the masked mean is 0 / 0 (NaN) in Keras, and a recurrent layer returns
    its initial state; both as Keras computes them."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((5,), dtype="int32")
    x = layers.Embedding(9, 4, mask_zero=True)(tokens)
    model = keras.Model(tokens, [layers.GlobalAveragePooling1D()(x), layers.LSTM(3)(x)])
    mle.export_model(model, tmp_path / "m.mle")
    rows = np.array([[0, 0, 0, 0, 0], [3, 0, 5, 0, 0]], np.int32)
    want = model.predict(rows, verbose=0)
    got = mle.load_model(tmp_path / "m.mle").run([rows])
    assert np.isnan(want[0][0]).all() and not np.isnan(want[0][1]).any()
    for ours, theirs in zip(got, want, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_masks_that_are_not_converted_are_refused(tmp_path: Path) -> None:
    tokens = keras.Input((6,), dtype="int32")
    x = layers.Embedding(9, 4, mask_zero=True)(tokens)
    softmax = layers.Softmax()(layers.Dense(4)(x))
    with pytest.raises(UnsupportedModelError, match=r"\['Softmax given a masked input'\]"):
        mle.export_model(keras.Model(tokens, softmax), tmp_path / "m.mle")
    x = layers.Embedding(9, 4, mask_zero=True)(tokens)
    residual = layers.Add()([x, layers.MultiHeadAttention(num_heads=1, key_dim=2)(x, x)])
    with pytest.raises(UnsupportedModelError, match="Keras removes their masks"):  # (then Add sees none)
        mle.export_model(keras.Model(tokens, residual), tmp_path / "m.mle")
    x = layers.Embedding(9, 4)(tokens)
    by_hand = keras.Input((6, 6), dtype="bool")
    attended = layers.MultiHeadAttention(num_heads=1, key_dim=2)(x, x, attention_mask=by_hand)
    with pytest.raises(UnsupportedModelError, match="a mask of its own"):
        mle.export_model(keras.Model([tokens, by_hand], attended), tmp_path / "m.mle")


@pytest.mark.parametrize(
    "option, reason",
    [
        ({"use_gate": True}, "use_gate=True"),
        ({"sliding_window": 2}, "sliding_window=2"),
        ({"output_shape": (2, 3)}, r"output_shape=\(2, 3\)"),
    ],
)
def test_attention_variants_not_converted_are_refused(option: dict, reason: str, tmp_path: Path) -> None:
    x = keras.Input((6, 4))
    attended = layers.MultiHeadAttention(num_heads=1, key_dim=2, **option)(x, x)
    with pytest.raises(UnsupportedModelError, match=f"MultiHeadAttention with {reason} is not supported"):
        mle.export_model(keras.Model(x, attended), tmp_path / "m.mle")


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have a `quantize` method")
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_a_model_quantized_by_keras_is_refused(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((6,)), layers.Dense(8), layers.Dense(2)])
    model.quantize("int8")  # (its kernels int8 with scales beside them: read as floats they were 3e4 off)
    with pytest.raises(UnsupportedModelError, match="quantized by Keras"):
        mle.export_model(model, tmp_path / "m.mle")


def test_ids_outside_the_embedding_raise(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((3,), dtype="int32"), layers.Embedding(5, 2), layers.Flatten()])
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    bad = np.array([[0, 4, 1], [0, 5, 1]], np.int32)
    with pytest.raises(Exception, match="(?i)gather|indices"):  # (TensorFlow's InvalidArgumentError)
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=r"an id outside 0..4 \(rows \[1\]\)"):
        runtime.run([bad])


def test_a_model_without_inputs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="build it"):
        mle.export_model(keras.Sequential([layers.Dense(3)]), tmp_path / "m.mle")


def test_quantized_keras_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = dense_sequential()
    result = mle.export_tensorflow_model(model, tmp_path / "m.mle", quantize="fp16")
    assert result["quantization"]["size_reduction"] > 1.5
    x = _floats(12)(64)
    want = model.predict(x, verbose=0)
    got = mle.load_model(tmp_path / "m.mle").predict(x)
    assert float(np.abs(got - want).max()) <= 1e-2 * float(np.abs(want).max())


@pytest.mark.parametrize(
    ("make", "shape", "channel_axes", "width"),
    [
        (lambda: layers.Conv2D(8, 3, use_bias=False), (9, 9, 4), (3,), 8),
        (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False), (9, 9, 16), (2, 3), 32),
        (lambda: layers.Conv2DTranspose(6, 3, strides=2, use_bias=False), (5, 5, 8), (2,), 6),
        (lambda: layers.Dense(16, use_bias=False), (32,), (1,), 16),
        (lambda: layers.EinsumDense("abc,cde->abde", output_shape=(None, 4, 8)), (3, 16), (1, 2), 32),
        # a table's rows are its channels: each id's vector
        (lambda: layers.Embedding(40, 8), (8,), (0,), 8),
    ],
    ids=["conv2d", "depthwise", "conv_transpose", "dense", "einsum_dense", "embedding"],
)
def test_int8_scales_are_per_output_channel(
    make: Callable[[], Any], shape: tuple[int, ...], channel_axes: tuple[int, ...], width: int, tmp_path: Path
) -> None:
    """Output channels whose weights differ 1,000-fold in size each keep int8's precision: one scale for
    all of them would leave the smallest a few steps of the largest's. (Channels last: an output's last
    ``width`` values are one of each channel, an id's vector for an embedding.)"""
    keras.utils.set_random_seed(0)
    embedding = len(shape) == 1 and channel_axes == (0,)
    inputs = keras.Input(shape, dtype="int32" if embedding else "float32")
    layer = make()
    model = keras.Model(inputs, layer(inputs))
    kernel = layer.get_weights()[0]
    shape_of_channels = [kernel.shape[a] if a in channel_axes else 1 for a in range(kernel.ndim)]
    factors = np.logspace(0, -3, int(np.prod(shape_of_channels))).reshape(shape_of_channels)
    layer.set_weights([kernel * factors, *layer.get_weights()[1:]])
    x = np.arange(40).reshape(5, 8) if embedding else _floats(*shape)(5)
    reference = np.asarray(model(x, training=False))
    mle.export_tensorflow_model(model, tmp_path / "q.mle", quantize="int8")
    ours = mle.load_model(tmp_path / "q.mle").predict(x)

    def by_channel(out: np.ndarray) -> np.ndarray:
        values = out.reshape(-1, width)
        return values if embedding else values.T

    error = np.abs(by_channel(ours) - by_channel(reference)).max(axis=1) / np.abs(by_channel(reference)).max(axis=1)
    assert error.max() <= 2e-2, f"relative error per output channel: {np.round(error, 4)}"


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`, which is deprecated:UserWarning")
def test_deprecated_rms_scaling_layer_normalization(tmp_path: Path) -> None:
    """Keras 3.15 deprecates rms_scaling=True (it divides x by its standard deviation, uncentred); models
    saved with it convert as Keras computes them."""
    keras.utils.set_random_seed(0)
    x_in = keras.Input((6, 5))
    norm = layers.LayerNormalization(rms_scaling=True)
    model = keras.Model(x_in, layers.Dense(3)(norm(x_in + 0.5)))
    norm.gamma.assign(np.linspace(0.5, 2.0, 5))
    mle.export_model(model, tmp_path / "m.mle")
    runtime = mle.load_model(tmp_path / "m.mle")
    for n in BATCHES:
        X = np.random.default_rng(n).normal(size=(n, 6, 5)).astype(np.float32)
        want = model.predict(X, verbose=0)
        assert float(np.abs(runtime.predict(X) - want).max()) <= 1e-5 * float(np.abs(want).max())


def test_a_float64_model_matches_in_float64_mode(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    f64 = {"dtype": "float64"}
    x_in = keras.Input((10, 4), dtype="float64")
    x = layers.Conv1D(6, 3, padding="same", activation="relu", **f64)(x_in)
    x = layers.BatchNormalization(**f64)(x)
    x = layers.LSTM(5, return_sequences=True, **f64)(x)
    x = layers.GRU(4, **f64)(x)
    model = _randomize_statistics(keras.Model(x_in, layers.Dense(3, activation="softmax", **f64)(x)))
    mle.export_model(model, tmp_path / "m.mle")
    X = np.random.default_rng(0).normal(size=(7, 10, 4))
    # (a direct call: predict's data adapter rounds float64 inputs to Keras's float32 default first)
    want = keras.ops.convert_to_numpy(model(X, training=False))
    got = mle.load_model(tmp_path / "m.mle", precision="float64").predict(X)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_float64_convolutions_compile(tmp_path: Path) -> None:
    """XLA's CPU backend did not compile, in minutes, a float64 3 x 3 convolution of 3 channels into 6 over
    a 15 x 15 input padded (1, 1) and (1, 2), nor a depthwise one after such a padding (its elemental
    loop nest, which LLVM did not finish optimizing). Run in a subprocess so that a hang fails the test."""
    import subprocess
    import sys

    keras.utils.set_random_seed(0)
    f64 = {"dtype": "float64"}
    x_in = keras.Input((15, 15, 3), dtype="float64")
    padded = layers.ZeroPadding2D(((0, 2), (0, 1)), **f64)(x_in)
    separable = layers.SeparableConv2D(3, 3, depth_multiplier=2, padding="same", **f64)(padded)
    plain = layers.Conv2D(6, 3, padding="same", **f64)(layers.ZeroPadding2D(((0, 0), (0, 1)), **f64)(x_in))
    merged = layers.Concatenate(**f64)([layers.Flatten(**f64)(separable), layers.Flatten(**f64)(plain)])
    model = keras.Model(x_in, layers.Dense(4, **f64)(merged))
    mle.export_model(model, tmp_path / "m.mle")
    X = np.random.default_rng(0).normal(size=(5, 15, 15, 3))
    np.save(tmp_path / "x.npy", X)
    script = (
        "import numpy as np, mle_runtime as mle; "
        "runtime = mle.load_model('m.mle', precision='float64'); "
        "np.save('out.npy', runtime.predict(np.load('x.npy')))"
    )
    try:
        subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the float64 convolutions did not compile in 120 s")
    want = keras.ops.convert_to_numpy(model(X, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize(
    "norm",
    [layers.LayerNormalization, partial(layers.GroupNormalization, groups=4)],
    ids=["layer", "group"],
)
def test_norm_of_equal_values_is_its_beta(tmp_path: Path, norm: Callable[..., layers.Layer]) -> None:
    """Rows of equal values deviate from their mean by exactly 0: the norm is beta. Keras's float32
    answers round the mean (the layer norm misses beta by 2e-4 at 3333.3, the group norm, which adds
    x * inv and beta - mean * inv, by 4e-4); held to the same model in float64."""

    def model(dtype: str) -> keras.Model:
        x = keras.Input((24,), dtype=dtype)
        layer = norm(beta_initializer="random_uniform", gamma_initializer="random_uniform", dtype=dtype)
        return keras.Model(x, layer(x))

    keras.utils.set_random_seed(0)
    narrow, wide = model("float32"), model("float64")
    wide.set_weights([w.astype(np.float64) for w in narrow.get_weights()])
    mle.export_model(narrow, tmp_path / "m.mle")
    X = np.repeat(np.array([1.59, 0.1, 3.3, -7.77, 1e4 / 3, 0.0], np.float32)[:, None], 24, axis=1)
    want = keras.ops.convert_to_numpy(wide(X.astype(np.float64), training=False))
    got = mle.load_model(tmp_path / "m.mle").predict(X)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


# Keras's own model.save, with TensorFlow tensors under numpy 2
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_cli_exports_a_keras_file(tmp_path: Path) -> None:
    """`mle export model.keras`: Keras's own file (configuration and weights, read in safe mode), no pickle."""
    import subprocess
    import sys

    keras.utils.set_random_seed(0)
    model = dense_sequential()
    model.save(tmp_path / "m.keras")
    mle_bin = Path(sys.executable).parent / "mle-export"
    out = subprocess.run([str(mle_bin), "m.keras", "m.mle"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "runs code" not in out.stderr
    x = _floats(12)(9)
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        mle.load_model(tmp_path / "m.mle").predict(x), want, rtol=0, atol=1e-5 * np.abs(want).max()
    )
