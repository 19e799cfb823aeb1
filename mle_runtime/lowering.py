"""Lower a graph to one pure jnp function ``fn(params, inputs) -> outputs``. The graph is walked once,
at trace time; nothing interprets it at run time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from mle_runtime.errors import FormatError, UnsupportedOpError
from mle_runtime.graph import Graph
from mle_runtime.ops import get_op

GraphFn = Callable[[dict[str, jax.Array], Sequence[jax.Array]], tuple[jax.Array, ...]]


def build_function(graph: Graph) -> GraphFn:
    """The graph as a function; every op is resolved now, and all missing ones are named at once."""
    plan, missing = [], []
    for i, node in enumerate(graph.nodes):
        try:
            op = get_op(node.op, node.version)
        except UnsupportedOpError:
            missing.append(f"{node.op} v{node.version}")
            continue
        try:
            op.signature.bind(*node.inputs, **node.attrs)
        except TypeError as e:
            raise FormatError(
                f"graph: node #{i} ({node.op}) does not fit the op's signature {op.signature}: {e}"
            ) from e
        if len(node.outputs) != 1:
            raise FormatError(f"graph: node #{i} ({node.op}) declares {len(node.outputs)} outputs; the op has one")
        plan.append((node, op.fn, has_markers(node.attrs)))
    if missing:
        raise UnsupportedOpError(f"this runtime does not implement ops {sorted(set(missing))}; upgrade mle-runtime")
    input_names = [vi.name for vi in graph.inputs]
    output_names = graph.outputs

    def fn(params: dict[str, jax.Array], inputs: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
        env: dict[str, Any] = dict(params)
        env.update(zip(input_names, inputs, strict=True))
        batch = inputs[0].shape[0] if inputs and inputs[0].ndim else 0
        for i, (node, impl, marked) in enumerate(plan):
            try:
                attrs = resolve_markers(node.attrs, batch) if marked else node.attrs
                env[node.outputs[0]] = impl(*(env[name] for name in node.inputs), **attrs)
            except (FormatError, UnsupportedOpError):
                raise
            except Exception as e:  # (at trace time: this node's attributes or operands do not fit its op)
                raise FormatError(
                    f"graph: node #{i} ({node.op}) cannot be built from its operands and attributes "
                    f"({type(e).__name__}: {str(e)[:300]})"
                ) from e
        return tuple(env[name] for name in output_names)

    return fn


# Attribute values JSON cannot hold as such, written as one-key objects: {"batch": [a, b]} is the int
# a * batch + b, where batch is the first input's number of rows (sizes a network's graph computes from
# its dynamic batch dimension); {"float": "inf" | "-inf" | "nan"} is that float.
_FLOATS = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


def has_markers(value: Any) -> bool:
    if isinstance(value, dict):
        return (len(value) == 1 and ("batch" in value or "float" in value)) or any(
            has_markers(v) for v in value.values()
        )
    return isinstance(value, list) and any(has_markers(v) for v in value)


def resolve_markers(value: Any, batch: int) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "batch" in value:
            a, b = value["batch"]
            return int(a) * batch + int(b)
        if len(value) == 1 and "float" in value:
            return _FLOATS[value["float"]]
        return {k: resolve_markers(v, batch) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_markers(v, batch) for v in value]
    return value


def round_down_tensors(graph: Graph) -> set[str]:
    """Tensors that float32 precision must narrow toward -inf (split thresholds), by the ops reading them."""
    names: set[str] = set()
    for node in graph.nodes:
        names.update(get_op(node.op, node.version).round_down_inputs(node.inputs))
    return names


def to_float32_down(a: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 value (NaN and infinities kept), as a split threshold."""
    narrow = a.astype(np.float32)
    above = narrow.astype(np.float64) > a
    if above.any():
        narrow[above] = np.nextafter(narrow[above], np.float32(-np.inf))
    return flush_safe_thresholds(narrow)


def flush_safe_thresholds(t: np.ndarray) -> np.ndarray:
    """Thresholds for ``x <= t`` that survive XLA on CPU flushing subnormals to zero: a negative
    subnormal t (XGBoost's ``x < 0`` becomes ``x <= -1e-45``) would flush to -0.0 and send x = 0 left,
    so it becomes the negative normal closest to zero, which splits every normal x the same way."""
    tiny = np.finfo(t.dtype).tiny
    subnormal = (t < 0) & (t > -tiny)
    if subnormal.any():
        t = t.copy()
        t[subnormal] = -tiny
    return t
