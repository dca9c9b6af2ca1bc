"""What a build shows: one line per stage, progress bars, and everything else in a log.

A stage runs inside `stage_log(path)`: its file descriptors 1 and 2 point at
build/<project>/logs/<stage>.log for the duration, so TensorFlow's C++ chatter (the "E0000 ...
NodeDef mentions attribute" lines, oneDNN notices), Python warnings and the stage's own detailed
tables land there, not on the screen. What the user sees instead, on the terminal the build was
started from:

- progress bars (`progress`: feature extraction, training epochs), only on a terminal;
- one line when the stage ends: `[project] stage  12.3 s  what it did`;
- the stage's own `WARNING:` lines (a test split that measures memory, a budget at its edge),
  copied from the log as they matter;
- on a failure, the last lines of the log and its path.

`micforge build -v` (MICFORGE_VERBOSE=1) turns the capture off: everything is printed as it
happens, as before.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator, TextIO

VERBOSE_ENV = "MICFORGE_VERBOSE"
TAIL_LINES = 30
# Our own warnings (dataset.summarize, evaluate): lines that start with "WARNING:" (not absl's
# "WARNING: All log messages before absl::InitializeLog() ...", which TensorFlow prints).
OUR_WARNING = re.compile(r"^\s*WARNING: (?!All log messages before absl)")

_terminal: TextIO | None = None  # the screen while a stage's output goes to its log


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def terminal() -> TextIO:
    """Where progress bars and stage lines go: the screen, even while a stage is captured."""
    return _terminal or sys.stdout


def is_tty() -> bool:
    try:
        return terminal().isatty()
    except (AttributeError, ValueError):
        return False


def say(text: str) -> None:
    """One line on the screen (and, while a stage is captured, nowhere else)."""
    out = terminal()
    out.write(text + "\n")
    out.flush()


def progress(total: int, desc: str, unit: str = "it"):
    """A tqdm bar on the screen, or a no-op object off a terminal (CI logs stay short)."""
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=terminal(), leave=False,
                disable=not is_tty(), dynamic_ncols=True)


@contextlib.contextmanager
def stage_log(path: Path) -> Iterator[Path]:
    """Send this process's stdout and stderr (Python and C alike) to `path` while the block runs.
    Does nothing in verbose mode."""
    global _terminal
    if verbose() or _terminal is not None:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = open(path, "w", encoding="utf-8", errors="replace")
    _terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8",
                          errors="replace")
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield path
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        log.close()
        _terminal.close()
        _terminal = None


def warnings_in(path: Path) -> list[str]:
    """The stage's own WARNING lines in its log."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if OUR_WARNING.match(line)]


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stage_line(project: str, label: str, seconds: float, summary: str | None) -> str:
    return f"[{project}] {label:<18} {seconds:6.1f} s" + (f"  {summary}" if summary else "")


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start
