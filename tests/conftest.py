"""Shared fixtures. The compile cache's key file goes to a per-session folder, not the user's home.

``MLE_TEST_DEVICE=cuda`` (or ``gpu``, ``cuda:1``) runs every load, stack and runtime that names no device
on that device instead of the CPU: the check a session lent a GPU machine runs, e.g.
``MLE_TEST_DEVICE=cuda python3 -m pytest -x -q tests/test_conformance.py tests/test_trees.py``.
"""

from __future__ import annotations

import os
import tempfile

import pytest

_config = tempfile.mkdtemp(prefix="mle-test-config-")
os.environ["XDG_CONFIG_HOME"] = _config
os.environ["XDG_CACHE_HOME"] = os.path.join(_config, "cache")


def _default_device(device: str) -> None:
    """Make ``device`` the default of every public entry point that takes one."""
    import importlib

    runtime = importlib.import_module("mle_runtime.runtime")
    stacks = importlib.import_module("mle_runtime.model_stack")
    runtime.load_model.__defaults__ = (device,)
    runtime.MLERuntime.__init__.__defaults__ = (device, *runtime.MLERuntime.__init__.__defaults__[1:])
    stacks.stack.__defaults__ = (device,)


if os.environ.get("MLE_TEST_DEVICE"):
    _default_device(os.environ["MLE_TEST_DEVICE"])


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
