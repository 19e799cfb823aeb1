"""The host-side text step: documents in a text column become counts of the terms of a fitted vocabulary
(scikit-learn's CountVectorizer / TfidfVectorizer analysers: decoding, lower-casing, accent stripping,
the token pattern, stop words, word and character n-grams), before the graph runs. Like the string
vocabularies, the analyser is data in the file (settings, a regular expression, word lists), not code.

The counts fill the graph input's extra columns: a model whose input has U columns and text features of
V1, V2, ... terms reads a (rows, U + V1 + V2 + ...) graph input, each feature's counts in its own block
after the U columns (the text column's own slot holds 0)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mle_runtime.errors import FormatError, InputError

ANALYZERS = ("word", "char", "char_wb")
_WHITE_SPACES = re.compile(r"\s\s+")


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
class TextFeature:
    """One vectorizer's terms of one text column: how documents are analysed, and where in the graph
    input its counts go (columns ``start`` to ``start + len(vocabulary)``)."""

    column: int
    start: int
    analyzer: str
    lowercase: bool
    strip_accents: str | None
    token_pattern: str | None
    ngram_range: tuple[int, int]
    stop_words: frozenset[str] | None
    encoding: str
    decode_error: str
    vocabulary: Mapping[str, int]

    @property
    def width(self) -> int:
        return len(self.vocabulary)

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

    def count_into(self, documents: np.ndarray, out: np.ndarray, name: str) -> None:
        """Add each document's term counts to its row of ``out``'s block (columns start..start+width)."""
        analyse, term = self.analyse(), self.vocabulary.get
        rows: list[int] = []
        terms: list[int] = []
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
            found = [i for i in map(term, analyse(doc)) if i is not None]
            rows += [row] * len(found)
            terms += found
        block = out[:, self.start : self.start + self.width]
        np.add.at(block, (np.asarray(rows, dtype=np.intp), np.asarray(terms, dtype=np.intp)), 1.0)


@dataclass(frozen=True)
class TextColumn:
    """The text features read from one input column (several vectorizers may read the same column)."""

    features: tuple[TextFeature, ...]

    def encode(self, values: np.ndarray, out: np.ndarray, name: str) -> None:
        for feature in self.features:
            feature.count_into(values, out, name)


def text_width(lookups: Mapping[int, Any]) -> int:
    """How many graph input columns the text features add to the user's columns."""
    return sum(f.width for lookup in lookups.values() if isinstance(lookup, TextColumn) for f in lookup.features)


def _feature(entry: Any) -> TextFeature:
    if not isinstance(entry, dict):
        raise TypeError("each entry must be an object")
    vocabulary = entry["vocabulary"]
    if not isinstance(vocabulary, list) or not all(isinstance(t, str) for t in vocabulary):
        raise TypeError("vocabulary must be a list of strings")
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
    column, start = entry["column"], entry["start"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (column, start)):
        raise TypeError("column and start must be non-negative integers")
    return TextFeature(
        column=column,
        start=start,
        analyzer=analyzer,
        lowercase=bool(entry.get("lowercase", True)),
        strip_accents=accents,
        token_pattern=pattern,
        ngram_range=(low, high),
        stop_words=None if stop is None else frozenset(stop),
        encoding=encoding,
        decode_error=errors,
        vocabulary={t: i for i, t in enumerate(vocabulary)},
    )


def decode_text_features(metadata: dict[str, Any], graph_width: int | None) -> dict[int, TextColumn]:
    """Input column -> its text features, from ``metadata["text_features"]``; the blocks must tile the
    graph input's last columns in order (``graph_width``: its width)."""
    entries = metadata.get("text_features")
    if entries is None:
        return {}
    try:
        if not isinstance(entries, list) or not entries or graph_width is None:
            raise TypeError("a non-empty list, on a model with one 2-D input")
        features = [_feature(e) for e in entries]
        user_width = graph_width - sum(f.width for f in features)
        start = user_width
        for f in features:
            if f.start != start or f.column >= user_width:
                raise ValueError(f"column {f.column}: block at {f.start}, expected {start} (input width {user_width})")
            start += f.width
    except (TypeError, ValueError, KeyError, re.error) as e:
        raise FormatError(f"metadata: bad text_features ({e})") from e
    columns: dict[int, list[TextFeature]] = {}
    for f in features:
        columns.setdefault(f.column, []).append(f)
    return {c: TextColumn(tuple(fs)) for c, fs in columns.items()}
