"""Lower a graph to one pure jnp function ``fn(params, inputs) -> outputs``. The graph is walked once,
at trace time; nothing interprets it at run time."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mle_runtime.errors import FormatError, UnsupportedOpError
from mle_runtime.graph import Graph
from mle_runtime.ops import get_op, lowering_for, stacked_form

log = logging.getLogger("mle_runtime.lowering")

GraphFn = Callable[[dict[str, jax.Array], Sequence[jax.Array]], tuple[jax.Array, ...]]


Step = tuple[Any, Callable[..., Any], bool, Callable[..., Any] | None]


def _plan(graph: Graph) -> list[Step]:
    """Each node with its op's function, whether its attributes hold markers, and its stacked form; every
    op is resolved now, and all missing ones are named at once."""
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
        plan.append((node, op.fn, has_markers(node.attrs), stacked_form(node.op, node.version)))
    if missing:
        raise UnsupportedOpError(f"this runtime does not implement ops {sorted(set(missing))}; upgrade mle-runtime")
    return plan


def _built(i: int, node: Any, make: Callable[..., Any], *args: Any, **attrs: Any) -> Any:
    """``make(*args, **attrs)`` for node #i, a failure at trace time named by the node: its attributes or
    operands do not fit its op."""
    try:
        return make(*args, **attrs)
    except (FormatError, UnsupportedOpError):
        raise
    except Exception as e:
        raise FormatError(
            f"graph: node #{i} ({node.op}) cannot be built from its operands and attributes "
            f"({type(e).__name__}: {str(e)[:300]})"
        ) from e


def build_function(graph: Graph) -> GraphFn:
    """The graph as a function ``fn(params, inputs) -> outputs``."""
    plan = _plan(graph)
    input_names = [vi.name for vi in graph.inputs]
    output_names = graph.outputs

    def fn(params: dict[str, jax.Array], inputs: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
        env: dict[str, Any] = dict(params)
        env.update(zip(input_names, inputs, strict=True))
        batch = inputs[0].shape[0] if inputs and inputs[0].ndim else 0
        for i, (node, impl, marked, _) in enumerate(plan):
            attrs = resolve_markers(node.attrs, batch) if marked else node.attrs
            env[node.outputs[0]] = _built(i, node, impl, *(env[name] for name in node.inputs), **attrs)
        return tuple(env[name] for name in output_names)

    return fn


StackFn = Callable[[dict[str, jax.Array], Sequence[jax.Array], Sequence[bool]], tuple[jax.Array, ...]]


def build_stack_function(graph: Graph, models: int, shared: frozenset[str] = frozenset()) -> StackFn:
    """The graph over a stack of ``models``: ``fn(params, inputs, per_model) -> outputs``, every parameter
    with a leading model axis but those named in ``shared``, each input with one where ``per_model`` says
    so, every output with one (the parameters' model axis, where there is one, tells how many).
    The same as ``jax.vmap`` of ``build_function(graph)`` over the models, node by node, except where an
    op has a stacked form that does better (a tree ensemble reading a shared input walks every model's
    trees as one forest)."""
    plan = _plan(graph)
    input_names = [vi.name for vi in graph.inputs]
    output_names = graph.outputs

    def fn(
        params: dict[str, jax.Array], inputs: Sequence[jax.Array], per_model: Sequence[bool]
    ) -> tuple[jax.Array, ...]:
        env: dict[str, Any] = dict(params)
        env.update(zip(input_names, inputs, strict=True))
        batched = {name: name not in shared for name in params} | dict(zip(input_names, per_model, strict=True))
        count = next((params[n].shape[0] for n in params if n not in shared), models)
        first = 1 if per_model and per_model[0] else 0
        batch = inputs[0].shape[first] if inputs and inputs[0].ndim > first else 0
        for i, (node, impl, marked, stacked) in enumerate(plan):
            attrs = resolve_markers(node.attrs, batch) if marked else node.attrs
            args = [env[name] for name in node.inputs]
            flags = tuple(batched[name] for name in node.inputs)
            out = None if stacked is None else _built(i, node, stacked, flags, *args, **attrs)
            if out is None and any(flags):
                axes = tuple(0 if f else None for f in flags)
                out = _built(i, node, jax.vmap(functools.partial(impl, **attrs), in_axes=axes), *args)
            # (a node none of whose operands has a model axis is computed once, without one)
            batched[node.outputs[0]] = out is not None
            env[node.outputs[0]] = out if out is not None else _built(i, node, impl, *args, **attrs)
        return tuple(env[n] if batched[n] else jnp.broadcast_to(env[n], (count, *env[n].shape)) for n in output_names)

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
    with np.errstate(over="ignore"):  # (a value past float32's range casts to inf, stepped down below)
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


# Which of XLA's CPU operations go to the YNNPACK library (JAX 0.10 sends dots, convolutions and
# reductions, a reduction's fusion taking in the operations that feed it), chosen per program by rules
# measured on XLA CPU (2 Zen 4 cores, side by side, the benchmarks' models). The option holds for a whole
# program. A program with convolutions keeps them, and its reductions, from YNNPACK: XLA's own ran the
# ResNet-style CNN 1.6-1.8x faster at 64 and 1,024 images (keeping the reductions in YNNPACK, whose fusion
# took in the last convolutions, 1.15-1.26x). Any other keeps its reductions in YNNPACK, for accuracy:
# XLA's summed a RadiusNeighborsRegressor's weighted neighbours in float32 to 1.8e-3 of the answer's
# scale, YNNPACK's to 3e-7. Dots go to YNNPACK unless most of the program's multiply-adds are in dots of
# at least LARGE_DOT_ROWS rows and LARGE_DOT_COLUMNS columns and under a tenth in narrower ones: XLA's
# were 1.16-1.19x faster for MLPClassifier (256, 256) at 1,000 and 100,000 rows, 1.14-1.23x for a
# 784-512-512-10 MLP at 1,024, 1.05-1.20x for a Transformer encoder at 64 and 1,024 sequences (4,096+
# token rows a dot), 1.20-1.27x for KNeighbors' distance blocks, even for SVC's kernel; YNNPACK's were
# 1.3-1.5x faster for that Transformer at one sequence (64 token rows), 1.1x for the MLP at 64 rows,
# 1.2-1.4x for LogisticRegression's (1,024 x 100) @ (100 x 10). Narrow dots keep YNNPACK for accuracy
# too: XLA's summed a (1,000 x 728) @ (728 x 6) SVC decision 2.3x further from float64 (2.6e-5 against
# 1.1e-5), past the 1e-5 of probabilities.
YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
YNN_DOTS, YNN_REDUCTIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT", "LIBRARY_FUSION_TYPE_REDUCE"
LARGE_DOT_ROWS = 1024
LARGE_DOT_COLUMNS = 32
_options_refused: list[str] = []  # (a JAX whose XLA names these options otherwise: its defaults from then on)


def compile_program(fn: Callable[..., Any], args: Sequence[Any], platform: str, **jit_options: Any) -> Any:
    """``jax.jit(fn, **jit_options)`` traced for the platform (``lowering_for``) and compiled for ``args``,
    with this runtime's XLA options for the platform."""
    with lowering_for(platform):
        traced = jax.jit(fn, **jit_options).trace(*args)
        lowered = traced.lower()
    if platform != "cpu" or _options_refused:
        return lowered.compile()
    options = {YNN_OPTION: ynn_fusions(traced.jaxpr.jaxpr)}
    try:
        return lowered.compile(options)
    except jax.errors.JaxRuntimeError as e:
        if YNN_OPTION not in str(e):  # ("No such compile option: ...", "While setting option ...")
            raise
        _options_refused.append(str(e))
        log.info("this XLA refuses %s (%s); compiling with its defaults", options, e)
        return lowered.compile()


def ynn_fusions(jaxpr: Any) -> str:
    """The value of YNN_OPTION for a CPU program (see above)."""
    large, narrow, total, convolutions = _work(jaxpr)
    kinds = [] if total and large * 2 >= total and narrow * 10 < total else [YNN_DOTS]
    if not convolutions:
        kinds.append(YNN_REDUCTIONS)
    log.debug(
        "YNNPACK for %s: %d dot multiply-adds, %d in large and %d in narrow dots, %d convolutions",
        kinds,
        total,
        large,
        narrow,
        convolutions,
    )
    return ",".join(kinds)


def _work(jaxpr: Any) -> tuple[int, int, int, int]:
    """Multiply-adds in the program's large dots, in its narrow ones (see LARGE_DOT_ROWS) and in all of
    them, and its number of convolutions; a scan's body counts once per step."""
    large = narrow = total = convolutions = 0
    for eqn in jaxpr.eqns:
        convolutions += eqn.primitive.name == "conv_general_dilated"
        if eqn.primitive.name == "dot_general":
            (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
            lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            rows = math.prod(d for i, d in enumerate(lhs) if i not in lhs_contract and i not in lhs_batch)
            columns = math.prod(d for i, d in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch)
            work = rows * columns * math.prod(lhs[i] for i in (*lhs_contract, *lhs_batch))
            total += work
            if columns < LARGE_DOT_COLUMNS:
                narrow += work
            elif rows >= LARGE_DOT_ROWS:
                large += work
        steps = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for sub in _subjaxprs(eqn.params.values()):
            sub_large, sub_narrow, sub_total, sub_convolutions = _work(sub)
            large, narrow, total = large + sub_large * steps, narrow + sub_narrow * steps, total + sub_total * steps
            convolutions += sub_convolutions
    return large, narrow, total, convolutions


def _subjaxprs(values: Any) -> Any:
    for v in values:
        if hasattr(v, "eqns"):
            yield v
        elif hasattr(getattr(v, "jaxpr", None), "eqns"):
            yield v.jaxpr
        elif isinstance(v, (tuple, list)):
            yield from _subjaxprs(v)
