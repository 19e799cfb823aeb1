"""Ed25519 signatures of .mle files.

A signed file ends with a fixed-size block::

    MAGIC (8 bytes) | signer's public key (32) | Ed25519 signature (64)

The signature is over ``DOMAIN + signer's public key + SHA-256(every byte before the block)``: header (with
the signing flag and the block's offset and size already set), manifest, padding and tensor data
(ciphertext, when encrypted); so every byte of the file, the block's included, is covered.
Verification never trusts the file to say whether or where it is signed: it takes the file's last
``BLOCK_SIZE`` bytes, checks the signature with the caller's public key, and only then reads the header,
which must agree. So a changed byte anywhere, a truncated file, an unsigned file, a wrong key, or a
block moved, duplicated or followed by anything all fail the same way: ``SignatureError``. The public key
in the block only names the signer in messages; the caller's key is the one that verifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mle_runtime.errors import SignatureError

MAGIC = b"MLESIG01"
KEY_SIZE = 32
SIGNATURE_SIZE = 64
BLOCK_SIZE = len(MAGIC) + KEY_SIZE + SIGNATURE_SIZE
DOMAIN = b"mle-runtime file signature v1\0"

KeyLike = bytes | bytearray | str | Ed25519PrivateKey | Ed25519PublicKey


def private_key(key: Any) -> Ed25519PrivateKey:
    """An Ed25519 private key from 32 raw bytes, PEM (bytes or str) or a key object."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    raw = _bytes(key, "private_key")
    if len(raw) == KEY_SIZE:
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        loaded = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"private_key: not 32 raw bytes or an unencrypted PEM Ed25519 key ({e})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"private_key: a PEM {type(loaded).__name__}, expected an Ed25519 key")
    return loaded


def public_key(key: Any) -> Ed25519PublicKey:
    """An Ed25519 public key from 32 raw bytes, PEM (bytes or str) or a key object (a private key's
    public half is accepted too)."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    raw = _bytes(key, "public_key")
    if len(raw) == KEY_SIZE:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        loaded = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as e:
        raise ValueError(f"public_key: not 32 raw bytes or a PEM Ed25519 public key ({e})") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(f"public_key: a PEM {type(loaded).__name__}, expected an Ed25519 key")
    return loaded


def _bytes(key: Any, what: str) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"{what} must be bytes, a PEM string or an Ed25519 key object, got {type(key).__name__}")


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()[:16]


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The key's 32 raw bytes."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _message(signer: bytes, digest: bytes) -> bytes:
    return DOMAIN + signer + digest


def block(chunks: Iterable[bytes | memoryview], key: Ed25519PrivateKey) -> bytes:
    """The signature block for a file made of ``chunks`` (everything before the block)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    signer = raw_public_key(key.public_key())
    return MAGIC + signer + key.sign(_message(signer, h.digest()))


def verify(data: bytes | memoryview, key: Ed25519PublicKey) -> int:
    """Check the block at the end of ``data`` (a whole file) with ``key``; returns the block's offset.
    Raises SignatureError, naming why, when the file is not signed by that key exactly as it is."""
    size = len(data)
    if size < BLOCK_SIZE:
        raise SignatureError(f"file is not signed: {size} bytes, too short to hold a signature block")
    start = size - BLOCK_SIZE
    tail = bytes(data[start:])
    if not tail.startswith(MAGIC):
        raise SignatureError("file is not signed: it does not end with a signature block")
    signer = tail[len(MAGIC) : len(MAGIC) + KEY_SIZE]
    signature = tail[len(MAGIC) + KEY_SIZE :]
    digest = hashlib.sha256(data[:start]).digest()
    try:
        key.verify(signature, _message(signer, digest))
    except InvalidSignature:
        given = fingerprint(key)
        named = hashlib.sha256(signer).hexdigest()[:16]
        why = (
            "the file was changed after it was signed"
            if named == given
            else f"it names signer key {named}, not the given key {given} (or the file was changed)"
        )
        raise SignatureError(f"signature does not verify: {why}") from None
    return start
