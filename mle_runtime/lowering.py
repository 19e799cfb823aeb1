"""Lower a graph to one pure jnp function ``fn(params, inputs) -> outputs``. The graph is walked once,
at trace time; nothing interprets it at run time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from mle_runtime.errors import UnsupportedOpError
from mle_runtime.graph import Graph
from mle_runtime.ops import get_op

GraphFn = Callable[[dict[str, jax.Array], Sequence[jax.Array]], tuple[jax.Array, ...]]


def build_function(graph: Graph) -> GraphFn:
    """The graph as a function; every op is resolved now, and all missing ones are named at once."""
    plan, missing = [], []
    for node in graph.nodes:
        try:
            plan.append((node, get_op(node.op, node.version).fn))
        except UnsupportedOpError:
            missing.append(f"{node.op} v{node.version}")
    if missing:
        raise UnsupportedOpError(f"this runtime does not implement ops {sorted(set(missing))}; upgrade mle-runtime")
    input_names = [vi.name for vi in graph.inputs]
    output_names = graph.outputs

    def fn(params: dict[str, jax.Array], inputs: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
        env: dict[str, Any] = dict(params)
        env.update(zip(input_names, inputs, strict=True))
        for node, impl in plan:
            result = impl(*(env[name] for name in node.inputs), **node.attrs)
            if len(node.outputs) == 1:
                env[node.outputs[0]] = result
            else:
                env.update(zip(node.outputs, result, strict=True))
        return tuple(env[name] for name in output_names)

    return fn
