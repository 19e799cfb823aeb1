"""What the caches hold, and clearing it (``mle cache``): compiled programs (``*.xc``), cast copies
(``*.cast``) and the model files of unpickled runtimes (``pickled/*.mle``), in the folders cache.py
names. Entries of old model versions are never used again and stay until cleared; a use refreshes an
entry's modification time (at most once a day, see ``cache.mark_used``), so ``older_than`` clears what
has not been used for that long. The cache key (``~/.config/mle_runtime/cache.key``) is not touched."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mle_runtime.cache import PICKLED_DIR, SIBLING_DIR, user_cache_dir

KINDS = {".xc": "compiled programs", ".cast": "cast copies", ".mle": "unpickled models"}


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str
    size: int
    modified: float


def folders(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The cache folders to look at: for a model file its sibling ``__mlecache__``, for a folder every
    ``__mlecache__`` under it (or the folder itself, if it is one); with no paths, the per-user cache
    folder and ``$MLE_CACHE_DIR``. Folders that do not exist are left out; a path that does not exist is
    a FileNotFoundError."""
    if not paths:
        found = [user_cache_dir()] + ([Path(os.environ["MLE_CACHE_DIR"])] if os.environ.get("MLE_CACHE_DIR") else [])
        return [f for f in dict.fromkeys(found) if f.is_dir()]
    out: list[Path] = []
    for given in map(Path, paths):
        if given.is_file():
            out.append(given.parent / SIBLING_DIR)
        elif given.is_dir():
            if given.name == SIBLING_DIR:
                out.append(given)
                continue
            for root, dirs, _ in os.walk(given):
                if SIBLING_DIR in dirs:
                    out.append(Path(root) / SIBLING_DIR)
                dirs[:] = [d for d in dirs if d != SIBLING_DIR]
        else:
            raise FileNotFoundError(f"no such model file or folder: {given}")
    return [f for f in dict.fromkeys(out) if f.is_dir()]


def entries(folder: Path) -> list[Entry]:
    """The folder's cache entries (other files are not the cache's and are left alone)."""
    found = []
    candidates = [*folder.glob("*.xc"), *folder.glob("*.cast"), *(folder / PICKLED_DIR).glob("*.mle")]
    for path in candidates:
        try:
            st = path.stat()
        except OSError:  # (removed meanwhile)
            continue
        found.append(Entry(path, KINDS[path.suffix], st.st_size, st.st_mtime))
    return sorted(found, key=lambda e: e.path)


def remove(found: Sequence[Entry], older_than_days: float | None = None) -> list[Entry]:
    """Delete the entries (those unused for more than ``older_than_days``, if given); returns the deleted.
    A process that was about to use one compiles again (or casts, or writes its model file again)."""
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86_400
    removed = []
    for entry in found:
        if cutoff is not None and entry.modified >= cutoff:
            continue
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue
        removed.append(entry)
    return removed


def summary(found: Sequence[Entry]) -> dict[str, dict[str, int]]:
    """Per kind, how many entries and their bytes."""
    out = {kind: {"entries": 0, "bytes": 0} for kind in KINDS.values()}
    for entry in found:
        out[entry.kind]["entries"] += 1
        out[entry.kind]["bytes"] += entry.size
    return out
