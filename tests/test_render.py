"""generator.render: one escaping helper per output language, each inert with hostile text.

Every helper's output is put where the templates put it and handed to the real consumer: C
comments and string literals to a C/C++ compiler (-Wall -Wextra -Werror, C99 so trigraphs are
on), linker-script comments to ld, CMake comments and strings to `cmake -P`, Markdown to
markdown-it (CommonMark + GFM tables). The end-to-end test renders the RP2040 project of a spec
whose description, class names and file name are hostile, compiles its portable C and checks
that CMakeLists.txt and README.md have exactly the structure of a benign render.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap

import pytest

from generator.firmware.common import block_comment
from generator.render import (c_bytes, c_comment, c_string, cmake_comment, cmake_string, header,
                              ident, ld_comment, md_code, md_comment, md_text, one_line)


HOSTILE = [
    "*/ #error X /*",
    "line one\n#error NEWLINE\nline three",
    "carriage\r#error CR\r\nend",
    'a "quoted" word',
    "back\\slash and a trailing backslash \\",
    "\\",
    "${VAR} $ENV{HOME} @VAR@ ;list;",
    "close ) } ] > and open ( { [",
    "x\nmessage(FATAL_ERROR INJECTED)\n#",
    "[[ bracket comment ]] [=[ too ]=]",
    "| pipe | `tick` ``double`` ```fence",
    "nul\0byte \x1b[31m escape \x7f del",
    "unicode é ✓ 😀 \u202e bidi \u2066 \u2028 sep \u00a0 nbsp \ufeff",
    "??/ trigraph ??= ??( ???/ ?",
    "<!-- html --> --!> <b>x</b> &amp; &#60; [link](http://x) ![img](y) *em* _u_ ~~s~~ $m$",
    "# heading\n- item\n+ plus\n1. one\n2) two\n> quote\n---\n===\n    indented",
    "trailing spaces for a hard break  \nnext",
    "",
]
IDS = [f"h{i}" for i in range(len(HOSTILE))]


def _tool(*names: str) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def _cc() -> list[str]:
    """arm-none-eabi-gcc for the RP2040's core if installed, else the host compiler."""
    arm = shutil.which("arm-none-eabi-gcc")
    if arm:
        return [arm, "-mcpu=cortex-m0plus", "-mthumb"]
    host = _tool("gcc", "cc")
    if host is None:
        pytest.skip("no C compiler")
    return [host]


def _run(cmd, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}"
    return res


# ------------------------------------------------------------------ C and C++


def test_c_string_holds_exactly_the_text_in_c(tmp_path):
    cc = _tool("gcc", "cc")
    if cc is None:
        pytest.skip("no host C compiler to run the check")
    lines = ["#include <string.h>", "int main(void) {", "    int bad = 0;"]
    for i, text in enumerate(HOSTILE):
        data = text.encode() + bytes(1)  # the literal's terminating NUL
        lines += [f"    {{ static const char s[] = {c_string(text)};",
                  f"      static const unsigned char e[{len(data)}] = {{ {c_bytes(data)} }};",
                  f"      bad |= (sizeof s != sizeof e || memcmp(s, e, sizeof e)) << {i % 16}; }}"]
    lines += ["    return bad;", "}"]
    (tmp_path / "s.c").write_text("\n".join(lines) + "\n")
    _run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wtrigraphs", tmp_path / "s.c",
          "-o", tmp_path / "s"])
    _run([tmp_path / "s"])


@pytest.mark.parametrize("lang", ["c", "c++"])
def test_c_comment_is_inert_in_block_and_line_comments(tmp_path, lang):
    body = []
    for i, text in enumerate(HOSTILE):
        safe = c_comment(text)
        assert "\n" not in safe and "\r" not in safe and "*/" not in safe and "??" not in safe
        assert not safe.endswith("\\") and all(ch.isprintable() for ch in safe)
        body += [f"/* {safe} */", f"/*{safe}*/", f"// {safe}", f"int after_{i} = {i};"]
    body.append("int sum(void) { return " + " + ".join(f"after_{i}" for i in range(len(HOSTILE)))
                + "; }")
    src = tmp_path / ("t.c" if lang == "c" else "t.cpp")
    src.write_text("\n".join(body) + "\n")
    std = "-std=c99" if lang == "c" else "-std=c++17"
    _run([*_cc(), std, "-Wall", "-Wextra", "-Werror", "-c", src, "-o", tmp_path / "t.o"])


def test_header_is_two_comment_lines_whatever_the_spec_name(tmp_path):
    for text in HOSTILE:
        for mark in ("//", "#"):
            lines = header(mark, text, "0123456789abcdef").splitlines()
            assert len(lines) == 2 and all(ln.startswith(mark + " ") for ln in lines)
        block = block_comment(header("//", text, "0123456789abcdef"))
        assert block.count("*/") == 1 and block.endswith(" */\n")
    src = "".join(header("//", t, "0" * 16) + block_comment(header("//", t, "0" * 16))
                  + f"int after_{i};\n" for i, t in enumerate(HOSTILE))
    (tmp_path / "h.c").write_text(src)
    _run([*_cc(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", tmp_path / "h.c",
          "-o", tmp_path / "h.o"])


# ------------------------------------------------------------------ linker scripts


def test_ld_comment_is_inert_in_a_linker_script(tmp_path):
    prefix = "arm-none-eabi-" if shutil.which("arm-none-eabi-gcc") else ""
    ld, nm, cc = shutil.which(prefix + "ld"), shutil.which(prefix + "nm"), _cc()
    if ld is None or nm is None:
        pytest.skip("no GNU ld and nm")
    script = ["SECTIONS { .text : { *(.text*) } }"]
    for i, text in enumerate(HOSTILE):
        script += [f"/* {ld_comment(text)} */",
                   block_comment(header("//", text, "0" * 16)).rstrip("\n"),
                   f"after_{i} = {i + 1};"]
    (tmp_path / "t.ld").write_text("\n".join(script) + "\n")
    (tmp_path / "e.c").write_text("int empty;\n")
    _run([*cc, "-c", tmp_path / "e.c", "-o", tmp_path / "e.o"])
    _run([ld, "-T", tmp_path / "t.ld", tmp_path / "e.o", "-o", tmp_path / "t.elf"])
    syms = _run([nm, tmp_path / "t.elf"]).stdout
    found = {int(m[2]): int(m[1], 16)
             for m in re.finditer(r"^([0-9a-f]+) \w after_(\d+)$", syms, re.M)}
    assert found == {i: i + 1 for i in range(len(HOSTILE))}


# ------------------------------------------------------------------ CMake


def _cmake_value(text: str) -> str:
    """What a CMake variable set from cmake_string(text) holds: CMake has no escape for NUL and
    other control characters, so cmake_string writes them as the text \\xNN."""
    return "".join(ch if ch in "\n\r\t" or ch.isprintable() else one_line(ch) for ch in text)


def test_cmake_comment_and_string_are_inert_in_cmake(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    lines = ["set(VAR EXPANDED)", "set(ENV{HOME} EXPANDED)"]
    for i, text in enumerate(HOSTILE):
        out = tmp_path / f"v{i}.txt"
        lines += [f"# {cmake_comment(text)}", f"#{cmake_comment(text)}",
                  *header("#", text, "0" * 16).splitlines(),
                  f"set(V{i} {cmake_string(text)} CACHE STRING {cmake_string(text)})",
                  f'file(WRITE "{out}" "${{V{i}}}")']
    (tmp_path / "t.cmake").write_text("\n".join(lines) + "\n")
    res = _run([cmake, "-P", tmp_path / "t.cmake"])
    assert "INJECTED" not in res.stdout + res.stderr
    for i, text in enumerate(HOSTILE):
        assert (tmp_path / f"v{i}.txt").read_bytes().decode() == _cmake_value(text), text


# ------------------------------------------------------------------ Markdown


def _md():
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _words(text: str) -> str:
    """md_text's promise: the text shows as itself, whitespace runs as one space, invisible
    characters as U+FFFD."""
    text = re.sub(r"\s+", " ", text).strip()
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def _inline_text(token) -> str:
    kinds = {c.type for c in token.children}
    assert kinds <= {"text", "softbreak"}, kinds  # no emphasis, link, code, html, break
    return "".join(" " if c.type == "softbreak" else c.content for c in token.children)


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_md_text_shows_the_text_and_nothing_else(text):
    md = _md()
    want = _words(text)
    for doc, expect in [(f"before {md_text(text)} after\n", f"before {want} after".strip()),
                        (md_text(text) + "\n", want),
                        # a wrapped paragraph can put any word at the start of a line
                        (textwrap.fill(f"w {md_text(text)} w", 4, break_long_words=False,
                                       break_on_hyphens=False) + "\n", f"w {want} w")]:
        tokens = md.parse(doc)
        if not expect:
            assert tokens == []
            continue
        assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"], doc
        assert re.sub(" +", " ", _inline_text(tokens[1])) == re.sub(" +", " ", expect)


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_md_text_stays_in_its_table_cell(text):
    md = _md()
    doc = f"| a | b |\n| --- | --- |\n| {md_text(text)} | z |\n\nafter\n"
    tokens = md.parse(doc)
    cells = [t for t in tokens if t.type == "inline"]
    assert [t.type for t in tokens].count("tr_open") == 2
    assert [_inline_text(c) for c in cells] == ["a", "b", _words(text), "z", "after"]


@pytest.mark.parametrize("text", [t for t in HOSTILE if _words(t)], ids=IDS[:-1])
def test_md_code_is_one_code_span_of_the_text(text):
    tokens = _md().parse(f"see {md_code(text)} here\n")
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    kids = tokens[1].children
    assert [k.type for k in kids] == ["text", "code_inline", "text"]
    assert kids[1].content == _words(text)


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_md_comment_and_one_line_stay_inside_their_blocks(text):
    md = _md()
    tokens = md.parse(f"<!-- from {md_comment(text)}; do not edit -->\n\nafter\n")
    assert [t.type for t in tokens] == ["html_block", "paragraph_open", "inline", "paragraph_close"]
    assert tokens[0].content.count("-->") == 1 and _inline_text(tokens[2]) == "after"
    line = "top=" + one_line(text) + " q=1"
    tokens = md.parse(f"```\n{line}\n```\n\nafter\n")
    assert [t.type for t in tokens][:1] == ["fence"] and tokens[0].content == line + "\n"
    assert _inline_text(tokens[2]) == "after"


def test_ident_passes_identifiers_and_refuses_the_rest():
    assert ident("SAI1") == "SAI1" and ident("evkbmimxrt1060") == "evkbmimxrt1060"
    for bad in ["SAI1 */", "a b", "1a", "", "x;y", "SAI1\n#error"]:
        with pytest.raises(ValueError, match="identifier"):
            ident(bad)


def test_every_helper_is_a_template_filter():
    from generator.render import environment

    env = environment()
    for name in ["c_string", "c_comment", "cmake_string", "cmake_comment", "ld_comment",
                 "md_text", "md_code", "md_comment", "one_line", "ident"]:
        assert name in env.filters


# ------------------------------------------------------------------ a hostile spec, end to end

DESCRIPTION = ('*/ #error DESCRIPTION_BROKE_OUT /*\n#error NEWLINE_INJECTED\r\n"quoted" \\ ${VAR} ) }'
               ' | `tick` \0 é \u202e ??/ <!-- # h')
CLASS = "*/ #error CLASS_BROKE_OUT /* be`e|p"
SPEC_NAME = "evil\n#error FILE_NAME_INJECTED\nmessage(FATAL_ERROR injected)\n\r -->.yaml"  # no '/' in a name


SPEC = """\
name: hostile
description: {description}
features: {{kind: log_mel, frame_length: 512, frame_step: 512, fft_size: 512, mel_bands: 32}}
classes: [{beep}, background]
dataset: {{layout: synthetic, synthetic: {{clips_per_class: 60}}}}
model: {{architecture: compact_cnn, filters: [8, 16]}}
detection: {{classes: [{beep}]}}
targets:
  - {{name: pico, board: rpi_pico}}
"""


def _spec(path, description, beep):
    """A small synthetic spec (like projects/demo.yaml) with the given description and first
    class, written to `path` (the file name is part of the test)."""
    path.write_text(SPEC.format(description=json.dumps(description), beep=json.dumps(beep)))
    return path


def _render_pico(spec_path, out):
    from generator.boards import load_board
    from generator.features import design
    from generator.spec import load_spec
    from generator.targets import render_target
    from conftest import tiny_model
    from test_targets import ANALYSIS

    project = load_spec(spec_path)
    target = next(t for t in project.spec.targets if t.name == "pico")
    fe = design(project.spec)
    blob = tiny_model(fe.num_frames, fe.num_bins, len(project.spec.classes))
    analysis = dict(ANALYSIS, model_bytes=len(blob),
                    input={"dtype": "int8", "shape": [1, fe.num_frames, fe.num_bins, 1]})
    render_target(project, target, load_board(target.board), analysis, blob, out)
    return project


@pytest.mark.slow
def test_hostile_spec_renders_an_rp2040_project_that_compiles_and_parses(tmp_path):
    from generator import cmsis
    from generator.paths import template_names

    (tmp_path / "spec").mkdir()
    evil = _render_pico(_spec(tmp_path / "spec" / SPEC_NAME, DESCRIPTION, CLASS), tmp_path / "evil")
    assert evil.path.name == SPEC_NAME and evil.spec.description == DESCRIPTION
    _render_pico(_spec(tmp_path / "spec" / "benign.yaml", "benign", "beep"), tmp_path / "benign")
    out = tmp_path / "evil"

    # C: no line is a directive the text made, and the portable modules compile (#error would
    # stop them); main.cpp carries the description, config.h the class names, all the header.
    for f in out.iterdir():
        if f.suffix in (".c", ".cc", ".cpp", ".h"):
            text = f.read_text()
            assert not re.search(r"^\s*(#\s*error|message\(| -->)", text, re.M), f.name
            assert "\r" not in text, f.name
    sources = [out / n for n in template_names("common")
               if n.endswith((".c", ".cc", ".cpp")) and n != "model.cpp"]  # model.cpp needs TFLM
    assert {"main.cpp", "detection.c", "mf_features.c"} <= {s.name for s in sources}
    incs = [f"-I{d}" for d in [out, *cmsis.cmsis_dsp().include_dirs]]
    for src in sources:
        std = "-std=c99" if src.suffix == ".c" else "-std=c++17"
        _run([*_cc(), std, "-O2", "-Wall", "-Wextra", "-Werror", "-D__GNUC_PYTHON__", *incs, "-c",
              src, "-o", src.with_suffix(".o")])
    doc = next(ln for ln in (out / "main.cpp").read_text().splitlines() if ln.startswith("/* "))
    assert doc.startswith("/* *\\/ #error DESCRIPTION_BROKE_OUT /\\*\\n#error NEWLINE_INJECTED\\r")

    # CMakeLists.txt: line for line the benign render's; only comment lines differ, and those
    # run as a CMake script without doing anything.
    cm_evil = (out / "CMakeLists.txt").read_text().splitlines()
    cm_benign = (tmp_path / "benign" / "CMakeLists.txt").read_text().splitlines()
    assert len(cm_evil) == len(cm_benign)
    differ = [e for e, b in zip(cm_evil, cm_benign) if e != b]
    assert differ and all(ln.startswith("#") for ln in differ)
    assert not any(ln.startswith(("message(", "#error", "*/", ".yaml")) for ln in cm_evil)
    cmake = shutil.which("cmake")
    if cmake:
        (tmp_path / "c.cmake").write_text("\n".join(differ) + "\n")
        res = _run([cmake, "-P", tmp_path / "c.cmake"])
        assert res.stdout + res.stderr == ""

    # README.md: the same blocks as the benign render; the text is text.
    md = pytest.importorskip("markdown_it").MarkdownIt("commonmark").enable(["table"])
    t_evil = md.parse((out / "README.md").read_text())
    t_benign = md.parse((tmp_path / "benign" / "README.md").read_text())
    assert [t.type for t in t_evil] == [t.type for t in t_benign]
    paragraph = next(t for t in t_evil if t.type == "inline" and "DESCRIPTION" in t.content)
    assert {c.type for c in paragraph.children} <= {"text", "softbreak", "code_inline"}
    assert not any(c.type in ("html_inline", "em", "strong", "link_open")
                   for t in t_evil if t.type == "inline" for c in t.children)
