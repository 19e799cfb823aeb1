"""keras.ops called on a functional model's symbolic tensors (``x + 1``, ``keras.ops.mean(x, axis=1)``,
``x[:, 0]``): each call is a node of the model's graph like a layer's, an Operation rather than a Layer,
written as one ``keras.Operation`` node naming Keras's operation (mle_runtime/ops/keras.py: OPERATIONS).
Several share a layer's class name (Add, Multiply, Concatenate, Reshape, Softmax ...) and must not be
read as that layer: ``x + 0.5`` is not ``Add()([x])``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mle_runtime.converters._builder import GraphBuilder
from mle_runtime.errors import UnsupportedModelError

# The operation's own settings the jnp function takes, by Keras's attribute name -> jnp's keyword.
_SETTINGS: dict[str, dict[str, str]] = {
    **{kind: {"axis": "axis", "keepdims": "keepdims"} for kind in ("Mean", "Sum", "Max", "Min")},
    **{kind: {"axis": "axis"} for kind in ("ExpandDims", "Squeeze", "Softmax", "Concatenate", "Stack")},
    "Reshape": {"newshape": "shape"},
    "Transpose": {"axes": "axes"},
    "Clip": {"x_min": "min", "x_max": "max"},
    "Cast": {"dtype": "dtype"},
}


def is_operation(layer: Any) -> bool:
    """Whether a node of the model's graph is a keras.ops call (not a layer's)."""
    import keras

    return not isinstance(layer, keras.layers.Layer)


def operation(b: GraphBuilder, op: Any, node: Any, names: dict[int, str], missing: set[str]) -> list[str]:
    """The node computing one keras.ops call; ``names``: the graph tensor of each Keras tensor it reads."""
    from mle_runtime.ops.keras import OPERATIONS

    kind = type(op).__name__
    if not type(op).__module__.startswith("keras.src.ops.") or kind not in OPERATIONS:
        missing.add(f"keras.ops {kind}")
        return [next(iter(names.values()), "")] * len(node.output_tensors)
    if kind == "Max" and getattr(op, "initial", None) is not None:
        missing.add("keras.ops.max with initial=")
        return [next(iter(names.values()))]
    mixes = _mixes_rows(kind, op, node)
    if mixes:
        raise UnsupportedModelError(
            f"{op.name}: keras.ops {kind} {mixes}: its rows would depend on the other rows of the batch, which "
            "the runtime pads and cuts"
        )
    tensors: list[str] = []
    arguments = []
    positional = list(node.arguments.args)
    if kind in ("Concatenate", "Stack"):
        positional = list(positional[0])  # (they take one list of tensors)
    key = positional.pop() if kind == "GetItem" else None
    for value in positional:
        if id(value) in names:
            arguments.append({"input": len(tensors)})
            tensors.append(names[id(value)])
        elif _is_number(value):
            arguments.append({"value": value})
        else:  # an array, or a number JSON cannot hold (inf, NaN): a constant tensor
            arguments.append({"input": len(tensors)})
            tensors.append(b.const(f"{op.name}.constant", np.asarray(value)))
    options = {jnp_name: _plain(getattr(op, name)) for name, jnp_name in _SETTINGS.get(kind, {}).items()}
    if key is not None:
        options["key"] = _index(key, op.name)
    return [b.op("keras.Operation", *tensors, function=kind, arguments=arguments, options=options)]


def _mixes_rows(kind: str, op: Any, node: Any) -> str | None:
    """How an operation would read or move across the batch axis (axis 0), or None if it keeps each row
    to itself as a layer does: its output keeps the batch first, and no axis setting, slice or reshape
    reaches across it."""
    outputs = [tuple(t.shape) for t in node.output_tensors]
    if any(not shape or shape[0] is not None for shape in outputs):
        return f"gives {outputs[0]}, without the batch first"
    rank = len(node.input_tensors[0].shape)
    if kind in _SETTINGS and "axis" in _SETTINGS[kind]:
        axis = getattr(op, "axis", None)
        if axis is None:
            return "over every axis, the batch's too"
        width = rank + 1 if kind in ("Stack", "ExpandDims") else rank
        if 0 in {int(a) % width for a in (axis if isinstance(axis, (list, tuple)) else [axis])}:
            return f"along axis {axis}, the batch's"
    if kind == "Reshape":
        before, after = tuple(node.input_tensors[0].shape), outputs[0]
        if None in before[1:] or None in after[1:] or int(np.prod(before[1:])) != int(np.prod(after[1:])):
            return f"from {before} to {after} (rows of other sizes)"
    if kind == "GetItem":
        key = node.arguments.args[-1]
        first = key[0] if isinstance(key, tuple) and key else key
        if isinstance(first, slice) and (
            first.start not in (None, 0) or first.stop is not None or first.step not in (None, 1)
        ):
            return f"slicing the batch axis ({first})"
    for value in node.arguments.args if kind != "Matmul" else ():  # (an elementwise constant broadcasts)
        if isinstance(value, np.ndarray) and value.ndim >= len(outputs[0]) and value.shape[-len(outputs[0])] != 1:
            return f"with a constant of shape {value.shape} along the batch axis"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float)) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """A setting as JSON holds it: tuples as lists, numpy numbers as Python's, a dtype by name."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _index(key: Any, name: str) -> list[dict[str, Any]]:
    """``x[key]``'s key, item by item: integers, slices, None and Ellipsis (an index tensor is refused)."""
    out: list[dict[str, Any]] = []
    for k in key if isinstance(key, tuple) else (key,):
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            out.append({"index": int(k)})
        elif isinstance(k, slice) and all(
            v is None or isinstance(v, (int, np.integer)) for v in (k.start, k.stop, k.step)
        ):
            out.append({"slice": [None if v is None else int(v) for v in (k.start, k.stop, k.step)]})
        elif k is None:
            out.append({"newaxis": True})
        elif k is Ellipsis:
            out.append({"ellipsis": True})
        else:
            raise UnsupportedModelError(f"{name}: indexing a tensor by {type(k).__name__} is not supported")
    return out
