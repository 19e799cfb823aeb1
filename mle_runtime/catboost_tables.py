"""Counter-table lookups for a CatBoost model's categorical step (catboost_categories.py): a categorical
value's hash, a projection hash's entry in a table, and ``SeenValues``, the values already seen, whose
counter values are looked up once rather than once a batch."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from mle_runtime.cityhash import cityhash64
from mle_runtime.errors import InputError

if TYPE_CHECKING:
    from mle_runtime.catboost_categories import Counters

MAGIC_INT = 0x4906BA494954CB65
_MAGIC = np.uint64(MAGIC_INT)

# SeenValues keeps at most this many counter values (float32: 32 MB; twice that while an array grows),
# counting VALUE_ENTRIES more for each value itself (its dict entry, the value, its hash: ~128 bytes);
# past it, it starts over.
MAX_ENTRIES = 1 << 23
VALUE_ENTRIES = 32

# The types a categorical value may have (CatBoost refuses the others: a float, NaN, None)
_CATEGORY_TYPES = (str, bytes, bool, np.bool_, int, np.integer)


def combined(h: np.ndarray, value: np.ndarray) -> np.ndarray:
    """CatBoost's CalcHash(h, value): MAGIC * (h + MAGIC * value), wrapping in uint64."""
    return _MAGIC * (h + _MAGIC * value)


def slots(keys: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Each hash's index in the sorted ``keys``, len(keys) where it is absent. The hashes are searched in
    sorted order, each search starting where the last ended (numpy's): measured, 1,000 hashes in 50,000 keys
    33 us sorted against 85 us as they come, 100,000 1.6 ms against 9.2 ms; the sort costs less."""
    order = np.argsort(hashes)
    at = np.empty(len(hashes), dtype=np.intp)
    at[order] = np.searchsorted(keys, hashes[order])
    absent = at == len(keys)
    absent[~absent] = keys[at[~absent]] != hashes[~absent]
    at[absent] = len(keys)
    return at


def value_hash(value: Any, name: str, column: int) -> int:
    """CatBoost's hash of a categorical value (int32): a string's UTF-8 bytes, an integer's decimal digits,
    a bool as 1 or 0, through the low 32 bits of CityHash64 1.0."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, (bool, np.bool_)):
        data = b"1" if value else b"0"
    elif isinstance(value, (int, np.integer)):
        data = str(int(value)).encode("ascii")
    else:
        raise _refused(value, name, column)
    h = cityhash64(data) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _refused(value: Any, name: str, column: int) -> InputError:
    return InputError(
        f"input {name!r}: column {column} is a categorical feature and takes strings or integers, got {value!r}"
    )


class SeenValues:
    """Each categorical feature's values seen so far (value -> id, and each id's hash) and, for every
    projection over one categorical feature, its counters' values for every seen value and every
    combination of the projection's bits, in a row per counter: ``table[j, id << bits | bit number]``.

    A batch of values seen before then costs each such counter one gather, where hashing its combinations
    and searching the model's tables for them cost ~40 us a projection (1,000 rows, 2 cores), and no value
    is hashed twice (CityHash in Python: ~3 us a value). Projections over several categorical features go
    through the batch path (their combinations are too many to keep). Entries only grow, into arrays
    that are replaced, not changed, when they fill, so a caller may read the arrays it was given while
    other threads add values. At MAX_ENTRIES the cache starts over; a batch whose own values need more is
    not cached (``lookup`` gives no tables)."""

    def __init__(self, counters: Counters, features: int):
        self._counters = counters
        self._lock = threading.Lock()
        self.single: list[list[int]] = [[] for _ in range(features)]  # each feature's projections over it alone
        for p, projection in enumerate(counters.projections):
            if len(projection.categorical) == 1 and counters.ctrs_of[p]:
                self.single[projection.categorical[0]].append(p)
        self._cost = [
            VALUE_ENTRIES + sum(len(counters.ctrs_of[p]) << len(counters.projections[p].elements) for p in single)
            for single in self.single
        ]
        self._reset()

    def _reset(self) -> None:
        self._ids: list[dict[Any, int]] = [{} for _ in self.single]
        self._hashes = [np.empty(16, np.int32) for _ in self.single]
        self._tables = {
            p: np.empty((len(self._counters.ctrs_of[p]), 16 << len(self._counters.projections[p].elements)), np.float32)
            for single in self.single
            for p in single
        }
        self._entries = 0

    def lookup(
        self, distinct: list[list[Any]], name: str, columns: tuple[int, ...]
    ) -> tuple[list[np.ndarray], list[np.ndarray], dict[int, np.ndarray] | None]:
        """For each feature, the ids of its ``distinct`` values and their hashes (int32); and each single
        projection's table (None where this batch's values alone exceed MAX_ENTRIES: they are hashed, not
        kept). A value of a type CatBoost refuses is an InputError naming its input ``columns``."""
        for values, column in zip(distinct, columns, strict=True):
            for v in values:
                if not isinstance(v, _CATEGORY_TYPES):
                    raise _refused(v, name, column)
        with self._lock:
            new = [[v for v in values if v not in ids] for values, ids in zip(distinct, self._ids, strict=True)]
            needed = sum(len(n) * cost for n, cost in zip(new, self._cost, strict=True))
            if self._entries + needed > MAX_ENTRIES:
                needed = sum(len(values) * cost for values, cost in zip(distinct, self._cost, strict=True))
                if needed > MAX_ENTRIES:
                    hashes = [
                        np.array([value_hash(v, name, c) for v in values], dtype=np.int32)
                        for values, c in zip(distinct, columns, strict=True)
                    ]
                    return [np.arange(len(values)) for values in distinct], hashes, None
                self._reset()
                new = [list(values) for values in distinct]
            for f, (values, column) in enumerate(zip(new, columns, strict=True)):
                if values:
                    self._add(f, values, name, column)
            self._entries += needed
            ids = [
                np.fromiter((seen[v] for v in values), dtype=np.intp, count=len(values))
                for values, seen in zip(distinct, self._ids, strict=True)
            ]
            hashes = [h[i] for h, i in zip(self._hashes, ids, strict=True)]
            return ids, hashes, dict(self._tables)

    def _add(self, f: int, values: list[Any], name: str, column: int) -> None:
        """Number ``values`` (new to feature ``f``) on from the seen ones; their hashes, then their counter
        values in each of the feature's single projections."""
        ids = self._ids[f]
        start = len(ids)
        ids.update((v, start + i) for i, v in enumerate(dict.fromkeys(values)))
        stop = len(ids)
        hashes = np.array([value_hash(v, name, column) for v in dict.fromkeys(values)], dtype=np.int32)
        self._hashes[f] = _grown(self._hashes[f], stop)
        self._hashes[f][start:stop] = hashes
        first = combined(np.zeros(stop - start, np.uint64), hashes.astype(np.int64).view(np.uint64))
        counters = self._counters
        for p in self.single[f]:
            bits = len(counters.projections[p].elements)
            combos = np.arange(1 << bits, dtype=np.uint64)
            h = np.repeat(first[:, None], 1 << bits, axis=1)
            for j in range(bits):  # (the first element the highest bit: the batch path's mixed radix)
                h = combined(h, (combos >> np.uint64(bits - 1 - j)) & np.uint64(1))
            h = h.ravel()
            found: dict[tuple[int, int], np.ndarray] = {}  # (a table's keys) -> each combination's entry
            table = self._tables[p] = _grown(self._tables[p], stop << bits, axis=1)
            for j, i in enumerate(counters.ctrs_of[p]):
                ctr = counters.ctrs[i]
                place = counters.tables[ctr.table].place
                if place not in found:
                    found[place] = slots(counters.tables[ctr.table].keys, h)
                table[j, start << bits : stop << bits] = ctr.values[found[place]]


def _grown(a: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    """``a`` where it holds ``size`` entries on ``axis``; else a copy with twice the room (or more)."""
    if a.shape[axis] >= size:
        return a
    shape = list(a.shape)
    shape[axis] = max(size, 2 * a.shape[axis])
    out = np.empty(shape, a.dtype)
    out[(slice(None),) * axis + (slice(0, a.shape[axis]),)] = a
    return out
