"""One build at a time per build folder.

`hold_lock(build_dir)` takes an exclusive, non-blocking lock on
<build_dir>/.micforge.lock for the life of the process (the OS drops it when the
process ends, also on a crash or SIGKILL, so a stale lock cannot block anyone).
A second build of the same folder refuses at once with a message naming the
process that holds it, instead of training the same models twice and racing on
the same files.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

LOCK_NAME = ".micforge.lock"
_held: list = []  # the open lock files of this process: closing one would release it


class BuildLocked(RuntimeError):
    """Another process builds into the same folder."""


def try_lock(build_dir: Path):
    """The open, locked lock file of `build_dir`; BuildLocked if another process holds it."""
    path = Path(build_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise BuildLocked(f"{build_dir}: another micforge build is running in this build folder "
                          f"(pid {holder}); wait for it to finish, or build into another folder "
                          f"with --build-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def hold_lock(build_dir: Path) -> None:
    """Lock `build_dir` until this process exits; exit 2 with one line if it is taken."""
    try:
        _held.append(try_lock(build_dir))
    except BuildLocked as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


def build_dir_cache(build_dir: Path):
    """An SCons CacheDir class whose keys name an artifact by its path inside the build folder
    (demo/tflite/model.tflite) rather than by its path from the checkout, as SCons does: two
    clones, or CI, building into different folders fetch each other's artifacts. The rest of
    the key is SCons's own (the contents of every input, the action)."""
    import SCons.CacheDir
    from SCons.Util import hash_collect

    root = Path(build_dir).resolve()

    class BuildDirCache(SCons.CacheDir.CacheDir):
        def cachepath(self, node):
            if not self.is_enabled():
                return None, None
            try:
                sig = node.cachesig
            except AttributeError:
                where = Path(node.get_abspath())
                name = where.relative_to(root).as_posix() if where.is_relative_to(root) \
                    else node.get_internal_path()
                sigs = [n.get_cachedir_csig() for n in node.children()]
                sig = node.cachesig = hash_collect(sigs + [node.get_contents_sig(), name])
            cachedir = os.path.join(self.path, sig[:self.config["prefix_len"]].upper())
            return cachedir, os.path.join(cachedir, sig)

    return BuildDirCache
