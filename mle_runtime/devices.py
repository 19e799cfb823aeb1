"""Device names users pass (``cpu``, ``cuda``/``gpu``, ``cuda:1``, ``auto``) to JAX devices."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from mle_runtime.errors import DeviceError

log = logging.getLogger("mle_runtime.devices")


def _available() -> list[str]:
    import jax

    return [f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()]


def resolve_device(name: str) -> Any:
    import jax

    kind, _, index_text = name.strip().lower().partition(":")
    try:
        index = int(index_text) if index_text else 0
    except ValueError:
        raise DeviceError(f"bad device {name!r}; use 'cpu', 'cuda', 'cuda:N', 'gpu' or 'auto'") from None
    if kind == "auto":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            return jax.devices("cpu")[0]
    if kind not in ("cpu", "cuda", "gpu"):
        raise DeviceError(f"unknown device {name!r}; use 'cpu', 'cuda', 'cuda:N', 'gpu' or 'auto'")
    try:
        devices = jax.devices("cpu" if kind == "cpu" else "gpu")
    except RuntimeError:
        raise DeviceError(
            f"device {name!r} requested but JAX sees no GPU; available devices: {_available()}. "
            "Install a CUDA build of jax (pip install 'jax[cuda12]') on a GPU machine."
        ) from None
    if index >= len(devices):
        raise DeviceError(f"device {name!r} does not exist; available devices: {_available()}")
    return devices[index]


def resolve_devices(spec: Any, platform: str) -> list[Any]:
    """The devices a model's batches are split across (data parallel): an int (the first N devices of
    ``platform``), "all", or a list of device names or JAX devices."""
    import jax

    try:
        local = jax.devices(platform)
    except RuntimeError:
        raise DeviceError(f"no {platform} devices; available devices: {_available()}") from None
    if spec == "all":
        return list(local)
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 1 <= spec <= len(local):
            raise DeviceError(f"devices={spec}: this machine has {len(local)} {platform} device(s): {_available()}")
        return list(local[:spec])
    if isinstance(spec, (list, tuple)) and spec:
        chosen = [resolve_device(d) if isinstance(d, str) else d for d in spec]
        if len({id(d) for d in chosen}) != len(chosen):
            raise DeviceError(f"devices={spec!r} names a device twice")
        if len({d.platform for d in chosen}) != 1:
            raise DeviceError(f"devices={spec!r} mixes platforms")
        return chosen
    raise DeviceError(f"devices must be an int, 'all' or a list of devices, got {spec!r}")


# JAX's CPU client runs every program on a worker thread (asynchronous dispatch) and the caller waits for
# it: for a small batch the hand-over costs more than the work (a 1,024 x 50 linear model: 77 us a call,
# against 18 us run on the calling thread; the input, just written by the caller, must move to the
# worker's core). JAX's switch for that (``jax_cpu_enable_async_dispatch``) is process-wide and fixed
# when its CPU client starts, so the runtime keeps a second, synchronous CPU client of its own for
# batches of one chunk; chunked batches stay on JAX's client, where consecutive chunks overlap on the
# cores (inline, 100,000 rows through 500 trees took 1.5x as long). MLE_INLINE_CPU=0 turns it off.
_inline: list[Any] = []
_inline_lock = threading.Lock()


def inline_cpu_device() -> Any | None:
    """The device of the runtime's own synchronous CPU client (created on first use), or None where it
    is turned off or this JAX cannot make one (the runtime then uses JAX's CPU client for everything)."""
    with _inline_lock:
        if not _inline:
            _inline.append(_make_inline_cpu_device())
        return _inline[0]


def _make_inline_cpu_device() -> Any | None:
    if os.environ.get("MLE_INLINE_CPU", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        from jax._src.lib import xla_client

        client: Any = xla_client.make_cpu_client(asynchronous=False)
        return client.devices()[0]
    except Exception as e:  # (a JAX whose private client factory moved or changed: no harm, just slower)
        log.info("no synchronous CPU client (%s); small batches dispatch through JAX's own", e)
        return None
