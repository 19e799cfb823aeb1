"""Which large model files this user has already seen verified, so that loading an unchanged file again
does not re-read every byte to check its CRCs.

CRC-32 runs at about 4 GB/s here: a 13 MB model costs 3 ms to verify, longer than ``joblib.load`` takes
to read it. Like git's index, a file is recognised by what the kernel says of it — device, inode, size,
modification and change times in nanoseconds — plus its header CRC. Any write through the file system
changes the change time (which user code cannot set), and an export writes a new inode, so a changed
file is always verified again. A record is an empty file whose name is a hash of an HMAC of that
identity under the local user's key (the compile cache's key; ``version_token``): another user cannot
plant one, and checking is one ``stat``.

The checksums guard against accidental damage (a truncated copy, a bad download). Damage that bypasses
the file system (a failing disk under an unchanged inode) would go unseen on later loads; pass
``verify_checksums="always"`` to read every byte each time. Files whose data is smaller than
``MIN_DATA_BYTES`` are always verified: checking them costs less than the record.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from pathlib import Path

from mle_runtime.cache import hmac_key, verified_dir
from mle_runtime.format import HEADER
from mle_runtime.writer import write_atomic

# Below this the checksums cost less than looking the record up (an HMAC and a stat, ~20-30 us in a load):
# loads of float64 Ridge models side by side, every CRC against the record (and the cast copy, whose
# threshold is half this), 2 cores: 62 KiB of data 162 against 250 us, 125 KiB 186 against 200 us,
# 250 KiB 265 against 199 us, 500 KiB 329 against 240 us.
MIN_DATA_BYTES = 192 << 10
# Times the file system stamps come from a coarse clock: a file changed again within the same tick
# would keep its times, so a file touched this recently is not recorded when read ("racy git").
RACY_SECONDS = 2.0


def identity(st: os.stat_result, header_crc: int) -> str:
    """What recognises one version of a file (see the module's docstring)."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{header_crc}"


def version_token(st: os.stat_result, header_crc: int) -> str | None:
    """An HMAC of the file version's identity under the local user's key, None without a key. The names
    of its verified record and of its cast copies (``mle_runtime.cast_cache``) are hashes of it: no other
    user can predict them, and a load computes one HMAC for both."""
    return private_name(b"mle-file", identity(st, header_crc))


def derived_name(token: str, purpose: str) -> str:
    """A file name for one use of a version token (the token itself is never written anywhere)."""
    return hashlib.sha256(f"{purpose}\n{token}".encode()).hexdigest()[:40]


def private_name(purpose: bytes, text: str) -> str | None:
    """An HMAC of ``text`` under the local user's key: a file name no other user can predict or plant."""
    key = hmac_key()
    if key is None:
        return None
    return hmac.digest(key, purpose + b"\n" + text.encode(), "sha256").hex()[:40]


def is_settled(st: os.stat_result) -> bool:
    """Whether the file's times are old enough that a later change would show in them."""
    return time.time() - max(st.st_mtime, st.st_ctime) >= RACY_SECONDS


def _record(token: str | None) -> str | None:
    return None if token is None else os.path.join(verified_dir(), derived_name(token, "verified"))


def is_verified(st: os.stat_result, header_crc: int, token: str | None = None) -> bool:
    """Whether this version of the file has a record; ``token``: its ``version_token``, when known."""
    record = _record(token or version_token(st, header_crc))
    return record is not None and os.path.exists(record)


def remember(st: os.stat_result, header_crc: int, *, written_here: bool = False, token: str | None = None) -> None:
    """Record a file whose every checksum just verified (or that this process just wrote). Best effort."""
    if st.st_size < MIN_DATA_BYTES:
        return
    if not written_here and not is_settled(st):
        return
    record = _record(token or version_token(st, header_crc))
    if record is None:
        return
    try:
        os.makedirs(os.path.dirname(record), mode=0o700, exist_ok=True)
        Path(record).touch()
    except OSError:
        pass


def write_remembered(path: str | os.PathLike[str], chunks: list[bytes | memoryview]) -> int:
    """Write a serialized .mle file atomically and record it: its bytes were checksummed as they were
    serialized, so loading it need not read them again. Returns its size."""
    from mle_runtime.reader import Header  # (the reader imports this module)

    size = write_atomic(path, chunks)
    remember(os.stat(path), Header(*HEADER.unpack(chunks[0])).header_crc, written_here=True)
    return size
