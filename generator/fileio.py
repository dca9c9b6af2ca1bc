"""Writing artifacts: atomically, and only when the content changed.

Every stage writes through these two functions, so an interrupted build never
leaves half a file behind, and an unchanged output keeps its timestamp and
content signature (downstream SCons targets stay up to date).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_if_changed(path: str | Path, data: bytes | str) -> bool:
    """Write `data` to `path` atomically unless it already holds exactly that.

    Returns True when the file was written.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; artifacts are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_json(path: str | Path, obj) -> bool:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline)."""
    return write_if_changed(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> dict | None:
    """A JSON artifact, or None when the file does not exist (a stage the build has not run)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
