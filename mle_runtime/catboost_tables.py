"""Counter-table lookups for a CatBoost model's categorical step (catboost_categories.py): a categorical
value's hash, a projection hash's entry in a table, and ``SeenValues``, the values already seen, whose
counter values are looked up once rather than once a batch."""

from __future__ import annotations

import threading
from dataclasses import dataclass
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
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # (a lone surrogate)
            raise InputError(f"input {name!r}: column {column} holds {value!r}, which is not valid UTF-8") from None
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


@dataclass(frozen=True, eq=False)  # (arrays: compared by identity)
class Group:
    """The projections over one categorical feature alone that binarise ``bits`` elements beside it: their
    counters share one table of SeenValues, a row per counter, ``id << bits | bit number`` its column."""

    feature: int
    bits: int
    projections: tuple[int, ...]
    ctrs: np.ndarray  # the counters (indices into Counters.ctrs), in the table's row order
    rows: np.ndarray  # each counter's projection: its index in ``projections``
    elements: np.ndarray  # (projections, bits): each element's row in the bit matrix (SeenValues.bit_matrix)


class SeenValues:
    """Each categorical feature's values seen so far (value -> id, and each id's hash) and, for every
    projection over one categorical feature alone, its counters' values for every seen value and every
    combination of the projection's bits, in the table of its ``Group``.

    A batch of values seen before then costs a few array operations a group (``fill``), where hashing each
    projection's combinations and searching the model's tables for them cost ~40 us a projection (1,000
    rows, 2 cores), and no value is hashed twice (CityHash in Python: ~3 us a value). Projections over
    several categorical features go through the batch path (their combinations are too many to keep).
    Entries only grow, into arrays that are replaced, not changed, when they fill, so a caller may read
    the arrays it was given while other threads add values. At MAX_ENTRIES the cache starts over; a batch
    whose own values need more is not cached (``lookup`` gives no tables)."""

    def __init__(self, counters: Counters, features: int):
        self._counters = counters
        self._lock = threading.Lock()
        self._features = features
        single = [p for p, pr in enumerate(counters.projections) if len(pr.categorical) == 1 and counters.ctrs_of[p]]
        # the bit matrix's rows (every projection's elements): every float test, by column, then every
        # one-hot test, by feature
        tests: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        for p, projection in enumerate(counters.projections):
            for element in projection.elements if counters.ctrs_of[p] else ():
                found = tests.setdefault((element[0], element[1]), [])
                if element not in found:
                    found.append(element)
        self.row: dict[tuple[Any, ...], int] = {}  # an element's row in the bit matrix
        self._tests: list[
            tuple[str, int, int, np.ndarray, np.ndarray]
        ] = []  # (kind, column or feature, first row, ...)
        for (kind, at), elements in sorted(tests.items()):
            first = len(self.row)
            self.row.update((e, first + i) for i, e in enumerate(elements))
            if kind == "float":
                values = np.array([e[2] for e in elements], np.float32)
                nan_bits = np.array([e[3] for e in elements], bool)
            else:
                values, nan_bits = np.array([e[2] for e in elements], np.int64), np.zeros(0, bool)
            self._tests.append((kind, at, first, values, nan_bits))
        by_group: dict[tuple[int, int], list[int]] = {}
        for p in single:
            projection = counters.projections[p]
            by_group.setdefault((projection.categorical[0], len(projection.elements)), []).append(p)
        self.groups: dict[tuple[int, int], Group] = {}
        self.placed: dict[int, tuple[tuple[int, int], int, int]] = {}  # projection -> (group, its rows)
        for key, projections in sorted(by_group.items()):
            ctrs = [i for p in projections for i in counters.ctrs_of[p]]
            rows = [r for r, p in enumerate(projections) for _ in counters.ctrs_of[p]]
            element_rows = [[self.row[e] for e in counters.projections[p].elements] for p in projections]
            self.groups[key] = Group(
                key[0],
                key[1],
                tuple(projections),
                np.array(ctrs, np.intp),
                np.array(rows, np.intp),
                np.array(element_rows, np.intp).reshape(len(projections), key[1]),
            )
            for p in projections:
                first = rows.index(projections.index(p))
                self.placed[p] = (key, first, first + len(counters.ctrs_of[p]))
        self._cost = [VALUE_ENTRIES] * features
        for (feature, bits), group in self.groups.items():
            self._cost[feature] += len(group.ctrs) << bits
        self._reset()

    def _reset(self) -> None:
        self._ids: list[dict[Any, int]] = [{} for _ in range(self._features)]
        self._hashes = [np.empty(16, np.int32) for _ in range(self._features)]
        self._tables = {key: np.empty((len(g.ctrs), 16 << g.bits), np.float32) for key, g in self.groups.items()}
        self._entries = 0

    def lookup(
        self, distinct: list[list[Any]], name: str, columns: tuple[int, ...]
    ) -> tuple[list[np.ndarray], list[np.ndarray], dict[tuple[int, int], np.ndarray] | None]:
        """For each feature, the ids of its ``distinct`` values and their hashes (int32); and each group's
        table (None where this batch's values alone exceed MAX_ENTRIES: they are hashed, not kept). A value
        of a type CatBoost refuses is an InputError naming its input ``columns``."""
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
        values in each of the feature's groups."""
        fresh = list(dict.fromkeys(values))
        hashes = np.array([value_hash(v, name, column) for v in fresh], dtype=np.int32)  # (may raise: first)
        ids = self._ids[f]
        start = len(ids)
        ids.update((v, start + i) for i, v in enumerate(fresh))
        stop = len(ids)
        self._hashes[f] = _grown(self._hashes[f], stop)
        self._hashes[f][start:stop] = hashes
        first = combined(np.zeros(stop - start, np.uint64), hashes.astype(np.int64).view(np.uint64))
        counters = self._counters
        for (feature, bits), group in self.groups.items():
            if feature != f:
                continue
            combos = np.arange(1 << bits, dtype=np.uint64)
            h = np.repeat(first[:, None], 1 << bits, axis=1)
            for j in range(bits):  # (the first element the highest bit: the batch path's mixed radix)
                h = combined(h, (combos >> np.uint64(bits - 1 - j)) & np.uint64(1))
            h = h.ravel()
            table = self._tables[(feature, bits)] = _grown(self._tables[(feature, bits)], stop << bits, axis=1)
            found: dict[tuple[int, int], np.ndarray] = {}  # (a table's keys) -> each combination's entry
            for row, i in enumerate(group.ctrs):
                ctr = counters.ctrs[i]
                place = counters.tables[ctr.table].place
                if place not in found:
                    found[place] = slots(counters.tables[ctr.table].keys, h)
                table[row, start << bits : stop << bits] = ctr.values[found[place]]

    def bit_matrix(self, categories: list[tuple[np.ndarray, np.ndarray]], floats: np.ndarray) -> np.ndarray:
        """Each row's bit (uint8: an index of 0 or 1) for every element of the projections, a row an element
        (``row``): a float column against all its borders at once (in float32, as CatBoost binarises it), a
        feature's values against all the hashes its one-hot tests compare with."""
        out = np.empty((len(self.row), len(floats)), np.uint8)
        for kind, at, first, values, nan_bits in self._tests:
            rows = slice(first, first + len(values))
            if kind == "float":
                column = floats[:, at].astype(np.float32)
                above = column[None, :] > values[:, None]
                nan = np.isnan(column)
                out[rows] = np.where(nan[None, :], nan_bits[:, None], above) if nan.any() else above
            else:
                codes, hashes = categories[at]
                out[rows] = (hashes[None, :] == values[:, None])[:, codes]
        return out

    def fill(
        self,
        out: np.ndarray,
        tables: dict[tuple[int, int], np.ndarray],
        ids: list[np.ndarray],
        categories: list[tuple[np.ndarray, np.ndarray]],
        bits: np.ndarray,
    ) -> None:
        """Write the rows of ``out`` (columns, rows) of every group's counters, from ``lookup``'s ``tables``
        and ``ids``, for the rows of ``categories`` (each feature's codes, distinct hashes) and their
        ``bit_matrix``."""
        seen: dict[int, np.ndarray] = {}
        for key, group in self.groups.items():
            if group.feature not in seen:
                seen[group.feature] = ids[group.feature][categories[group.feature][0]]
            index = seen[group.feature] << group.bits
            if group.bits:
                number = bits[group.elements[:, 0]]  # (uint8: room for 8 bits)
                if group.bits > 8:
                    number = number.astype(np.intp)
                for j in range(1, group.bits):
                    number <<= 1
                    number |= bits[group.elements[:, j]]
                index = index[None, :] + number
            else:
                index = np.broadcast_to(index, (len(group.projections), len(index)))
            table = tables[key]
            flat = index[group.rows]  # (a counter's entry in the flattened table: its row's start after)
            flat += (np.arange(len(group.ctrs)) * table.shape[1])[:, None]
            out[group.ctrs] = np.take(table.reshape(-1), flat)


def _grown(a: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    """``a`` where it holds ``size`` entries on ``axis``; else a copy with twice the room (or more)."""
    if a.shape[axis] >= size:
        return a
    shape = list(a.shape)
    shape[axis] = max(size, 2 * a.shape[axis])
    out = np.empty(shape, a.dtype)
    out[(slice(None),) * axis + (slice(0, a.shape[axis]),)] = a
    return out
