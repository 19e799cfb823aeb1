"""The .mle container: golden bytes, past files read by today's reader, every reader rule, fuzzing,
deterministic and atomic writes."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import golden
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mle_runtime as mle
from mle_runtime.errors import FormatError
from mle_runtime.format import HEADER, HEADER_SIZE, MANIFEST_ZSTD, MAX_MANIFEST_BYTES, MLEFormat
from mle_runtime.graph import Graph
from mle_runtime.reader import read_manifest, read_mle
from mle_runtime.security import SecurityUtils
from mle_runtime.writer import serialize, write_mle

DATA = Path(__file__).parent / "data"
RAW = (DATA / "golden_v2_raw.mle").read_bytes()  # plain JSON manifest: the rules below edit it
ZRAW = (DATA / "golden_v2_mz_raw.mle").read_bytes()  # what the writer makes today


def golden_bytes(compression: int = 0, compress_manifest: bool = True) -> bytes:
    tensors = golden.tensors_for(compression)
    return b"".join(bytes(c) for c in serialize(golden.METADATA, golden.GRAPH, tensors, compression, compress_manifest))


@pytest.mark.parametrize("name", sorted(golden.GOLDEN))
def test_writer_reproduces_golden_bytes(name: str) -> None:
    assert golden_bytes(*golden.GOLDEN[name]) == (DATA / name).read_bytes()


def test_manifest_is_stored_compressed_when_smaller() -> None:
    assert HEADER.unpack(ZRAW[:HEADER_SIZE])[2] & MANIFEST_ZSTD
    assert len(ZRAW) < len(RAW)
    assert read_manifest(DATA / "golden_v2_mz_raw.mle").metadata == read_manifest(DATA / "golden_v2_raw.mle").metadata


def test_a_manifest_over_the_cap_is_refused_at_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer refuses what the reader would: no file is left that cannot be read."""
    import mle_runtime.writer

    monkeypatch.setattr(mle_runtime.writer, "MAX_MANIFEST_BYTES", 2_000)
    graph = {"inputs": [{"name": "x", "shape": [None, 1]}], "outputs": ["x"], "nodes": []}
    write_mle(tmp_path / "small.mle", {"note": "a" * 500}, graph, {})
    with pytest.raises(ValueError, match="over the format's 2,000-byte cap"):
        write_mle(tmp_path / "big.mle", {"vocabulary": [f"term{i}" for i in range(1_000)]}, graph, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.mle"]


def test_header_constants_and_layout() -> None:
    assert (MLEFormat.MLE_MAGIC, MLEFormat.MLE_VERSION) == (0x00454C4D, 2)
    assert (MLEFormat.FEATURE_COMPRESSION, MLEFormat.FEATURE_ENCRYPTION, MLEFormat.FEATURE_SIGNING) == (1, 2, 4)
    assert (MLEFormat.COMPRESSION_NONE, MLEFormat.COMPRESSION_LZ4, MLEFormat.COMPRESSION_ZSTD) == (0, 1, 2)
    assert RAW[:4] == b"MLE\x00" and RAW[4:8] == struct.pack("<I", 2)
    mf = read_manifest(DATA / "golden_v2_raw.mle")
    assert mf.header.data_offset % 64 == 0
    assert all(t["offset"] % 64 == 0 for t in mf.tensor_table)


@pytest.mark.parametrize("name", sorted(golden.GOLDEN))
def test_stored_files_of_every_version_still_load(name: str) -> None:
    X = np.random.default_rng(0).normal(size=(9, 4))
    runtime = mle.load_model(DATA / name, precision="float64", cache=False)
    labels, proba = runtime.run([X])
    want_labels, want_proba = golden.expected(X)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(proba, want_proba, rtol=1e-12)
    assert runtime.get_model_info()["features"]["compression"] == bool(golden.GOLDEN[name][0])


def test_uncompressed_tensors_are_zero_copy_views() -> None:
    mf = read_mle(DATA / "golden_v2_raw.mle")
    for array in mf.tensors.values():
        assert not array.flags.writeable and not array.flags.owndata
        assert array.ctypes.data % 64 == 0


def test_missing_path_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such model file"):
        mle.load_model(tmp_path / "absent.mle")
    with pytest.raises(FileNotFoundError, match="it is a directory"):
        mle.inspect_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="it is a directory"):
        mle.load_model(tmp_path)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no such model file"):  # a file where a folder should be
        mle.load_model(tmp_path / "file" / "model.mle")


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "case.mle"
    path.write_bytes(data)
    return path


def reheader(data: bytes, **fields: int) -> bytes:
    """The file with header fields replaced and the header CRC recomputed (to reach deeper rules)."""
    names = [
        "magic",
        "version",
        "flags",
        "header_crc",
        "manifest_offset",
        "manifest_size",
        "data_offset",
        "data_size",
        "signature_offset",
        "signature_size",
        "manifest_crc",
    ]
    values = dict(zip(names, HEADER.unpack(data[:HEADER_SIZE]), strict=True))
    values.update(fields, header_crc=0)
    values["header_crc"] = SecurityUtils.compute_checksum(HEADER.pack(*values.values()))
    return HEADER.pack(*values.values()) + data[HEADER_SIZE:]


def remanifest(data: bytes, edit) -> bytes:
    """The file with its manifest JSON edited (sizes, offsets and CRCs kept consistent)."""
    mf_size = HEADER.unpack(data[:HEADER_SIZE])[5]
    manifest = json.loads(data[HEADER_SIZE : HEADER_SIZE + mf_size])
    edit(manifest)
    return with_manifest(data, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def with_manifest(data: bytes, raw: bytes) -> bytes:
    """The file with ``raw`` as its manifest bytes, everything else kept consistent."""
    old_offset = HEADER.unpack(data[:HEADER_SIZE])[6]
    new_offset = (HEADER_SIZE + len(raw) + 63) // 64 * 64
    body = raw + bytes(new_offset - HEADER_SIZE - len(raw)) + data[old_offset:]
    return reheader(
        data[:HEADER_SIZE] + body,
        manifest_size=len(raw),
        data_offset=new_offset,
        manifest_crc=SecurityUtils.compute_checksum(raw),
    )


def tensor(i: int, **changes):
    def edit(manifest):
        manifest["tensors"][i].update(changes)

    return edit


RULES = [
    ("empty file", lambda d: b"", "smaller than the 64-byte header"),
    ("bad magic", lambda d: b"XXXX" + d[4:], "bad magic"),
    ("future version", lambda d: reheader(d, version=3), "unsupported version 3"),
    ("unknown flag", lambda d: reheader(d, flags=0x80), "unknown feature flags"),
    ("header crc", lambda d: d[:12] + b"\0\0\0\0" + d[16:], "header checksum"),
    ("signed flag, no block", lambda d: reheader(d, flags=4), "signature block at 0 of 0 bytes"),
    ("block not at the end", lambda d: _signed_with_block_moved(d), "expected 104 bytes right after"),
    (
        "signed, block missing",
        lambda d: reheader(d, flags=4, signature_offset=len(d) - 64, signature_size=104),
        "expected 104 bytes right after",
    ),
    ("signed, bad block", lambda d: _signed_with_bad_block(d), "no signature block at"),
    ("encrypted flag, no entry", lambda d: reheader(d, flags=2), "flag set but the manifest's entry is None"),
    ("entry, no flag", lambda d: remanifest(d, _encryption_entry("00" * 12)), "flag is not set"),
    ("bad nonce", lambda d: reheader(remanifest(d, _encryption_entry("zz" * 12)), flags=2), "not hex"),
    ("short nonce", lambda d: reheader(remanifest(d, _encryption_entry("00" * 8)), flags=2), "nonce must be 12 bytes"),
    ("signature fields", lambda d: reheader(d, signature_size=64), "signature fields set"),
    ("manifest offset", lambda d: reheader(d, manifest_offset=128), "manifest offset"),
    ("huge manifest", lambda d: reheader(d, manifest_size=1 << 40), "exceeds the"),
    ("manifest past end", lambda d: reheader(d, manifest_size=len(d)), "runs past the end"),
    ("data offset", lambda d: reheader(d, data_offset=HEADER.unpack(d[:64])[6] + 64), "data offset"),
    ("trailing bytes", lambda d: d + b"\0" * 64, "sections end at"),
    ("truncated", lambda d: d[:-8], "sections end at"),
    ("manifest crc", lambda d: reheader(d, manifest_crc=1), "manifest checksum"),
    ("not json", lambda d: with_manifest(d, b'{"graph": '), "not valid UTF-8 JSON"),
    ("not utf-8", lambda d: with_manifest(d, b'{"\xff": 1}'), "not valid UTF-8 JSON"),
    ("nan in manifest", lambda d: with_manifest(d, b'{"metadata": NaN}'), "not valid UTF-8 JSON"),
    ("not an object", lambda d: with_manifest(d, b"[]"), "top level must be an object"),
    ("bad dtype", lambda d: remanifest(d, tensor(0, dtype="object")), "dtype 'object' not in"),
    ("negative shape", lambda d: remanifest(d, tensor(0, shape=[-4])), "shape"),
    ("shape mismatch", lambda d: remanifest(d, tensor(1, shape=[5, 3])), "stored size"),
    ("unaligned", lambda d: remanifest(d, tensor(1, offset=72)), "not 64-byte aligned"),
    ("overlap", lambda d: remanifest(d, tensor(1, offset=0)), "overlaps"),
    ("past data", lambda d: remanifest(d, tensor(2, offset=1 << 30)), "run past"),
    ("duplicate name", lambda d: remanifest(d, tensor(1, name="scale")), "duplicate name"),
    ("bad compression", lambda d: remanifest(d, tensor(0, compression=9)), "unknown compression"),
    ("tensor crc", lambda d: remanifest(d, tensor(2, crc32=7)), "checksum mismatch"),
    ("flipped weight", lambda d: d[:-3] + bytes([d[-3] ^ 1]) + d[-2:], "checksum mismatch"),
    ("dirty padding", lambda d: _dirty_padding(d), "non-zero padding"),
    ("missing section", lambda d: remanifest(d, lambda m: m.pop("graph")), "missing or mistyped 'graph'"),
    ("json under zstd flag", lambda d: reheader(d, flags=MANIFEST_ZSTD), "corrupt zstd frame"),
    ("zstd frame, no size", lambda d: zstd_manifest(d, content_size=False), "declares -1 bytes"),
    ("zstd frame too big", lambda d: zstd_manifest(d, b" " * (MAX_MANIFEST_BYTES + 1)), "declares 67108865 bytes"),
    ("zstd frame cut", lambda d: zstd_manifest(d, cut=4), "corrupt zstd frame"),
    ("zstd not json", lambda d: zstd_manifest(d, b"[1,"), "not valid UTF-8 JSON"),
]


def zstd_manifest(d: bytes, raw: bytes | None = None, content_size: bool = True, cut: int = 0) -> bytes:
    """The file with its manifest (or ``raw``) stored as a zstd frame under the MANIFEST_ZSTD flag."""
    if raw is None:
        raw = d[HEADER_SIZE : HEADER_SIZE + HEADER.unpack(d[:HEADER_SIZE])[5]]
    frame = zstandard.ZstdCompressor(write_content_size=content_size).compress(raw)
    changed = with_manifest(d, frame[: len(frame) - cut])
    return reheader(changed, flags=HEADER.unpack(d[:HEADER_SIZE])[2] | MANIFEST_ZSTD)


def _encryption_entry(nonce: str):
    def edit(manifest):
        manifest["encryption"] = {"algorithm": "AES-256-GCM", "nonce": nonce}

    return edit


def _signed_with_block_moved(d: bytes) -> bytes:
    """A block appended, but the header says it starts 64 bytes early."""
    end = len(d)
    return reheader(d + bytes(104), flags=4, signature_offset=end - 64, signature_size=104)


def _signed_with_bad_block(d: bytes) -> bytes:
    end = len(d)
    return reheader(d + b"NOTASIG!" + bytes(96), flags=4, signature_offset=end, signature_size=104)


def _dirty_padding(d: bytes) -> bytes:
    mf_size, data_offset = HEADER.unpack(d[:64])[5], HEADER.unpack(d[:64])[6]
    at = HEADER_SIZE + mf_size
    return d[:at] + b"\x01" + d[at + 1 :] if at < data_offset else d


@pytest.mark.parametrize("rule", RULES, ids=[r[0] for r in RULES])
def test_each_reader_rule_raises_format_error(rule, tmp_path: Path) -> None:
    _, corrupt, message = rule
    with pytest.raises(FormatError, match=message):
        read_mle(write_bytes(tmp_path, corrupt(RAW)))


def test_graph_rules(tmp_path: Path) -> None:
    names = {"scale", "coef", "bias"}
    bad = dict(golden.GRAPH, nodes=[{"op": "Gemm", "inputs": ["X", "nope"], "outputs": ["y"]}], outputs=["y"])
    with pytest.raises(FormatError, match="undefined tensors"):
        Graph.from_json(bad, names)
    cyclic = dict(golden.GRAPH, nodes=[{"op": "Add", "inputs": ["y", "X"], "outputs": ["y"]}], outputs=["y"])
    with pytest.raises(FormatError, match="undefined"):
        Graph.from_json(cyclic, names)
    with pytest.raises(FormatError, match="not produced"):
        Graph.from_json(dict(golden.GRAPH, outputs=["ghost"]), names)
    unknown = dict(golden.GRAPH, nodes=[*golden.GRAPH["nodes"], {"op": "Teleport", "inputs": ["X"], "outputs": ["t"]}])
    path = tmp_path / "unknown-op.mle"
    write_mle(path, golden.METADATA, unknown, golden.TENSORS)
    with pytest.raises(mle.UnsupportedOpError, match="Teleport"):
        mle.load_model(path)


def _check_only_format_errors(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        mf = read_mle(path)
        Graph.from_json(mf.graph, set(mf.tensors))
    except FormatError:
        pass


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


STORED = st.sampled_from([RAW, ZRAW])


@FUZZ
@given(stored=STORED, cut=st.floats(0, 1, exclude_max=True))
def test_fuzz_truncation(stored: bytes, cut: float, tmp_path: Path) -> None:
    path = tmp_path / "t.mle"
    path.write_bytes(stored[: int(cut * len(stored))])
    with pytest.raises(FormatError):
        read_mle(path)


@FUZZ
@given(
    stored=STORED,
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_fuzz_byte_flips(stored: bytes, flips: list[tuple[float, int]], tmp_path: Path) -> None:
    data = bytearray(stored)
    for where, mask in flips:
        at = int(where * len(data))
        data[at] ^= mask
    _check_only_format_errors(tmp_path / "f.mle", bytes(data))


U64 = st.one_of(st.integers(0, 1 << 64 - 1), st.sampled_from([0, 1, 63, 64, 65, 1 << 31, 1 << 32, (1 << 64) - 1]))


@FUZZ
@given(stored=STORED, manifest_size=U64, data_offset=U64, data_size=U64, flags=st.integers(0, 15))
def test_fuzz_hostile_offsets_and_sizes(stored, manifest_size, data_offset, data_size, flags, tmp_path: Path) -> None:
    data = reheader(stored, manifest_size=manifest_size, data_offset=data_offset, data_size=data_size, flags=flags)
    _check_only_format_errors(tmp_path / "h.mle", data)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    index=st.integers(0, 2),
    key=st.sampled_from(["name", "dtype", "shape", "offset", "nbytes", "crc32", "compression"]),
    value=JSONISH,
)
def test_fuzz_hostile_tensor_table(index: int, key: str, value, tmp_path: Path) -> None:
    _check_only_format_errors(tmp_path / "m.mle", remanifest(RAW, tensor(index, **{key: value})))


@FUZZ
@given(section=st.sampled_from(["graph", "metadata", "tensors"]), value=JSONISH)
def test_fuzz_hostile_manifest_sections(section: str, value, tmp_path: Path) -> None:
    def edit(m):
        m[section] = value

    _check_only_format_errors(tmp_path / "s.mle", remanifest(RAW, edit))


def test_deeply_nested_manifest_is_a_format_error(tmp_path: Path) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    data = reheader(
        RAW[:64] + raw,
        manifest_size=len(raw),
        data_offset=(64 + len(raw) + 63) // 64 * 64,
        data_size=0,
        manifest_crc=SecurityUtils.compute_checksum(raw),
    )
    data += bytes((64 + len(raw) + 63) // 64 * 64 - len(data))
    with pytest.raises(FormatError):
        read_mle(write_bytes(tmp_path, data))


def test_writer_is_deterministic(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
    model = LogisticRegression().fit(X, y)
    for compression in (False, "lz4", "zstd"):
        a, b = tmp_path / f"a-{compression}.mle", tmp_path / f"b-{compression}.mle"
        mle.export_model(model, a, compression=compression)
        mle.export_model(model, b, compression=compression)
        assert a.read_bytes() == b.read_bytes()


def test_compressed_export_round_trips(tmp_path: Path) -> None:
    from sklearn.preprocessing import MinMaxScaler

    # Integer-valued features give repetitive scales: tensors that compress.
    X = np.random.default_rng(1).integers(0, 4, size=(300, 2000)).astype(np.float64)
    model = MinMaxScaler().fit(X)
    for compression, code in (("lz4", 1), ("zstd", 2), (True, 2)):
        path = tmp_path / f"pca-{compression}.mle"
        mle.export_model(model, path, compression=compression)
        codes = {t["compression"] for t in mle.inspect_model(path)["tensors"]}
        assert code in codes
        out = mle.load_model(path, precision="float64", cache=False).transform(X[:10])
        np.testing.assert_allclose(out, model.transform(X[:10]), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="compression must be one of"):
        mle.export_model(model, tmp_path / "x.mle", compression="brotli")


def test_failed_write_leaves_old_file_and_no_temporaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.mle"
    path.write_bytes(RAW)

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_mle(path, golden.METADATA, golden.GRAPH, golden.tensors_for(2), 2)
    assert path.read_bytes() == RAW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mle"]


def test_killed_export_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "big.mle"
    script = textwrap.dedent(f"""
        import numpy as np
        from mle_runtime.writer import write_mle
        big = {{"w": np.random.default_rng(0).normal(size=(64, 1 << 16))}}
        graph = {{"inputs": [{{"name": "X", "shape": [None, 64]}}], "outputs": ["y"],
                  "nodes": [{{"op": "Gemm", "inputs": ["X", "w"], "outputs": ["y"]}}]}}
        print("ready", flush=True)
        while True:
            write_mle({str(target)!r}, {{}}, graph, big)
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=tmp_path) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if target.exists():  # whatever is under the final name is a complete, valid file
        assert read_mle(target).tensors["w"].shape == (64, 1 << 16)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"op": "Clip", "inputs": ["X"], "outputs": ["y"], "attrs": {"low": 0.0}}, "missing a required argument"),
        ({"op": "Exp", "inputs": ["X"], "outputs": ["y"], "attrs": {"base": 2}}, "unexpected keyword"),
        ({"op": "Exp", "inputs": ["X", "X"], "outputs": ["y"]}, "too many positional"),
        ({"op": "Exp", "inputs": ["X"], "outputs": ["y", "z"]}, "declares 2 outputs"),
    ],
)
def test_nodes_that_do_not_fit_their_op_are_format_errors(node, message: str, tmp_path: Path) -> None:
    graph = {"inputs": golden.GRAPH["inputs"], "outputs": ["y"], "nodes": [node]}
    write_mle(tmp_path / "n.mle", {}, graph, golden.TENSORS)
    with pytest.raises(FormatError, match=message):
        mle.load_model(tmp_path / "n.mle")


def test_resource_limits_are_checked_before_anything_is_allocated(tmp_path: Path, monkeypatch) -> None:
    import tracemalloc

    from mle_runtime import graph as graph_module
    from mle_runtime import reader as reader_module

    cases = {
        "a compressed tensor declaring a terabyte": (
            remanifest(RAW, tensor(1, compression=2, shape=[1 << 37])),
            "declares 1099511627776 bytes from",
        ),
        "a huge uncompressed shape": (
            remanifest(RAW, tensor(1, shape=[1 << 40, 1 << 20])),
            "declares 9223372036854775808",
        ),
        "a manifest claiming gigabytes": (reheader(RAW, manifest_size=3 << 30), "exceeds the"),
    }
    for name, (data, message) in cases.items():
        tracemalloc.start()
        with pytest.raises(FormatError, match=message):
            read_mle(write_bytes(tmp_path, data))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 << 20, f"{name}: {peak} bytes allocated before the refusal"
    # The caps themselves, lowered so that a small file can exceed them.
    mf = read_manifest(write_bytes(tmp_path, RAW))
    monkeypatch.setattr(reader_module, "MAX_TENSORS", 2)
    with pytest.raises(FormatError, match="exceed the cap of 2"):
        read_mle(write_bytes(tmp_path, RAW))
    monkeypatch.setattr(graph_module, "MAX_NODES", 3)
    with pytest.raises(FormatError, match="at most 3"):
        Graph.from_json(mf.graph, {"scale", "coef", "bias"})


def _metadata_case(**changes):
    def edit(manifest):
        manifest["metadata"].update(changes)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_metadata_case(run_outputs=[["label"]]), "run_outputs must be a list of output names"),
        (_metadata_case(run_outputs=["label", "ghost"]), r"run_outputs names \['ghost'\]"),
        (_metadata_case(feature_names={"x": 1}), "feature_names must be a list of strings"),
        (_metadata_case(allow_nan=[-1]), "allow_nan must be"),
        (_metadata_case(classes=["a"]), "lists 1 classes, but the model chose class #"),
        (_metadata_case(classes=[1 << 70], classes_dtype="<i8"), "bad classes"),
        (_metadata_case(none_code="-2"), "none_code must be a negative number"),
        (_metadata_case(none_code=0), "none_code must be a negative number"),  # (the code of a string)
        (_metadata_case(split_input_columns={"X": [4]}), "split_input_columns must map"),  # (4 columns)
        (_metadata_case(split_input_columns={"X": [True]}), "split_input_columns must map"),
        (_metadata_case(split_input_columns=[]), "split_input_columns must map"),
        (lambda m: m["graph"]["inputs"][0].update(shape=[None, True]), "bad shape"),
        # a 0-d input ran, and its 0-d output's rows could not be cut: an IndexError
        (lambda m: m["graph"]["inputs"][0].update(shape={}), "bad shape {}; expected a list, rows first"),
        (lambda m: m["graph"]["inputs"][0].update(shape=[]), "bad shape"),
    ],
)
def test_metadata_and_inputs_the_runtime_acts_on_are_checked(edit, message: str, tmp_path: Path) -> None:
    """Found by benchmarks/fuzz_files.py: each once escaped as a TypeError, IndexError or OverflowError."""
    path = write_bytes(tmp_path, remanifest(RAW, edit))
    X = np.array([[1.0, -2.0, 3.0, 0.5], [0.0, 4.0, -1.0, 2.0]], np.float32)
    with pytest.raises(FormatError, match=message):
        mle.load_model(path).run([X])


def test_a_node_whose_attributes_cannot_be_traced_is_a_format_error(tmp_path: Path) -> None:
    node = {"op": "Clip", "inputs": ["X"], "outputs": ["y"], "attrs": {"low": {"x": 1}, "high": [None]}}
    write_mle(tmp_path / "n.mle", {}, {"inputs": golden.GRAPH["inputs"], "outputs": ["y"], "nodes": [node]}, {})
    with pytest.raises(FormatError, match=r"node #0 \(Clip\) cannot be built"):
        mle.load_model(tmp_path / "n.mle").run([np.ones((2, 4), np.float32)])
