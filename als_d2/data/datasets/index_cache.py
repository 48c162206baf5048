"""On-disk cache of dataset indexes, invalidated by a cheap fingerprint of the tree.

Cache files live in ``$ALS_D2_CACHE`` (default ``~/.cache/als_d2/``), under
``index/<kind>-<hash>.pkl`` where the hash is taken over the key (absolute root, split,
layout, ...). A cache file holds ``{"version", "key", "fingerprint", "payload"}`` and is
used only when all three match.

The fingerprint of a tree is ``[(path, mtime_ns, entry count)]`` of its directories (the
class folders of images and annotations) plus ``(path, mtime_ns, size)`` of single files
(CSV, synset mapping): adding, removing or renaming a file changes its folder's mtime
and/or entry count. Editing a file in place under the same name is *not* detected: delete
the cache file (its path is logged) or set ``ALS_D2_CACHE`` to a fresh folder.

Cache files are written and read by :mod:`als_d2.checkpoint.file_io`: atomically
(temporary file, fsync, rename), and with the numpy-only unpickler (no pickled code runs,
even from a tampered cache; anything else is rebuilt). Concurrent builders of the same
key (several ranks on one machine) are serialized by a lock file where ``fcntl`` exists.
"""

import contextlib
import hashlib
import logging
import os
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "cache_root",
    "cache_path",
    "tree_fingerprint",
    "load_cached",
    "save_cached",
    "cache_lock",
    "load_or_build",
]

logger = logging.getLogger(__name__)


def cache_root() -> str:
    """``$ALS_D2_CACHE`` or ``~/.cache/als_d2``."""
    default = os.path.join("~", ".cache", "als_d2")
    return os.path.expanduser(os.environ.get("ALS_D2_CACHE") or default)


def cache_path(kind: str, key: Sequence[Any], root: Optional[str] = None) -> str:
    digest = hashlib.sha1(repr(tuple(key)).encode("utf-8")).hexdigest()[:20]
    return os.path.join(root or cache_root(), "index", f"{kind}-{digest}.pkl")


def _dir_entry(path: str) -> Tuple[str, int, int]:
    try:
        st = os.stat(path)
        with os.scandir(path) as it:
            count = sum(1 for _ in it)
        return (path, st.st_mtime_ns, count)
    except FileNotFoundError:
        return (path, -1, -1)


def _file_entry(path: str) -> Tuple[str, int, int]:
    try:
        st = os.stat(path)
        return (path, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return (path, -1, -1)


def tree_fingerprint(
    dirs: Iterable[str], subdirs_of: Iterable[str] = (), files: Iterable[str] = ()
) -> List[Tuple[str, int, int]]:
    """Fingerprint of ``dirs``, of every sub-folder of each folder in ``subdirs_of`` (which
    are fingerprinted themselves too) and of ``files``. Missing paths are recorded as such.
    Folders are listed by 8 threads (cheap: no file is opened)."""
    dirs = list(dict.fromkeys(list(dirs) + list(subdirs_of)))
    for parent in subdirs_of:
        try:
            with os.scandir(parent) as it:
                dirs.extend(sorted(e.path for e in it if e.is_dir()))
        except FileNotFoundError:
            pass
    with ThreadPoolExecutor(max_workers=8) as pool:
        entries = list(pool.map(_dir_entry, dirs))
    return entries + [("file:" + p, *_file_entry(p)[1:]) for p in files]


def load_cached(path: str, version: int, key: Sequence[Any], fingerprint) -> Optional[Any]:
    """The cached payload, or None when absent, stale (other version/key/fingerprint) or
    unreadable (a warning says so; the caller rebuilds and overwrites it)."""
    from ...checkpoint.file_io import (
        safe_pickle_load,
    )  # here: the checkpoint package imports detectron2

    try:
        with open(path, "rb") as f:
            blob = safe_pickle_load(f)
    except FileNotFoundError:
        return None
    except Exception as e:  # truncated / corrupt file
        logger.warning(f"Ignoring unreadable index cache {path}: {e!r}")
        return None
    if not isinstance(blob, dict) or blob.get("version") != version or blob.get("key") != list(key):
        return None
    if blob.get("fingerprint") != fingerprint:
        logger.info(f"Index cache {path} is stale (the tree changed); re-indexing.")
        return None
    return blob["payload"]


def save_cached(path: str, version: int, key: Sequence[Any], fingerprint, payload: Any) -> bool:
    """Write atomically; on failure (read-only home, full disk) warn and return False."""
    from ...checkpoint.file_io import atomic_write

    blob = {"version": version, "key": list(key), "fingerprint": fingerprint, "payload": payload}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, lambda f: pickle.dump(blob, f, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as e:
        logger.warning(f"Could not write the index cache {path}: {e!r}; the next start re-indexes.")
        return False
    return True


@contextlib.contextmanager
def cache_lock(path: str):
    """Exclusive lock on ``path + '.lock'`` while building; a no-op where it cannot be taken."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_or_build(
    kind: str,
    key: Sequence[Any],
    version: int,
    inputs: Sequence[str],
    build: Callable[[], dict],
    paths_ok: Optional[Callable[[dict], bool]] = None,
    on_built: Optional[Callable[[dict, Any], None]] = None,
    built: str = "indexed",
) -> Tuple[dict, str]:
    """The index cached under ``(kind, key)`` when ``version`` and the fingerprint of
    ``inputs`` (arguments of :func:`tree_fingerprint`) match and ``paths_ok(index)``
    holds; else ``build()`` (a dict with ``seconds``), saved, and ``on_built(index,
    fingerprint)`` called. All under the cache's lock: other ranks on this machine wait,
    then read. Returns ``(index, where it came from)``, a phrase for the log ("cache
    PATH, 0.1s" or "``built`` in 12.3s, cached to PATH")."""
    path = cache_path(kind, key)
    with cache_lock(path):
        t0 = time.perf_counter()
        fingerprint = tree_fingerprint(*inputs)
        index = load_cached(path, version, key, fingerprint)
        if index is not None and paths_ok is not None and not paths_ok(index):
            logger.warning(
                f"Ignoring index cache {path}: it holds paths outside the dataset root; "
                "re-indexing."
            )
            index = None
        if index is not None:
            return index, f"cache {path}, {time.perf_counter() - t0:.1f}s"
        index = build()
        saved = save_cached(path, version, key, fingerprint, index)
        if on_built is not None:
            on_built(index, fingerprint)
        return index, f"{built} in {index['seconds']:.1f}s" + (
            f", cached to {path}" if saved else ""
        )
