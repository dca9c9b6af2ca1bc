"""YAML loading: positions, merge keys, and bounded, traceback-free refusals of hostile input."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

import pytest

from conftest import REPO
from generator.errors import SpecError
from generator.yamlpos import MAX_DEPTH, MAX_NODES, load, loads, read_text


def _refused(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        loads(text, "f.yaml")
    return str(exc.value)


def test_merge_keys_merge_and_keep_the_positions_where_values_are_written():
    text = ("base: &base\n"
            "  a: 1\n"
            "  b: 2\n"
            "other: &other {b: 20, c: 30}\n"
            "x:\n"
            "  <<: [*base, *other]\n"
            "  a: 100\n")
    data, pos = loads(text, "f.yaml")
    # the mapping's own key wins; of the merged ones the first wins
    assert data["x"] == {"a": 100, "b": 2, "c": 30}
    assert pos.of_value(("x", "a")) == (7, 6)  # written in x
    assert pos.of_value(("x", "b")) == (3, 6)  # merged from base: where base writes it
    assert pos.of_key(("x", "c")) == (4, 23)  # merged from other
    assert pos.of_value(("x",)) == (6, 3)


def test_merge_of_a_mapping_that_merges():
    data, pos = loads("a: &a {p: 1}\nb: &b {<<: *a, q: 2}\nc: {<<: *b}\n", "f.yaml")
    assert data["c"] == {"p": 1, "q": 2}
    assert pos.of_value(("c", "p")) == (1, 11)


def test_alias_keeps_its_own_position_and_the_named_values_theirs():
    _, pos = loads("a: &a {p: 1}\nb: *a\n", "f.yaml")
    assert pos.of_value(("b",)) == (2, 4)
    assert pos.of_value(("b", "p")) == (1, 11)


@pytest.mark.parametrize("text,where,message", [
    ("a: {<<: 3}\n", "1:9", "'<<' merges mappings"),
    ("a: &a [1]\nb: {<<: [*a]}\n", "2:10", "'<<' merges mappings"),
    ("a: &a {p: 1}\nb:\n  <<: *a\n  <<: *a\n", "4:3", "duplicate key '<<'"),
    ("a: 1\na: 2\n", "2:1", "duplicate key 'a'"),
])
def test_bad_merges_and_duplicates_at_their_line(text, where, message):
    error = _refused(text)
    assert error.startswith(f"f.yaml:{where}: {message}"), error


@pytest.mark.parametrize("text,where,tag", [
    ("name: !secret t\n", "1:7", "!secret"),
    ("a: [1, !env HOME]\n", "1:8", "!env"),
    ("a: !!python/object/apply:os.system ['true']\n", "1:4", "!!python/object/apply:os.system"),
    ("a: !include other.yaml\n", "1:4", "!include"),
    ("a: !!set {x, y}\n", "1:4", "!!set"),
])
def test_custom_tags_refused_at_their_line(text, where, tag):
    assert _refused(text) == (f"f.yaml:{where}: tag '{tag}' is not supported: a spec is plain "
                              f"YAML (anchors, aliases and '<<' merges work); remove the tag and "
                              f"write the value itself")


def test_standard_tags_still_read():
    data, _ = loads("a: !!str 5\nb: !!float 1\nc: <<\n", "f.yaml")
    assert data == {"a": "5", "b": 1.0, "c": "<<"}
    assert _refused("a: !!int five\n") == "f.yaml:1:4: cannot read 'five' as !!int"


@pytest.mark.parametrize("text,where,anchor", [
    ("a: &a\n  b: *a\n", "2:6", "a"),
    ("a: &a [1, [2, *a]]\n", "1:15", "a"),
    ("a: &a {<<: *a}\n", "1:12", "a"),
    ("a: &a\n  - &b [*a]\n", "2:9", "a"),
])
def test_recursive_alias_refused_at_the_alias(text, where, anchor):
    assert _refused(text).startswith(f"f.yaml:{where}: alias *{anchor} is inside the value it "
                                     f"names (a recursive alias)")


def _laughs(levels: int) -> str:
    lines = ["l0: &l0 lol"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 7, 9, 30])
def test_alias_bomb_refused_at_once_in_little_memory(levels):
    # Before: 6 levels (a 661-byte spec) took 55 s and 3 GB, 7 would have needed ~30 GB.
    text = _laughs(levels)
    tracemalloc.start()
    start = time.perf_counter()
    error = _refused(text)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert error.startswith("f.yaml:7:10: alias *l5 expands the file to more than 100,000 values")
    assert seconds < 0.25, seconds
    assert peak < 2_000_000, peak


def test_a_list_as_a_key_is_refused_without_building_it():
    assert _refused(_laughs(4) + "? *l4\n: 1\n") == ("f.yaml:6:3: a key must be a string, not a "
                                                    "mapping or a list")


def test_aliases_below_the_limit_expand():
    # about 75,000 values once expanded: under MAX_NODES, so read as written
    data, pos = loads(_laughs(4) + "x: [" + ", ".join(["*l4"] * 9) + "]\n", "f.yaml")
    assert data["x"][8][8][8][8] == ["lol"] * 9
    assert pos.of_value(("x", 8)) == (6, 45)  # each alias where it stands
    assert pos.of_value(("x", 8, 0, 0, 0, 0)) == (2, 10)


def test_nesting_limit_written_and_through_aliases():
    deep = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert loads(f"a: {deep}\n", "f.yaml")[0]["a"]  # the mapping and 63 lists: 64 levels
    assert _refused(f"a: [{deep}]\n") == (f"f.yaml:1:{3 + MAX_DEPTH}: values nest more than "
                                          f"{MAX_DEPTH} levels deep; a spec needs a few")
    half = "[" * 40 + "]" * 40
    assert _refused(f"a: &a {half}\nb: [{half[:-40]}*a{half[40:]}]\n").startswith(
        "f.yaml:2:45: alias *a nests values more than 64 levels deep")


def test_deep_nesting_no_longer_crashes_the_interpreter():
    # libyaml's own composer recursed in C: 100,000 '[' was a segmentation fault.
    code = ("from generator.yamlpos import loads\nfrom generator.errors import SpecError\n"
            "try:\n    loads('a: ' + '[' * 100000, 'f.yaml')\n"
            "except SpecError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"f.yaml:1:{4 + MAX_DEPTH - 1}: values nest more than {MAX_DEPTH} " \
                          f"levels deep; a spec needs a few\n"


@pytest.mark.parametrize("text,message", [
    ("a: &x 1\nb: &x 2\n", "f.yaml:2:4: anchor defined twice (first at line 1); rename one"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2:1: a second YAML document starts here; a spec is one "
                          "document: remove the '---' or the rest"),
    ("a: *nowhere\n", "f.yaml:1:4: YAML syntax error: found undefined alias 'nowhere'"),
    ("a: 1\nb: x\x07y\n", "f.yaml:2:5: character U+0007 is not allowed in YAML (control "
                          "characters are not allowed)"),
])
def test_other_yaml_faults_are_one_line(text, message):
    assert _refused(text) == message


def test_a_folder_or_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(SpecError) as exc:
        load(tmp_path, "specs")
    assert str(exc.value) == "specs: is a folder; give the YAML file itself"
    with pytest.raises(SpecError) as exc:
        read_text(tmp_path / "nope.yaml", "nope.yaml")
    assert str(exc.value) == "nope.yaml: no such file"
