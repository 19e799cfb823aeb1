"""Compiled-executable cache next to the model file, with a local-user trust check.

A cache entry is native code that JAX unpickles, so it is only handed to JAX after an HMAC-SHA256
under a key private to the local user verifies it (key file ``~/.config/mle_runtime/cache.key``,
mode 0600). A missing, truncated, foreign or tampered entry is ignored and recompiled, never executed.

Where entries live, first match wins: ``cache_dir=`` argument, ``$MLE_CACHE_DIR``, the folder
``__mlecache__`` beside the model, and when that folder cannot be written, the per-user folder
``$XDG_CACHE_HOME/mle_runtime`` (``~/.cache/mle_runtime``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mle_runtime.writer import write_atomic

log = logging.getLogger("mle_runtime.cache")

ENTRY_MAGIC = b"MLEXC001"
SIBLING_DIR = "__mlecache__"
PICKLED_DIR = "pickled"  # (the model files of unpickled runtimes)


def _xdg(variable: str, default: str) -> str:
    # This runs on every load: plain strings, and the expansion remembered for the environment it saw.
    return _xdg_path(os.environ.get(variable), os.environ.get("HOME"), default)


@functools.lru_cache(maxsize=16)
def _xdg_path(value: str | None, home: str | None, default: str) -> str:
    return os.path.join(value or os.path.join(os.path.expanduser("~"), default), "mle_runtime")


def user_cache_dir() -> Path:
    return Path(_user_cache_folder())


def _user_cache_folder() -> str:
    return _xdg("XDG_CACHE_HOME", ".cache")


_keys: dict[str, bytes | None] = {}


def hmac_key() -> bytes | None:
    """The local user's secret (read once per process), created on first use; None when it cannot be
    had safely."""
    path = os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "cache.key")
    if path not in _keys:
        _keys[path] = _read_or_create_key(Path(path))
    return _keys[path]


def _read_or_create_key(path: Path) -> bytes | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        st = path.stat()
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("cache key %s is not private to this user; compile cache disabled", path)
            return None
        key = path.read_bytes()
    except OSError as e:
        log.debug("no cache key (%s); compile cache disabled", e)
        return None
    return key if len(key) == 32 else None


def cache_dirs(model_path: Path, cache_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to look in and write to, in order."""
    return [Path(d) for d in cache_folders(model_path, cache_dir)]


def cache_folders(model_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> list[str]:
    """``cache_dirs`` as plain strings, for the cast-copy lookup that runs on every load of a large model."""
    if cache_dir is not None:
        return [os.fspath(cache_dir)]
    if os.environ.get("MLE_CACHE_DIR"):
        return [os.environ["MLE_CACHE_DIR"]]
    return [os.path.join(_folder_of(os.fspath(model_path)), SIBLING_DIR), _user_cache_folder()]


def _folder_of(path: str) -> str:
    """The folder that holds the file, through symbolic links. ``realpath`` costs an lstat per path
    component (~15 us in a load); a path with no ".." whose last component is no link names that folder
    already (a linked folder on the way resolves to the same one)."""
    if ".." in path or os.path.islink(path):
        return os.path.dirname(os.path.realpath(path))
    return os.path.dirname(os.path.abspath(path))


def unpickled_model_path(data: bytes, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where the model file of an unpickled runtime lies: in the cache folder (``cache_dir``,
    $MLE_CACHE_DIR or the per-user one; the system's temporary folder where that cannot be written), named
    by the SHA-256 of its bytes and written once, so that every process unpickling the same model maps one
    file and shares its compiled programs. A file there whose bytes differ is written over."""
    name = f"{hashlib.sha256(data).hexdigest()}.mle"
    base = os.fspath(cache_dir) if cache_dir is not None else os.environ.get("MLE_CACHE_DIR") or _user_cache_folder()
    for folder in (Path(base) / PICKLED_DIR, Path(tempfile.gettempdir()) / f"mle_runtime-{_user_id()}" / PICKLED_DIR):
        path = folder / name
        try:
            if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
                mark_used(str(path))
                return path
            write_atomic(path, [data])
            return path
        except OSError as e:
            log.info("cannot keep an unpickled model in %s (%s)", folder, e)
    raise OSError(f"no folder to keep an unpickled model file in (tried {base} and the temporary folder)")


USE_MARK_SECONDS = 86_400


def mark_used(path: str, modified: float | None = None) -> None:
    """Refresh a cache entry's modification time when it is older than a day, so that ``mle cache --clear
    --older-than DAYS`` (cache_contents.py) keeps what is in use: at most one metadata write a day an entry.
    Best effort (a read-only folder keeps its times)."""
    try:
        if modified is None:
            modified = os.stat(path).st_mtime
        if time.time() - modified > USE_MARK_SECONDS:
            os.utime(path)
    except OSError:
        pass


def _user_id() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def cache_key(parts: Sequence[tuple[str, str]]) -> str:
    """SHA-256 over the ordered, named key parts."""
    text = "\n".join(f"{k}={v}" for k, v in parts)
    log.debug("cache key parts: %s", text.replace("\n", "; "))
    return hashlib.sha256(text.encode()).hexdigest()


class ExecutableCache:
    def __init__(self, dirs: list[Path]):
        self.dirs = dirs
        self._key = hmac_key() if dirs else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def _mac(self, key: str, payload: bytes) -> bytes:
        if self._key is None:
            raise RuntimeError("compile cache is disabled: no local cache key")
        return hmac.new(self._key, ENTRY_MAGIC + key.encode() + payload, hashlib.sha256).digest()

    def load(self, key: str) -> bytes | None:
        """The trusted payload stored under ``key``, or None."""
        if not self.enabled:
            return None
        for d in self.dirs:
            path = d / f"{key}.xc"
            try:
                blob = path.read_bytes()
            except OSError:
                continue
            head = len(ENTRY_MAGIC) + 32
            if len(blob) < head or not blob.startswith(ENTRY_MAGIC):
                log.info("ignoring malformed cache entry %s", path)
                continue
            payload = blob[head:]
            if not hmac.compare_digest(blob[len(ENTRY_MAGIC) : head], self._mac(key, payload)):
                log.info("ignoring cache entry %s: its HMAC does not verify (foreign or tampered)", path)
                continue
            mark_used(str(path))
            return payload
        return None

    def store(self, key: str, payload: bytes) -> Path | None:
        """Write atomically to the first folder that accepts it."""
        if not self.enabled:
            return None
        blob = ENTRY_MAGIC + self._mac(key, payload) + payload
        for d in self.dirs:
            try:
                write_atomic(d / f"{key}.xc", [blob])
            except OSError as e:
                log.debug("could not write cache entry in %s (%s)", d, e)
                continue
            return d / f"{key}.xc"
        return None


def serialize_compiled(compiled: Any) -> bytes | None:
    from jax.experimental import serialize_executable

    try:
        payload, _, _ = serialize_executable.serialize(compiled)
    except Exception as e:  # (a backend that cannot serialize just runs uncached)
        log.debug("executable not serializable on this backend: %s", e)
        return None
    return bytes(payload)


def deserialize_compiled(payload: bytes, in_tree: Any, out_tree: Any, device: Any) -> Any | None:
    from jax.experimental import serialize_executable

    try:
        return serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, backend=device.client, execution_devices=[device]
        )
    except Exception as e:  # (a stale entry from another build: recompile)
        log.info("cache entry could not be loaded (%s); recompiling", e)
        return None


def verified_dir() -> str:
    """Records of verified model files (``mle_runtime.verified``)."""
    return os.path.join(_user_cache_folder(), "verified")


_fingerprint: list[str] = []


def code_fingerprint() -> str:
    """SHA-256 of the sources that decide what a compiled graph computes (the ops and the lowering):
    an install that changes them, even under the same version number, never reuses an old entry."""
    if not _fingerprint:
        root = Path(__file__).parent
        digest = hashlib.sha256()
        for path in [*sorted((root / "ops").glob("*.py")), root / "lowering.py"]:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        _fingerprint.append(digest.hexdigest())
    return _fingerprint[0]
