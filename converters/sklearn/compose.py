"""Column-wise composition: ColumnTransformer (columns by index, name, mask or callable, with its
remainder) and FeatureUnion, whose parts' outputs are placed side by side."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import compose, pipeline

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.converters.sklearn.pipeline import transformed_by
from mle_runtime.errors import UnsupportedModelError


def _side_by_side(b: GraphBuilder, parts: list[tuple[str, int]]) -> Converted:
    if not parts:
        raise UnsupportedModelError("no part produces any column")
    width = sum(n for _, n in parts)
    if len(parts) == 1:
        return transformed(parts[0][0], width)
    y = b.concat(parts)
    if any(p in b.columns_of for p, _ in parts):  # input columns passed through stay known (string codes)
        b.columns_of[y] = [c for p, n in parts for c in b.columns_of.get(p, [None] * n)]
    return transformed(y, width)


@converts(compose.ColumnTransformer)
def column_transformer(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    parts = []
    for name, step, _ in est.transformers_:
        columns = np.asarray(est._transformer_to_input_indices.get(name, []), dtype=np.int32)
        if step == "drop" or columns.size == 0:
            continue
        whole = np.array_equal(columns, np.arange(n_features))
        sub = x if whole else b.take_columns(x, columns, f"{name}_columns")
        parts.append(transformed_by(f"ColumnTransformer part {name!r}", step, b, sub, int(columns.size)))
    return _side_by_side(b, parts)


@converts(pipeline.FeatureUnion)
def feature_union(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    weights = est.transformer_weights or {}
    parts = []
    for name, step in est.transformer_list:
        if step == "drop" or step is None:
            continue
        y, n = transformed_by(f"FeatureUnion part {name!r}", step, b, x, n_features)
        if name in weights:
            y = b.op("Mul", y, b.const(f"{name}_weight", np.array(float(weights[name]))))
        parts.append((y, n))
    return _side_by_side(b, parts)
