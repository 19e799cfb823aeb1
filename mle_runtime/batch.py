"""Batch prediction over files: ``predict_file(model, input, output)`` and ``mle predict``.

The input is read in chunks of ``chunk_rows`` rows (a ``.npy`` file through a memory map, CSV through
numpy's parser on one open handle, Parquet through pyarrow's record batches), so memory stays bounded
whatever the file's size; a reader thread fetches the next chunk while the model runs on this one. A CSV
header's or a Parquet file's columns are the model's features by name (any order, other columns left out)
where the model has feature names, as a DataFrame's are; in the file's order where it has none. The
output takes the input's format (``.npy``: one output array; CSV and Parquet: a column per output value,
2-D outputs as ``name_0``, ``name_1`` ...) and is written to a temporary file beside the target, then
renamed: a killed job leaves no partial file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import queue
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mle_runtime.inputs import IGNORED
from mle_runtime.runtime import MLERuntime, load_model
from mle_runtime.text import TextColumn

FORMATS = (".npy", ".csv", ".parquet")
DEFAULT_CHUNK_ROWS = 65_536


def predict_file(
    model: str | os.PathLike[str] | MLERuntime,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    outputs: list[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
    header: bool | None = None,
    **load_options: Any,
) -> dict[str, Any]:
    """Run ``model`` over every row of ``input_path`` and write ``output_path`` (same format).

    ``outputs``: names among the model's run outputs (default: all of them; a ``.npy`` output holds one
    array, so it defaults to the first). ``progress(rows_done, rows_total_or_None)`` is called after each
    chunk. ``header``: whether a CSV's first line is a header (None: decided as ``CsvReader`` says).
    Returns rows, chunks, seconds and rows per second.
    """
    source, target = Path(input_path), Path(output_path)
    kind = _format(source)
    if _format(target) != kind:
        raise ValueError(f"the output must have the input's format ({kind}), got {target.name}")
    if not source.is_file():
        raise FileNotFoundError(f"no such input file: {source}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    runtime = model if isinstance(model, MLERuntime) else load_model(model, **load_options)
    names = _output_names(runtime, outputs, kind)
    # a CSV's string columns (categories, documents) stay text for the runtime's host-side steps
    reader: CsvReader | _ParquetReader | _NpyReader
    if kind == ".csv":
        reader = csv_reader(source, chunk_rows, runtime, header)
    elif kind == ".parquet":
        reader = _ParquetReader(source, chunk_rows, runtime)
    else:
        reader = _NpyReader(source, chunk_rows)
    start = time.perf_counter()
    rows = chunks = 0
    with _AtomicOutput(target) as tmp, _Prefetch(reader.chunks()) as pending:
        writer = _WRITERS[kind](tmp, reader.total, names)
        try:
            for chunk in pending:
                named = runtime._run_named([chunk], names)
                writer.write([named[n] for n in names])
                rows += len(chunk)
                chunks += 1
                if progress is not None:
                    progress(rows, reader.total)
        finally:
            writer.close()
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "chunks": chunks,
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds > 0 else float("inf"),
        "outputs": names,
        "path": str(target),
    }


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path.name}: unsupported file type; use one of {', '.join(FORMATS)}")
    return suffix


def _output_names(runtime: MLERuntime, outputs: list[str] | None, kind: str) -> list[str]:
    available = runtime._run_outputs()
    names = list(outputs) if outputs else (available[:1] if kind == ".npy" else available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown outputs {unknown}; the model gives {available}")
    if kind == ".npy" and len(names) != 1:
        raise ValueError(f"a .npy file holds one array; choose one of {names} with outputs=[...]")
    return names


# -- reading ---------------------------------------------------------------------------------------


class _NpyReader:
    def __init__(self, path: Path, chunk_rows: int):
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path} is not a readable .npy file of numbers ({e})") from None
        if self.array.ndim < 1:
            raise ValueError(f"{path} holds a scalar, not rows")
        self.total: int | None = len(self.array)
        self.chunk_rows = chunk_rows

    def chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.array), self.chunk_rows):
            yield np.ascontiguousarray(self.array[start : start + self.chunk_rows])


def csv_reader(path: Path, chunk_rows: int, runtime: MLERuntime | None, header: bool | None = None) -> CsvReader:
    """A CSV reader for ``runtime``'s model: its string and text columns read as text, a header's columns
    taken by the model's feature names."""
    if runtime is None:
        return CsvReader(path, chunk_rows, header=header)
    strings = runtime._strings
    documents = {c for c, lookup in strings.items() if isinstance(lookup, TextColumn)}
    return CsvReader(path, chunk_rows, set(strings), runtime._feature_names, documents, header, _unused(runtime))


def _unused(runtime: MLERuntime) -> set[int]:
    """The model's columns it never reads (a ColumnTransformer drops them): a file may lack them."""
    return {c for c, lookup in runtime._strings.items() if lookup is IGNORED}


def column_order(path: Path, columns: Sequence[str], names: Sequence[str] | None, unused: set[int]) -> list[int] | None:
    """Where each of the model's features (``names``, in its order) lies among a file's ``columns`` (-1: a
    column the model never reads, absent), as a DataFrame's columns are taken by name; None when they are
    the same (or the model has no names: then the file's order is the model's). Other columns are left out."""
    if names is None or list(columns) == list(names):
        return None
    where = {c: i for i, c in enumerate(columns)}
    missing = [n for i, n in enumerate(names) if n not in where and i not in unused]
    if missing:
        raise ValueError(f"{path}: lacks the model's feature columns {missing}; it has {list(columns)}")
    return [where.get(n, -1) for n in names]


def _taken(table: np.ndarray, order: list[int] | None) -> np.ndarray:
    """``table``'s columns in the model's order (see ``column_order``; an absent one reads 0)."""
    if order is None:
        return table
    out = np.zeros((len(table), len(order)), dtype=table.dtype)
    for j, i in enumerate(order):
        if i >= 0:
            out[:, j] = table[:, i]
    return out


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


class CsvReader:
    """Numbers through numpy's parser; for a model with string columns, rows through the csv module into
    an array of objects: those columns' text as it is (an empty field a missing value, or in a column of
    ``documents`` an empty document), the others as floats (empty: NaN). Unless ``header`` says, the first
    line is a header when it holds the model's feature names, or any field that is not a number outside
    the string columns, or, when every column is a string column and the model has no feature names to
    compare with (documents, say), always (as pandas reads a CSV): pass header=False for a file without.
    A header's columns are taken by the model's feature names (``column_order``); ``text_columns`` and
    ``documents`` are positions among the model's features."""

    def __init__(
        self,
        path: Path,
        chunk_rows: int,
        text_columns: set[int] | None = None,
        names: Sequence[str] | None = None,
        documents: set[int] | None = None,
        header: bool | None = None,
        unused: set[int] | None = None,
    ):
        self.path, self.chunk_rows, self.total = path, chunk_rows, None
        self.text_columns = text_columns or set()
        self.documents = documents or set()
        with path.open(newline="") as f:
            first = next(csv.reader(f), [])
        columns = [v.strip() for v in first]
        numbers = [v for c, v in enumerate(first) if c not in self.text_columns and v.strip()]
        if header is not None:
            self.header = header
        elif names is not None:
            needed = {n for i, n in enumerate(names) if i not in (unused or set())}
            self.header = needed <= set(columns) or not all(map(_is_number, numbers))
        else:  # nothing to compare with: names where a number was due, or a file of strings only
            self.header = not all(map(_is_number, numbers)) or all(c in self.text_columns for c in range(len(first)))
        self.order = column_order(path, columns, names, unused or set()) if self.header else None

    def chunks(self) -> Iterator[np.ndarray]:
        return self._text_chunks() if self.text_columns else self._number_chunks()

    def _text_chunks(self) -> Iterator[np.ndarray]:
        with self.path.open(newline="") as f:
            rows = csv.reader(f)
            if self.header:
                next(rows, None)
            while block := list(itertools.islice(rows, self.chunk_rows)):
                if len({len(r) for r in block}) > 1:
                    raise ValueError(f"{self.path}: rows with different numbers of fields near line {rows.line_num}")
                table = _taken(np.array(block, dtype=object), self.order)
                for c in range(table.shape[1]):
                    empty = table[:, c] == ""
                    if c in self.text_columns:
                        table[empty, c] = "" if c in self.documents else np.nan  # (NaN, as pandas reads it)
                        continue
                    table[empty, c] = "nan"
                    try:
                        table[:, c] = table[:, c].astype(np.float64)
                    except ValueError as e:
                        raise ValueError(
                            f"{self.path}: column {c} must hold numbers near line {rows.line_num} ({e})"
                        ) from None
                yield table

    def _number_chunks(self) -> Iterator[np.ndarray]:
        with self.path.open() as f:
            if self.header:
                f.readline()
            while True:
                try:
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", "loadtxt: input contained no data")  # the end
                        block = np.loadtxt(f, delimiter=",", ndmin=2, max_rows=self.chunk_rows, dtype=np.float64)
                except ValueError as e:
                    raise ValueError(f"{self.path}: not a CSV of numbers ({e})") from None
                if len(block) == 0:
                    return
                yield _taken(block, self.order)


class _ParquetReader:
    """A Parquet file's record batches as arrays, its columns taken by the model's feature names."""

    def __init__(self, path: Path, chunk_rows: int, runtime: MLERuntime):
        pq = _pyarrow_parquet()
        # pre_buffer (pyarrow's default) kept every row group read so far alive: 1.7 GB peak for 10M rows.
        self.file = pq.ParquetFile(path, pre_buffer=False)
        self.total = self.file.metadata.num_rows
        self.chunk_rows = chunk_rows
        names = self.file.schema_arrow.names
        order = column_order(path, names, runtime._feature_names, _unused(runtime))
        # (by name, the columns the model reads only: an id column beside them is never decoded)
        self.columns = None if order is None else [names[i] if i >= 0 else None for i in order]

    def chunks(self) -> Iterator[np.ndarray]:
        wanted = None if self.columns is None else [c for c in self.columns if c is not None]
        for batch in self.file.iter_batches(batch_size=self.chunk_rows, columns=wanted):
            if self.columns is None:
                columns = [_values(c) for c in batch.columns]
            else:
                columns = [np.zeros(batch.num_rows) if c is None else _values(batch.column(c)) for c in self.columns]
            yield np.column_stack(columns) if columns else np.empty((batch.num_rows, 0))


def _values(column: Any) -> np.ndarray:
    """A pyarrow column as numpy: a null among strings is NaN, a missing value, as pandas reads it (pyarrow
    gives None, which string columns take as a category of its own, as scikit-learn's encoders do)."""
    values = column.to_numpy(zero_copy_only=False)
    if values.dtype == object and column.null_count:
        values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return values


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("Parquet files need pyarrow: pip install 'mle-runtime[parquet]'") from None
    return pq


class _Prefetch:
    """Iterates ``source`` on a thread, one chunk ahead (numpy and pyarrow release the GIL while they read)."""

    _END = object()

    def __init__(self, source: Iterator[np.ndarray]):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), daemon=True)

    def _fill(self, source: Iterator[np.ndarray]) -> None:
        try:
            for item in source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(self._END)
        except BaseException as e:  # (handed to the consumer, which raises it)
            self._queue.put(e)

    def __enter__(self) -> Iterator[np.ndarray]:
        self._thread.start()
        return self._items()

    def _items(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)


# -- writing ---------------------------------------------------------------------------------------


class _AtomicOutput:
    """A temporary path beside ``target``; renamed over it only when the block finishes without error."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        folder = self.target.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{self.target.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None:
            self.tmp.unlink(missing_ok=True)
            return
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)


def output_columns(names: list[str], values: list[np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """One column per output value: a 2-D output of k values becomes name_0 .. name_k-1."""
    headers, columns = [], []
    for name, v in zip(names, values, strict=True):
        if v.ndim == 1:
            headers.append(name)
            columns.append(v)
        else:
            flat = v.reshape(len(v), -1)
            headers += [f"{name}_{j}" for j in range(flat.shape[1])]
            columns += list(flat.T)
    return headers, columns


class _NpyWriter:
    def __init__(self, path: Path, total: int | None, names: list[str]):
        self.path, self.total, self.done = path, total, 0
        self.array: np.memmap[Any, Any] | None = None

    def write(self, values: list[np.ndarray]) -> None:
        (v,) = values
        if self.array is None:
            assert self.total is not None
            self.array = np.lib.format.open_memmap(
                self.path, mode="w+", dtype=v.dtype, shape=(self.total, *v.shape[1:])
            )
        if v.dtype != self.array.dtype and v.dtype.kind == "U":
            raise ValueError("string labels longer than the first chunk's cannot go into one .npy array")
        self.array[self.done : self.done + len(v)] = v
        self.done += len(v)

    def close(self) -> None:
        if self.array is not None:
            self.array.flush()
            del self.array
        elif self.total == 0:
            np.save(self.path, np.empty((0,)))


class _CsvWriter:
    def __init__(self, path: Path, total: int | None, names: list[str]):
        self.file = open(path, "w", newline="")  # noqa: SIM115 (open across chunks; close() closes it)
        self.writer = csv.writer(self.file)
        self.names, self.header_written = names, False

    def write(self, values: list[np.ndarray]) -> None:
        headers, columns = output_columns(self.names, values)
        if not self.header_written:
            self.writer.writerow(headers)
            self.header_written = True
        self.writer.writerows(zip(*(c.tolist() for c in columns), strict=True))

    def close(self) -> None:
        self.file.close()


class _ParquetWriter:
    def __init__(self, path: Path, total: int | None, names: list[str]):
        self.pq = _pyarrow_parquet()
        import pyarrow as pa

        self.pa, self.path, self.names = pa, path, names
        self.writer: Any = None

    def write(self, values: list[np.ndarray]) -> None:
        headers, columns = output_columns(self.names, values)
        table = self.pa.table({h: c for h, c in zip(headers, columns, strict=True)})
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


_WRITERS: dict[str, Any] = {".npy": _NpyWriter, ".csv": _CsvWriter, ".parquet": _ParquetWriter}
