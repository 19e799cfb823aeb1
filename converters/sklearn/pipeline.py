"""Pipeline: the steps' graphs chained, the last step deciding what the model outputs."""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converter_for, converts
from mle_runtime.errors import UnsupportedModelError


@converts(Pipeline)
def pipeline(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    steps = [(name, step) for name, step in est.steps if step is not None and step != "passthrough"]
    if not steps:
        raise UnsupportedModelError("Pipeline has no steps to convert")
    for name, step in steps[:-1]:
        try:
            out = converter_for(step)(step, b, x, n)
        except UnsupportedModelError as e:
            raise UnsupportedModelError(f"Pipeline step {name!r}: {e}") from e
        if out.task != "transformer" or out.n_outputs is None:
            raise UnsupportedModelError(f"Pipeline step {name!r} ({type(step).__name__}) is not a transformer")
        x, n = out.outputs["transformed"], out.n_outputs
    name, last = steps[-1]
    try:
        return converter_for(last)(last, b, x, n)
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"Pipeline step {name!r}: {e}") from e
