"""The op registry: each op is a pure jnp function registered by (name, version) next to its definition."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mle_runtime.errors import UnsupportedOpError

# The modules that define ops; importing one registers its ops. Loaded on first lookup so that
# `import mle_runtime` stays light and does not import jax.
_OP_MODULES = (
    "mle_runtime.ops.math",
    "mle_runtime.ops.ensemble",
    "mle_runtime.ops.linear",
    "mle_runtime.ops.neighbors",
    "mle_runtime.ops.kernels",
    "mle_runtime.ops.preprocessing",
    "mle_runtime.ops.probabilistic",
    "mle_runtime.ops.sparse_coding",
    "mle_runtime.ops.svm",
    "mle_runtime.ops.text",
    "mle_runtime.ops.trees",
)
# The network ops, named "<prefix>.<op>", load only when a model uses one (or every op is listed): they
# are a third of the ops, and a process that loads a tree ensemble need not register them (~14 ms).
_PREFIXED_MODULES = {
    "aten.": ("mle_runtime.ops.aten", "mle_runtime.ops.polynomials"),
    "keras.": ("mle_runtime.ops.keras",),
}


@dataclass(frozen=True)
class OpDef:
    name: str
    version: int
    fn: Callable[..., Any]
    doc: str
    signature: inspect.Signature  # checked against each node's inputs and attrs when a file loads
    # Split thresholds: float32 precision narrows them toward -inf instead of to nearest (a split
    # ``x <= t`` on float32 inputs is exact only against the largest float32 <= t), and float64
    # precision keeps them as stored (the op compares them in their own dtype).
    round_down: tuple[str, ...] = ()

    def round_down_inputs(self, inputs: tuple[str, ...]) -> list[str]:
        """The tensors among a node's ``inputs`` that bind to this op's round-down parameters."""
        names = list(self.signature.parameters)
        return [inputs[names.index(p)] for p in self.round_down if names.index(p) < len(inputs)]


_OPS: dict[tuple[str, int], OpDef] = {}
_STACKED: dict[tuple[str, int], Callable[..., Any]] = {}
_loaded = False


def register_op(
    name: str, version: int = 1, round_down: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(*inputs, **attrs)`` as op ``name`` at ``version``; a duplicate is an error."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = (name, version)
        if key in _OPS:
            raise ValueError(
                f"op {name} v{version} is registered twice ({_OPS[key].fn.__module__} and {fn.__module__})"
            )
        signature = inspect.signature(fn)
        if not set(round_down) <= set(signature.parameters):
            raise ValueError(f"op {name}: round_down names {round_down} that are not among its parameters")
        _OPS[key] = OpDef(name, version, fn, (fn.__doc__ or "").strip().split("\n")[0], signature, round_down)
        return fn

    return wrap


def register_stacked_form(name: str, version: int = 1) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(batched, *inputs, **attrs)``: op ``name`` over a stack of models (lowering's
    ``build_stack_function``), each input with a leading model axis where ``batched`` says so, returning
    the outputs with a model axis, or None where it has no better form than ``jax.vmap`` of the op."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _STACKED[(name, version)] = fn
        return fn

    return wrap


def stacked_form(name: str, version: int = 1) -> Callable[..., Any] | None:
    _ensure_loaded(name)
    return _STACKED.get((name, version))


def _ensure_loaded(name: str | None = None) -> None:
    """The core op modules; and the network module of ``name``'s prefix, or, without a name, all of them."""
    global _loaded
    if not _loaded:
        for module in _OP_MODULES:
            importlib.import_module(module)
        _loaded = True
    for prefix, modules in _PREFIXED_MODULES.items():
        if name is None or name.startswith(prefix):
            for module in modules:
                importlib.import_module(module)  # (a no-op once imported)


def all_ops() -> dict[tuple[str, int], OpDef]:
    _ensure_loaded()
    return dict(_OPS)


def get_op(name: str, version: int = 1) -> OpDef:
    _ensure_loaded(name)
    try:
        return _OPS[(name, version)]
    except KeyError:
        known = sorted(v for (n, v) in _OPS if n == name)
        hint = f" (this runtime has versions {known})" if known else ""
        raise UnsupportedOpError(f"op {name} v{version} is not implemented{hint}; upgrade mle-runtime") from None


def has_op(name: str, version: int = 1) -> bool:
    _ensure_loaded(name)
    return (name, version) in _OPS


def supported_operators() -> list[str]:
    """Names of every registered op, with the version when it is not 1 (e.g. ``Gemm``, ``Foo@2``)."""
    return sorted(n if v == 1 else f"{n}@{v}" for n, v in all_ops())


_platform: contextvars.ContextVar[str] = contextvars.ContextVar("mle_lowering_platform", default="cpu")


def lowering_platform() -> str:
    """The platform ("cpu", "gpu", ...) a graph is being traced for; ops whose fastest form differs by
    device read it at trace time. Outside ``lowering_for`` (a user's own ``jax.jit`` of ``as_jax()``) it
    is "cpu"."""
    return _platform.get()


@contextlib.contextmanager
def lowering_for(platform: str) -> Iterator[None]:
    token = _platform.set("gpu" if platform in ("gpu", "cuda", "rocm") else platform)
    try:
        yield
    finally:
        _platform.reset(token)
