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
        plan.append((node, op.fn))
    if missing:
        raise UnsupportedOpError(f"this runtime does not implement ops {sorted(set(missing))}; upgrade mle-runtime")
    input_names = [vi.name for vi in graph.inputs]
    output_names = graph.outputs

    def fn(params: dict[str, jax.Array], inputs: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
        env: dict[str, Any] = dict(params)
        env.update(zip(input_names, inputs, strict=True))
        for node, impl in plan:
            env[node.outputs[0]] = impl(*(env[name] for name in node.inputs), **node.attrs)
        return tuple(env[name] for name in output_names)

    return fn


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
