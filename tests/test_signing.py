"""Signed and encrypted models: verified loading fails closed, encryption needs its key, and neither
changes a model's answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zstandard
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

import mle_runtime as mle
from mle_runtime import signing
from mle_runtime.errors import DecryptionError, FormatError, SignatureError
from mle_runtime.format import HEADER, HEADER_SIZE, MANIFEST_ZSTD
from mle_runtime.security import SecurityUtils
from mle_runtime.writer import canonical_json, pack_header

rng = np.random.default_rng(0)
X = rng.normal(size=(300, 6))
y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
MODEL = LogisticRegression().fit(X, y)
PUBLIC, PRIVATE = SecurityUtils.generate_keypair()
OTHER_PUBLIC, OTHER_PRIVATE = SecurityUtils.generate_keypair()
SECRET = bytes(range(32))


def _pem(private: bytes) -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(private)
    return (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def _check_answers(runtime: mle.MLERuntime) -> None:
    labels, proba = runtime.run([X])
    np.testing.assert_array_equal(labels, MODEL.predict(X))
    np.testing.assert_allclose(proba, MODEL.predict_proba(X), rtol=1e-5)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("signed") / "m.mle"
    mle.export_model(MODEL, path, private_key=PRIVATE)
    return path.read_bytes()


def _write(tmp_path: Path, data: bytes, name: str = "case.mle") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- signing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["raw", "pem", "pem str", "object"])
def test_signed_export_loads_verified_with_any_key_form(tmp_path, form) -> None:
    private_pem, public_pem = _pem(PRIVATE)
    keys = {
        "raw": (PRIVATE, PUBLIC),
        "pem": (private_pem, public_pem),
        "pem str": (private_pem.decode(), public_pem.decode()),
        "object": (Ed25519PrivateKey.from_private_bytes(PRIVATE), Ed25519PrivateKey.from_private_bytes(PRIVATE)),
    }
    private, public = keys[form]
    path = tmp_path / "m.mle"
    mle.export_model(MODEL, path, private_key=private)
    runtime = mle.load_model(path, verify_signature=True, public_key=public)
    info = runtime.get_model_info()
    assert info["features"]["signing"] is True
    assert info["signature"] == {"verified": True, "signer": signing.fingerprint(signing.public_key(PUBLIC))}
    _check_answers(runtime)
    runtime = mle.MLERuntime()
    runtime.load_model(path, verify_signature=True, public_key=public)
    _check_answers(runtime)
    unverified = mle.load_model(path)  # a signed file loads without verification too
    assert unverified.get_model_info()["signature"]["verified"] is False
    _check_answers(unverified)


def test_signing_is_deterministic_and_adds_one_block(tmp_path, signed) -> None:
    mle.export_model(MODEL, tmp_path / "again.mle", private_key=PRIVATE)
    assert (tmp_path / "again.mle").read_bytes() == signed
    mle.export_model(MODEL, tmp_path / "plain.mle")
    plain = (tmp_path / "plain.mle").read_bytes()
    assert len(signed) == len(plain) + signing.BLOCK_SIZE
    assert signed[HEADER_SIZE : len(plain)] == plain[HEADER_SIZE:]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _regions(data: bytes) -> dict[str, int]:
    h = HEADER.unpack(data[:HEADER_SIZE])
    return {
        "header flags": 8,
        "header crc": 12,
        "manifest": HEADER_SIZE + 3,
        "tensor data": h[6] + 5,
        "signer key in block": len(data) - signing.SIGNATURE_SIZE - 3,
        "signature": len(data) - 1,
    }


def _tampered(data: bytes) -> dict[str, bytes]:
    block = data[-signing.BLOCK_SIZE :]
    cases = {f"flipped {name}": _flip(data, at) for name, at in _regions(data).items()}
    cases.update(
        {
            "truncated by a byte": data[:-1],
            "block cut off": data[: -signing.BLOCK_SIZE],
            "block duplicated": data + block,
            "bytes after the block": data + b"\0" * 64,
            "block moved before the data": data[:HEADER_SIZE] + block + data[HEADER_SIZE : -signing.BLOCK_SIZE],
        }
    )
    return cases


CASES = list(_tampered(b"\0" * 4096))


@pytest.mark.parametrize("case", CASES)
def test_any_change_to_a_signed_file_is_a_signature_error(tmp_path, signed, case) -> None:
    path = _write(tmp_path, _tampered(signed)[case])
    with pytest.raises(SignatureError):
        mle.load_model(path, verify_signature=True, public_key=PUBLIC)
    with pytest.raises(SignatureError):
        SecurityUtils.verify_model(path, PUBLIC)


def test_wrong_key_unsigned_file_and_forged_flag_fail(tmp_path, signed) -> None:
    path = _write(tmp_path, signed)
    with pytest.raises(SignatureError, match=f"names signer key {signing.fingerprint(signing.public_key(PUBLIC))}"):
        mle.load_model(path, verify_signature=True, public_key=OTHER_PUBLIC)
    mle.export_model(MODEL, tmp_path / "plain.mle")
    with pytest.raises(SignatureError, match="not signed"):
        mle.load_model(tmp_path / "plain.mle", verify_signature=True, public_key=PUBLIC)
    # The signing flag and fields set on an unsigned file, its CRCs recomputed: a block that isn't one.
    plain = (tmp_path / "plain.mle").read_bytes()
    forged = bytearray(plain + bytes(signing.BLOCK_SIZE))
    fields = list(HEADER.unpack(plain[:HEADER_SIZE]))
    manifest = plain[HEADER_SIZE : HEADER_SIZE + fields[5]]
    end = fields[6] + fields[7]
    forged[:HEADER_SIZE] = pack_header(fields[2] | 4, manifest, fields[6], fields[7], end, signing.BLOCK_SIZE)
    forged_path = _write(tmp_path, bytes(forged), "forged.mle")
    with pytest.raises(SignatureError, match="not signed"):
        mle.load_model(forged_path, verify_signature=True, public_key=PUBLIC)
    with pytest.raises(FormatError, match="no signature block"):
        mle.load_model(forged_path)


def test_verify_signature_needs_a_key(tmp_path, signed) -> None:
    with pytest.raises(ValueError, match="needs public_key"):
        mle.load_model(_write(tmp_path, signed), verify_signature=True)
    with pytest.raises(ValueError, match="public_key"):
        mle.load_model(_write(tmp_path, signed), verify_signature=True, public_key=b"short")
    with pytest.raises(ValueError, match="private_key"):
        mle.export_model(MODEL, tmp_path / "x.mle", private_key=b"short")
    assert not (tmp_path / "x.mle").exists()


def test_a_public_key_alone_verifies(tmp_path, signed) -> None:
    with pytest.raises(SignatureError):
        mle.load_model(_write(tmp_path, _flip(signed, HEADER_SIZE + 3)), public_key=PUBLIC)


def test_sign_model_in_place_to_a_new_path_and_re_signing(tmp_path) -> None:
    path = tmp_path / "m.mle"
    mle.export_model(MODEL, path)
    out = SecurityUtils.sign_model(path, PRIVATE, output_path=tmp_path / "copy.mle")
    assert out["signer"] == signing.fingerprint(signing.public_key(PUBLIC))
    _check_answers(mle.load_model(tmp_path / "copy.mle", verify_signature=True, public_key=PUBLIC))
    with pytest.raises(SignatureError, match="not signed"):
        mle.load_model(path, verify_signature=True, public_key=PUBLIC)
    SecurityUtils.sign_model(path, PRIVATE)
    assert path.read_bytes() == (tmp_path / "copy.mle").read_bytes()
    mle.export_model(MODEL, tmp_path / "exported-signed.mle", private_key=PRIVATE)
    assert path.read_bytes() == (tmp_path / "exported-signed.mle").read_bytes()
    SecurityUtils.sign_model(path, OTHER_PRIVATE)  # replaces the signature
    _check_answers(mle.load_model(path, verify_signature=True, public_key=OTHER_PUBLIC))
    with pytest.raises(SignatureError):
        mle.load_model(path, verify_signature=True, public_key=PUBLIC)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sign_model_refuses_a_damaged_file(tmp_path) -> None:
    path = tmp_path / "m.mle"
    mle.export_model(MODEL, path)
    damaged = _flip(path.read_bytes(), len(path.read_bytes()) - 2)
    path.write_bytes(damaged)
    with pytest.raises(FormatError, match="checksum mismatch"):
        SecurityUtils.sign_model(path, PRIVATE)
    assert path.read_bytes() == damaged


SIGNED_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SIGNED_FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzz_any_flip_of_a_signed_file_is_a_signature_error(signed, flips, tmp_path) -> None:
    data = bytearray(signed)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    if bytes(data) == signed:
        return
    with pytest.raises(SignatureError):
        mle.load_model(_write(tmp_path, bytes(data)), verify_signature=True, public_key=PUBLIC)


# -- encryption ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [False, "zstd"])
def test_encrypted_export_needs_its_key(tmp_path, compression) -> None:
    path = tmp_path / "m.mle"
    mle.export_model(MODEL, path, encryption_key=SECRET, compression=compression)
    runtime = mle.load_model(path, decryption_key=SECRET)
    assert runtime.get_model_info()["features"]["encryption"] is True
    _check_answers(runtime)
    with pytest.raises(DecryptionError, match="pass decryption_key"):
        mle.load_model(path)
    with pytest.raises(DecryptionError, match="wrong decryption_key"):
        mle.load_model(path, decryption_key=bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        mle.load_model(path, decryption_key=b"too short")
    info = mle.inspect_model(path)
    assert info["basic_info"]["features"]["encryption"] is True
    assert info["basic_info"]["metadata"]["estimator"].endswith("LogisticRegression")


def test_each_encrypted_export_has_its_own_nonce_and_hides_the_weights(tmp_path) -> None:
    mle.export_model(MODEL, tmp_path / "a.mle", encryption_key=SECRET)
    mle.export_model(MODEL, tmp_path / "b.mle", encryption_key=SECRET)
    a, b = (tmp_path / "a.mle").read_bytes(), (tmp_path / "b.mle").read_bytes()
    assert a != b
    assert MODEL.coef_.astype("<f8").tobytes()[:16] not in a


def test_a_key_for_a_plain_file_or_a_bad_encryption_key_is_refused(tmp_path) -> None:
    mle.export_model(MODEL, tmp_path / "plain.mle")
    with pytest.raises(DecryptionError, match="not encrypted"):
        mle.load_model(tmp_path / "plain.mle", decryption_key=SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        mle.export_model(MODEL, tmp_path / "bad.mle", encryption_key=b"x" * 16)
    with pytest.raises(TypeError, match="32 bytes"):
        mle.export_model(MODEL, tmp_path / "bad.mle", encryption_key="a password")


def _with_manifest(data: bytes, edit) -> bytes:
    """The file with its manifest edited and every CRC recomputed, tensor data untouched: only the
    encryption's associated data can tell."""
    fields = list(HEADER.unpack(data[:HEADER_SIZE]))
    raw = data[HEADER_SIZE : HEADER_SIZE + fields[5]]
    manifest = json.loads(zstandard.ZstdDecompressor().decompress(raw) if fields[2] & MANIFEST_ZSTD else raw)
    edit(manifest)
    text = zstandard.ZstdCompressor(write_content_size=True).compress(canonical_json(manifest))
    assert (HEADER_SIZE + len(text) + 63) // 64 * 64 == fields[6], "edit must keep the data offset"
    head = pack_header(fields[2] | MANIFEST_ZSTD, text, fields[6], fields[7], fields[8], fields[9])
    return head + text + bytes(fields[6] - HEADER_SIZE - len(text)) + data[fields[6] :]


@pytest.mark.parametrize("where", ["ciphertext", "tag", "manifest, CRCs recomputed"])
def test_changed_encrypted_files_do_not_decrypt(tmp_path, where) -> None:
    path = tmp_path / "m.mle"
    mle.export_model(MODEL, path, encryption_key=SECRET)
    data = path.read_bytes()
    data_offset = HEADER.unpack(data[:HEADER_SIZE])[6]
    if where == "ciphertext":
        changed = _flip(data, data_offset + 10)
    elif where == "tag":
        changed = _flip(data, len(data) - 1)
    else:

        def edit(manifest):
            manifest["metadata"]["estimator"] = manifest["metadata"]["estimator"][:-1] + "X"

        changed = _with_manifest(data, edit)
    path.write_bytes(changed)
    with pytest.raises(DecryptionError, match="changed after it was encrypted"):
        mle.load_model(path, decryption_key=SECRET)


def test_signed_and_encrypted_and_signing_an_encrypted_file(tmp_path) -> None:
    both = tmp_path / "both.mle"
    mle.export_model(MODEL, both, encryption_key=SECRET, private_key=PRIVATE)
    _check_answers(mle.load_model(both, verify_signature=True, public_key=PUBLIC, decryption_key=SECRET))
    assert SecurityUtils.verify_model(both, PUBLIC)["encrypted"] is True
    with pytest.raises(SignatureError):
        mle.load_model(both, verify_signature=True, public_key=OTHER_PUBLIC, decryption_key=SECRET)
    later = tmp_path / "later.mle"
    mle.export_model(MODEL, later, encryption_key=SECRET)
    SecurityUtils.sign_model(later, PRIVATE)
    runtime = mle.load_model(later, verify_signature=True, public_key=PUBLIC, decryption_key=SECRET)
    assert runtime.get_model_info()["features"] == {"compression": False, "encryption": True, "signing": True}
    _check_answers(runtime)


def test_decrypted_weights_never_reach_the_disk(tmp_path) -> None:
    """The float32 copy a large float64 model gets is skipped for encrypted files."""
    wide = rng.normal(size=(600, 700))
    pca = PCA(400, svd_solver="randomized", random_state=0).fit(wide)
    path = tmp_path / "pca.mle"
    mle.export_model(pca, path, encryption_key=SECRET)
    runtime = mle.load_model(path, decryption_key=SECRET)
    out = runtime.run([wide[:5].astype(np.float32)])[0]
    np.testing.assert_allclose(out, pca.transform(wide[:5]), rtol=1e-4, atol=1e-4)
    assert runtime.get_model_info()["cache"]["parameters"] == "cast"
    assert list(tmp_path.rglob("*.cast")) == []


@SIGNED_FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzz_flips_of_an_encrypted_file_fail_cleanly(flips, tmp_path) -> None:
    path = tmp_path / "e.mle"
    if not path.exists():
        mle.export_model(MODEL, path, encryption_key=SECRET)
    original = path.read_bytes()
    data = bytearray(original)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    case = _write(tmp_path, bytes(data), "flipped.mle")
    if bytes(data) == original:
        return
    with pytest.raises((FormatError, DecryptionError)):
        mle.load_model(case, decryption_key=SECRET)


# -- CLI -----------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mle_runtime.cli", *args], capture_output=True, text=True, timeout=300, env=os.environ
    )


def test_cli_keygen_sign_verify(tmp_path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    done = _cli("keygen", str(private), str(public))
    assert done.returncode == 0, done.stderr
    assert private.stat().st_mode & 0o077 == 0
    assert _cli("keygen", str(private), str(public)).returncode == 1  # no silent overwrite
    model = tmp_path / "m.mle"
    mle.export_model(MODEL, model)
    unsigned = _cli("verify", str(model), "--key", str(public))
    assert unsigned.returncode == 1 and "not signed" in unsigned.stderr and "Traceback" not in unsigned.stderr
    signed = _cli("sign", str(model), "--key", str(private), "-o", str(tmp_path / "s.mle"))
    assert signed.returncode == 0, signed.stderr
    ok = _cli("verify", str(tmp_path / "s.mle"), "--key", str(public))
    assert ok.returncode == 0 and "signature OK" in ok.stdout
    _check_answers(mle.load_model(tmp_path / "s.mle", verify_signature=True, public_key=public.read_bytes()))
    np.save(tmp_path / "rows.npy", X[:5])
    (tmp_path / "secret.key").write_bytes(SECRET)
    mle.export_model(MODEL, tmp_path / "e.mle", encryption_key=SECRET, private_key=private.read_bytes())
    bench = _cli(
        "benchmark",
        str(tmp_path / "e.mle"),
        str(tmp_path / "rows.npy"),
        "--runs",
        "2",
        "--public-key",
        str(public),
        "--decryption-key",
        str(tmp_path / "secret.key"),
    )
    assert bench.returncode == 0, bench.stderr
    locked = _cli("benchmark", str(tmp_path / "e.mle"), str(tmp_path / "rows.npy"), "--runs", "2")
    assert locked.returncode == 1 and "decryption_key" in locked.stderr
    data = (tmp_path / "s.mle").read_bytes()
    (tmp_path / "s.mle").write_bytes(_flip(data, HEADER_SIZE + 1))
    bad = _cli("verify", str(tmp_path / "s.mle"), "--key", str(public))
    assert bad.returncode == 1 and "does not verify" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli("sign", str(model), "--key", str(tmp_path / "nope.pem"))
    assert missing.returncode == 1 and "no such key file" in missing.stderr
