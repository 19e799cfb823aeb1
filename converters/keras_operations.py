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


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float)) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """A setting as JSON holds it: tuples as lists, a dtype by name."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
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
