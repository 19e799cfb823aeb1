"""Checksums, hashes, Ed25519 keys, and signing and verifying .mle files (``mle_runtime.signing``)."""

from __future__ import annotations

import hashlib
import os
import zlib
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class SecurityUtils:
    """Utilities for model security and integrity."""

    @staticmethod
    def compute_checksum(data: bytes | bytearray | memoryview) -> int:
        """CRC-32 of ``data`` (the per-tensor and header checksum of the container)."""
        return zlib.crc32(data) & 0xFFFFFFFF

    @staticmethod
    def compute_hash(data: bytes | bytearray | memoryview) -> str:
        """SHA-256 of ``data`` as lowercase hex."""
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def generate_keypair() -> tuple[bytes, bytes]:
        """A new Ed25519 key pair as raw bytes: ``(public_key, private_key)``, 32 bytes each."""
        private = Ed25519PrivateKey.generate()
        private_raw = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return public_raw, private_raw

    @staticmethod
    def sign_model(
        path: str | os.PathLike[str], private_key: Any, output_path: str | os.PathLike[str] | None = None
    ) -> dict[str, Any]:
        """Sign an existing .mle file (an earlier signature is replaced), in place or to ``output_path``;
        the write is atomic. The file is validated first (every checksum, unless its data is encrypted).
        Returns the path, the signer's key fingerprint and the new size."""
        from mle_runtime import signing
        from mle_runtime.format import HEADER_SIZE, MLEFormat
        from mle_runtime.reader import read_manifest, read_mle
        from mle_runtime.writer import pack_header, write_atomic

        key = signing.private_key(private_key)
        mf = read_manifest(path)
        if mf.nonce is None:
            read_mle(path, verify_checksums="always")
        h = mf.header
        end = h.data_offset + h.data_size
        with open(path, "rb") as f:
            f.seek(HEADER_SIZE)
            body = f.read(end - HEADER_SIZE)
        if len(body) != end - HEADER_SIZE:
            raise ValueError(f"{path}: file changed while being signed")
        head = pack_header(
            h.flags | MLEFormat.FEATURE_SIGNING, mf.manifest_bytes, h.data_offset, h.data_size, end, signing.BLOCK_SIZE
        )
        chunks: list[bytes | memoryview] = [head, body]
        chunks.append(signing.block(chunks, key))
        target = output_path if output_path is not None else path
        size = write_atomic(target, chunks)
        return {"path": os.fspath(target), "signer": signing.fingerprint(key.public_key()), "file_size": size}

    @staticmethod
    def verify_model(path: str | os.PathLike[str], public_key: Any) -> dict[str, Any]:
        """Check a file's signature with ``public_key`` and validate the file (every checksum, unless its
        data is encrypted); raises ``SignatureError`` (or another ``FormatError``) when it fails."""
        from mle_runtime import signing
        from mle_runtime.reader import read_verified

        key = signing.public_key(public_key)
        mf = read_verified(path, key)
        return {
            "path": os.fspath(path),
            "signer": signing.fingerprint(key),
            "file_size": mf.file_size,
            "encrypted": mf.nonce is not None,
        }
