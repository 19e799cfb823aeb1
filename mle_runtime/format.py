"""Constants and the fixed header of the .mle container, version 2.

Layout (all integers little-endian)::

    0   header (64 bytes, HEADER below)
    64  manifest: UTF-8 JSON, ``manifest_size`` bytes; one zstd frame of that JSON when the header
        carries MANIFEST_ZSTD
        padding to a 64-byte boundary
    D   tensor data: each tensor at a 64-byte-aligned offset relative to D
        optional signature block (issue 6)

Changelog:
    2 (2026-11-28): first published version of this reader/writer.
    2 + flag MANIFEST_ZSTD (2026-11-28): the writer stores the manifest zstd-compressed when that is
        smaller (a small model's JSON outweighed its weights); files without the flag read as before,
        and older readers refuse the flag by name instead of misreading the file.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np


class MLEFormat:
    """File format constants (names and values fixed by the public API)."""

    MLE_MAGIC: Final = 0x00454C4D  # bytes 4D 4C 45 00: "MLE\0"
    MLE_VERSION: Final = 2

    FEATURE_COMPRESSION: Final = 0x00000001
    FEATURE_ENCRYPTION: Final = 0x00000002
    FEATURE_SIGNING: Final = 0x00000004

    COMPRESSION_NONE: Final = 0
    COMPRESSION_LZ4: Final = 1
    COMPRESSION_ZSTD: Final = 2


# magic, version, flags, header_crc, manifest_offset, manifest_size, data_offset, data_size,
# signature_offset, signature_size, manifest_crc
HEADER: Final = struct.Struct("<IIIIQQQQQII")
HEADER_SIZE: Final = HEADER.size
ALIGNMENT: Final = 64
MAX_MANIFEST_BYTES: Final = 64 << 20
MAX_TENSORS: Final = 1 << 20
MAX_RANK: Final = 16
# A compressed tensor may declare at most MAX_INFLATION x its stored size (+ the slack) raw bytes, so a
# hostile shape cannot make the reader allocate far more memory than the file justifies.
MAX_INFLATION: Final = 1024
INFLATION_SLACK: Final = 1 << 20

# A container flag outside the public MLEFormat set: the manifest is one zstd frame (content size in
# its frame header) of the UTF-8 JSON. ``mle-inspect`` shows it decompressed.
MANIFEST_ZSTD: Final = 0x00000008
MANIFEST_ZSTD_LEVEL: Final = 19
KNOWN_FLAGS: Final = (
    MLEFormat.FEATURE_COMPRESSION | MLEFormat.FEATURE_ENCRYPTION | MLEFormat.FEATURE_SIGNING | MANIFEST_ZSTD
)
COMPRESSIONS: Final = {
    MLEFormat.COMPRESSION_NONE: "none",
    MLEFormat.COMPRESSION_LZ4: "lz4",
    MLEFormat.COMPRESSION_ZSTD: "zstd",
}

# The only dtypes a file may declare; all little-endian, none of them object-like.
DTYPES: Final = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
}


def align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
