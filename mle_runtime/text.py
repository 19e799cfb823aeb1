"""The host-side text step: documents in a text column become the terms of a fitted vocabulary they
hold, with their counts (scikit-learn's CountVectorizer / TfidfVectorizer analysers: decoding,
lower-casing, accent stripping, the token pattern, stop words, word and character n-grams), or, for a
HashingVectorizer, the columns their tokens hash to, with signed counts, before the graph runs. Like
the string vocabularies, the analyser is data in the file (settings, a regular expression, word
lists), not code.

The terms reach the graph sparse, in extra columns of its input: after the model's U input columns
(a text column's own slot holds 0), each of the K text features has L columns of term indices and L
of their counts, L being the most distinct terms a document of the batch has (rounded up to a power of
two, so that few shapes compile), padded with term 0 and count 0. The graph weights the counts and, where
the next step is a product with weights, multiplies them in without forming the dense (rows, vocabulary)
matrix; any other step reads them scattered into dense columns (ops/text.py)."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mle_runtime.errors import FormatError, InputError
from mle_runtime.murmur import murmurhash3_32, murmurhash3_32_packed

ANALYZERS = ("word", "char", "char_wb")
_WHITE_SPACES = re.compile(r"\s\s+")
# The fewest term slots a batch's documents get (a power of two), and the largest vocabulary: term
# indices travel in the graph input's floats, exact in float32 up to 2**24.
MIN_TERMS = 16
MAX_TERMS = 1 << 24


def _strip_accents_unicode(s: str) -> str:
    if s.isascii():
        return s
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def _strip_accents_ascii(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ASCII", "ignore").decode("ASCII")


_ACCENTS: dict[str | None, Callable[[str], str] | None] = {
    None: None,
    "ascii": _strip_accents_ascii,
    "unicode": _strip_accents_unicode,
}


@dataclass(frozen=True)
class Hashing:
    """HashingVectorizer's terms: a token's column is its MurmurHash3 (``mle_runtime.murmur``) modulo
    ``n_features``, counted with the hash's sign where ``alternate_sign``; ``binary``: every column a
    document hashes to holds 1 (scikit-learn fills its summed entries, cancelled ones included)."""

    n_features: int
    alternate_sign: bool
    binary: bool

    def terms(self, grams_by_row: Iterator[tuple[int, list[str]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, value) of every column each row's grams hash to, by row then column."""
        rows: list[int] = []
        every: list[str] = []
        for row, grams in grams_by_row:
            rows += [row] * len(grams)
            every += grams
        joined = "".join(every)
        if joined.isascii():  # (one encoding of them all, a character a byte)
            hashes = murmurhash3_32_packed(joined.encode("ascii"), np.fromiter(map(len, every), np.int64, len(every)))
        else:
            hashes = murmurhash3_32(list(map(str.encode, every)))
        wide, n = hashes.astype(np.int64), self.n_features
        # abs() in int64: -2**31 lands where scikit-learn's special case puts it, 2**31 % n
        pairs = np.asarray(rows, np.int64) * n + np.abs(wide) % n
        order = np.argsort(pairs, kind="stable")  # (a stable sort gains from the rows' order)
        ordered = pairs[order]
        first = np.flatnonzero(np.diff(ordered, prepend=-1))
        keys = ordered[first]
        values: np.ndarray
        if self.binary:
            values = np.ones(len(keys))
        else:
            sign = np.where(wide >= 0, 1.0, -1.0) if self.alternate_sign else np.ones(len(wide))
            values = np.add.reduceat(sign[order], first) if len(first) else np.zeros(0)
        return keys // n, keys % n, values


@dataclass(frozen=True)
class TextFeature:
    """One vectorizer's terms of one text column: how documents are analysed; ``index``: its place
    among the model's text features. Its terms are a vocabulary's, or, with ``hashing``, hashed."""

    column: int
    index: int
    analyzer: str
    lowercase: bool
    strip_accents: str | None
    token_pattern: str | None
    ngram_range: tuple[int, int]
    stop_words: frozenset[str] | None
    encoding: str
    decode_error: str
    terms: list[str]  # the vocabulary, in index order (none when hashing)
    hashing: Hashing | None = None

    @functools.cached_property
    def vocabulary(self) -> dict[str, int]:
        """term -> index, built on first use (not by a load that never analyses a document)."""
        return dict(zip(self.terms, range(len(self.terms)), strict=True))

    @property
    def width(self) -> int:
        return self.hashing.n_features if self.hashing is not None else len(self.terms)

    def analyse(self) -> Callable[[str], list[str]]:
        """scikit-learn's analyser for these settings (``build_analyzer`` of a fitted vectorizer)."""
        accents = _ACCENTS[self.strip_accents]
        lower, (low, high) = self.lowercase, self.ngram_range

        def preprocess(doc: str) -> str:
            if lower:
                doc = doc.lower()
            return accents(doc) if accents is not None else doc

        if self.analyzer == "word":
            findall = re.compile(self.token_pattern or "").findall
            stop = self.stop_words

            def words(doc: str) -> list[str]:
                tokens = findall(preprocess(doc))
                if stop is not None:
                    tokens = [w for w in tokens if w not in stop]
                grams = list(tokens) if low == 1 else []
                for n in range(max(low, 2), min(high, len(tokens)) + 1):
                    grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
                return grams

            return words
        if self.analyzer == "char":

            def chars(doc: str) -> list[str]:
                text = _WHITE_SPACES.sub(" ", preprocess(doc))
                grams = list(text) if low == 1 else []
                for n in range(max(low, 2), min(high, len(text)) + 1):
                    grams += [text[i : i + n] for i in range(len(text) - n + 1)]
                return grams

            return chars

        def word_bounded_chars(doc: str) -> list[str]:
            grams = []
            for w in _WHITE_SPACES.sub(" ", preprocess(doc)).split():
                w = f" {w} "
                for n in range(low, high + 1):
                    grams.append(w[:n])
                    grams += [w[i : i + n] for i in range(1, len(w) - n + 1)]
                    if len(w) <= n:  # a short word counts once, at its shortest n
                        break
            return grams

        return word_bounded_chars

    def terms_of(self, documents: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, term, count) of every distinct term of each document, by row then term."""
        if self.hashing is not None:
            return self.hashing.terms(self._grams(documents, name))
        term = self.vocabulary.get
        rows: list[int] = []
        terms: list[int] = []
        for row, grams in self._grams(documents, name):
            found = [i for i in map(term, grams) if i is not None]
            rows += [row] * len(found)
            terms += found
        width = max(self.width, 1)
        keys, counts = np.unique(np.asarray(rows, np.int64) * width + np.asarray(terms, np.int64), return_counts=True)
        return keys // width, keys % width, counts

    def _grams(self, documents: np.ndarray, name: str) -> Iterator[tuple[int, list[str]]]:
        """Each row and its document's grams, documents decoded and checked."""
        analyse = self.analyse()
        for row, doc in enumerate(documents):
            if isinstance(doc, bytes):
                try:
                    doc = doc.decode(self.encoding, self.decode_error)
                except (UnicodeDecodeError, LookupError) as e:
                    raise InputError(f"input {name!r}: column {self.column}, row {row}: {e}") from None
            if not isinstance(doc, str):
                raise InputError(
                    f"input {name!r}: column {self.column} holds text documents, row {row} is {doc!r} "
                    "(scikit-learn's vectorizers refuse it too)"
                )
            yield row, analyse(doc)


@dataclass(frozen=True)
class TextColumn:
    """The text features read from one input column (several vectorizers may read the same column), and
    the model's input columns (the text features' blocks follow them)."""

    features: tuple[TextFeature, ...]
    input_width: int


def text_columns(lookups: Mapping[int, Any]) -> list[TextColumn]:
    return [lookup for lookup in lookups.values() if isinstance(lookup, TextColumn)]


def text_block(documents: Mapping[int, np.ndarray], columns: list[TextColumn], dtype: Any, name: str) -> np.ndarray:
    """The graph input's text columns for ``documents`` (input column -> its documents): each feature's
    L term indices, then their L counts (see the module's docstring)."""
    rows = len(next(iter(documents.values())))
    found = {f.index: f.terms_of(documents[f.column], name) for c in columns for f in c.features}
    most = max((int(np.bincount(r, minlength=1).max()) for r, _, _ in found.values()), default=0)
    width = max(MIN_TERMS, 1 << max(0, (most - 1).bit_length()))
    block = np.zeros((rows, 2 * len(found) * width), dtype=dtype)
    for k, (r, terms, counts) in sorted(found.items()):
        # a term's slot: its rank among its row's distinct terms
        slot = np.arange(len(r)) - np.searchsorted(r, r)
        block[r, 2 * k * width + slot] = terms
        block[r, (2 * k + 1) * width + slot] = counts
    return block


def _feature(entry: Any, index: int, input_width: int) -> TextFeature:
    if not isinstance(entry, dict):
        raise TypeError("each entry must be an object")
    hashing = _hashing(entry["hashing"]) if entry.get("hashing") is not None else None
    vocabulary = entry["vocabulary"] if hashing is None else []
    if not isinstance(vocabulary, list) or not set(map(type, vocabulary)) <= {str}:
        raise TypeError("vocabulary must be a list of strings")
    if len(vocabulary) > MAX_TERMS:
        raise ValueError(f"{len(vocabulary)} terms: term indices travel as floats, exact up to {MAX_TERMS}")
    stop = entry.get("stop_words")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(w, str) for w in stop)):
        raise TypeError("stop_words must be a list of strings or null")
    low, high = (int(n) for n in entry["ngram_range"])
    analyzer, accents, pattern = entry["analyzer"], entry.get("strip_accents"), entry.get("token_pattern")
    if analyzer not in ANALYZERS or accents not in _ACCENTS or not 1 <= low <= high:
        raise ValueError(f"analyzer {analyzer!r}, strip_accents {accents!r}, ngram_range {(low, high)}")
    if analyzer == "word":
        if not isinstance(pattern, str):
            raise TypeError("a word analyser needs a token_pattern string")
        if re.compile(pattern).groups > 1:
            raise ValueError(f"token_pattern {pattern!r} captures more than one group")
    encoding, errors = entry.get("encoding", "utf-8"), entry.get("decode_error", "strict")
    if not isinstance(encoding, str) or errors not in ("strict", "ignore", "replace"):
        raise ValueError(f"encoding {encoding!r}, decode_error {errors!r}")
    column = entry["column"]
    if not isinstance(column, int) or isinstance(column, bool) or not 0 <= column < input_width:
        raise ValueError(f"column {column!r} is not one of the {input_width} input columns")
    return TextFeature(
        column=column,
        index=index,
        analyzer=analyzer,
        lowercase=bool(entry.get("lowercase", True)),
        strip_accents=accents,
        token_pattern=pattern,
        ngram_range=(low, high),
        stop_words=None if stop is None else frozenset(stop),
        encoding=encoding,
        decode_error=errors,
        terms=vocabulary,
        hashing=hashing,
    )


def _hashing(entry: Any) -> Hashing:
    if not isinstance(entry, dict):
        raise TypeError("hashing must be an object")
    missing = sorted({"n_features", "alternate_sign", "binary"} - set(entry))
    if missing:
        raise TypeError(f"hashing lacks {missing}")
    n, alternate, binary = entry["n_features"], entry["alternate_sign"], entry["binary"]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_TERMS:
        raise ValueError(f"hashing n_features {n!r}: an int from 1 to {MAX_TERMS} (indices travel as floats)")
    if not isinstance(alternate, bool) or not isinstance(binary, bool):
        raise TypeError("hashing alternate_sign and binary must be true or false")
    return Hashing(n, alternate, binary)


def decode_text_features(metadata: dict[str, Any]) -> dict[int, TextColumn]:
    """Input column -> its text features, from ``metadata["text_features"]`` (in the order of their
    blocks in the graph input) and ``metadata["n_features"]`` (the model's input columns)."""
    entries = metadata.get("text_features")
    if entries is None:
        return {}
    try:
        width = metadata.get("n_features")
        if not isinstance(entries, list) or not entries or not isinstance(width, int) or width < 1:
            raise TypeError("a non-empty list, on a model with n_features input columns")
        features = [_feature(e, k, width) for k, e in enumerate(entries)]
    except (TypeError, ValueError, KeyError, re.error) as e:
        raise FormatError(f"metadata: bad text_features ({e})") from e
    columns: dict[int, list[TextFeature]] = {}
    for f in features:
        columns.setdefault(f.column, []).append(f)
    return {c: TextColumn(tuple(fs), width) for c, fs in columns.items()}
