"""Jinja2 rendering shared by every generated file.

Templates live under templates/, one template per generated file, named after
it with a `.j2` suffix. The environment uses StrictUndefined (a missing
variable is an error, never an empty string). Every rendered file starts with a
header naming the spec and a hash of the values it was rendered from; there are
no timestamps, so two renders of the same inputs are byte-identical.

Free text (the spec's description, spec and board file names, board titles and
notes, class names) reaches several languages, and each gets its own escaping
helper, registered as a filter of the same name:

  c_string       a C string literal                 BOARD_NAME, MF_CLASS_NAMES
  c_comment      text inside /* */ or after //      C/C++ comments, the header lines
  cmake_string   a CMake quoted argument            the CACHE STRING doc of PICO_BOARD
  cmake_comment  text after # in CMake              CMakeLists.txt comments
  ld_comment     text inside /* */ of a ld script   linker.ld
  md_text        Markdown running text, table cell  README.md, report.md
  md_code        a Markdown code span               file names in READMEs
  md_comment     text inside <!-- --> in Markdown   README.md header
  one_line       a line of a fenced code block      the README's example output
  ident          a board value used as code         peripheral, SDK folder, PICO_BOARD
                 (refused unless an identifier: code cannot be escaped)

Each output is inert in its context whatever the input (newlines, comment ends,
quotes, backslashes, ${VAR}, NUL, unicode): tests/test_render.py checks them
with hostile text, and compiles and parses what they produce.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

import jinja2

from .fileio import write_if_changed
from .paths import TEMPLATES, template_names  # noqa: F401  (re-exported)


def c_string(text: str) -> str:
    """A C string literal for `text`, escaping everything that is not plain ASCII."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\\\"":
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F and ch != "?":  # '?' avoids trigraphs
            out.append(ch)
        else:
            for byte in ch.encode("utf-8"):
                out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


_C_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


def one_line(text: str) -> str:
    """`text` as one line of printable characters: a backslash is doubled, and newlines, other
    control characters and invisible unicode (line separators, bidi overrides) are written as
    the escapes Python's repr would use (\\n, \\r, \\t, \\0, \\x1b, \\u2028). Printable unicode
    stays. Inert in a fenced Markdown code block; the base of the comment helpers."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def _no_block_comment_end(text: str) -> str:
    """Break every `*/` and `/*` (a comment's end, and a nested start -Wcomment rejects)."""
    return text.replace("*/", "*\\/").replace("/*", "/\\*")


def c_comment(text: str) -> str:
    """`text` for a C or C++ comment, /* */ or //: one line (one_line), no `*/` or `/*`, no
    `??` that a trigraph could read (`??/` is a backslash), and no trailing backslash (it
    would splice the next line into a // comment; written \\x5c)."""
    out = _no_block_comment_end(one_line(text))
    out = re.sub(r"\?(?=\?)", "?\\\\", out)
    if out.endswith("\\"):
        out = out[:-2] + "\\x5c"  # one_line doubled it: the text ended with a backslash
    return out


def ld_comment(text: str) -> str:
    """`text` for a comment of a GNU ld linker script (/* */ only): one line, no `*/` or `/*`."""
    return _no_block_comment_end(one_line(text))


def cmake_comment(text: str) -> str:
    """`text` for a CMake line comment (after `# `): one line (a newline would end the comment and
    start code); a leading `[` is escaped so that `#` + text cannot open a bracket comment."""
    out = one_line(text)
    return "\\" + out if out.startswith("[") else out


_CMAKE_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "@": "\\@", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t"}


def cmake_string(text: str) -> str:
    """A CMake quoted argument holding `text`, quotes included: `\\`, `"`, `$` (no ${VAR} or
    $ENV{} is expanded) and `@` escaped, newlines as \\n. A `;` stays: a quoted argument keeps
    it (`\\;` would keep the backslash too). CMake has no escape for NUL or other control
    characters: they become the text \\xNN."""
    out = []
    for ch in str(text):
        if ch in _CMAKE_ESCAPES:
            out.append(_CMAKE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append("\\" + one_line(ch))  # the backslash of \xNN, itself escaped
    return '"' + "".join(out) + '"'


# Inline Markdown (CommonMark + GFM): escapes, code, emphasis, links, HTML and entities,
# tables, strikethrough, math. An underscore inside a word (SAI1_RX_DATA00) cannot start or
# end emphasis and stays as it is.
_MD_INLINE = re.compile(r"([\\`*\[\]<>|&~$]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
# Markers that act at the start of a line (headings, lists, quotes, setext underlines, breaks):
# escaped wherever a word starts, since a wrapped paragraph can put any word first.
_MD_WORD_START = re.compile(r"(^|(?<= ))([#+=-])(?=[#+=-]*(?: |$))")
_MD_ORDERED = re.compile(r"(^|(?<= ))(\d{1,9})([.)])(?= |$)")


def _printable_words(text: str) -> str:
    """Whitespace runs (newlines, tabs, unicode separators) as one space; other invisible
    characters (NUL, escapes, bidi overrides) as U+FFFD, as CommonMark does for NUL."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def md_text(text: str) -> str:
    """`text` as Markdown running text, also inside a table cell: one line, every inline
    metacharacter backslash-escaped, and no word can start a heading, list or quote."""
    out = _MD_INLINE.sub(r"\\\1", _printable_words(text))
    out = _MD_WORD_START.sub(r"\1\\\2", out)
    return _MD_ORDERED.sub(r"\1\2\\\3", out)


def md_code(text: str) -> str:
    """A Markdown code span showing `text` literally: one line, fenced by one backtick more than
    its longest run of backticks (padded with spaces when it starts or ends with one). Not for
    table cells, where `|` still splits the cell: use md_text there."""
    body = _printable_words(text)
    fence = "`" * (max((len(r) for r in re.findall(r"`+", body)), default=0) + 1)
    if not body or body[0] == "`" or body[-1] == "`":
        body = f" {body} "
    return fence + body + fence


def md_comment(text: str) -> str:
    """Text for inside an HTML comment <!-- ... --> in Markdown: newlines are harmless there and
    kept, but no `--` (which could close it) and no leading `>` or `->` (`<!-->` closes at once)."""
    out = str(text)
    while "--" in out:
        out = out.replace("--", "- -")
    return " " + out if out.startswith((">", "->")) else out


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def ident(name: str) -> str:
    """`name` unchanged if it is a C/CMake identifier, else a ValueError: text used as code
    (a peripheral instance, an SDK folder in a path) cannot be escaped, only refused."""
    if not _IDENT.fullmatch(str(name)):
        raise ValueError(f"{name!r} is used as an identifier in generated code but is not one "
                         f"(letters, digits and '_', not starting with a digit)")
    return name


def c_array(values: Iterable[int], per_line: int = 12, fmt: str = "{}") -> str:
    """Comma-separated values, `per_line` to a line, indented for an initialiser."""
    values = [fmt.format(v) for v in values]
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return ",\n    ".join(lines)


def c_bytes(data: bytes, per_line: int = 16) -> str:
    return c_array(data, per_line, "0x{:02x}")


def content_hash(values: Any) -> str:
    """A short stable hash of JSON-able values, for generated-file headers."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def environment(root: Path = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(c_string=c_string, c_comment=c_comment, cmake_string=cmake_string,
                       cmake_comment=cmake_comment, ld_comment=ld_comment, md_text=md_text,
                       md_code=md_code, md_comment=md_comment, one_line=one_line, ident=ident,
                       c_array=c_array, c_bytes=c_bytes,
                       hex=lambda v, width=8: f"0x{v:0{width}X}")
    return env


def header(comment: str, spec_name: str, digest: str) -> str:
    """The first lines of every generated file; `comment` is '//' or '#'. The spec's file name
    is free text: c_comment makes it one inert line in C, C++, CMake and (after
    firmware.common.block_comment) linker-script comments."""
    spec_name = c_comment(spec_name)
    return (f"{comment} Generated by micforge from {spec_name}; do not edit.\n"
            f"{comment} Inputs hash: {digest}. Re-run `micforge build` to regenerate.\n")


def render_file(env: jinja2.Environment, template: str, out: Path, context: dict) -> bool:
    """Render one template to `out` (written only if changed). Returns True if written."""
    text = env.get_template(template).render(**context)
    return write_if_changed(out, text)
