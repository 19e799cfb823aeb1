"""Pipeline: the steps' graphs chained, the last step deciding what the model outputs."""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

from mle_runtime.converters._builder import Converted, GraphBuilder
from mle_runtime.converters._registry import converter_for, converts
from mle_runtime.errors import UnsupportedModelError


def transformed_by(where: str, step: Any, b: GraphBuilder, x: str, n: int) -> tuple[str, int]:
    """The output of transformer ``step`` (``where`` names it in errors: "Pipeline step 'scale'") and its
    width; "passthrough" hands x on."""
    if step == "passthrough":
        return x, n
    try:
        out = converter_for(step)(step, b, x, n)
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"{where}: {e}") from e
    if out.neighbors_graph is not None:
        raise UnsupportedModelError(
            f"{where} ({type(step).__name__}) gives a neighbour graph, which only an estimator with a precomputed "
            "metric reads (not converted); it can end a pipeline"
        )
    if "transformed" not in out.outputs or out.n_outputs is None:  # (RFE both predicts and transforms)
        raise UnsupportedModelError(f"{where} ({type(step).__name__}) is not a transformer")
    return out.outputs["transformed"], out.n_outputs


@converts(Pipeline)
def pipeline(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    steps = [(name, step) for name, step in est.steps if step is not None and step != "passthrough"]
    if not steps:
        raise UnsupportedModelError("Pipeline has no steps to convert")
    for name, step in steps[:-1]:
        x, n = transformed_by(f"Pipeline step {name!r}", step, b, x, n)
    name, last = steps[-1]
    try:
        return converter_for(last)(last, b, x, n)
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"Pipeline step {name!r}: {e}") from e
