"""Ray Data: ``dataset.map_batches(MLEPredictor, fn_constructor_kwargs={"model_path": ...}, concurrency=N)``.

Ray builds one ``MLEPredictor`` per worker (an actor), so each worker loads the model once, compiles once
per batch bucket (or takes the executable from the compile cache beside the model: workers on one machine
share it, under the same user's key) and then runs every batch it is given. Batches arrive as dicts of
numpy columns (``batch_format="numpy"``) or pandas DataFrames; the answer is the batch's columns plus one
column per output value (``label``, ``probabilities_0``, ...). On GPU workers, pass ``num_gpus=1`` to
``map_batches`` and ``device="cuda"`` here. Ray is not a dependency: install ``ray[data]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from mle_runtime.batch import output_columns
from mle_runtime.runtime import load_model


class MLEPredictor:
    """A callable class for ``ray.data.Dataset.map_batches`` that runs an .mle model on each batch."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        feature_columns: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        keep_columns: bool = True,
        device: str = "cpu",
        **load_options: Any,
    ):
        """``feature_columns``: the batch columns that form the model's input, in order (default: the
        model's recorded feature names, else every column); ``outputs``: which of its outputs to add
        (default: all); ``keep_columns``: return the input columns too."""
        self.runtime = load_model(model_path, device=device, **load_options)
        available = self.runtime._run_outputs()
        self.outputs = list(outputs) if outputs else available
        unknown = [o for o in self.outputs if o not in available]
        if unknown:
            raise ValueError(f"unknown outputs {unknown}; the model gives {available}")
        names = self.runtime.get_model_info()["metadata"].get("feature_names")
        self.feature_columns = list(feature_columns) if feature_columns else names
        self.keep_columns = keep_columns

    def __call__(self, batch: Any) -> Any:
        frame = hasattr(batch, "columns")
        columns = list(batch.columns) if frame else list(batch)
        wanted = self.feature_columns or columns
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ValueError(f"batch lacks the model's feature columns {missing}; it has {columns}")
        X = np.column_stack([np.asarray(batch[c]) for c in wanted])
        named = self.runtime._run_named([X], self.outputs)
        out: dict[str, np.ndarray] = {c: np.asarray(batch[c]) for c in columns} if self.keep_columns else {}
        headers, values = output_columns(self.outputs, [named[name] for name in self.outputs])
        out.update(zip(headers, values, strict=True))
        if frame:
            import pandas as pd

            return pd.DataFrame(out, index=batch.index)
        return out
