"""Text vectorizers: the runtime's host-side text step analyses documents as scikit-learn's fitted
CountVectorizer / TfidfVectorizer do and counts their vocabulary's terms; the graph weights them and
the models after them answer as scikit-learn does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import TruncatedSVD
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import mle_runtime as mle
from mle_runtime import runtime as runtime_module
from mle_runtime.batch import predict_file
from mle_runtime.errors import FormatError, InputError, UnsupportedModelError
from mle_runtime.reader import read_mle
from mle_runtime.writer import write_mle

WORDS = ["apple", "Banana", "cherry", "date", "élan", "fig", "grape", "the", "and", "of", "x", "naïve", "über"]


def documents(n: int, seed: int, extra: tuple[str, ...] = ()) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = WORDS + list(extra)
    separators = [" ", "  ", "\t", ", ", "! ", "\n"]
    return [str(rng.choice(separators)).join(rng.choice(pool, rng.integers(0, 10))) for _ in range(n)]


TRAIN = documents(400, 0)
LABELS = np.array([("apple" in d) + ("cherry" in d.lower()) for d in TRAIN])
# unseen words, an empty document, blanks only, one-letter words, a long document, accents decomposed
HELD_OUT = [
    *documents(80, 1, ("kiwi", "Zebra", "CHERRY")),
    "",
    "   \t ",
    "a b c x",
    " ".join(WORDS * 20),
    "nai\u0308ve e\u0301lan",
]

VECTORIZERS = {
    "word-defaults": lambda: TfidfVectorizer(),
    "word-trigrams-english-stop-words": lambda: TfidfVectorizer(ngram_range=(1, 3), stop_words="english"),
    "word-bigrams-only-case-kept": lambda: CountVectorizer(ngram_range=(2, 2), lowercase=False),
    "word-own-pattern-and-stop-list": lambda: CountVectorizer(token_pattern=r"(?u)\b(\w)\w*", stop_words=["t", "a"]),
    "word-ascii-accents-binary": lambda: TfidfVectorizer(strip_accents="ascii", binary=True, norm="l1"),
    "word-unicode-accents-sublinear-no-idf": lambda: TfidfVectorizer(
        strip_accents="unicode", sublinear_tf=True, use_idf=False
    ),
    "char-1-3": lambda: TfidfVectorizer(analyzer="char", ngram_range=(1, 3)),
    "char-4-5-no-norm": lambda: TfidfVectorizer(analyzer="char", ngram_range=(4, 5), norm=None, smooth_idf=False),
    "char-wb-2-5": lambda: CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)),
    "char-wb-1-1-max-features": lambda: TfidfVectorizer(analyzer="char_wb", max_features=15),
    "hashing-defaults": lambda: HashingVectorizer(),
    "hashing-unsigned-bigrams-l1": lambda: HashingVectorizer(
        n_features=2**10, alternate_sign=False, ngram_range=(1, 2), norm="l1"
    ),
    "hashing-char-wb-binary-no-norm": lambda: HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 3), n_features=64, binary=True, norm=None
    ),
}


def exported(model: Any, tmp_path: Path, precision: str = "float32") -> mle.MLERuntime:
    mle.export_model(model, tmp_path / "m.mle")
    return mle.load_model(tmp_path / "m.mle", precision=precision)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("name", VECTORIZERS)
def test_vectorizers_transform_as_scikit_learn(name: str, precision: str, tmp_path: Path) -> None:
    vectorizer = VECTORIZERS[name]().fit(TRAIN)
    runtime = exported(vectorizer, tmp_path, precision)
    ours, ref = runtime.transform(HELD_OUT), vectorizer.transform(HELD_OUT).toarray()
    tol = 1e-12 if precision == "float64" else 1e-6
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol * max(1.0, float(np.abs(ref).max())))
    assert ref.any(axis=1)[:80].mean() > 0.5  # the held-out documents do meet the vocabulary


def test_tokens_hash_as_scikit_learn_hashes_them() -> None:
    from sklearn.utils import murmurhash3_32 as reference

    from mle_runtime.murmur import murmurhash3_32

    rng = np.random.default_rng(0)
    keys = [bytes(rng.integers(0, 256, rng.integers(0, 41)).astype(np.uint8)) for _ in range(5000)]
    keys += [b"", b"a", b"ab", b"abc", b"abcd", b"\0", b"\0" * 5, "naïve über".encode()]
    expected = np.array([reference(k, seed=0) for k in keys], np.int32)
    np.testing.assert_array_equal(murmurhash3_32(keys), expected)
    assert murmurhash3_32([]).shape == (0,)


def test_hashed_tokens_that_cancel_still_count_as_binary(tmp_path: Path) -> None:
    # 2 columns: many tokens of opposite signs share one, so some documents' counts sum to 0 there
    signed = HashingVectorizer(n_features=2, norm=None).fit(TRAIN)
    counts = signed.transform(TRAIN)
    assert (counts.data == 0).any()  # stored zeros: the case scikit-learn's binary fill turns into 1
    for vectorizer in (signed, HashingVectorizer(n_features=2, norm=None, binary=True)):
        np.testing.assert_array_equal(
            exported(vectorizer, tmp_path).transform(TRAIN), vectorizer.transform(TRAIN).toarray()
        )


def test_a_classifier_after_hashing_predicts_as_scikit_learn(tmp_path: Path) -> None:
    model = make_pipeline(HashingVectorizer(n_features=2**12, ngram_range=(1, 2)), LogisticRegression())
    model.fit(TRAIN, LABELS)
    runtime = exported(model, tmp_path, "float64")
    np.testing.assert_array_equal(runtime.predict(HELD_OUT), model.predict(HELD_OUT))
    np.testing.assert_allclose(runtime.predict_proba(HELD_OUT), model.predict_proba(HELD_OUT), rtol=0, atol=1e-12)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_a_classifier_after_tfidf_predicts_as_scikit_learn(precision: str, tmp_path: Path) -> None:
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression()).fit(TRAIN, LABELS)
    runtime = exported(model, tmp_path, precision)
    labels, proba = runtime.run([HELD_OUT])
    np.testing.assert_array_equal(labels, model.predict(HELD_OUT))
    tol = 1e-12 if precision == "float64" else 1e-5
    np.testing.assert_allclose(proba, model.predict_proba(HELD_OUT), rtol=0, atol=tol)
    # documents as a list, an object or a unicode array, a Series or one column of a 2-D array
    for docs in (np.array(HELD_OUT, dtype=object), np.array(HELD_OUT), pd.Series(HELD_OUT), [[d] for d in HELD_OUT]):
        np.testing.assert_array_equal(runtime.predict(docs), labels)
    # bytes are decoded with the vectorizer's encoding
    np.testing.assert_array_equal(runtime.predict([d.encode() for d in HELD_OUT]), labels)


def test_counts_then_tfidf_transformer_and_the_transformer_on_numbers(tmp_path: Path) -> None:
    model = make_pipeline(CountVectorizer(), TfidfTransformer(sublinear_tf=True), Ridge()).fit(TRAIN, LABELS)
    np.testing.assert_allclose(exported(model, tmp_path, "float64").predict(HELD_OUT), model.predict(HELD_OUT), 1e-12)
    counts = np.random.default_rng(3).poisson(0.7, size=(200, 6)).astype(float)
    transformer = TfidfTransformer(sublinear_tf=True, norm="l1").fit(counts)
    ours = exported(transformer, tmp_path, "float64").transform(counts[:50])
    np.testing.assert_allclose(ours, transformer.transform(counts[:50]).toarray(), rtol=1e-12)


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "price": rng.normal(size=n),
            "review": documents(n, seed + 10),
            "shop": rng.choice(["north", "south", "east"], n),
            "ignored": rng.normal(size=n),
        }
    )


def test_a_dataframe_with_text_categories_and_numbers(tmp_path: Path) -> None:
    """A ColumnTransformer reading one text column with two vectorizers (words and characters), a
    string category and a number, and dropping a column: the same answers in either precision."""
    train = frame(300, 0)
    y = (train["price"] > 0).to_numpy() ^ train["review"].str.contains("apple").to_numpy()
    text = make_union(TfidfVectorizer(), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)))
    columns = ColumnTransformer(
        [("review", text, "review"), ("shop", OneHotEncoder(), ["shop"]), ("price", StandardScaler(), ["price"])]
    )
    model = make_pipeline(columns, LogisticRegression()).fit(train, y)
    test = frame(100, 1)
    for precision, tol in (("float32", 1e-5), ("float64", 1e-12)):
        runtime = exported(model, tmp_path, precision)
        labels, proba = runtime.run([test])
        np.testing.assert_array_equal(labels, model.predict(test))
        np.testing.assert_allclose(proba, model.predict_proba(test), rtol=0, atol=tol)
    metadata = runtime.get_model_info()["metadata"]
    assert [f["analyzer"] for f in metadata["text_features"]] == ["word", "char_wb"]
    assert metadata["unused_columns"] == [3]
    with pytest.raises(InputError, match="expected 4 columns"):
        runtime.predict(test.iloc[:, :3].to_numpy(dtype=object))
    with pytest.raises(InputError, match=r"column 1 holds text documents, row 2 is (None|nan)"):
        runtime.predict(test.assign(review=["ok", "fine", None] + ["x"] * 97))


def test_linear_steps_read_the_terms_sparse_and_other_steps_dense(tmp_path: Path) -> None:
    """After tf-idf, a linear step multiplies the stored terms into its weights (no dense vocabulary
    columns in the graph), through a ColumnTransformer's concatenation too; a forest reads the dense
    columns. Both answer as scikit-learn does."""
    train, test = frame(300, 0), frame(120, 5)
    y = (train["price"] > 0).to_numpy() ^ train["review"].str.contains("fig").to_numpy()

    def columns() -> ColumnTransformer:
        return ColumnTransformer(
            [("review", TfidfVectorizer(ngram_range=(1, 2)), "review"), ("p", "passthrough", ["price"])]
        )

    finals = {
        "SparseGemm": make_pipeline(TruncatedSVD(4, random_state=0), LogisticRegression()),
        "ScatterColumns": RandomForestClassifier(30, random_state=0),
    }
    for op, final in finals.items():
        model = make_pipeline(columns(), final).fit(train, y)
        runtime = exported(model, tmp_path, "float64")
        operators = runtime.get_model_info()["operators"]
        assert op in operators
        assert ("ScatterColumns" in operators) == (op == "ScatterColumns"), operators
        np.testing.assert_array_equal(runtime.predict(test), model.predict(test))
        np.testing.assert_allclose(runtime.predict_proba(test), model.predict_proba(test), rtol=0, atol=1e-12)


def test_large_batches_are_encoded_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)), LogisticRegression())
    model.fit(TRAIN, LABELS)
    monkeypatch.setattr(runtime_module, "TEXT_BLOCK_ROWS", 64)
    runtime = exported(model, tmp_path)
    assert runtime._text_block_rows == 64
    docs = HELD_OUT * 3  # 255 rows: three full blocks and a partial one
    np.testing.assert_allclose(runtime.predict_proba(docs), model.predict_proba(docs), rtol=0, atol=1e-5)
    frame_docs = pd.DataFrame({"text": docs})["text"]
    np.testing.assert_array_equal(runtime.predict(frame_docs), model.predict(docs))


def test_csv_batch_job_reads_documents(tmp_path: Path) -> None:
    train = frame(300, 0)
    y = train["review"].str.contains("fig").to_numpy()
    columns = ColumnTransformer([("review", CountVectorizer(), "review"), ("price", "passthrough", ["price"])])
    model = make_pipeline(columns, LogisticRegression()).fit(train, y)
    mle.export_model(model, tmp_path / "m.mle")
    test = frame(50, 4)
    test.loc[3, "review"] = ""  # an empty field: an empty document
    test.to_csv(tmp_path / "in.csv", index=False)
    predict_file(tmp_path / "m.mle", tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=16)
    got = pd.read_csv(tmp_path / "out.csv")
    expected = model.predict_proba(test.fillna({"review": ""}))
    np.testing.assert_allclose(got[["probabilities_0", "probabilities_1"]], expected, rtol=1e-5, atol=1e-7)


def test_command_line_inspects_and_benchmarks_a_text_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``mle inspect`` names the text features; ``mle benchmark`` reads documents from a CSV and times
    the text analysis with the graph (the same as run's)."""
    from mle_runtime.cli import main

    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)), LogisticRegression())
    mle.export_model(model.fit(TRAIN, LABELS), tmp_path / "m.mle")
    pd.DataFrame({"review": HELD_OUT}).to_csv(tmp_path / "docs.csv", index=False)
    assert main(["inspect", str(tmp_path / "m.mle")]) == 0
    assert f"column 0: char_wb analyser, n-grams [2, 3], {len(model[0].vocabulary_):,} terms" in capsys.readouterr().out
    assert main(["benchmark", str(tmp_path / "m.mle"), str(tmp_path / "docs.csv"), "--runs", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["batch_size"] == len(HELD_OUT)


def test_a_csv_of_documents_only_with_and_without_its_header(tmp_path: Path) -> None:
    """Nothing tells a header from a document in a file of strings: a header is assumed, as pandas
    does, and header=False (``mle predict --no-header``) reads the first line as a document."""
    from mle_runtime.cli import main

    model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(TRAIN, LABELS)
    mle.export_model(model, tmp_path / "m.mle")
    pd.DataFrame({"review": HELD_OUT}).to_csv(tmp_path / "header.csv", index=False)
    pd.DataFrame({"review": HELD_OUT}).to_csv(tmp_path / "bare.csv", index=False, header=False)
    expected = model.predict(HELD_OUT)
    predict_file(tmp_path / "m.mle", tmp_path / "header.csv", tmp_path / "a.csv", outputs=["label"])
    predict_file(tmp_path / "m.mle", tmp_path / "bare.csv", tmp_path / "b.csv", outputs=["label"], header=False)
    assert (
        main(
            [
                "predict",
                str(tmp_path / "m.mle"),
                str(tmp_path / "bare.csv"),
                str(tmp_path / "c.csv"),
                "--outputs",
                "label",
                "--no-header",
                "--no-progress",
            ]
        )
        == 0
    )
    for name in ("a.csv", "b.csv", "c.csv"):
        np.testing.assert_array_equal(pd.read_csv(tmp_path / name)["label"], expected, err_msg=name)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (CountVectorizer(tokenizer=str.split, token_pattern=None), "callable tokenizer is code"),
        (CountVectorizer(analyzer=lambda d: d.split()), "callable analyzer is code"),
        (TfidfVectorizer(preprocessor=str.upper), "callable preprocessor is code"),
        (CountVectorizer(strip_accents=lambda s: s), "callable strip_accents is code"),
        (HashingVectorizer(tokenizer=str.split, token_pattern=None), "callable tokenizer is code"),
        (HashingVectorizer(n_features=2**25), "n_features=33554432"),
    ],
)
def test_analysers_given_as_code_are_refused(model: Any, match: str, tmp_path: Path) -> None:
    model.fit(TRAIN)
    with pytest.raises(UnsupportedModelError, match=match):
        mle.export_model(model, tmp_path / "m.mle")
    assert not (tmp_path / "m.mle").exists()


def test_a_vocabulary_past_the_exact_float_indices_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mle_runtime.converters.sklearn.text as converter

    monkeypatch.setattr(converter, "MAX_TERMS", 5)  # (2**24 in truth: term indices travel as floats)
    with pytest.raises(UnsupportedModelError, match="at most 5 are supported"):
        mle.export_model(CountVectorizer().fit(TRAIN), tmp_path / "m.mle")


def _rewrite_metadata(path: Path, change: Any) -> None:
    mf = read_mle(path)
    metadata = json.loads(json.dumps(mf.metadata))
    change(metadata)
    write_mle(path, metadata, mf.graph, {k: np.asarray(v) for k, v in mf.tensors.items()})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m["text_features"][0].update(analyzer="sentence"), "analyzer 'sentence'"),
        (lambda m: m["text_features"][0].update(token_pattern="(a)(b)"), "more than one group"),
        (lambda m: m["text_features"][0].update(token_pattern="(unclosed"), "bad text_features"),
        (lambda m: m["text_features"][0].update(column=1), "column 1 is not one of the 1 input columns"),
        (lambda m: m["text_features"][0].update(vocabulary=[1, 2]), "vocabulary must be a list of strings"),
        (lambda m: m["text_features"][0].pop("ngram_range"), "ngram_range"),
        (lambda m: m.update(text_features=[]), "non-empty list"),
        (lambda m: m["text_features"][0].update(hashing={"n_features": 0}), "hashing lacks"),
        (
            lambda m: m["text_features"][0].update(
                hashing={"n_features": 2**25, "alternate_sign": True, "binary": False}
            ),
            "n_features 33554432",
        ),
        (
            lambda m: m["text_features"][0].update(hashing={"n_features": 8, "alternate_sign": 1, "binary": False}),
            "true or false",
        ),
        (lambda m: m["text_features"][0].update(hashing=[8]), "hashing must be an object"),
    ],
)
def test_malformed_text_features_are_format_errors(change: Any, match: str, tmp_path: Path) -> None:
    model = make_pipeline(CountVectorizer(), Ridge()).fit(TRAIN, LABELS)
    mle.export_model(model, tmp_path / "m.mle")
    _rewrite_metadata(tmp_path / "m.mle", change)
    with pytest.raises(FormatError, match=match):
        mle.load_model(tmp_path / "m.mle")
