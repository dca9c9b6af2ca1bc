"""Errors a user can cause, each carrying the place in their file to fix.

A `SpecError` is never a bug in micforge: the CLI prints it as
``file:line:col: message`` and exits 2, without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong, at one place in one file."""

    path: str
    line: int  # 1-based; 0 when the whole file is meant
    col: int  # 1-based; 0 when the whole line is meant
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.col}: {self.message}"
        return f"{self.path}: {self.message}"


class SpecError(Exception):
    """One or more problems with a user's input; printed, not raised to the top."""

    def __init__(self, problems: list[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.col, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
