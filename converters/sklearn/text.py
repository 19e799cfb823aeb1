"""Text vectorizers. CountVectorizer and TfidfVectorizer read documents from one input column: the
runtime's text step (mle_runtime/text.py) analyses them as the fitted vectorizer does and counts the
terms of its vocabulary into extra graph input columns; the graph weights the counts (binary, tf-idf,
norm). TfidfTransformer weights any counts. HashingVectorizer's tokens are hashed by the text step.
An analyser given as code (a callable analyzer, preprocessor, tokenizer or accent stripper) is refused:
the file holds data, not code."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction import text

from mle_runtime.converters._builder import Converted, GraphBuilder, transformed
from mle_runtime.converters._registry import converts
from mle_runtime.errors import UnsupportedModelError
from mle_runtime.text import MAX_TERMS


def _settings(est: Any) -> dict[str, Any]:
    """The analyser's settings as data, refusing what only code could reproduce."""
    owner = type(est).__name__
    code = [p for p in ("analyzer", "preprocessor", "tokenizer", "strip_accents") if callable(getattr(est, p))]
    if code:
        raise UnsupportedModelError(
            f"{owner}: a callable {', '.join(code)} is code, which an .mle file does not hold; use the built-in "
            "analysers (word, char, char_wb) with token_pattern, stop_words and strip_accents settings"
        )
    if est.input != "content":
        raise UnsupportedModelError(f"{owner}(input={est.input!r}): only input='content' (the documents themselves)")
    word = est.analyzer == "word"
    stop = est.get_stop_words() if word else None
    return {
        "analyzer": est.analyzer,
        "lowercase": bool(est.lowercase),
        "strip_accents": est.strip_accents or None,
        "token_pattern": est.token_pattern if word else None,
        "ngram_range": [int(n) for n in est.ngram_range],
        "stop_words": None if stop is None else sorted(stop),
        "encoding": est.encoding,
        "decode_error": est.decode_error,
    }


def _counts(est: Any, b: GraphBuilder, x: str) -> tuple[str, int]:
    """The vocabulary's term counts of the documents in the input column x holds (binary: 0 or 1)."""
    terms: list[Any] = [None] * len(est.vocabulary_)
    for term, index in est.vocabulary_.items():
        terms[int(index)] = term
    if not all(isinstance(t, str) for t in terms):
        raise UnsupportedModelError(f"{type(est).__name__}: vocabulary_ must map every index 0..n-1 to a string")
    if len(terms) > MAX_TERMS:
        raise UnsupportedModelError(f"{type(est).__name__}: {len(terms):,} terms; at most {MAX_TERMS:,} are supported")
    counts = b.text_counts(x, _settings(est), terms, type(est).__name__)
    if est.binary:
        counts = b.op("Clip", counts, low=0.0, high=1.0)
    return counts, len(terms)


def _weighted(est: Any, b: GraphBuilder, counts: str) -> str:
    """TfidfTransformer.transform: 1 + log of the non-zero counts, times the idf, rows normalized."""
    y = b.op("SublinearTf", counts) if est.sublinear_tf else counts
    if est.use_idf:
        y = b.op("Mul", y, b.const("idf", np.asarray(est.idf_, dtype=np.float64)))
    if est.norm is not None:
        y = b.op("Normalize", y, norm=est.norm)
    return y


@converts(text.HashingVectorizer)
def hashing_vectorizer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    """Stateless: the runtime's text step hashes the tokens (MurmurHash3, as scikit-learn does) into
    signed counts per column, already binary where asked; the graph normalizes the rows."""
    width = est.n_features
    if not isinstance(width, (int, np.integer)) or not 1 <= width <= MAX_TERMS:
        raise UnsupportedModelError(f"HashingVectorizer(n_features={width!r}): 1 to {MAX_TERMS:,} are supported")
    hashing = {"n_features": int(width), "alternate_sign": bool(est.alternate_sign), "binary": bool(est.binary)}
    counts = b.text_counts(x, _settings(est), [], "HashingVectorizer", hashing)
    return transformed(b.op("Normalize", counts, norm=est.norm) if est.norm is not None else counts, int(width))


@converts(text.CountVectorizer)
def count_vectorizer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    return transformed(*_counts(est, b, x))


@converts(text.TfidfVectorizer)
def tfidf_vectorizer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    counts, width = _counts(est, b, x)
    return transformed(_weighted(est, b, counts), width)


@converts(text.TfidfTransformer)
def tfidf_transformer(est: Any, b: GraphBuilder, x: str, n: int) -> Converted:
    return transformed(_weighted(est, b, x), n)
