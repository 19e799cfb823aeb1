"""scikit-learn converters. Importing this package registers them (it imports scikit-learn)."""

from __future__ import annotations

from typing import Any

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converter_for
from mle_runtime.converters.sklearn import linear, pipeline, preprocessing

__all__ = ["convert_step", "linear", "pipeline", "preprocessing"]


def convert_step(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Convert one fitted estimator reading tensor ``x`` of width ``n_features``."""
    return converter_for(est)(est, b, x, n_features)
