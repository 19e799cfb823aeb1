"""Shared fixtures. The compile cache's key file goes to a per-session folder, not the user's home."""

from __future__ import annotations

import os
import tempfile

import pytest

_config = tempfile.mkdtemp(prefix="mle-test-config-")
os.environ["XDG_CONFIG_HOME"] = _config
os.environ["XDG_CACHE_HOME"] = os.path.join(_config, "cache")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
