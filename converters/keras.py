"""Keras 3 models (Sequential and Functional): the layer graph walked from the model's outputs back to
its inputs, each layer call written as one node (the ops are in mle_runtime/ops/keras.py), inputs and
outputs in the model's order under the model's names."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from mle_runtime.converters._builder import Converted, GraphBuilder, ModelIR, distinct_outputs, model_ir
from mle_runtime.converters.batch_rows import refuse_rows_that_mix
from mle_runtime.converters.keras_operations import is_operation, operation
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.ops.keras import ACTIVATIONS

# Layers that compute nothing at inference (the image augmentations among them: each returned its input
# unchanged with training=False, checked layer by layer on Keras 3.15; RandomCrop does where it crops to
# the input's own size, else it resizes).
_IDENTITY = {
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomContrast",
    "RandomTranslation",
    "RandomBrightness",
    "RandomSaturation",
    "RandomHue",
    "RandomSharpness",
    "RandomShear",
    "RandomGrayscale",
    "RandomColorJitter",
    "RandomErasing",
    "RandomInvert",
    "RandomPosterization",
    "RandomGaussianBlur",
    "RandomPerspective",
    "RandomColorDegeneration",
    "RandomElasticTransform",
    "AugMix",
    "RandAugment",
    "CutMix",
    "MixUp",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
}
# Layers that act on the last axis alone: TimeDistributed over them is the layer itself.
_LAST_AXIS = {"Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", *_IDENTITY}
_MERGES = {
    "Add": "add",
    "Subtract": "subtract",
    "Multiply": "multiply",
    "Average": "average",
    "Maximum": "maximum",
    "Minimum": "minimum",
    "Concatenate": "concatenate",
}

# Layers whose call reads several tensors (a recurrent layer: its initial states); any other given more is
# refused, as it would read only the first.
_SEVERAL_TENSORS = {*_MERGES, "Dot", "MultiHeadAttention", "Attention", "CategoryEncoding", "LSTM", "GRU", "SimpleRNN"}

# Layers whose call reads its input's mask, as converted: the recurrent ones (masked steps keep their
# state), GlobalAveragePooling1D (the mean of the kept steps), the attention layers (masked keys left out);
# BatchNormalization reads it only in training, TimeDistributed hands it to a last-axis layer that does
# not read it.
_MASK_READERS = {
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "GlobalAveragePooling1D",
    "BatchNormalization",
    "TimeDistributed",
    "MultiHeadAttention",
    "Attention",
    "RNN",
}
_RETURN_SEQUENCES = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional"}


def convert(model: Any, input_shape: tuple[int, ...] | None = None) -> ModelIR:
    import keras

    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as e:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no input yet: build it (keras.Input, or call it on data) before exporting"
        ) from e
    if _overrides_call(model):
        raise UnsupportedModelError(
            f"{type(model).__qualname__} overrides call(): its layer graph is not what it computes; export a "
            "Functional or Sequential model"
        )
    b = GraphBuilder()
    walk = _Walk(b)
    given = [b.input(_input_name(t, i), (None, *t.shape[1:])) for i, t in enumerate(inputs)]
    tensors, _ = walk.graph(inputs, outputs, given, [None] * len(given))
    tensors = distinct_outputs(b, tensors, given)
    walk.check_no_mask_is_dropped()
    if walk.missing:
        raise UnsupportedModelError(
            f"{type(model).__name__}: layers without a jnp implementation: {sorted(walk.missing)}"
        )
    _check_rows_are_independent(model, inputs)
    # a Functional model's output names; a Sequential one's: the layer it ends with
    roles = [str(n) for n in getattr(model, "output_names", None) or [t._keras_history[0].name for t in outputs]]
    if len(set(roles)) != len(roles) or len(roles) != len(tensors):
        roles = [f"output_{i}" for i in range(len(tensors))]
    converted = Converted("network", dict(zip(roles, tensors, strict=True)), roles)
    metadata = {
        "framework": "keras",
        "framework_version": keras.__version__,
        "estimator": f"keras.{type(model).__name__}",
        "input_names": [vi.name for vi in b.inputs],
        "largest_activation_bytes_per_row": _largest_activation(model),
    }
    return model_ir(b, converted, metadata)


def _check_rows_are_independent(model: Any, inputs: list[Any]) -> None:
    """Refuse a model that mixes the rows of a batch (batch_rows.py), called as Keras calls it."""
    import keras

    generator = np.random.default_rng(0)
    five = []
    for t in inputs:
        shape = (5, *(4 if d is None else d for d in t.shape[1:]))
        integer = str(t.dtype).startswith(("int", "uint", "bool"))
        # (values in [0, 1): floats an Embedding reads as ids stay ids)
        values = generator.integers(0, 2, shape) if integer else generator.random(shape)
        five.append(values.astype(str(t.dtype)))

    def outputs_for(n: int) -> list[Any]:
        out = model([a[:n] for a in five] if len(five) > 1 else five[0][:n], training=False)
        return [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, list | tuple) else [out])]

    refuse_rows_that_mix(
        type(model).__name__, outputs_for, "A softmax or concatenation along axis 0 mixes them, for instance"
    )


class _Walk:
    """A model's layer graph, and those of the models nested in it as layers, written into one graph."""

    def __init__(self, b: GraphBuilder) -> None:
        self.b = b
        self.missing: set[str] = set()
        # each layer call: the layer, and the tensors it reads, each with whether it carries a mask
        self.reads: list[tuple[Any, list[tuple[str, bool]]]] = []

    def graph(
        self, inputs: list[Any], outputs: list[Any], names: list[str], masks: list[str | None]
    ) -> tuple[list[str], list[str | None]]:
        """The graph tensors of a model's ``outputs``, and their masks, given those of its ``inputs``; a
        model called twice is walked twice (its Keras tensors stand for each call in turn)."""
        import keras

        tensor_names = {id(t): n for t, n in zip(inputs, names, strict=True)}
        tensor_masks = {id(t): m for t, m in zip(inputs, masks, strict=True) if m is not None}
        done: dict[tuple[int, int], list[str]] = {}

        def tensor(t: Any) -> str:
            if id(t) in tensor_names:
                return tensor_names[id(t)]
            layer, node_index, index = t._keras_history
            key = (id(layer), node_index)
            if key not in done:
                node = layer._inbound_nodes[node_index]
                data = _data_inputs(layer, node)
                args = [tensor(x) for x in data]
                in_masks = [tensor_masks.get(id(x)) for x in data]
                self.reads.append((layer, [(a, m is not None) for a, m in zip(args, in_masks, strict=True)]))
                if is_operation(layer):  # a keras.ops call (x + 1): it reads no mask and carries none
                    ids = {id(x): a for x, a in zip(data, args, strict=True)}
                    done[key] = operation(self.b, layer, node, ids, self.missing)
                    out_masks = [None] * len(done[key])
                elif isinstance(layer, keras.Model):
                    inner_inputs, inner_outputs = list(layer.inputs), list(layer.outputs)
                    if _overrides_call(layer):
                        self.missing.add(f"{type(layer).__qualname__} (a model that overrides call())")
                        return args[0]
                    if len(inner_inputs) != len(args):
                        kind = type(layer).__name__
                        self.missing.add(f"{kind} called on {len(args)} of its {len(inner_inputs)} inputs")
                        return args[0]
                    done[key], out_masks = self.graph(inner_inputs, inner_outputs, args, in_masks)
                else:
                    done[key] = _layer(self.b, layer, args, node, self.missing, in_masks)
                    out_masks = _output_masks(self.b, layer, node, args, in_masks, done[key], self.missing)
                tensor_masks.update(
                    (id(t), m) for t, m in zip(node.output_tensors, out_masks, strict=True) if m is not None
                )
            return done[key][index]

        outs = [tensor(t) for t in outputs]
        return outs, [tensor_masks.get(id(t)) for t in outputs]

    def check_no_mask_is_dropped(self) -> None:
        """MultiHeadAttention, when it runs, removes the masks from its input tensors (Keras's
        ``set_keras_mask(query, None)``, on the tensor objects themselves): a layer reading the same tensor
        after it (``Add()([x, attention(x, x)])``, or through a Dropout, which passes the same object) sees
        no mask at run time, though the model's symbolic graph shows one; this converter follows the
        symbolic masks, so such a model is refused rather than computed otherwise than Keras computes it."""
        for i, (layer, pairs) in enumerate(self.reads):
            if type(layer).__name__ != "MultiHeadAttention":
                continue
            masked = {name for name, has_mask in pairs if has_mask}
            if any(j != i and masked & {name for name, _ in other} for j, (_, other) in enumerate(self.reads)):
                raise UnsupportedModelError(
                    f"{layer.name}: its masked inputs are read by other layers too, and Keras removes their masks "
                    "when MultiHeadAttention runs (the others see a mask or none depending on the order they run "
                    "in): not supported; give those layers a separate tensor or no mask"
                )


def _overrides_call(model: Any) -> bool:
    """Whether a model's class computes otherwise than its layer graph (a subclass built functionally
    keeps Functional's call; one that defines its own does not)."""
    from keras.src.models.functional import Functional
    from keras.src.models.sequential import Sequential

    return type(model).call not in (Functional.call, Sequential.call)


def _custom_classes(layer: Any) -> list[str]:
    """The classes defined outside Keras among a layer and the layers and cells it wraps: their calls are
    user code, whatever they are named (a subclass named Dense with its own call is not Keras's Dense)."""
    import keras

    found = []
    if type(layer).__module__.split(".")[0] != "keras":
        found.append(f"{type(layer).__module__}.{type(layer).__qualname__}")
    wrapped = [getattr(layer, a, None) for a in ("layer", "forward_layer", "backward_layer", "cell")]
    for inner in [*wrapped, *(getattr(layer, "cells", None) or [])]:
        if isinstance(inner, keras.layers.Layer) and inner is not layer:
            found += _custom_classes(inner)
    return found


def _largest_activation(model: Any) -> int:
    """Bytes a row of the largest layer output takes (float32), or of an attention layer's scores, in the
    model or a model nested in it."""
    import keras

    largest = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            largest = max(largest, _largest_activation(layer))
        for node in layer._inbound_nodes:
            for t in node.output_tensors:
                largest = max(largest, 4 * int(np.prod([d for d in t.shape[1:] if d is not None])))
            if type(layer).__name__ == "MultiHeadAttention" and node.input_tensors:
                query, value = node.input_tensors[0], node.input_tensors[1]
                largest = max(largest, 4 * layer.num_heads * int(query.shape[1] or 1) * int(value.shape[1] or 1))
    return largest


def _input_name(t: Any, i: int) -> str:
    name = getattr(t, "name", None) or f"input_{i}"
    return str(name).split(":")[0]


def _weights(layer: Any, *names: str) -> list[np.ndarray | None]:
    out = []
    for name in names:
        v = getattr(layer, name, None)
        value = None if v is None else getattr(v, "value", v)
        # a backend tensor's own numpy() (TensorFlow's __array__ predates numpy 2's copy argument)
        array = None if value is None else np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array is not None and str(array.dtype) == "bfloat16":
            array = array.astype(np.float32)  # (numpy has no bfloat16; float32 holds every bfloat16 exactly)
        out.append(array)
    return out


def _activation_name(fn: Any) -> str:
    import keras

    serialized = keras.activations.serialize(fn)
    name = serialized
    if isinstance(name, dict):
        name = name.get("config", name).get("name", name.get("class_name"))
    name = str(name)
    if name not in ACTIVATIONS:
        raise UnsupportedModelError(f"Keras activation {name!r} is not supported; supported: {list(ACTIVATIONS)}")
    if not isinstance(serialized, dict) and keras.activations.get(name) is not fn:
        raise UnsupportedModelError(f"activation {fn!r} is a function of its own, not Keras's {name!r}")
    return name


def _data_inputs(layer: Any, node: Any) -> list[Any]:
    """The Keras tensors a layer call computes on: its inputs less the masks Keras passed along with them
    (``mask``, ``query_mask``, ...), which follow the graph apart (see _output_masks). A mask the call was
    given by hand is refused."""
    import keras
    from keras.src import backend

    def tensors(v: Any) -> list[Any]:
        return [t for t in (v if isinstance(v, list | tuple) else [v]) if isinstance(t, keras.KerasTensor)]

    args, kwargs = node.arguments.args, node.arguments.kwargs
    given = {k: v for k, v in kwargs.items() if (k == "mask" or k.endswith("_mask")) and tensors(v)}
    for k, v in given.items():
        if k == "mask":
            masked = args[0] if args else None
        else:
            masked = inspect.signature(layer.call).bind_partial(*args, **kwargs).arguments.get(k.removesuffix("_mask"))
        carried = [backend.get_keras_mask(x) for x in (masked if isinstance(masked, list | tuple) else [masked])]
        attached = v if isinstance(v, list | tuple) else [v]
        if masked is None or [id(a) for a in attached] != [id(c) for c in carried]:
            raise UnsupportedModelError(f"{layer.name}: called with a mask of its own ({k}=...): not supported")
    skip = {id(t) for v in given.values() for t in tensors(v)}
    return [x for x in node.input_tensors if id(x) not in skip]


def _layer(
    b: GraphBuilder,
    layer: Any,
    args: list[str],
    node: Any,
    missing: set[str],
    masks: list[str | None],
    config: dict[str, Any] | None = None,
) -> list[str]:
    """The nodes computing one call of ``layer`` on ``args`` (``masks``: the mask each carries, if any);
    its output tensors. (``config``: the layer's, where not its own ``get_config()``.)"""
    kind = type(layer).__name__
    custom = _custom_classes(layer)
    if custom:
        missing.add(f"{kind} (custom class {', '.join(custom)})")
        return [args[0]] * max(1, len(node.output_tensors))
    if len(args) > 1 and kind not in _SEVERAL_TENSORS:  # (an initial_state= of a Bidirectional, ...)
        missing.add(f"{kind} called on {len(args)} tensors")
        return [args[0]] * max(1, len(node.output_tensors))
    if any(masks) and _reads_mask(layer) and kind not in _MASK_READERS:
        missing.add(f"{kind} given a masked input")
    config = layer.get_config() if config is None else config
    if kind in _IDENTITY:
        return [args[0]]
    if config.get("data_format", "channels_last") != "channels_last":
        return _channels_first(b, layer, kind, config, args, node, missing, masks)
    absent = np.zeros((0,), np.float32)

    def const(hint: str, value: np.ndarray | None) -> str:  # (once for every call of a shared layer)
        return b.shared_const((id(layer), hint), f"{layer.name}.{hint}", absent if value is None else value)

    if getattr(layer, "quantization_mode", None):
        raise UnsupportedModelError(
            f"{layer.name}: a layer quantized by Keras ({layer.quantization_mode}) is not supported: export the "
            "float model (mle's own quantize= option stores its weights smaller)"
        )
    if kind == "RandomCrop" and [config["height"], config["width"]] == list(node.input_tensors[0].shape[-3:-1]):
        return [args[0]]
    if kind == "SpectralNormalization":  # (at inference the wrapped layer as it is, its kernel last normalized)
        return _layer(b, layer.layer, args, node, missing, masks)
    if kind == "Dense":
        kernel, bias = _weights(layer, "kernel", "bias")
        act = _activation_name(layer.activation)
        return [b.op("keras.Dense", args[0], const("kernel", kernel), const("bias", bias), activation_name=act)]
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        kernel, bias = _weights(layer, "kernel", "bias")
        attrs = _conv_attrs(config)
        act = _activation_name(layer.activation)
        y = b.op(
            "keras.Conv",
            args[0],
            const("kernel", kernel),
            const("bias", bias),
            groups=config.get("groups", 1),
            activation_name=act,
            **attrs,
        )
        return [y]
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        kernel, bias = _weights(layer, "kernel", "bias")
        extra = config.get("output_padding")
        return [
            b.op(
                "keras.ConvTranspose",
                args[0],
                const("kernel", kernel),
                const("bias", bias),
                output_padding=None if extra is None else [int(e) for e in extra],
                activation_name=_activation_name(layer.activation),
                **_conv_attrs(config),
            )
        ]
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        kernel, bias = _weights(layer, "kernel", "bias")
        act = _activation_name(layer.activation)
        return [
            b.op(
                "keras.DepthwiseConv",
                args[0],
                const("kernel", kernel),
                const("bias", bias),
                activation_name=act,
                **_conv_attrs(config),
            )
        ]
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        depthwise, pointwise, bias = _weights(layer, "depthwise_kernel", "pointwise_kernel", "bias")
        attrs = _conv_attrs(config)
        y = b.op("keras.DepthwiseConv", args[0], const("depthwise", depthwise), b.const("none", absent), **attrs)
        ones = [1] * len(attrs["strides"])
        act = _activation_name(layer.activation)
        return [
            b.op(
                "keras.Conv",
                y,
                const("pointwise", pointwise),
                const("bias", bias),
                strides=ones,
                padding="valid",
                dilation_rate=ones,
                activation_name=act,
            )
        ]
    if kind == "BatchNormalization":
        gamma, beta, mean, var = _weights(layer, "gamma", "beta", "moving_mean", "moving_variance")
        return [
            b.op(
                "keras.BatchNormalization",
                args[0],
                const("gamma", gamma),
                const("beta", beta),
                const("mean", mean),
                const("variance", var),
                axis=int(config["axis"]),
                epsilon=float(config["epsilon"]),
            )
        ]
    if kind == "LayerNormalization":
        gamma, beta = _weights(layer, "gamma", "beta")
        axis = config["axis"] if isinstance(config["axis"], list) else [config["axis"]]
        return [
            b.op(
                "keras.LayerNormalization",
                args[0],
                const("gamma", gamma),
                const("beta", beta),
                axis=[int(a) for a in axis],
                epsilon=float(config["epsilon"]),
                rms_scaling=bool(config.get("rms_scaling")),
            )
        ]
    if kind == "GroupNormalization":
        gamma, beta = _weights(layer, "gamma", "beta")
        return [
            b.op(
                "keras.GroupNormalization",
                args[0],
                const("gamma", gamma),
                const("beta", beta),
                groups=int(config["groups"]),
                axis=int(config["axis"]),
                epsilon=float(config["epsilon"]),
            )
        ]
    if kind == "Dot":
        ranks = [len(t.shape) for t in node.input_tensors]
        given = config["axes"] if isinstance(config["axes"], (list, tuple)) else [config["axes"]] * 2
        axes = [int(a) % r for a, r in zip(given, ranks, strict=True)]
        if any(r not in (2, 3) for r in ranks) or ranks[0] != ranks[1] or 0 in axes:
            raise UnsupportedModelError(
                f"{layer.name}: Dot of inputs of {ranks} axes along {axes} is not supported; two inputs of 2 or 3 "
                "axes are"
            )
        return [b.op("keras.Dot", *args, axes=axes, normalize=bool(config.get("normalize")))]
    if kind == "CategoryEncoding":
        return [_category_encoding(b, layer, node, config, args)]
    if kind == "Discretization":
        if layer.bin_boundaries is None:
            raise UnsupportedModelError(f"{layer.name}: a Discretization layer that was never adapted")
        # (boundaries as TensorFlow's Bucketize holds them: a float attribute, float32)
        boundaries = np.asarray(layer.bin_boundaries, dtype=np.float32)
        bins = b.op("keras.Discretization", args[0], const("boundaries", boundaries))
        if config["output_mode"] == "int":
            return [bins]
        encoding = {**config, "num_tokens": len(boundaries) + 1}
        return [_category_encoding(b, layer, node, encoding, [bins])]
    if kind == "EinsumDense":
        kernel, bias = _weights(layer, "kernel", "bias")
        act = _activation_name(layer.activation)
        y = b.op(
            "keras.EinsumDense", args[0], const("kernel", kernel), const("bias", bias), equation=config["equation"]
        )
        return [y if act == "linear" else b.op("keras.Activation", y, activation_name=act)]
    if kind == "RMSNormalization":
        (scale,) = _weights(layer, "scale")
        axis = config["axis"] if isinstance(config["axis"], list) else [config["axis"]]
        rank = len(node.input_tensors[0].shape)
        if [a % rank for a in axis] != [rank - 1]:
            raise UnsupportedModelError(f"{layer.name}: RMSNormalization over axes {axis} (only the last is supported)")
        return [b.op("keras.RMSNormalization", args[0], const("scale", scale), epsilon=float(config["epsilon"]))]
    if kind == "Activation":
        return [b.op("keras.Activation", args[0], activation_name=_activation_name(layer.activation))]
    if kind in ("ReLU", "LeakyReLU", "Softmax", "ELU"):
        return [b.op("keras.Activation", args[0], **_activation_layer(kind, config))]
    if kind == "Flatten":
        return [b.op("keras.Reshape", args[0], target_shape=[-1])]
    if kind == "Reshape":
        return [b.op("keras.Reshape", args[0], target_shape=[int(d) for d in config["target_shape"]])]
    if kind.startswith(("MaxPooling", "AveragePooling")):
        pool_kind = "max" if kind.startswith("Max") else "average"
        size = list(config["pool_size"])
        strides = list(config["strides"] or size)
        return [b.op("keras.Pool", args[0], kind=pool_kind, pool_size=size, strides=strides, padding=config["padding"])]
    if kind.startswith(("GlobalMaxPooling", "GlobalAveragePooling")):
        pool_kind = "max" if "Max" in kind else "average"
        mask = [masks[0]] if masks[0] and kind == "GlobalAveragePooling1D" else []
        keepdims = bool(config.get("keepdims", False))
        return [b.op("keras.GlobalPool", args[0], *mask, kind=pool_kind, keepdims=keepdims)]
    if kind in _MERGES:
        axis = {"axis": int(config["axis"])} if kind == "Concatenate" else {}
        return [b.op("keras.Merge", *args, kind=_MERGES[kind], **axis)]
    if kind == "Embedding":
        (embeddings,) = _weights(layer, "embeddings")
        size = int(embeddings.shape[0])  # (TensorFlow's gather raises for an id outside the table)
        b.refuse_rows(b.op("IndexOutOfRange", args[0], size=size), f"{layer.name}: an id outside 0..{size - 1}")
        return [b.op("keras.Embedding", args[0], const("embeddings", embeddings))]
    if kind == "Masking":
        return [b.op("keras.Masking", args[0], mask_value=_mask_value(layer))]
    if kind in ("LSTM", "GRU", "SimpleRNN"):
        output, c = _recurrent(b, layer, kind, config, args[0], const, masks[0], initial=args[1:])
        return [output, *_final_states(b, config, output, c)]
    if kind == "RNN":
        output, states = _generic_rnn(b, layer, config, args[0], const, masks[0], missing)
        return [output, *states]
    if kind in ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"):
        if config.get("return_state") or config.get("stateful") or config.get("unroll"):
            raise UnsupportedModelError(f"{layer.name}: {kind} with return_state, stateful or unroll is not supported")
        kernel, recurrent, bias = _weights(layer.cell, "kernel", "recurrent_kernel", "bias")
        attrs = {
            "activation_name": _activation_name(layer.cell.activation),
            "recurrent_activation": _activation_name(layer.cell.recurrent_activation),
            "return_sequences": bool(config["return_sequences"]),
            "go_backwards": bool(config["go_backwards"]),
        }
        weights = [const("kernel", kernel), const("recurrent_kernel", recurrent), const("bias", bias)]
        return [b.op("keras.ConvLSTM", args[0], *weights, **_conv_attrs(config), **attrs)]
    if kind == "UnitNormalization":
        axis = config["axis"] if isinstance(config["axis"], list) else [config["axis"]]
        return [b.op("keras.UnitNormalization", args[0], axis=[int(a) for a in axis])]
    if kind == "MultiHeadAttention":
        return [_attention(b, layer, node, args, const, masks)]
    if kind == "Attention":
        return [_dot_product_attention(b, layer, node, args, const, masks)]
    if kind in ("Rescaling", "Normalization"):
        return [_affine(b, layer, kind, config, args[0], const)]
    if kind == "LayerScale" and type(layer).__module__.startswith("keras."):  # (ConvNeXt's: x * gamma)
        (gamma,) = _weights(layer, "gamma")
        return [b.op("Mul", args[0], const("gamma", gamma))]
    if kind == "PReLU":
        (alpha,) = _weights(layer, "alpha")
        return [b.op("keras.PReLU", args[0], const("alpha", alpha))]
    if kind.startswith("ZeroPadding"):
        return [b.op("keras.ZeroPadding", args[0], padding=_pairs(config["padding"]))]
    if kind.startswith("Cropping"):
        return [b.op("keras.Cropping", args[0], cropping=_pairs(config["cropping"]))]
    if kind == "CenterCrop":
        return [_center_crop(b, layer, config, node, args[0])]
    if kind.startswith("UpSampling"):
        size = [int(config["size"])] if isinstance(config["size"], int) else [int(s) for s in config["size"]]
        interpolation = config.get("interpolation", "nearest")
        if interpolation not in ("nearest", "bilinear") or (interpolation == "bilinear" and len(size) != 2):
            raise UnsupportedModelError(f"{layer.name}: {kind}(interpolation={interpolation!r}) is not supported")
        return [b.op("keras.UpSampling", args[0], size=size, interpolation=interpolation)]
    if kind == "Resizing":
        interpolation = config.get("interpolation", "bilinear")
        aspect = config.get("crop_to_aspect_ratio") or config.get("pad_to_aspect_ratio")
        if interpolation not in ("bilinear", "nearest") or aspect or config.get("antialias"):
            raise UnsupportedModelError(
                f"{layer.name}: Resizing(interpolation={interpolation!r}, antialias={config.get('antialias')}, "
                "crop or pad to the aspect ratio) is not supported; bilinear and nearest without them are"
            )
        size = [int(config["height"]), int(config["width"])]
        return [b.op("keras.Resizing", args[0], size=size, interpolation=interpolation)]
    if kind == "Permute":
        return [b.op("keras.Permute", args[0], dims=[int(d) for d in config["dims"]])]
    if kind == "RepeatVector":
        return [b.op("keras.RepeatVector", args[0], n=int(config["n"]))]
    if kind == "Bidirectional" and type(layer.forward_layer).__name__ in ("LSTM", "GRU", "SimpleRNN", "RNN"):
        return _bidirectional(b, layer, args[0], masks[0], missing)
    if kind == "TimeDistributed" and type(layer.layer).__name__ in _LAST_AXIS:
        return _layer(b, layer.layer, args, node, missing, masks)  # a layer of the last axis: every step at once
    if kind in ("Bidirectional", "TimeDistributed"):
        kind = f"{kind}({type(getattr(layer, 'forward_layer', None) or layer.layer).__name__})"
    missing.add(kind)
    return [args[0]] * max(1, len(node.output_tensors))


# The layers of channels-first data converted as the same layer of channels-last data between transposes
_CHANNELS_FIRST = (
    "Conv",
    "DepthwiseConv",
    "SeparableConv",
    "MaxPooling",
    "AveragePooling",
    "GlobalMaxPooling",
    "GlobalAveragePooling",
    "Flatten",
    "ZeroPadding",
    "Cropping",
    "UpSampling",
    "Resizing",
    "CenterCrop",
)


def _center_crop(b: GraphBuilder, layer: Any, config: dict[str, Any], node: Any, x: str) -> str:
    """CenterCrop of images at least as large as its box: the box's rows and columns, the extra split as
    Keras splits it (the smaller half before). Keras resizes smaller images (smart_resize): refused."""
    shape = tuple(node.input_tensors[0].shape)
    h, w = shape[-2:] if layer.data_format == "channels_first" else shape[-3:-1]
    height, width = int(config["height"]), int(config["width"])
    if h is None or w is None or h < height or w < width:
        raise UnsupportedModelError(
            f"{layer.name}: CenterCrop to {height}x{width} of {h}x{w} images is not supported; a crop of images "
            "of a known size at least the box's is (Keras resizes smaller ones)"
        )
    top, left = (h - height) // 2, (w - width) // 2
    return b.op("keras.Cropping", x, cropping=[[top, h - height - top], [left, w - width - left]])


def _channels_first(
    b: GraphBuilder,
    layer: Any,
    kind: str,
    config: dict[str, Any],
    args: list[str],
    node: Any,
    missing: set[str],
    masks: list[str | None],
) -> list[str]:
    """A layer of channels-first data, (batch, channels, *spatial), as the same layer of channels-last data:
    its input's channels moved last, and an output of spatial axes moved back (Keras's own Flatten moves
    them so too; a kernel's layout is the same either way)."""
    spatial = kind.startswith(_CHANNELS_FIRST) and not kind.startswith("ConvLSTM")  # (its time axis comes first)
    if config.get("data_format") != "channels_first" or not spatial:
        raise UnsupportedModelError(f"{layer.name} ({kind}) with data_format={config.get('data_format')!r}")
    rank = len(node.input_tensors[0].shape)
    moved = b.op("keras.Permute", args[0], dims=[*range(2, rank), 1]) if rank > 2 else args[0]
    outputs = _layer(b, layer, [moved], node, missing, masks, {**config, "data_format": "channels_last"})
    back = []
    for y, tensor in zip(outputs, node.output_tensors, strict=True):
        out_rank = len(tensor.shape)
        back.append(b.op("keras.Permute", y, dims=[out_rank - 1, *range(1, out_rank - 1)]) if out_rank > 2 else y)
    return back


def _reads_mask(layer: Any) -> bool:
    """Whether Keras hands this layer's call its inputs' masks (a ``mask`` or ``<input>_mask`` argument)."""
    parameters = inspect.signature(layer.call).parameters
    return any(name == "mask" or name.endswith("_mask") for name in parameters)


def _mask_value(layer: Any) -> float:
    value = np.asarray(layer.mask_value)
    if value.size != 1:
        raise UnsupportedModelError(f"{layer.name}: Masking with a mask_value of shape {value.shape} is not supported")
    return float(value.reshape(()))


def _output_masks(
    b: GraphBuilder,
    layer: Any,
    node: Any,
    args: list[str],
    masks: list[str | None],
    outputs: list[str],
    missing: set[str],
) -> list[str | None]:
    """The mask each output of a layer call carries, computed as the layer's ``compute_mask`` does, for
    the outputs Keras attached a mask to (a layer that does not support masking drops it); a layer whose
    masks this does not know is added to ``missing``."""
    from keras.src import backend
    from keras.src.utils import python_utils

    kind = type(layer).__name__
    carried = [backend.get_keras_mask(t) is not None for t in node.output_tensors]
    if not any(carried):
        return [None] * len(outputs)
    if kind == "Embedding":
        out: list[str | None] = [b.op("keras.MaskOf", args[0], mask_value=0.0, last_axis=False)]
    elif kind == "Masking":
        out = [b.op("keras.MaskOf", args[0], mask_value=_mask_value(layer), last_axis=True)]
    elif kind == "Concatenate":
        present = [m for m in masks if m is not None]
        masked = [m is not None for m in masks]
        out = [b.op("keras.ConcatenateMask", *args, *present, masked=masked, axis=int(layer.axis))]
    elif kind in _MERGES:
        out = [b.op("keras.MaskOr", *masks) if all(masks) else None]
    elif kind == "Attention":  # (the query's)
        out = [masks[0]]
    elif kind in _RETURN_SEQUENCES and layer.return_sequences:  # (the sequence's; return_state's states none)
        out = [masks[0], *[None] * (len(outputs) - 1)]
    elif python_utils.is_default(layer.compute_mask):
        out = [masks[0]] * len(outputs)
    else:
        missing.add(f"{kind} given a masked input")
        return [None] * len(outputs)
    if [m is not None for m in out] != carried:  # (a mismatch with Keras's own masks: refused, not guessed)
        missing.add(f"{kind} given a masked input")
    return out


def _category_encoding(b: GraphBuilder, layer: Any, node: Any, config: dict[str, Any], args: list[str]) -> str:
    """CategoryEncoding of integer ids: one_hot of (batch,) or (batch, 1), multi_hot or count of (batch, k)."""
    mode, shape = config["output_mode"], tuple(node.input_tensors[0].shape)
    one_hot = mode == "one_hot" and (len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1))
    if config.get("sparse") or len(args) > 1 or not (one_hot or (mode in ("multi_hot", "count") and len(shape) == 2)):
        raise UnsupportedModelError(
            f"{layer.name}: CategoryEncoding(output_mode={mode!r}, sparse={config.get('sparse')}) of inputs shaped "
            f"{shape}{' with count_weights' if len(args) > 1 else ''} is not supported; one_hot of (batch,) or "
            "(batch, 1), multi_hot and count of (batch, k), dense, are"
        )
    return b.op("keras.CategoryEncoding", args[0], num_tokens=int(config["num_tokens"]), output_mode=mode)


def _pairs(value: Any) -> list[list[int]]:
    """A padding or cropping config as (before, after) per spatial axis: 1-D layers keep one pair."""
    if all(isinstance(v, int) for v in value):
        return [[int(value[0]), int(value[1])]]
    return [[int(before), int(after)] for before, after in value]


def _affine(b: GraphBuilder, layer: Any, kind: str, config: dict[str, Any], x: str, const: Any) -> str:
    """Rescaling (x * scale + offset) and an adapted Normalization ((x - mean) / max(sqrt(variance),
    epsilon), or its inverse), in Keras's order of operations."""
    import keras

    if kind == "Rescaling":
        scale, offset = (np.asarray(config[k], dtype=np.float32) for k in ("scale", "offset"))
        return b.op("Add", b.op("Mul", x, const("scale", scale)), const("offset", offset))
    mean, variance = _weights(layer, "mean", "variance")
    if mean is None or variance is None:
        raise UnsupportedModelError(f"{layer.name}: a Normalization layer that was never adapted or built")
    spread = np.maximum(np.sqrt(variance), np.asarray(keras.backend.epsilon(), dtype=variance.dtype))
    if config.get("invert"):
        return b.op("Add", const("mean", mean), b.op("Mul", x, const("spread", spread)))
    return b.op("Div", b.op("Sub", x, const("mean", mean)), const("spread", spread))


def _bidirectional(b: GraphBuilder, layer: Any, x: str, mask: str | None, missing: set[str]) -> list[str]:
    """The forward and the backward recurrent layer, the backward sequence put back in time order, merged
    as ``merge_mode`` says (None: both outputs)."""
    outputs, states = [], []
    for direction in ("forward", "backward"):
        inner = getattr(layer, f"{direction}_layer")

        def const(hint: str, value: np.ndarray | None, prefix: str = f"{layer.name}.{direction}") -> str:
            value = np.zeros((0,), np.float32) if value is None else value
            return b.shared_const((id(layer), prefix, hint), f"{prefix}.{hint}", value)

        kind, config = type(inner).__name__, inner.get_config()
        if kind == "RNN":
            output, final = _generic_rnn(b, inner, config, x, const, mask, missing)
        else:
            output, c = _recurrent(b, inner, kind, config, x, const, mask)
            final = _final_states(b, config, output, c)
        outputs.append(output)
        states += final
    forward, backward = outputs
    if layer.return_sequences:
        backward = b.op("keras.Reverse", backward, axis=1)
    merges = {"concat": "concatenate", "sum": "add", "ave": "average", "mul": "multiply"}
    if layer.merge_mode is None:  # (return_state's states after the outputs: the forward layer's, the backward's)
        return [forward, backward, *states]
    if layer.merge_mode not in merges:
        raise UnsupportedModelError(f"{layer.name}: Bidirectional(merge_mode={layer.merge_mode!r}) is not supported")
    axis = {"axis": -1} if layer.merge_mode == "concat" else {}
    return [b.op("keras.Merge", forward, backward, kind=merges[layer.merge_mode], **axis), *states]


def _recurrent(
    b: GraphBuilder,
    layer: Any,
    kind: str,
    config: dict[str, Any],
    x: str,
    const: Any,
    mask: str | None = None,
    cell: Any = None,
    initial: Sequence[str] = (),
) -> tuple[str, str | None]:
    """A recurrent layer (LSTM, GRU, SimpleRNN, or ``cell`` of a generic RNN layer) over the sequence x,
    from the ``initial`` states it was called with (LSTM: h and c; else h), or zeros: its output, and an
    LSTM's last c where it returns its state (from the same loop, appended to its output and sliced apart
    again: XLA folds the slices of the concatenation away)."""
    if config.get("stateful"):  # (``unroll`` only changes how Keras loops over the steps: the same sums)
        raise UnsupportedModelError(f"{layer.name}: {kind} with stateful is not supported")
    if initial and len(initial) != (2 if kind == "LSTM" else 1):
        raise UnsupportedModelError(f"{layer.name}: {kind} called with {len(initial)} initial states")
    cell = layer.cell if cell is None else cell
    kernel, recurrent, bias = _weights(cell, "kernel", "recurrent_kernel", "bias")
    attrs = {
        "activation_name": _activation_name(cell.activation),
        "return_sequences": bool(config["return_sequences"]),
        "go_backwards": bool(config["go_backwards"]),
    }
    if kind != "SimpleRNN":  # (its cell has no gates)
        attrs["recurrent_activation"] = _activation_name(cell.recurrent_activation)
    if kind == "GRU":
        attrs["reset_after"] = bool(cell.reset_after)
    tensors = [const("kernel", kernel), const("recurrent_kernel", recurrent), const("bias", bias), *initial]
    if initial:
        attrs["initial_state"] = True
    if mask is not None:  # (Bidirectional sets zero_output_for_mask on its layers when they return sequences)
        tensors.append(mask)
        attrs["zero_output_for_mask"] = bool(getattr(layer, "zero_output_for_mask", False))
    if kind != "LSTM" or not config.get("return_state"):
        return b.op(f"keras.{kind}", x, *tensors, **attrs), None
    joined = b.op("keras.LSTM", x, *tensors, **attrs, append_cell_state=True)
    every = {"slice": [None, None, None]}
    steps = {"slice": [None, -1, None]} if attrs["return_sequences"] else {"index": 0}
    output, c = (_get_item(b, joined, [every, at]) for at in (steps, {"index": -1}))
    return output, c


def _get_item(b: GraphBuilder, x: str, key: list[dict[str, Any]]) -> str:
    return b.op("keras.Operation", x, function="GetItem", arguments=[{"input": 0}], options={"key": key})


def _final_states(b: GraphBuilder, config: dict[str, Any], output: str, c: str | None) -> list[str]:
    """A recurrent layer's ``return_state`` outputs after its ``output``: h, and an LSTM's ``c``. h is the
    last output (of the steps as processed; a masked step repeats it, as it keeps the state)."""
    if not config.get("return_state"):
        return []
    last = (
        _get_item(b, output, [{"slice": [None, None, None]}, {"index": -1}]) if config["return_sequences"] else output
    )
    return [last] if c is None else [last, c]


def _generic_rnn(
    b: GraphBuilder, layer: Any, config: dict[str, Any], x: str, const: Any, mask: str | None, missing: set[str]
) -> tuple[str, list[str]]:
    """keras.layers.RNN over an LSTMCell, GRUCell or SimpleRNNCell, or a stack of them (StackedRNNCells:
    each step of each cell feeds the next cell's step, the same as a stack of layers that return every
    step but the last, which returns what the RNN does; a masked step keeps every cell's state): its
    output, and with ``return_state`` every cell's last states in order (an LSTM's h and c, another's h)."""
    stacked = type(layer.cell).__name__ == "StackedRNNCells"
    cells = list(layer.cell.cells) if stacked else [layer.cell]
    kinds = [type(c).__name__.removesuffix("Cell") for c in cells]
    if any(k not in ("LSTM", "GRU", "SimpleRNN") for k in kinds):
        missing.add(f"RNN({', '.join(type(c).__name__ for c in cells)})")
        return x, []
    backwards = bool(config["go_backwards"]) and len(cells) > 1
    if backwards:  # (the steps, and the mask, taken in reverse once for the whole stack; outputs in that order)
        x = b.op("keras.Reverse", x, axis=1)
        mask = None if mask is None else b.op("keras.Reverse", mask, axis=1)
    states: list[str] = []
    for i, (cell, kind) in enumerate(zip(cells, kinds, strict=True)):
        last = i == len(cells) - 1
        step = {**config, "return_sequences": config["return_sequences"] or not last}
        step["go_backwards"] = step["go_backwards"] and not backwards

        def cell_const(hint: str, value: np.ndarray | None, i: int = i) -> str:
            return const(f"cell{i}.{hint}", value)

        # (a cell's outputs at masked steps reach the next cell only at steps it skips)
        x, c = _recurrent(b, layer, kind, step, x, cell_const, mask, cell)
        states += _final_states(b, step, x, c)
    return x, states


def _attention(b: GraphBuilder, layer: Any, node: Any, args: list[str], const: Any, masks: list[str | None]) -> str:
    """MultiHeadAttention called as (query, value[, key]): the Keras masks they carry and
    ``use_causal_mask`` kept; an ``attention_mask`` of its own refused (by _data_inputs)."""
    arguments = getattr(node, "arguments", None)
    kwargs = getattr(arguments, "kwargs", {}) or {}
    if kwargs.get("return_attention_scores"):
        raise UnsupportedModelError(f"{layer.name}: MultiHeadAttention(return_attention_scores=True) is not supported")
    config = layer.get_config()
    axes, output_shape = config.get("attention_axes"), config.get("output_shape")
    refused = {
        "use_gate=True": config.get("use_gate"),
        f"sliding_window={config.get('sliding_window')}": config.get("sliding_window") is not None,
        f"attention_axes={axes}": axes not in (None, 1, -2, [1], [-2], (1,), (-2,)),
        f"inputs of {len(node.input_tensors[0].shape)} axes (3 are supported)": len(node.input_tensors[0].shape) != 3,
        f"output_shape={output_shape}": not (
            output_shape is None or np.ndim(output_shape) == 0 or len(output_shape) == 1
        ),
    }
    if any(refused.values()):
        raise UnsupportedModelError(
            f"{layer.name}: MultiHeadAttention with {', '.join(k for k, v in refused.items() if v)} is not supported"
        )
    query, value = args[0], args[1]
    key = args[2] if len(args) > 2 else value
    parts = []
    for hint, dense in (
        ("q", layer._query_dense),
        ("k", layer._key_dense),
        ("v", layer._value_dense),
        ("o", layer._output_dense),
    ):
        kernel, bias = _weights(dense, "kernel", "bias")
        parts += [const(f"w{hint}", kernel), const(f"b{hint}", bias)]
    masks = [*masks, None][:3]
    return b.op(
        "keras.MultiHeadAttention",
        query,
        value,
        key,
        *parts,
        *[m for m in masks if m is not None],
        masked=[m is not None for m in masks],
        causal=bool(kwargs.get("use_causal_mask", False)),
    )


def _dot_product_attention(
    b: GraphBuilder, layer: Any, node: Any, args: list[str], const: Any, masks: list[str | None]
) -> str:
    """Attention (Luong's dot or Bahdanau's concat scores) called as [query, value(, key)]: the Keras
    masks of the query and the value, and ``use_causal_mask``, kept."""
    kwargs = getattr(getattr(node, "arguments", None), "kwargs", {}) or {}
    if kwargs.get("return_attention_scores"):
        raise UnsupportedModelError(f"{layer.name}: Attention(return_attention_scores=True) is not supported")
    query, value = args[0], args[1]
    key = args[2] if len(args) > 2 else value

    def scalar(weight: Any) -> np.ndarray | None:
        return None if weight is None else np.asarray(weight.numpy(), dtype=np.float32).reshape(1)

    return b.op(
        "keras.Attention",
        query,
        value,
        key,
        const("scale", scalar(layer.scale)),
        const("concat_score_weight", scalar(layer.concat_score_weight)),
        *[m for m in masks[:2] if m is not None],
        score_mode=str(layer.score_mode),
        causal=bool(kwargs.get("use_causal_mask", False)),
        masked=[m is not None for m in masks[:2]],
    )


def _conv_attrs(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "strides": [int(s) for s in config["strides"]],
        "padding": str(config["padding"]),
        "dilation_rate": [int(d) for d in config["dilation_rate"]],
    }


def _activation_layer(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    if kind == "ReLU":
        arguments = {k: config[k] for k in ("max_value", "negative_slope", "threshold") if config.get(k) is not None}
        return {"activation_name": "relu", "arguments": {k: float(v) for k, v in arguments.items()}}
    if kind == "LeakyReLU":
        return {"activation_name": "leaky_relu", "arguments": {"negative_slope": float(config["negative_slope"])}}
    if kind == "ELU":
        return {"activation_name": "elu", "arguments": {"alpha": float(config["alpha"])}}
    axis = config["axis"]
    return {"activation_name": "softmax", "arguments": {"axis": float(axis if isinstance(axis, int) else axis[-1])}}
