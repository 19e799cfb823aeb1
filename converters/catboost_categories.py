"""CatBoost's categorical features, read from the model's JSON form into the runtime's host-side step
(``mle_runtime.catboost_categories``, which says what it computes) and the graph input's columns its
splits test.

The JSON numbers a model's binary features in one sequence: every float feature's borders, then every
one-hot feature's values, then every counter feature's borders (``features_info.ctrs``, in the order the
applier computes them). An ``OnlineCtr`` split names its place in that sequence; its counter feature is
found from it and its border checked against that feature's own."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mle_runtime.catboost_categories import CTR_TYPES
from mle_runtime.converters._builder import GraphBuilder
from mle_runtime.errors import UnsupportedModelError

_EMPTY_SLOT = (1 << 64) - 1  # (the JSON lists a hash table's empty slots under this key)


class CategoricalColumns:
    """The host-side step of a model with categorical features (``entry``, for the file's metadata) and
    the graph input column each categorical split tests (``column``): the model's ``input_width`` columns,
    then one per counter feature, then one per one-hot test."""

    def __init__(self, doc: dict[str, Any], input_width: int):
        info = doc["features_info"]
        categorical = info.get("categorical_features", [])
        self._columns = {int(f["feature_index"]): int(f["flat_feature_index"]) for f in categorical}
        if sorted(self._columns) != list(range(len(categorical))):
            raise UnsupportedModelError("CatBoost categorical features are not numbered 0, 1, ... in the model")
        self._float_columns = float_feature_columns(doc)
        self._nan_above = {
            int(f["feature_index"]): f.get("nan_value_treatment") == "AsTrue" for f in info.get("float_features", [])
        }
        self._width = input_width
        self._ctrs = info.get("ctrs", [])
        first_ctr = sum(len(f.get("borders") or []) for f in info.get("float_features", []))
        first_ctr += sum(len(f.get("values") or []) for f in categorical)
        self._ctr_starts = np.cumsum([first_ctr] + [len(c.get("borders") or []) for c in self._ctrs])
        self._one_hot: dict[tuple[int, int], int] = {}
        self._projections: dict[tuple[Any, ...], int] = {}
        self._tables: dict[str, int] = {}
        self._table_entries: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._ctr_entries = [self._ctr_entry(c, doc.get("ctr_data", {})) for c in self._ctrs]

    def column(self, split: dict[str, Any]) -> tuple[int, float]:
        """The graph input column an OnlineCtr or OneHotFeature split tests, and the border it is above."""
        if split["split_type"] == "OneHotFeature":
            key = (self._feature(split["cat_feature_index"]), int(split["value"]))
            j = self._one_hot.setdefault(key, len(self._one_hot))
            return self._width + len(self._ctrs) + j, 0.5
        index = int(split["split_index"])
        i = int(np.searchsorted(self._ctr_starts, index, side="right")) - 1
        borders = (self._ctrs[i].get("borders") or []) if 0 <= i < len(self._ctrs) else []
        j = index - int(self._ctr_starts[max(i, 0)])
        if not 0 <= j < len(borders) or np.float32(borders[j]) != np.float32(split["border"]):
            raise UnsupportedModelError(f"CatBoost split {split} does not match the model's counter features")
        return self._width + i, float(np.float32(split["border"]))

    def entry(self, b: GraphBuilder) -> dict[str, Any]:
        """The step's metadata (after every split has been read: the one-hot tests are those they make),
        its tables added to ``b`` as two host tensors (the tables' keys, then every one's counts). The
        tables of one projection's counters of several types hold the same keys: stored once, and looked
        up once a batch."""
        tables, places, key_start, count_start = [], {}, 0, 0
        for keys, counts, denominator in self._table_entries:
            raw = keys.tobytes()
            if raw not in places:
                places[raw] = [key_start, len(keys)]
                key_start += len(keys)
            tables.append({"keys": places[raw], "counts": [count_start, counts.shape[1]]})
            tables[-1]["denominator"] = denominator
            count_start += counts.size
        keys = np.frombuffer(b"".join(places), dtype=np.uint64)
        counts = np.concatenate([t[1].ravel() for t in self._table_entries] or [np.zeros(0)])
        # float32 holds the counts, and every sum of a row of them, exactly below 2**24 (CatBoost's mean
        # tables hold float32 sums already): half the bytes of float64, which a larger table keeps
        totals = [t[1].sum(axis=1).max(initial=0) for t in self._table_entries]
        if max(totals, default=0) < 1 << 24 and np.array_equal(counts.astype(np.float32), counts):
            counts = counts.astype(np.float32)
        return {
            "input_width": self._width,
            "columns": [self._columns[k] for k in range(len(self._columns))],
            "projections": [{"categorical": list(p[0]), "elements": list(p[1])} for p in self._projections],
            "keys": b.host_tensor("catboost_keys", keys),
            "counts": b.host_tensor("catboost_counts", counts),
            "sha256": hashlib.sha256(keys.tobytes() + counts.tobytes()).hexdigest(),
            "tables": tables,
            "ctrs": self._ctr_entries,
            "one_hot": [list(k) for k in self._one_hot],
        }

    @property
    def extra_columns(self) -> int:
        return len(self._ctrs) + len(self._one_hot)

    def _feature(self, k: Any) -> int:
        if int(k) not in self._columns:
            raise UnsupportedModelError(f"CatBoost split reads categorical feature {k}, which the model lacks")
        return int(k)

    def _ctr_entry(self, ctr: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        kind = ctr["ctr_type"]
        if kind not in CTR_TYPES:
            raise UnsupportedModelError(f"CatBoost counter type {kind!r} is not supported (supported: {CTR_TYPES})")
        identifier = ctr["identifier"]
        if identifier not in self._tables:
            if identifier not in data:
                raise UnsupportedModelError(f"the CatBoost model's JSON lacks the table of counter {identifier}")
            self._tables[identifier] = len(self._table_entries)
            self._table_entries.append(_table(data[identifier], kind))
        return {
            "projection": self._projection(ctr["elements"]),
            "table": self._tables[identifier],
            "kind": kind,
            "target_border": int(ctr.get("target_border_idx", 0)),
            "prior_num": float(ctr["prior_numerator"]),
            "prior_denom": float(ctr["prior_denomerator"]),
            "shift": float(ctr["shift"]),
            "scale": float(ctr["scale"]),
        }

    def _projection(self, elements: list[dict[str, Any]]) -> int:
        categorical: list[int] = []
        binarised: list[list[Any]] = []
        for e in elements:
            kind = e["combination_element"]
            if kind == "cat_feature_value":
                categorical.append(self._feature(e["cat_feature_index"]))
            elif kind == "float_feature":
                k = int(e["float_feature_index"])
                border = float(np.float32(e["border"]))
                binarised.append(["float", self._float_columns[k], border, self._nan_above.get(k, False)])
            elif kind == "cat_feature_exact_value":
                binarised.append(["exact", self._feature(e["cat_feature_index"]), int(e["value"])])
            else:
                raise UnsupportedModelError(f"CatBoost counter over {kind!r} is not supported")
        key = (tuple(categorical), tuple(tuple(b) for b in binarised))
        return self._projections.setdefault(key, len(self._projections))


def _table(data: dict[str, Any], kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    stride = int(data["hash_stride"])
    flat = data["hash_map"]
    keys = np.array([int(k) for k in flat[::stride]], dtype=np.uint64)
    counts = np.asarray([flat[i + 1 : i + stride] for i in range(0, len(flat), stride)], dtype=np.float64)
    counts = counts.reshape(len(keys), stride - 1)
    kept = keys != np.uint64(_EMPTY_SLOT)
    order = np.argsort(keys[kept], kind="stable")
    keys, counts = keys[kept][order], counts[kept][order]
    if np.any(keys[1:] == keys[:-1]):
        raise UnsupportedModelError(f"a CatBoost {kind} counter table lists a hash twice")
    return keys, counts, float(data.get("counter_denominator", 0))


def float_feature_columns(doc: dict[str, Any]) -> dict[int, int]:
    """Float feature -> the input column it reads."""
    return {
        int(f["feature_index"]): int(f["flat_feature_index"]) for f in doc["features_info"].get("float_features", [])
    }
