"""Encoders and other column-wise transforms: OneHotEncoder and OrdinalEncoder (numeric or string
categories; strings are coded by the runtime's vocabulary step before the graph runs),
KBinsDiscretizer, and FunctionTransformer for the numpy ufuncs it can name."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from sklearn import preprocessing

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.inputs import is_missing_category
from mle_runtime.lowering import flush_safe_thresholds
from mle_runtime.ops.preprocessing import UFUNCS


class Categories(NamedTuple):
    """One feature's categories as graph tensors: all of them (a missing-value category as NaN), the
    non-missing ones, and their counts."""

    all: str
    known: str
    n_all: int
    n_known: int


def _categories(est: Any, b: GraphBuilder, x: str) -> list[Categories]:
    """Numeric categories as they are; string categories as codes in their input column's vocabulary
    (the runtime maps the strings to those codes before the graph runs)."""
    out = []
    for i, categories in enumerate(est.categories_):
        values = list(categories)
        known = [v for v in values if not is_missing_category(v)]
        if categories.dtype.kind in "biuf":
            full = b.const(f"categories{i}", categories.astype(np.float64))
            present = b.const(f"known{i}", np.asarray(known, dtype=np.float64))
        else:
            owner = type(est).__name__
            full = b.string_codes(f"categories{i}", x, i, values, owner)
            present = b.string_codes(f"known{i}", x, i, known, owner)
        out.append(Categories(full, present, len(values), len(known)))
    return out


UNKNOWN_MESSAGE = "Found unknown categories during transform (handle_unknown='error')"


def _one_hots(b: GraphBuilder, x: str, categories_: list[Categories]) -> list[str]:
    """Per feature, (rows, categories) with 1 at the value's category (a row of zeros for none)."""
    return [b.op("CategoryOneHot", x, categories.all, column=i) for i, categories in enumerate(categories_)]


def _any_unknown(b: GraphBuilder, one_hots: list[str], categories_: list[Categories]) -> str:
    """(rows,) non-zero where some feature's value is none of its categories (NaN counts as one where it
    was seen in training): where scikit-learn raises."""
    flags = []
    for onehot, categories in zip(one_hots, categories_, strict=True):
        hits = _hits(b, onehot, categories.n_all)
        flags.append(b.op("IsPositive", b.op("Sub", b.const("half", np.array(0.5)), hits)))
    total = flags[0]
    for flag in flags[1:]:
        total = b.op("Add", total, flag)
    return total


def _hits(b: GraphBuilder, onehot: str, n: int) -> str:
    """(rows,) 1 where the value is one of the feature's ``n`` categories, else 0."""
    return b.op("Gemm", onehot, b.const("ones", np.ones(n)))


def _grouped(est: Any, i: int, n: int) -> tuple[np.ndarray, int | None]:
    """Feature i's category -> its index once infrequent categories are grouped (they share the last),
    and that shared index (None where the feature has no infrequent category)."""
    mappings = (
        getattr(est, "_default_to_infrequent_mappings", None) if getattr(est, "_infrequent_enabled", False) else None
    )
    if mappings is None or mappings[i] is None:
        return np.arange(n), None
    infrequent = est._infrequent_indices[i]
    return np.asarray(mappings[i]), int(mappings[i][infrequent[0]])


def _after_drop(index: int, drop: int | None) -> int:
    """A kept column's position once the dropped one is removed."""
    return index - 1 if drop is not None and index > drop else index


@converts(preprocessing.OneHotEncoder)
def one_hot_encoder(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """One 0/1 column per category of each feature (infrequent categories sharing one, last), less a
    dropped one. An unknown value gives zeros ("ignore"), the infrequent column where the feature has one
    ("infrequent_if_exist", and "warn" without its warning), or makes the runtime raise ValueError
    ("error"), as scikit-learn does."""
    to_infrequent = est.handle_unknown in ("infrequent_if_exist", "warn")
    if est.handle_unknown not in ("error", "ignore") and not to_infrequent:
        raise UnsupportedModelError(f"OneHotEncoder(handle_unknown={est.handle_unknown!r}) is not supported")
    drops = getattr(est, "_drop_idx_after_grouping", est.drop_idx_)
    blocks, width = [], 0
    categories_ = _categories(est, b, x)
    one_hots = _one_hots(b, x, categories_)
    for i, (onehot, categories) in enumerate(zip(one_hots, categories_, strict=True)):
        grouped, infrequent = _grouped(est, i, categories.n_all)
        drop = None if drops is None or drops[i] is None else int(drops[i])
        n_out = int(grouped.max()) + 1 - (drop is not None)
        if infrequent is None and drop is None:
            block = onehot
        elif infrequent is None:
            keep = np.array([c for c in range(categories.n_all) if c != drop], dtype=np.int32)
            block = b.op("TakeColumns", onehot, b.const(f"kept{i}", keep))
        else:  # a 0/1 matrix sends each category to its column: exact
            placement = np.zeros((categories.n_all, n_out))
            for c, g in enumerate(grouped):
                if g != drop:
                    placement[c, _after_drop(g, drop)] = 1.0
            block = b.op("Gemm", onehot, b.const(f"grouping{i}", placement))
            if to_infrequent and infrequent != drop:  # unknown (no category hit): the infrequent column
                target = _after_drop(infrequent, drop)
                unknown = b.op(
                    "ExpandLast", b.op("Sub", b.const("one", np.array(1.0)), _hits(b, onehot, categories.n_all))
                )
                block = b.op("Add", block, b.op("Mul", unknown, b.const(f"infrequent{i}", np.eye(n_out)[target])))
        blocks.append(block)
        width += n_out
    y = blocks[0] if len(blocks) == 1 else b.op("Concat", *blocks)
    if est.handle_unknown != "error":
        return transformed(y, width)
    b.refuse_rows(_any_unknown(b, one_hots, categories_), UNKNOWN_MESSAGE)
    return transformed(y, width)


@converts(preprocessing.OrdinalEncoder)
def ordinal_encoder(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each value's position among its feature's categories (infrequent ones sharing the last code). NaN
    is encoded_missing_value where NaN was a category in training, else an unknown value like any other
    (unknown_value, or an error)."""
    unknown = None if est.handle_unknown == "error" else float(est.unknown_value)
    columns = []
    categories_ = _categories(est, b, x)
    for i, categories in enumerate(categories_):
        nan_seen = categories.n_all > categories.n_known
        missing = float(est.encoded_missing_value) if nan_seen else unknown
        grouped, infrequent = _grouped(est, i, categories.n_known)  # (the missing category is never grouped)
        codes = [] if infrequent is None else [b.const(f"grouped_codes{i}", grouped.astype(np.float64))]
        code = b.op(
            "OrdinalCodes",
            x,
            categories.known,
            *codes,
            column=i,
            unknown=None if unknown is None or np.isnan(unknown) else unknown,
            missing=None if missing is None or np.isnan(missing) else missing,
        )
        columns.append(b.op("ExpandLast", code))
    y = columns[0] if len(columns) == 1 else b.op("Concat", *columns)
    if est.handle_unknown != "error":
        return transformed(y, n_features)
    b.refuse_rows(_any_unknown(b, _one_hots(b, x, categories_), categories_), UNKNOWN_MESSAGE)
    return transformed(y, n_features)


@converts(preprocessing.TargetEncoder)
def target_encoder(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each feature's category encodings (learnt on the whole training set: ``transform``, not the cross
    fitting of ``fit_transform``), the target mean for unknown categories; one column per class for a
    multiclass target."""
    per_feature = len(est.classes_) if est.target_type_ == "multiclass" else 1
    target_mean = np.atleast_1d(np.asarray(est.target_mean_, dtype=np.float64))
    tables, missing = [], []
    for i, categories in enumerate(est.categories_):
        values = list(categories)
        encodings = np.stack([est.encodings_[i * per_feature + c] for c in range(per_feature)], axis=1)
        known = [j for j, v in enumerate(values) if not is_missing_category(v)]
        # sorted as their codes for the op's search: string categories may be given in any order, and
        # None's code (NONE_CODE, a category of its own) is below every string's
        known.sort(key=lambda j: (False, "") if values[j] is None else (True, values[j]))
        rows = known + [j for j, v in enumerate(values) if is_missing_category(v)]
        if all(isinstance(values[j], str) or values[j] is None for j in known):
            table = b.string_codes(f"categories{i}", x, i, [values[j] for j in known], "TargetEncoder")
        else:
            table = b.const(f"categories{i}", np.asarray([values[j] for j in known], dtype=np.float64))
        tables += [table, b.const(f"encodings{i}", encodings[rows]), b.const(f"target_mean{i}", target_mean)]
        missing.append(len(rows) > len(known))
    y = b.op("TargetEncode", x, *tables, missing_category=missing)
    return transformed(y, n_features * per_feature)


@converts(preprocessing.KBinsDiscretizer)
def k_bins_discretizer(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """Each value's bin: the count of inner edges <= it (numpy's searchsorted, side="right"), compared in
    float64 as scikit-learn compares, after rounding the input to float32 where ``dtype`` asks for it."""
    inner = [np.asarray(edges, dtype=np.float64)[1:-1] for edges in est.bin_edges_]
    widest = max((len(e) for e in inner), default=0)
    thresholds = np.full((n_features, max(widest, 1)), np.inf)
    for i, e in enumerate(inner):
        thresholds[i, : len(e)] = flush_safe_thresholds(np.nextafter(e, -np.inf))  # e <= x: x > the float64 below e
    if est.dtype is not None and np.dtype(est.dtype) == np.float32:
        x = b.op("Float32Values", x)
    bins = b.op("BinIndex", x, b.const("bin_thresholds", thresholds), version=2)
    if est.encode == "ordinal":
        return transformed(bins, n_features)
    blocks = [
        b.op("CategoryOneHot", bins, b.const(f"bins{i}", np.arange(n, dtype=np.float64)), column=i)
        for i, n in enumerate(est.n_bins_)
    ]
    return transformed(blocks[0] if len(blocks) == 1 else b.op("Concat", *blocks), int(np.sum(est.n_bins_)))


@converts(preprocessing.FunctionTransformer)
def function_transformer(est: Any, b: GraphBuilder, x: str, n_features: int) -> Converted:
    """The identity, or a numpy ufunc named in mle_runtime.ops.preprocessing.UFUNCS; any other function is
    arbitrary code, which a model file never holds."""
    if est.func is None:  # (what a ColumnTransformer's "passthrough" becomes once fitted)
        y = b.op("Identity", x)
        if x in b.columns_of:
            b.columns_of[y] = b.columns_of[x]
        return transformed(y, n_features)
    name = ufunc_name(est.func, f"FunctionTransformer(func={est.func!r})", est.kw_args)
    return transformed(b.op("Ufunc", x, name=name), n_features)


def ufunc_name(func: Any, where: str, kw_args: Any = None) -> str:
    """The name of ``func`` when it is one of numpy's ufuncs the Ufunc op computes; any other function
    is arbitrary code, which a model file never holds."""
    name = getattr(func, "__name__", "")
    if name not in UFUNCS or getattr(np, name, None) is not func or kw_args:
        raise UnsupportedModelError(f"{where} is arbitrary code and not supported; supported: numpy's {sorted(UFUNCS)}")
    return name
