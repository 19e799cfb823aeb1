"""Checksums, hashes and Ed25519 keys. Signing files arrives with issue 6; keys work now."""

from __future__ import annotations

import hashlib
import zlib

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
