"""AES-256-GCM encryption of an .mle file's tensor data.

The whole data section (tensors and their padding, compressed ones as stored) is one GCM message under a
random 96-bit nonce, unique per file, that the manifest records (``"encryption": {"algorithm":
"AES-256-GCM", "nonce": hex}``); the 16-byte tag follows the ciphertext, so the header's data size counts
it. The associated data binds the header and the manifest: any change to either, or to the ciphertext,
fails decryption. The header enters with the fields that signing later sets (the signing flag, the
signature block's offset and size, the header CRC) zeroed, so that an encrypted file can be signed
without being re-encrypted. The manifest stays readable: ``inspect_model`` shows an encrypted model.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mle_runtime.errors import DecryptionError
from mle_runtime.format import HEADER, MLEFormat

ALGORITHM = "AES-256-GCM"
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def check_key(key: Any, what: str) -> bytes:
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be {KEY_SIZE} bytes, got {type(key).__name__}")
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes (AES-256), got {len(key)}")
    return key


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def associated_data(header: bytes, manifest: bytes) -> bytes:
    """The header (signing's fields zeroed) and the manifest as stored."""
    fields = list(HEADER.unpack(header))
    fields[2] &= ~MLEFormat.FEATURE_SIGNING
    fields[3] = 0  # header CRC
    fields[8] = fields[9] = 0  # signature offset and size
    return HEADER.pack(*fields) + manifest


def encrypt(plain: bytes | memoryview, key: bytes, nonce: bytes, aad: bytes) -> bytes:
    """Ciphertext followed by the tag."""
    return AESGCM(key).encrypt(nonce, bytes(plain), aad)


def decrypt_into(sealed: memoryview, out: np.ndarray, key: bytes, nonce: bytes, aad: bytes) -> None:
    """Decrypt ``sealed`` (ciphertext + tag) into ``out`` (uint8, at least as long as the plaintext);
    ``out`` holds nothing usable unless this returns."""
    ciphertext, tag = sealed[:-TAG_SIZE], bytes(sealed[-TAG_SIZE:])
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    # update_into needs room for a block more than the input; the caller's buffer has it.
    try:
        written = decryptor.update_into(ciphertext, out.data)
        decryptor.finalize()
    except InvalidTag:
        out[:] = 0
        raise DecryptionError(
            "decryption failed: wrong decryption_key, or the file was changed after it was encrypted"
        ) from None
    if written != len(ciphertext):
        raise DecryptionError(f"decryption produced {written} bytes, expected {len(ciphertext)}")
