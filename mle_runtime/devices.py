"""Device names users pass (``cpu``, ``cuda``/``gpu``, ``cuda:1``, ``auto``) to JAX devices."""

from __future__ import annotations

from typing import Any

from mle_runtime.errors import DeviceError


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
