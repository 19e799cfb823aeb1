"""Turn what a user passes to ``run`` (numpy arrays, nested lists, pandas DataFrames, scipy.sparse
matrices) into arrays of the model's compute dtype, checking rank, feature count and feature names."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mle_runtime.buckets import XLA_INLINE_COPY_BYTES
from mle_runtime.catboost_categories import CatBoostCategories
from mle_runtime.errors import InputError
from mle_runtime.graph import ValueInfo
from mle_runtime.reader import aligned_empty
from mle_runtime.text import TextColumn, text_block, text_columns

# A column's host-side step: a string vocabulary (string, and None where the file gives it a code -> code),
# IGNORED, the text features read from it, or a CatBoost model's categorical features.
Lookup = Mapping[str | None, float] | TextColumn | CatBoostCategories

# None's code in a string column, in files that say so (metadata "none_code"): scikit-learn's encoders keep
# None as a category of its own, distinct from NaN (a missing value), and SimpleImputer(missing_values=NaN)
# passes it on; codes of strings are their positions in the vocabulary, and -1 marks an unknown string.
NONE_CODE = -2.0


# A scipy.sparse input reaches the graph dense, a block of rows at a time (MLERuntime._run_named), each
# block of at most this many bytes: a batch of a million rows over 2**20 hashed columns stays bounded.
SPARSE_BLOCK_BYTES = 64 << 20

# A DataFrame of up to this many cells converts without reading its dtypes first (see _from_dataframe)
SMALL_FRAME_CELLS = 10_000


def _is_dataframe(x: Any) -> bool:
    return type(x).__module__.startswith("pandas") and hasattr(x, "columns") and hasattr(x, "to_numpy")


def is_sparse(x: Any) -> bool:
    """A scipy.sparse matrix or array, told without importing scipy (the runtime does not need it)."""
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "toarray") and hasattr(x, "tocsr")


def sparse_block_rows(x: Any) -> int:
    """How many rows of the sparse ``x`` make a dense block of at most SPARSE_BLOCK_BYTES (float64)."""
    return max(1, SPARSE_BLOCK_BYTES // (8 * max(1, int(np.prod(x.shape[1:])))))


def _from_dataframe(x: Any, name: str, feature_names: Sequence[str] | None) -> np.ndarray:
    _check_columns(x, name, feature_names)
    # Bools beside numbers, pandas' nullable or Arrow columns, numbers as objects: pandas gives objects for
    # them all, which become floats, as scikit-learn converts them, a missing value (NA) NaN. A small frame
    # tries to_numpy first (reading its dtypes cost a 50-column one-row call ~45 us); a large one reads its
    # dtypes (to_numpy's objects cost 233 ms at 100,000 x 50 with one bool column, floats at once 9 ms).
    if x.size <= SMALL_FRAME_CELLS or _plain_numbers(x):
        arr = np.asarray(x.to_numpy())
        if arr.dtype.kind != "O":
            return arr
    try:
        return x.to_numpy(np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        for i, column in enumerate(x.columns):
            values = x.iloc[:, i]
            try:
                values.to_numpy(np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                shown = values.head(3).tolist()
                raise InputError(f"input {name!r}: column {column!r} must hold numbers, got {shown}") from None
        raise


def _plain_numbers(x: Any) -> bool:
    """Every column of the DataFrame ``x`` numpy numbers, or every one numpy bools: to_numpy keeps them."""
    dtypes = list(x.dtypes)
    return all(isinstance(d, np.dtype) and d.kind in "iuf" for d in dtypes) or all(d == np.bool_ for d in dtypes)


def _numbers(arr: np.ndarray, name: str) -> np.ndarray:
    """An array of objects (boxed numbers; a list mixing numbers and None) as floats, as scikit-learn
    converts it, a missing value (None, pandas' NA) NaN; anything else that is not a number is refused."""
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        pass
    missing = np.frompyfunc(is_missing_value, 1, 1)(arr).astype(bool)
    try:
        return np.where(missing, np.nan, arr).astype(np.float64)
    except (TypeError, ValueError):
        flat = arr.ravel()
        bad = next((v for v in flat if not is_missing_value(v) and not _is_number(v)), flat[0])
        raise InputError(f"input {name!r}: holds a value that is not a number: {bad!r}") from None


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _check_columns(x: Any, name: str, feature_names: Sequence[str] | None) -> None:
    columns = [str(c) for c in x.columns]
    if feature_names is not None and columns != list(feature_names):
        missing = [c for c in feature_names if c not in columns]
        extra = [c for c in columns if c not in feature_names]
        detail = (
            f"missing {missing}, unexpected {extra}"
            if missing or extra
            else "same names in a different order; reorder with df[model_feature_names]"
        )
        raise InputError(f"input {name!r}: DataFrame columns do not match the model's features ({detail})")


# The lookup of a column the model never reads (a ColumnTransformer drops it): any value passes, as 0.
IGNORED: Mapping[str | None, float] = types.MappingProxyType({})


def _columns_by_name(x: Any, name: str, feature_names: Sequence[str], strings: Mapping[int, Lookup] | None) -> Any:
    """A DataFrame for a model whose ColumnTransformer selects its columns by name, as scikit-learn's does:
    its columns in the model's order, the others left out; a column the model never reads may be absent
    (it reads as 0). A column the model reads that is absent raises."""
    labels = {str(c): c for c in x.columns}
    if list(labels) == list(feature_names):
        return x
    unused = {c for c, lookup in (strings or {}).items() if lookup is IGNORED}
    missing = [c for i, c in enumerate(feature_names) if c not in labels and i not in unused]
    if missing:
        raise InputError(f"input {name!r}: the DataFrame lacks columns the model reads: {missing}")
    return x.reindex(columns=[labels.get(c, c) for c in feature_names], fill_value=0)


def is_missing_value(v: Any) -> bool:
    """None, a float NaN or pandas' NA / NaT: a missing value in a column of objects."""
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")


def is_missing_category(v: Any) -> bool:
    """A missing value among a fitted encoder's categories: NaN, pandas' NA / NaT, not None (a category
    of its own there, as scikit-learn's encoders keep it)."""
    return v is not None and is_missing_value(v)


def encode_strings(arr: Any, name: str, strings: Mapping[int, Lookup], dtype: Any = np.float64) -> np.ndarray:
    """The host-side vocabulary step: a 2-D array whose ``strings`` columns hold strings becomes floats
    of ``dtype`` (written once, in the model's compute dtype), each string its index in the column's
    vocabulary (-1 when it has none: an unknown category), a missing value NaN (None too, unless the
    vocabulary gives None a code: NONE_CODE, in files that keep it as a category); the other
    columns must be numbers. A text column's documents become their terms and counts in columns after
    the input's own (see text.py), its own column 0; so do a CatBoost model's categorical features (see
    catboost_categories.py)."""
    frame = _is_dataframe(arr)
    if not frame and arr.ndim != 2:
        return arr
    out = np.empty(arr.shape, dtype=dtype)
    step = None
    documents = {}
    categories: dict[int, np.ndarray] = {}
    for column in range(arr.shape[1]):
        # a DataFrame's columns are taken one by one: its numeric columns convert without boxing
        values = arr.iloc[:, column] if frame else arr[:, column]
        lookup = strings.get(column)
        if lookup is IGNORED:
            out[:, column] = 0.0
            continue
        if isinstance(lookup, TextColumn):
            out[:, column] = 0.0
            documents[column] = np.asarray(values, dtype=object)
            continue
        if isinstance(lookup, CatBoostCategories):
            out[:, column] = 0.0
            categories[column], step = np.asarray(values), lookup
            continue
        if lookup is not None:
            out[:, column] = _codes(np.asarray(values), lookup, name, column)
            continue
        try:  # (a nullable pandas column's NA is a missing value, NaN)
            out[:, column] = values.to_numpy(np.float64, na_value=np.nan) if frame else values.astype(np.float64)
        except (TypeError, ValueError):
            shown = np.asarray(values)[:3].tolist()
            raise InputError(f"input {name!r}: column {column} must hold numbers, got {shown}") from None
    if documents:
        out = _beside(out, text_block(documents, text_columns(strings), dtype, name))
    if step is not None:
        out = step.beside(categories, out, name)
    return out


def _beside(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The columns of ``right`` after ``left``'s, in 64-byte-aligned memory, which XLA's CPU client runs
    on where it lies (see ``converted``)."""
    return np.concatenate(
        [left, right], axis=1, out=aligned_empty((len(left), left.shape[1] + right.shape[1]), left.dtype)
    )


def _codes(values: np.ndarray, lookup: Mapping[str | None, float], name: str, column: int) -> np.ndarray:
    """Each value's code, looked up once per distinct value (pandas' factorize when pandas is loaded,
    as it is for a DataFrame input; the runtime does not depend on it)."""
    pd = sys.modules.get("pandas")
    if pd is not None:
        index, distinct = pd.factorize(values, use_na_sentinel=True)  # -1 marks a missing value
    else:
        seen: dict[Any, int] = {}
        index = np.array([-1 if is_missing_value(v) else seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)
        distinct = list(seen)
    mapped = np.empty(len(distinct) + 1, dtype=np.float64)
    mapped[-1] = np.nan
    for i, v in enumerate(distinct):
        if not isinstance(v, str):
            raise InputError(f"input {name!r}: column {column} holds strings (categories), got {v!r}")
        mapped[i] = lookup.get(v, -1)
    codes = mapped[np.asarray(index)]
    if None in lookup:  # (None is among the missing values factorize marks: told apart from NaN there)
        missing = np.flatnonzero(np.asarray(index) == -1)
        codes[missing[[values[i] is None for i in missing]]] = lookup[None]
    return codes


def coerce_input(
    x: Any,
    spec: ValueInfo,
    dtype: np.dtype,
    feature_names: Sequence[str] | None,
    strings: Mapping[int, Lookup] | None = None,
    by_name: bool = False,
) -> np.ndarray:
    """``x`` as the model's input ``spec`` in ``dtype``: strings through their vocabularies, a DataFrame's
    columns checked against ``feature_names`` (``by_name``: selected by them, see _columns_by_name)."""
    if is_sparse(x):
        x = x.toarray()
    frame = _is_dataframe(x)
    if frame and by_name and feature_names is not None:
        x = _columns_by_name(x, spec.name, feature_names, strings)
    texts = text_columns(strings) if strings else []
    if texts and np.ndim(x) == 2 and np.shape(x)[1] != texts[0].input_width:
        width, got = texts[0].input_width, np.shape(x)[1]
        raise InputError(f"input {spec.name!r}: expected {width} columns (text columns included), got {got}")
    step = next((s for s in (strings or {}).values() if isinstance(s, CatBoostCategories)), None)
    if step is not None and np.ndim(x) == 2 and np.shape(x)[1] != step.input_width:
        width, got = step.input_width, np.shape(x)[1]
        raise InputError(f"input {spec.name!r}: expected {width} features (categorical ones included), got {got}")
    if not strings:
        arr = _from_dataframe(x, spec.name, feature_names) if frame else np.asarray(x)
        if arr.dtype.kind == "O":
            arr = _numbers(arr, spec.name)
    elif frame:
        _check_columns(x, spec.name, feature_names)
        arr = encode_strings(x, spec.name, strings, dtype)
    else:
        arr = np.asarray(x)
        takes_strings = sorted(c for c, lookup in strings.items() if lookup is not IGNORED)
        if arr.dtype.kind in "OUS" or (step is not None and arr.dtype.kind in "biu"):  # (CatBoost takes int categories)
            arr = encode_strings(arr.astype(object), spec.name, strings, dtype)
        elif takes_strings:
            raise InputError(
                f"input {spec.name!r}: columns {takes_strings} take strings; pass a DataFrame or an object array"
            )
    if arr.dtype.kind not in "biuf":
        raise InputError(f"input {spec.name!r}: dtype {arr.dtype} is not numeric (expected floats, ints or bools)")
    expected = "x".join("n" if d is None else str(d) for d in spec.shape)
    if arr.ndim != len(spec.shape):
        hint = " (one row? use X.reshape(1, -1))" if arr.ndim == 1 and len(spec.shape) == 2 else ""
        raise InputError(
            f"input {spec.name!r}: expected a {len(spec.shape)}-D array of shape ({expected}), "
            f"got {arr.ndim}-D shape {arr.shape}{hint}"
        )
    for axis, (want, got) in enumerate(zip(spec.shape, arr.shape, strict=True)):
        if want is not None and want != got:
            what = "features" if axis == len(spec.shape) - 1 else f"entries on axis {axis}"
            raise InputError(
                f"input {spec.name!r}: expected {want} {what}, got {got} (shape ({expected}) expected, got {arr.shape})"
            )
    return contiguous(arr, dtype)


def contiguous(arr: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """``arr`` as a C-contiguous array of ``dtype``: itself when it is one, else ``converted``."""
    if arr.dtype == dtype and arr.flags.c_contiguous:
        return arr
    return converted(arr, dtype)


def converted(arr: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """``arr.astype(dtype)`` as a new C-contiguous array; one over XLA_INLINE_COPY_BYTES at a
    64-byte-aligned address, which XLA's CPU client runs on in place where it copies any other (numpy
    aligns to 16 bytes; buckets.Staging says how): a float64 batch, say, converts into memory the executable
    reads as it is. Measured, 2 cores, on the synchronous client: a 784-512-512-10 MLP at 64 rows
    1.15-1.56x faster on an aligned input than on an unaligned one, LogisticRegression over 100 features at
    512 and 2,048 rows 1.16-1.66x. A smaller array XLA copies cheaply itself, where aligning it cost more
    than it saved: one float64 row through Ridge 57.0 us a call aligned, 48.4 us as numpy converts it."""
    if arr.size * dtype.itemsize <= XLA_INLINE_COPY_BYTES:
        return arr.astype(dtype, order="C")
    out = aligned_empty(arr.shape, dtype)
    np.copyto(out, arr, casting="unsafe")
    return out


def check_finite(arr: np.ndarray, name: str, allow_nan: bool | list[int], allow_inf: bool | list[int] = False) -> None:
    """Refuse infinities and NaN where the model's framework refuses them, as scikit-learn does;
    ``allow_nan`` and ``allow_inf`` may list the columns where one is accepted (a ColumnTransformer's
    encoded or passed-through columns)."""
    # min and max (SIMD reductions, no temporary mask) decide the common all-finite case: NaN
    # propagates into both, an infinity into one. Measured: 3x cheaper than a sum, 10x than the same
    # test compiled into the executable.
    if arr.dtype.kind != "f" or arr.size == 0 or (np.isfinite(arr.min()) and np.isfinite(arr.max())):
        return
    if _outside(np.isinf(arr), allow_inf):
        raise InputError(f"input {name!r} contains infinity; the model refuses it as its framework does")
    if _outside(np.isnan(arr), allow_nan):
        raise InputError(
            f"input {name!r} contains NaN and this model does not accept missing values; impute "
            "them first, or export a pipeline that starts with SimpleImputer"
        )


def _outside(found: np.ndarray, allowed: bool | list[int]) -> bool:
    """Whether any ``found`` value lies outside the ``allowed`` columns (all, none, or a list)."""
    if isinstance(allowed, list) and found.ndim == 2:
        return bool(np.delete(found, allowed, axis=1).any())
    return bool(found.any()) and not allowed


def one_column(given: list[Any]) -> list[Any]:
    """For a model that takes one column (IsotonicRegression's samples, a vectorizer's documents): a 1-D
    input is that column, as scikit-learn takes it."""
    return [np.reshape(x, (-1, 1)) if np.ndim(x) == 1 else x for x in given]


def as_input_list(inputs: Any, names: Sequence[str]) -> list[Any]:
    """``run`` takes a list of inputs in the model's order (``names``), or a mapping from their names (as
    Keras's predict takes a dict); a single array, tensor, DataFrame or sparse matrix is a list of one."""
    if isinstance(inputs, Mapping):
        missing, unknown = [n for n in names if n not in inputs], [k for k in inputs if k not in names]
        if missing or unknown:
            raise InputError(f"inputs by name: the model takes {list(names)}; missing {missing}, unknown {unknown}")
        given = [inputs[n] for n in names]
    elif isinstance(inputs, (list, tuple)):
        given = list(inputs)
    elif hasattr(inputs, "__array__") or _is_dataframe(inputs) or is_sparse(inputs):
        given = [inputs]
    else:
        raise InputError(f"inputs must be a list of arrays, got {type(inputs).__name__}")
    return [_on_host(x) for x in given]


def _on_host(x: Any) -> Any:
    """A PyTorch tensor as numpy: detached from its gradient and copied off a GPU first, which numpy's own
    conversion refuses to do."""
    if type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    return x
