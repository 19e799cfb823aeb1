"""PyTorch's orthogonal polynomials (``torch.special.chebyshev_polynomial_t`` and the others), computed as
ATen's CPU kernels compute them: the three-term recurrence from 1 and the first-degree polynomial, the
same float operations in the same order, with their special cases (x at +-1, a trigonometric form for high
degrees inside (-1, 1), 0 for a negative degree). The degree ``n`` is an attribute (the ``n_scalar``
overloads) or a tensor broadcast against x (the default ones: each element runs the recurrence to its own
degree); a float degree is truncated toward zero, as ATen casts it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mle_runtime.ops import register_op

Step = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]  # (x, k, p, q) -> the next term


class Family(NamedTuple):
    first: Callable[[jax.Array], jax.Array]  # the polynomial of degree 1
    step: Step  # the recurrence's next term from the two before (p, q), at loop index k = 1 .. n - 1
    special: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]] | None  # (applies, value) at (x, n)


def _ends(x: jax.Array, n: jax.Array, at_one: jax.Array, at_minus_one: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The value at |x| == 1: ``at_one`` where x > 0, else ``at_minus_one``."""
    return jnp.abs(x) == 1, jnp.where(x > 0, at_one, at_minus_one)


def _sign(n: jax.Array, value: jax.Array) -> jax.Array:
    """value for an even n, -value for an odd one."""
    return jnp.where(n % 2 == 0, value, -value)


def _chebyshev(kind: str, threshold: int) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """The cases ATen's Chebyshev kernels take before the recurrence: the ends, then, past degree
    ``threshold`` inside (-1, 1), the closed trigonometric form."""

    def special(x: jax.Array, n: jax.Array) -> tuple[jax.Array, jax.Array]:
        f = n.astype(x.dtype)
        one, two_n_1 = jnp.ones_like(x), (n + n + 1).astype(x.dtype)
        ends = {
            "t": (one, _sign(n, one)),
            "u": (f + 1, _sign(n, f + 1)),
            "v": (one, _sign(n, two_n_1)),
            "w": (two_n_1, _sign(n, one)),
        }[kind]
        at_end, end = _ends(x, n, *ends)
        inside = (n > threshold) & (jnp.abs(x) < 1)
        angle = jnp.arccos(jnp.where(inside, x, 0))
        if kind == "t":
            closed = jnp.cos(f * angle)
        elif kind == "u":
            sine = jnp.sin(angle)
            closed = jnp.where(sine != 0, jnp.sin((f + 1) * angle) / sine, (f + 1) * jnp.cos((f + 1) * angle) / x)
        elif kind == "v":
            closed = jnp.where(jnp.sin(angle / 2) != 1, jnp.cos((f + 0.5) * angle) / jnp.cos(angle / 2), end)
        else:
            closed = jnp.where(jnp.cos(angle / 2) != 1, jnp.sin((f + 0.5) * angle) / jnp.sin(angle / 2), end)
        return at_end | inside, jnp.where(at_end, end, closed)

    return special


def _twice(x: jax.Array) -> jax.Array:
    return x + x


def _chebyshev_step(x: jax.Array, k: jax.Array, p: jax.Array, q: jax.Array) -> jax.Array:
    return (x + x) * q - p


FAMILIES: dict[str, Family] = {
    "chebyshev_polynomial_t": Family(lambda x: x, _chebyshev_step, _chebyshev("t", 6)),
    "chebyshev_polynomial_u": Family(_twice, _chebyshev_step, _chebyshev("u", 8)),
    "chebyshev_polynomial_v": Family(lambda x: x + x - 1, _chebyshev_step, _chebyshev("v", 8)),
    "chebyshev_polynomial_w": Family(lambda x: x + x + 1, _chebyshev_step, _chebyshev("w", 8)),
    # (ATen's loop runs k = 2, 4, ... < 2n: twice the loop index)
    "hermite_polynomial_h": Family(_twice, lambda x, k, p, q: (x + x) * q - (k + k) * p, None),
    "hermite_polynomial_he": Family(lambda x: x, lambda x, k, p, q: x * q - k * p, None),
    "laguerre_polynomial_l": Family(
        lambda x: 1 - x,
        lambda x, k, p, q: (((k + k) + (1 - x)) * q - k * p) / (k + 1),
        lambda x, n: (jnp.abs(x) == 0, jnp.ones_like(x)),
    ),
    "legendre_polynomial_p": Family(
        lambda x: x,
        lambda x, k, p, q: ((k + k + 1) * x * q - k * p) / (k + 1),
        lambda x, n: _ends(x, n, jnp.ones_like(x), _sign(n, jnp.ones_like(x))),
    ),
}
# The shifted Chebyshev polynomials are the unshifted ones at x + x - 1, their closed form from degree 7
_SHIFTED_THRESHOLD = 6


def _evaluated(name: str, x: jax.Array, degree: jax.Array | float, shifted: bool = False) -> jax.Array:
    family = FAMILIES[name]
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if shifted:
        x = x + x - 1
        kind = name[-1]
        family = family._replace(special=_chebyshev(kind, _SHIFTED_THRESHOLD))
    given = jnp.asarray(degree)
    n = (jnp.trunc(given) if jnp.issubdtype(given.dtype, jnp.floating) else given).astype(jnp.int32)
    x, n = jnp.broadcast_arrays(x, n)
    first = family.first(x)

    def body(k: jax.Array, pq: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        p, q = pq
        r = family.step(x, k.astype(x.dtype), p, q)
        running = k < n  # (each element stops at its own degree)
        return jnp.where(running, q, p), jnp.where(running, r, q)

    # a degree given as a number bounds the loop statically (a scan: jax.grad goes through it); a tensor
    # of degrees runs to its largest (a while loop)
    static = isinstance(degree, (int, float))
    steps = max(1, int(degree)) if static else (jnp.maximum(jnp.max(n), 1) if n.size else 1)
    _, q = jax.lax.fori_loop(1, steps, body, (jnp.ones_like(x), first))
    out = jnp.where(n == 0, jnp.ones_like(x), jnp.where(n == 1, first, q))
    if family.special is not None:
        applies, value = family.special(x, n)
        out = jnp.where(applies, value, out)
    return jnp.where(n < 0, jnp.zeros_like(x), out)


def _register(name: str, shifted: bool) -> None:
    op = f"aten.special_{'shifted_' if shifted else ''}{name}"

    def with_tensor_degree(x: jax.Array, n: jax.Array) -> jax.Array:
        return _evaluated(name, x, n, shifted)

    def with_scalar_degree(x: jax.Array, *, n: float) -> jax.Array:
        return _evaluated(name, x, n, shifted)

    doc = f"PyTorch's torch.special.{'shifted_' if shifted else ''}{name}(x, n), as its CPU kernel computes it."
    with_tensor_degree.__doc__ = with_scalar_degree.__doc__ = doc
    register_op(op)(with_tensor_degree)
    register_op(f"{op}.n_scalar")(with_scalar_degree)


for _name in FAMILIES:
    _register(_name, shifted=False)
    if _name.startswith("chebyshev"):
        _register(_name, shifted=True)
