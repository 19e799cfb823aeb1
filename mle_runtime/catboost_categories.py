"""The host-side step of a CatBoost model with categorical features: each categorical value becomes the
numbers CatBoost's trees test, before the graph runs, as CatBoost's own model applier computes them.

A value is hashed as CatBoost hashes it (a string's UTF-8 bytes, an integer's decimal digits, a bool as 1
or 0; ``cityhash``: the low 32 bits of CityHash64 1.0). A counter feature (CTR) reads a projection: one or
more categorical features, perhaps with float features binarised at a border and one-hot tests; the
projection's 64-bit hash (``combined``, CatBoost's multiply-add in uint64) finds the row's bucket in one
of the model's counter tables (absent: an unseen combination, counted 0), and its counts give
``((good + prior_num) / (total + prior_denom) + shift) * scale`` in float32. The trees then test that value
against float32 borders like any float feature. A one-hot feature tests the value's hash for equality.
A runtime keeps the values it has seen, and the counters over one categorical feature for each of them
(``catboost_tables.SeenValues``), so that known values are neither hashed nor looked up again.

The results reach the graph in extra columns of its input, after the model's ``input_width`` columns (a
categorical column's own slot holds 0): one per counter feature, then one per one-hot test (1 or 0). The
step is data in the file, not code: its settings in the metadata (``catboost_categories``), and its counter
tables in two tensors that no graph node reads, every table's sorted hashes (uint64), then every table's
counts (float32, or float64 where a row of counts sums to 2**24 or more), named there beside a SHA-256 of
their contents (so that two models' steps are equal only where their tables are: a stack codes its input
once). The tables are read, and checked, on first use: a load reads only the columns the step takes."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from mle_runtime.catboost_tables import MAGIC_INT, SeenValues, combined, slots
from mle_runtime.errors import FormatError
from mle_runtime.reader import aligned_empty

_MASK64 = (1 << 64) - 1
# Batches of at most this many rows take the row-by-row path (``_by_row``). Measured, the whole input step
# (DataFrame included) of benchmarks/bench_catboost_categories.py's model (329 counter features over 4
# categorical columns, values seen before): 0.52 ms + 0.21 ms a row by row, 0.86-0.97 ms in arrays from 1 to
# 16 rows (2 cores).
ROW_BY_ROW = 2
# Larger batches go through the array path this many rows at a time, each block's columns (a row a column)
# transposed into the graph input, so that the step's own memory stays one block's whatever the batch.
# Measured, 100,000 rows through benchmarks/bench_catboost_categories.py's model (whole predict_proba,
# medians of 8 calls, two rounds): 2,048-row blocks 351-358 ms, 8,192-row blocks 304-305 ms, 32,768-row
# blocks 351-358 ms, one block of all the rows 390-436 ms.
BLOCK_ROWS = 8192
# CatBoost's counter types as its model applier reads their tables (the FeatureFreq and FloatTargetMeanValue
# types of its GPU training are refused at export: no model of theirs could be tested here)
CTR_TYPES = ("Borders", "Buckets", "Counter", "BinarizedTargetMeanValue")


@dataclass(frozen=True, eq=False)  # (arrays: compared by identity)
class CtrTable:
    """A counter table: sorted 64-bit projection hashes and each one's counts (per class for Borders and
    Buckets; (sum, count) for a mean; one count for Counter, over ``denominator``)."""

    keys: np.ndarray
    counts: np.ndarray
    denominator: float
    place: tuple[int, int]  # (where its keys start in the file's, how many): tables that share keys share it

    @functools.cached_property
    def index(self) -> dict[int, int]:
        """Hash -> its entry (for the row-by-row path)."""
        return {k: i for i, k in enumerate(self.keys.tolist())}


@dataclass(frozen=True)
class Projection:
    """The categorical features a counter reads, and its binarised elements in CatBoost's hashing order:
    ("float", column, border, nan_above) or ("exact", categorical feature, hash)."""

    categorical: tuple[int, ...]
    elements: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, eq=False)  # (arrays: compared by identity)
class Ctr:
    """A counter feature: its projection, its table, and its value for each of the table's hashes, then
    for a hash the table lacks."""

    projection: int
    table: int
    values: np.ndarray


@dataclass(frozen=True, eq=False)  # (arrays: compared by identity)
class Counters:
    projections: tuple[Projection, ...]
    tables: tuple[CtrTable, ...]
    ctrs: tuple[Ctr, ...]
    one_hot: tuple[tuple[int, int], ...]  # (categorical feature, hash)

    @functools.cached_property
    def row_elements(self) -> tuple[tuple[tuple[bool, int, Any, bool], ...], ...]:
        """Each projection's elements as the row-by-row path tests them: (is a float test, column or
        feature, border as a Python float or hash, NaN's bit)."""
        return tuple(
            tuple(
                (True, e[1], float(e[2]), e[3]) if e[0] == "float" else (False, e[1], e[2], False)
                for e in projection.elements
            )
            for projection in self.projections
        )

    @functools.cached_property
    def ctrs_of(self) -> tuple[tuple[int, ...], ...]:
        """Each projection's counters (their indices in ``ctrs``)."""
        found: list[list[int]] = [[] for _ in self.projections]
        for i, ctr in enumerate(self.ctrs):
            found[ctr.projection].append(i)
        return tuple(tuple(f) for f in found)


class _Batch(NamedTuple):
    """A batch's categorical values as the step reads them: each feature's (codes of its rows, hashes of
    its distinct values), the distinct values' ids among the seen ones, and SeenValues' tables (or None)."""

    categories: list[tuple[np.ndarray, np.ndarray]]
    ids: list[np.ndarray]
    tables: dict[tuple[int, int], np.ndarray] | None


class CatBoostCategories:
    """The step for every categorical column of one model input (each such column maps to it). Its
    counters are decoded (and checked) when first used: a load reads only the columns it takes."""

    def __init__(
        self, columns: tuple[int, ...], input_width: int, entry: dict[str, Any], tensors: Mapping[str, np.ndarray]
    ):
        self.columns = columns  # the input column of each categorical feature
        self.input_width = input_width
        self.width = len(entry["ctrs"]) + len(entry["one_hot"])  # the extra columns of the graph input
        self._entry, self._tensors = entry, tensors

    @functools.cached_property
    def counters(self) -> Counters:
        try:
            return _counters(self._entry, self._tensors, len(self.columns), self.input_width)
        except (TypeError, ValueError, KeyError, IndexError) as e:
            raise FormatError(f"metadata: bad catboost_categories ({e})") from e

    @functools.cached_property
    def seen(self) -> SeenValues:
        return SeenValues(self.counters, len(self.columns))

    def beside(self, values: Mapping[int, np.ndarray], floats: np.ndarray, name: str) -> np.ndarray:
        """``floats`` (the input's numbers, categorical slots 0) with the extra columns for the rows of
        ``values`` (input column -> its raw values) after its own, in 64-byte-aligned memory (which XLA's
        CPU client runs on where it lies), written a block of rows at a time."""
        counters = self.counters
        codes, distinct = zip(*(category_codes(values[c]) for c in self.columns), strict=True)
        ids, hashes, tables = self.seen.lookup(list(distinct), name, self.columns)
        categories = list(zip(codes, hashes, strict=True))
        n, own = floats.shape
        out = aligned_empty((n, own + self.width), floats.dtype)
        if n <= ROW_BY_ROW:
            out[:, :own] = floats
            out[:, own:] = self._by_row(counters, _Batch(categories, ids, tables), floats, out.dtype)
            return out
        columns = np.empty((self.width, min(n, BLOCK_ROWS)), dtype=out.dtype)  # (a contiguous row a column)
        for start in range(0, n, BLOCK_ROWS):
            stop = min(n, start + BLOCK_ROWS)
            rows = _Batch([(c[start:stop], h) for c, h in categories], ids, tables)
            self._columns(counters, rows, floats[start:stop], columns[:, : stop - start])
            out[start:stop, :own] = floats[start:stop]
            out[start:stop, own:] = columns[:, : stop - start].T
        return out

    def _columns(self, counters: Counters, batch: _Batch, floats: np.ndarray, out: np.ndarray) -> None:
        """``beside``'s columns for a block of rows, in numpy arrays: ``out`` is (width, rows)."""
        categories, ids, tables = batch
        bits = self.seen.bit_matrix(categories, floats)  # (every projection's binarised elements)
        if tables is not None:  # (the projections over one feature alone, from its seen values' tables)
            self.seen.fill(out, tables, ids, categories, bits)
        # projection by projection, its counters at once: one projection's row combinations alive at a time
        for p, (projection, ctrs) in enumerate(zip(counters.projections, counters.ctrs_of, strict=True)):
            if not ctrs or (tables is not None and p in self.seen.placed):
                continue
            combination, combination_hashes = self._projected(projection, categories, bits)
            found: dict[tuple[int, int], np.ndarray] = {}  # (a table's keys) -> each combination's entry
            for i in ctrs:
                ctr = counters.ctrs[i]
                table = counters.tables[ctr.table]
                if table.place not in found:
                    found[table.place] = slots(table.keys, combination_hashes)
                _gathered(ctr.values[found[table.place]], combination, out[i])
        for j, (feature, value) in enumerate(counters.one_hot):
            rows, distinct_hashes = categories[feature]
            out[len(counters.ctrs) + j] = (distinct_hashes == value)[rows]

    def _by_row(self, counters: Counters, batch: _Batch, floats: np.ndarray, dtype: Any) -> np.ndarray:
        """``beside``'s columns in Python integers, row by row: a projection over one feature read from its
        seen values' table, any other's hash looked up in a dict: for a few rows the array path's numpy
        calls cost more than the work (see ROW_BY_ROW)."""
        categories, ids, tables = batch
        hashes = [h.astype(np.int64).view(np.uint64)[codes].tolist() for codes, h in categories]  # (sign-extended)
        raw = [h[codes].tolist() for codes, h in categories]
        seen_ids = [i[codes].tolist() for (codes, _), i in zip(categories, ids, strict=True)]
        placed = self.seen.placed
        out = np.empty((len(floats), self.width), dtype=dtype)
        # (Python floats: a float32 and its border compare as they do in float32, without numpy scalars)
        for r, row in enumerate(floats.astype(np.float32).tolist()):
            values = [0.0] * self.width
            for p, (projection, ctrs) in enumerate(zip(counters.projections, counters.ctrs_of, strict=True)):
                if not ctrs:
                    continue
                bits = [
                    (nan_above if row[a] != row[a] else row[a] > b) if is_float else raw[a][r] == b
                    for is_float, a, b, nan_above in counters.row_elements[p]
                ]
                if tables is not None and p in placed:
                    index = seen_ids[projection.categorical[0]][r]
                    for bit in bits:
                        index = index * 2 + bit
                    group, first, last = placed[p]
                    for i, value in zip(ctrs, tables[group][first:last, index].tolist(), strict=True):
                        values[i] = value
                    continue
                h = 0
                for feature in projection.categorical:
                    h = (MAGIC_INT * ((h + MAGIC_INT * hashes[feature][r]) & _MASK64)) & _MASK64
                for bit in bits:
                    h = (MAGIC_INT * ((h + MAGIC_INT * bit) & _MASK64)) & _MASK64
                for i in ctrs:
                    table = counters.tables[counters.ctrs[i].table]
                    values[i] = float(counters.ctrs[i].values[table.index.get(h, len(table.keys))])
            for j, (feature, value) in enumerate(counters.one_hot):
                values[len(counters.ctrs) + j] = float(raw[feature][r] == value)
            out[r] = values
        return out

    def _projected(
        self,
        projection: Projection,
        categories: list[tuple[np.ndarray, np.ndarray]],
        bits: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(each row's combination, each combination's hash): the combinations of the projection's values
        that could occur, numbered in mixed radix, when there are no more of them than rows (hashing each
        once, not each row); else each row is its own combination."""
        parts: list[tuple[np.ndarray, np.ndarray]] = []  # (each row's index, the uint64 each index hashes)
        for feature in projection.categorical:  # (the int32 hash sign-extended, as CatBoost casts it)
            codes, hashes = categories[feature]
            parts.append((codes, hashes.astype(np.int64).view(np.uint64)))
        for element in projection.elements:  # (its row of the batch's bit matrix: SeenValues.bit_matrix)
            parts.append((bits[self.seen.row[element]], np.array([0, 1], dtype=np.uint64)))
        n = bits.shape[1]
        sizes = [len(values) for _, values in parts]
        if math.prod(sizes) > max(n, 1):
            h = np.zeros(n, dtype=np.uint64)
            for index, values in parts:
                h = combined(h, values[index])
            return np.arange(n), h
        # the combination's number in mixed radix, as np.ravel_multi_index (which measured 8x slower)
        combination = np.zeros(n, np.intp)
        for (index, _), size in zip(parts, sizes, strict=True):
            combination *= size
            combination += index
        h = np.zeros(math.prod(sizes), dtype=np.uint64)
        for (_, values), index in zip(parts, np.unravel_index(np.arange(len(h)), sizes), strict=True):
            h = combined(h, values[index])
        return combination, h


def _gathered(entries: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    """out = entries[index] (float32 entries; ``out`` float32 or float64). (The entries past the ones an
    index reaches may be unwritten room of SeenValues' tables: gathered, then cast.)"""
    if entries.dtype == out.dtype:
        np.take(entries, index, out=out)
    else:
        out[...] = entries.take(index)


def ctr_values(
    kind: str, table: CtrTable, target_border: int, priors: tuple[float, float], shift: float, scale: float
) -> np.ndarray:
    """A counter's value for each of ``table``'s hashes, then for an absent one (CatBoost's Calc(0, 0)):
    ``((good + prior_num) / (total + prior_denom) + shift) * scale``, every step in float32 as CatBoost's
    TModelCtr::Calc computes it."""
    counts = np.vstack([table.counts, np.zeros((1, table.counts.shape[1]), table.counts.dtype)])
    if kind == "Counter":
        good, total = counts[:, 0], np.full(len(counts), table.denominator)
        total[-1] = 0
    elif kind == "BinarizedTargetMeanValue":
        good, total = counts[:, 0], counts[:, 1]
    elif kind == "Buckets":
        good, total = counts[:, target_border], counts.sum(axis=1)
    elif counts.shape[1] > 2:  # Borders over several target classes: those above the border
        good, total = counts[:, target_border + 1 :].sum(axis=1), counts.sum(axis=1)
    else:
        good, total = counts[:, 1], counts.sum(axis=1)
    f32 = np.float32
    ctr = (good.astype(f32) + f32(priors[0])) / (total.astype(f32) + f32(priors[1]))
    return (ctr + f32(shift)) * f32(scale)


def category_codes(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """(each value's index among the distinct values, the distinct values): pandas' factorize when pandas
    is loaded, as it is for a DataFrame input, and the values are more than a few (its call costs ~20 us)."""
    pd = sys.modules.get("pandas")
    if pd is not None and len(values) > ROW_BY_ROW:
        index, distinct = pd.factorize(values, use_na_sentinel=False)
        return np.asarray(index, dtype=np.intp).reshape(-1), list(distinct.tolist())
    seen: dict[Any, int] = {}  # (a dict, not np.unique: objects of mixed types do not sort)
    index = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.intp, count=len(values))
    return index, list(seen)


def decode_catboost_categories(
    metadata: dict[str, Any], tensors: Mapping[str, np.ndarray]
) -> dict[int, CatBoostCategories]:
    """Input column -> the step, from ``metadata["catboost_categories"]`` and the file's ``tensors`` (its
    counter tables: keys and counts)."""
    entry = metadata.get("catboost_categories")
    if entry is None:
        return {}
    try:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), list) for k in _LISTS):
            raise TypeError(f"an object with the lists {', '.join(_LISTS)}")
        width = entry["input_width"]
        columns = tuple(int(c) for c in entry["columns"])
        if not isinstance(width, int) or not all(0 <= c < width for c in columns) or len(set(columns)) != len(columns):
            raise ValueError("columns must be distinct input columns")
    except (TypeError, ValueError, KeyError) as e:
        raise FormatError(f"metadata: bad catboost_categories ({e})") from e
    step = CatBoostCategories(columns, width, entry, tensors)
    return dict.fromkeys(step.columns, step)


_LISTS = ("columns", "projections", "tables", "ctrs", "one_hot")


def _counters(entry: dict[str, Any], tensors: Mapping[str, np.ndarray], features: int, width: int) -> Counters:
    projections = tuple(_projection(p, features, width) for p in entry["projections"])
    keys, counts = tensors[entry["keys"]], tensors[entry["counts"]]
    if keys.dtype != np.uint64 or counts.dtype not in (np.float32, np.float64) or keys.ndim != 1 or counts.ndim != 1:
        raise TypeError("the tables' keys must be a uint64 vector and their counts a float32 or float64 one")
    tables = tuple(_table(t, keys, counts) for t in entry["tables"])
    ctrs = tuple(_ctr(c, len(projections), tables) for c in entry["ctrs"])
    one_hot = tuple((_feature(f, features), int(v)) for f, v in entry["one_hot"])
    return Counters(projections, tables, ctrs, one_hot)


def _feature(f: Any, count: int) -> int:
    if not isinstance(f, int) or not 0 <= f < count:
        raise ValueError(f"categorical feature {f!r} out of range")
    return f


def _projection(p: Any, features: int, width: int) -> Projection:
    elements: list[tuple[Any, ...]] = []
    for e in p["elements"]:
        if e[0] == "float":
            if not isinstance(e[1], int) or not 0 <= e[1] < width:
                raise ValueError(f"float column {e[1]!r} out of range")
            elements.append(("float", e[1], np.float32(e[2]), bool(e[3])))
        elif e[0] == "exact":
            elements.append(("exact", _feature(e[1], features), int(e[2])))
        else:
            raise ValueError(f"unknown projection element {e[0]!r}")
    return Projection(tuple(_feature(f, features) for f in p["categorical"]), tuple(elements))


def _table(t: Any, every_key: np.ndarray, every_count: np.ndarray) -> CtrTable:
    (start, length), (counts_start, stride) = t["keys"], t["counts"]
    for n in (start, length, counts_start, stride - 1):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"a table's places must be non-negative ints and its stride positive, got {n!r}")
    keys = every_key[start : start + length]
    counts = every_count[counts_start : counts_start + length * stride]
    if len(keys) != length or len(counts) != length * stride or np.any(keys[1:] <= keys[:-1]):
        raise ValueError("a table needs sorted, distinct keys and a row of counts for each")
    return CtrTable(keys, counts.reshape(length, stride), float(t["denominator"]), (start, length))


def _ctr(c: Any, projections: int, tables: tuple[CtrTable, ...]) -> Ctr:
    if c["kind"] not in CTR_TYPES:
        raise ValueError(f"counter type {c['kind']!r}")
    if not 0 <= c["projection"] < projections or not 0 <= c["table"] < len(tables):
        raise ValueError("counter's projection or table out of range")
    table = tables[c["table"]]
    stride = table.counts.shape[1]
    if c["kind"] in ("Borders", "Buckets") and not 0 <= c["target_border"] < stride:
        raise ValueError(f"target border {c['target_border']!r} out of range")
    if c["kind"] == "BinarizedTargetMeanValue" and stride != 2:
        raise ValueError("a mean's table holds (sum, count)")
    priors = (float(c["prior_num"]), float(c["prior_denom"]))
    values = ctr_values(c["kind"], table, int(c["target_border"]), priors, float(c["shift"]), float(c["scale"]))
    return Ctr(int(c["projection"]), int(c["table"]), values)
