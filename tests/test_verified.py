"""Checksums of a large file are verified once per file version: an unchanged file loads without
re-reading its bytes, and any change to the file (or a copy of it) is verified again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

import mle_runtime as mle
from mle_runtime import verified
from mle_runtime.errors import FormatError
from mle_runtime.reader import read_manifest, read_mle
from mle_runtime.security import SecurityUtils


@pytest.fixture(scope="module")
def large_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X = np.random.default_rng(0).normal(size=(400, 600))
    path = tmp_path_factory.mktemp("verified") / "pca.mle"
    mle.export_model(PCA(300, random_state=0).fit(X), path)
    assert path.stat().st_size > verified.MIN_DATA_BYTES
    return path


def _checksummed_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the buffers whose CRC-32 is computed from now on."""
    seen: list[int] = []
    original = SecurityUtils.compute_checksum

    def counting(data: bytes | memoryview) -> int:
        seen.append(len(data))
        return original(data)

    monkeypatch.setattr(SecurityUtils, "compute_checksum", staticmethod(counting))
    return seen


def test_an_exported_file_loads_without_rereading_its_tensors(large_model, monkeypatch) -> None:
    seen = _checksummed_bytes(monkeypatch)
    read_mle(large_model)
    # header and manifest only
    assert sum(seen) < 64 * 1024
    seen.clear()
    read_mle(large_model, verify_checksums="always")
    assert sum(seen) > verified.MIN_DATA_BYTES


def test_a_copy_is_verified_and_a_changed_byte_is_caught(large_model, tmp_path, monkeypatch) -> None:
    copy = tmp_path / "copy.mle"
    shutil.copyfile(large_model, copy)
    seen = _checksummed_bytes(monkeypatch)
    read_mle(copy)
    assert sum(seen) > verified.MIN_DATA_BYTES

    # Remembered once it is old enough not to be racy; then a write in place must void the record.
    old = os.stat(copy).st_mtime - 10
    os.utime(copy, (old, old))
    monkeypatch.setattr(verified, "RACY_SECONDS", -1e9)
    read_mle(copy)
    assert verified.is_verified(os.stat(copy), read_manifest(copy).header.header_crc)

    mf = read_manifest(copy)
    tensor = mf.tensor_table[0]
    at = mf.header.data_offset + tensor["offset"] + 8
    with open(copy, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(FormatError, match="checksum mismatch"):
        read_mle(copy)


def test_always_ignores_a_record(large_model, tmp_path, monkeypatch) -> None:
    copy = tmp_path / "damaged.mle"
    data = bytearray(large_model.read_bytes())
    mf = read_manifest(large_model)
    data[mf.header.data_offset + mf.tensor_table[0]["offset"] + 8] ^= 0x01
    copy.write_bytes(bytes(data))
    # as if the bytes had rotted after a verification that the record remembers
    monkeypatch.setattr(verified, "is_verified", lambda *_: True)
    read_mle(copy)
    with pytest.raises(FormatError, match="checksum mismatch"):
        read_mle(copy, verify_checksums="always")


def test_records_are_keyed_by_the_local_secret(large_model, monkeypatch) -> None:
    st, crc = os.stat(large_model), read_manifest(large_model).header.header_crc
    assert verified.is_verified(st, crc)
    monkeypatch.setattr(verified, "hmac_key", lambda: b"\x01" * 32)
    assert not verified.is_verified(st, crc)
    monkeypatch.setattr(verified, "hmac_key", lambda: None)
    assert not verified.is_verified(st, crc)


def test_bad_option_is_a_value_error(large_model) -> None:
    with pytest.raises(ValueError, match="verify_checksums must be"):
        mle.load_model(large_model, verify_checksums="sometimes")
