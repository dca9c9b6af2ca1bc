"""The dataset index: every usable clip, its label, split, group and content hash.

Takes a validated Project and produces a JSON-able index (no absolute paths, so
it is identical on every machine) that the features stage reads:

    {"classes": [...], "layout": ..., "synthetic": bool,
     "clips": [{"file", "label", "split", "sha256", "window", "group"}],
     "skipped": [{"file", "reason", "detail"}], "summary": {...}}

`file` is relative to the dataset root (or "synthetic:<class>:<i>"); `window`
is the index of the clip's window in its file (see audio.py for the cutting).

Layouts: `folders` (a sub-folder per class, searched recursively), `esc50`
(meta/esc50.csv: filename, fold, category; audio/), `speech_commands` (a folder
per word; a spec class `_unknown_` without its own folder collects every other
word, `_silence_` without a folder is cut from `_background_noise_/`), and
`synthetic` (generated in memory, see synthetic.py). Hidden files are ignored;
any other file that does not decode to a window is reported in `skipped`, and so
is a symlink that cannot be followed ("broken symlink": its target is missing;
"symlink loop": a chain of links that comes back to itself, or a link to a folder
that contains it) and a link to a folder inside a class folder ("folder link not
followed": its files are not indexed). Files are hashed and decoded block by
block (audio.Stream), so indexing a long recording takes a few windows of memory.

Identical content stays in one split: files with the same sha256 are listed in
`summary.duplicates`, and each window of a copy joins the group (and source) of
the same window of the first file of its content by name, by union-find over
group keys (a merged group takes the smallest key, a speaker's first); the
overlap guard sees a copy on its own recording's time line and the first file's.
Identical files under different labels are a labelling conflict: none of them is
kept (reason "conflicting labels"). With `fold` or `lists` splits the metadata
places each file; a copy placed in another split than the first file of its
content is dropped (reason "duplicate in another split").

Group key (what must never straddle two splits), from the file name:
- `<...>_<speaker>_nohash_<n>`: "speaker:<speaker>" (Speech Commands ids, so
  `_unknown_/backward_bfd26d6b_nohash_2.wav` is speaker bfd26d6b);
- otherwise the recording: the stem without a `_t<seconds>` window-offset
  suffix (alarm_1151_t003.5 -> alarm_1151) or an ESC-50 take suffix
  (1-211527-A -> 1-211527), plus the time segment of `split.segment_seconds`
  the window starts in: "alarm_1151@1". A window that overlaps, in time, a
  window of the same recording placed in another split is dropped (reason
  "overlaps another split"), so no sample is in two splits.

Splits: `hash`/`speaker` place a group by sha256(seed, group key) against the
validation/test fractions (stable across machines, and adding files never moves
existing ones); `fold` by ESC-50 fold; `lists` by Speech Commands lists.
Silent windows (audio.SILENCE_FLOOR_DBFS) are dropped except in a class meant to
be silence (`_silence_` or `silence`). An empty class, a class without a folder
or a class absent from a split is a SpecError at the spec's line.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import math
import os
import re
import stat
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio, synthetic
from .errors import Problem, SpecError
from .fileio import write_json
from .spec import Project

SPLITS = ("train", "validation", "test")
UNKNOWN, SILENCE, NOISE_DIR = "_unknown_", "_silence_", "_background_noise_"

_SPEAKER = re.compile(r"(?:^|_)([^_]+)_nohash_")
_OFFSET = re.compile(r"^(?P<rec>.+)_t(?P<t>\d+(?:\.\d+)?)$")
_TAKE = re.compile(r"^(?P<rec>.*\d)-[A-Z]$")


@dataclass
class _Source:
    """One candidate file and what the layout knows about it."""

    file: str  # relative to the root, posix
    label: str
    path: Path
    fold: int | None = None
    listed: str | None = None  # split named by a Speech Commands list


def speaker_id(file: str) -> str | None:
    m = _SPEAKER.search(Path(file).stem)
    return m.group(1) if m else None


def recording(file: str) -> tuple[str, float]:
    """(recording name, start of the file in it in seconds) from a file name."""
    stem = Path(file).stem
    m = _OFFSET.match(stem)
    if m:
        return m.group("rec"), float(m.group("t"))
    m = _TAKE.match(stem)
    return (m.group("rec") if m else stem), 0.0


def source_id(file: str) -> str:
    """The source a window comes from: "speaker:<id>" for Speech Commands names, else the
    recording (the stem without window-offset or take suffix). Cross-validation, the
    recording split and per-recording figures group by it."""
    speaker = speaker_id(file)
    return f"speaker:{speaker}" if speaker else recording(file)[0]


def group_key(file: str, start: float, segment_seconds: float | None) -> str:
    """The documented group key of a window starting `start` s into its recording
    (`segment_seconds` None: the whole recording is one group)."""
    source = source_id(file)
    if source.startswith("speaker:") or segment_seconds is None:
        return source
    return f"{source}@{math.floor(start / segment_seconds + 1e-9)}"


def _unit(seed: int, key: str) -> float:
    """A uniform number in [0, 1) from sha256(seed, key): the same on every machine."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _hash_split(seed: int, key: str, validation: float, test: float) -> str:
    u = _unit(seed, key)
    return "test" if u < test else "validation" if u < test + validation else "train"


def _is_silence_class(label: str) -> bool:
    return label.strip("_") == "silence"


# ----------------------------------------------------------------------- layouts

def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _link_problem(path: Path) -> tuple[str, str] | None:
    """(reason, detail) for a symlink that cannot be followed or that points to a folder
    holding it; None for anything else. Never an absolute path in the detail."""
    if not path.is_symlink():
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        target = os.readlink(path)
        shown = "an absolute path" if os.path.isabs(target) else f"'{target}'"
        return "broken symlink", f"it points to {shown}, which does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop", "its chain of links comes back to itself"
        return "unreadable file", exc.strerror or str(exc)
    if stat.S_ISDIR(st.st_mode):
        target, here = path.resolve(), path.parent.resolve()
        if target == here or target in here.parents:
            return "symlink loop", "it points to a folder that contains it"
    return None


def _skip(skipped: list, file: str, reason: str, detail: str) -> None:
    skipped.append({"file": file, "reason": reason, "detail": detail})


def _root_dirs(root: Path, skipped: list) -> list[str]:
    """The non-hidden folders (or links to folders) in the root; bad links to `skipped`."""
    dirs = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        problem = _link_problem(path) if entry.is_symlink() else None
        if problem:
            _skip(skipped, entry.name, *problem)
        elif path.is_dir():
            dirs.append(entry.name)
    return dirs


def _files_under(folder: Path, root: Path, skipped: list) -> list[Path]:
    """Every regular file under `folder`, hidden ones left out and links to files followed.
    Links to folders are not followed (a loop would never end); they, links that cannot be
    followed and anything that is not a regular file go to `skipped`."""
    out, todo = [], [folder]
    while todo:
        here = todo.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            _skip(skipped, _rel(here, root) + "/", "unreadable folder", exc.strerror or str(exc))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                problem = _link_problem(path)
                if problem:
                    _skip(skipped, _rel(path, root), *problem)
                    continue
                if path.is_dir():
                    _skip(skipped, _rel(path, root), "folder link not followed",
                          "files under a linked folder are not indexed; link the files instead")
                    continue
            if entry.is_dir(follow_symlinks=False):
                todo.append(path)
            elif path.is_file():
                out.append(path)
            else:
                _skip(skipped, _rel(path, root), "not a regular file",
                      "a device, socket or pipe, not audio")
    return sorted(out)


def _missing_class(project: Project, i: int, name: str, where: str, have: list[str]) -> Problem:
    shown = ", ".join(have[:12]) + (", ..." if len(have) > 12 else "")
    return project.positions.problem(
        ("classes", i), f"class '{name}' has no {where} in dataset root "
                        f"{project.spec.dataset.root} (there: {shown or 'nothing'})")


def _folders(project: Project, root: Path, skipped: list, problems: list) -> list[_Source]:
    classes = project.spec.classes
    dirs = _root_dirs(root, skipped)
    out = []
    for i, name in enumerate(classes):
        if name not in dirs:
            problems.append(_missing_class(project, i, name, "folder", dirs))
            continue
        out += [_Source(_rel(p, root), name, p) for p in _files_under(root / name, root, skipped)]
    for d in dirs:
        if d not in classes:
            skipped.append({"file": d + "/", "reason": "folder is not a class",
                            "detail": f"not one of the spec's classes {classes}"})
    return out


def _esc50(project: Project, root: Path, skipped: list, problems: list) -> list[_Source]:
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        problems.append(project.positions.problem(
            ("dataset", "root"), f"layout: esc50 needs meta/esc50.csv in {project.spec.dataset.root}"))
        return []
    with meta.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"filename", "fold", "category"} <= set(rows[0]):
        problems.append(project.positions.problem(
            ("dataset", "root"), "meta/esc50.csv needs the columns filename, fold and category"))
        return []
    classes = project.spec.classes
    categories = sorted({r["category"] for r in rows})
    out = []
    for i, name in enumerate(classes):
        if name not in categories and name != UNKNOWN:
            problems.append(_missing_class(project, i, name, "category in meta/esc50.csv", categories))
    catch_all = UNKNOWN in classes and UNKNOWN not in categories
    for r in rows:
        label = r["category"] if r["category"] in classes else UNKNOWN if catch_all else None
        if label is None:
            continue
        path = root / "audio" / r["filename"]
        try:
            fold = int(r["fold"])
        except ValueError:
            skipped.append({"file": _rel(path, root), "reason": "bad meta row",
                            "detail": f"fold '{r['fold']}' is not a number"})
            continue
        out.append(_Source(_rel(path, root), label, path, fold=fold))
    return out


def _speech_commands(project: Project, root: Path, skipped: list, problems: list) -> list[_Source]:
    classes = project.spec.classes
    dirs = _root_dirs(root, skipped)
    words = [d for d in dirs if not d.startswith("_")]
    folders: dict[str, list[str]] = {}
    for i, name in enumerate(classes):
        if name in dirs:
            folders[name] = [name]
        elif name == UNKNOWN:
            folders[name] = [w for w in words if w not in classes]
        elif name == SILENCE and NOISE_DIR in dirs:
            folders[name] = [NOISE_DIR]
        else:
            problems.append(_missing_class(project, i, name, "folder", dirs))
    listed = {}
    for split, list_name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        p = root / list_name
        if p.is_file():
            listed.update({line.strip(): split for line in p.read_text().splitlines() if line.strip()})
    out = []
    for name, dirs_of_class in folders.items():
        for d in dirs_of_class:
            for p in _files_under(root / d, root, skipped):
                rel = _rel(p, root)
                out.append(_Source(rel, name, p, listed=listed.get(rel)))
    return out


# ------------------------------------------------------------------------- index

def _sha256(f) -> str:
    """sha256 of an open binary file from its start, read 1 MB at a time."""
    digest = hashlib.sha256()
    f.seek(0)
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass
class _Read:
    """A decoded source: its content hash, the windows kept and what was converted."""

    src: _Source
    sha256: str
    kept: list[int]
    notes: list[str]


def _read_sources(project: Project, sources: list[_Source], skipped: list):
    """Hash and decode every source, streaming (audio.Stream); yields a _Read per file
    that decoded, the others go to `skipped`."""
    a = project.spec.audio
    for src in sorted(sources, key=lambda s: s.file):
        problem = _link_problem(src.path)  # layouts that name files (esc50) meet them here
        if problem:
            _skip(skipped, src.file, *problem)
            continue
        silent = []
        try:
            with open(src.path, "rb") as f:
                sha = _sha256(f)
                f.seek(0)
                with audio.Stream(f, a.sample_rate) as stream:
                    kept = []
                    for k, w in enumerate(stream.windows(a.clip_samples)):
                        if not _is_silence_class(src.label) and audio.is_silent(w):
                            silent.append(f"window {k}: {audio.rms_dbfs(w):.1f} dBFS, below "
                                          f"{audio.SILENCE_FLOOR_DBFS:g} dBFS")
                        else:
                            kept.append(k)
        except OSError as exc:
            _skip(skipped, src.file, "unreadable file", exc.strerror or str(exc))
            continue
        except audio.AudioError as exc:
            _skip(skipped, src.file, exc.reason, exc.detail)
            continue
        skipped += [{"file": src.file, "reason": "silent window", "detail": d} for d in silent]
        notes = list(stream.converted)
        if stream.file_rate != a.sample_rate:
            notes.append(f"resampled from {stream.file_rate} Hz")
        yield _Read(src, sha, kept, notes)


def _identical(files: list[_Read], skipped: list) -> tuple[list[_Read], list[list[str]]]:
    """(the files to use, every set of files with identical content). A set under more
    than one label is a labelling conflict: none of its files is used."""
    by_sha: dict[str, list[_Read]] = defaultdict(list)
    for r in files:
        if r.kept:
            by_sha[r.sha256].append(r)
    sets, conflicted = [], set()
    for members in by_sha.values():
        if len(members) < 2:
            continue
        sets.append(sorted(m.src.file for m in members))
        if len({m.src.label for m in members}) > 1:
            for m in members:
                others = ", ".join(f"{o.src.file} ({o.src.label})" for o in members if o is not m)
                _skip(skipped, m.src.file, "conflicting labels",
                      f"labelled {m.src.label}, but the same content is {others}; none is used "
                      f"until the labels agree")
                conflicted.add(id(m))
    return [r for r in files if id(r) not in conflicted], sorted(sets)


class _Groups:
    """Union-find over keys; a set is named by its smallest key, a speaker's first, so
    the name does not depend on the order of the unions."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    @staticmethod
    def _rank(key: str) -> tuple[bool, str]:
        return not key.startswith("speaker:"), key

    def find(self, key: str) -> str:
        root = self.parent.setdefault(key, key)
        while root != self.parent[root]:
            root = self.parent[root]
        while key != root:  # path compression
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb), key=self._rank)
            self.parent[hi] = lo


def _guard_overlaps(clips: list[dict], timing: dict, clip_seconds: float, skipped: list) -> list[dict]:
    """Drop the earlier of two overlapping windows of one recording in different splits.
    `timing[id(clip)]` lists the (recording, start) time lines a clip lies on."""
    by_rec: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    for c in clips:
        for rec, start in timing[id(c)]:
            by_rec[rec].append((start, c))
    dropped: set[int] = set()
    for rec, members in by_rec.items():
        members.sort(key=lambda m: (m[0], m[1]["file"], m[1]["window"]))
        for i, (start_a, a) in enumerate(members):
            if id(a) in dropped:
                continue
            for start_b, b in members[i + 1:]:
                if start_b >= start_a + clip_seconds - 1e-9:
                    break
                if a["split"] != b["split"] and id(b) not in dropped:
                    dropped.add(id(a))
                    skipped.append({"file": a["file"], "reason": "overlaps another split",
                                    "detail": f"window {a['window']} ({a['split']}) overlaps "
                                              f"{b['file']} ({b['split']}) of recording {rec}"})
                    break
    return [c for c in clips if id(c) not in dropped]


def _synthetic_index(project: Project) -> tuple[list[dict], list[dict]]:
    spec = project.spec
    roles = synthetic.roles(project)
    split, n = spec.dataset.split, spec.dataset.synthetic.clips_per_class
    # Generated clips are independent, so each class is split in exact proportions:
    # clips ordered by their seeded hash, the first ones to test, then validation.
    n_test, n_val = round(n * split.test), round(n * split.validation)
    out = []
    for name in spec.classes:
        files = [f"synthetic:{name}:{i}" for i in range(n)]
        rank = {f: r for r, f in enumerate(sorted(files, key=lambda f: _unit(spec.dataset.seed, f)))}
        for i, file in enumerate(files):
            x = synthetic.clip(roles[name], name, i, spec.dataset.seed, spec.audio.sample_rate,
                               spec.audio.clip_samples)
            r = rank[file]
            out.append({"file": file, "label": name, "window": 0, "group": file, "source": file,
                        "sha256": hashlib.sha256(x.tobytes()).hexdigest(),
                        "split": "test" if r < n_test else "validation" if r < n_test + n_val
                        else "train"})
    return out, []


def _file_index(project: Project) -> tuple[list[dict], list[dict], dict, list[list[str]]]:
    spec = project.spec
    ds, split = spec.dataset, spec.dataset.split
    root = project.resolve(ds.root)
    if not root.is_dir():
        raise SpecError(project.positions.problem(
            ("dataset", "root"), f"dataset root {ds.root} is not a folder (looked at {root})"))
    skipped: list[dict] = []
    problems: list[Problem] = []
    layout = {"folders": _folders, "esc50": _esc50, "speech_commands": _speech_commands}[ds.layout]
    sources = layout(project, root, skipped, problems)
    if problems:
        raise SpecError(problems)
    clip_seconds = spec.audio.clip_samples / spec.audio.sample_rate
    segment = None if split.by == "recording" else split.segment_seconds
    files = list(_read_sources(project, sources, skipped))
    converted = Counter(note for r in files for note in r.notes)
    files, duplicates = _identical(files, skipped)
    first: dict[str, _Read] = {}  # sha256 -> the first file of that content, by name
    for r in files:
        if r.kept:
            first.setdefault(r.sha256, r)

    def timeline(file: str, k: int) -> tuple[str, float]:
        rec, offset = recording(file)
        # time overlap only within one folder's recording
        return str(Path(file).with_name(rec)), offset + k * clip_seconds

    groups, sources_of = _Groups(), _Groups()
    clips: list[dict] = []
    timing: dict[int, list[tuple[str, float]]] = {}
    for r in files:
        src, canon = r.src, first.get(r.sha256, r)
        for k in r.kept:
            rec, start = timeline(src.file, k)
            c = {"file": src.file, "label": src.label, "split": "", "sha256": r.sha256,
                 "window": k, "group": groups.find(group_key(src.file, start, segment)),
                 "source": sources_of.find(source_id(src.file))}
            timing[id(c)] = [(rec, start)]
            if canon is not r:  # its window k is canon's window k: one group, one source
                crec, cstart = timeline(canon.src.file, k)
                groups.union(c["group"], group_key(canon.src.file, cstart, segment))
                sources_of.union(c["source"], source_id(canon.src.file))
                timing[id(c)].append((crec, cstart))
            clips.append(c)
    fold_of = {r.src.file: r.src.fold for r in files}
    listed_of = {r.src.file: r.src.listed for r in files}
    for c in clips:
        c["group"], c["source"] = groups.find(c["group"]), sources_of.find(c["source"])
        if split.by == "fold":
            fold = fold_of[c["file"]]
            c["split"] = ("test" if fold in split.test_folds else
                          "validation" if fold in split.validation_folds else "train")
        elif split.by == "lists" and not c["file"].startswith(NOISE_DIR + "/"):
            c["split"] = listed_of[c["file"]] or "train"
        else:  # hash, recording, speaker, and lists for noise recordings (not listed)
            c["split"] = _hash_split(ds.seed, c["group"], split.validation, split.test)
    clips = _one_split_per_content(clips, first, skipped)
    clips = _guard_overlaps(clips, timing, clip_seconds, skipped)
    if split.by == "speaker" and not any(c["group"].startswith("speaker:") for c in clips):
        raise SpecError(project.positions.problem(
            ("dataset", "split", "by"), "split by: speaker, but no file name carries a speaker id "
                                        "('<speaker>_nohash_<n>.wav'); use by: hash"))
    return clips, skipped, dict(sorted(converted.items())), duplicates


def _one_split_per_content(clips: list[dict], first: dict[str, _Read], skipped: list) -> list[dict]:
    """Drop a copy's window that metadata (fold, lists) placed in another split than the
    same window of the first file of its content; hash splits never do (one group)."""
    where = {(c["file"], c["window"]): c["split"] for c in clips}
    keep = []
    for c in clips:
        canon = first[c["sha256"]].src.file
        if canon != c["file"] and where.get((canon, c["window"]), c["split"]) != c["split"]:
            _skip(skipped, c["file"], "duplicate in another split",
                  f"window {c['window']} ({c['split']}) is window {c['window']} of {canon} "
                  f"({where[(canon, c['window'])]})")
            continue
        keep.append(c)
    return keep


def _cap(project: Project, clips: list[dict]) -> list[dict]:
    cap = project.spec.dataset.max_clips_per_class
    if cap is None:
        return clips
    by_label: dict[str, list[dict]] = defaultdict(list)
    for c in clips:
        by_label[c["label"]].append(c)
    keep = []
    for members in by_label.values():
        members.sort(key=lambda c: _unit(project.spec.dataset.seed, f"cap\0{c['file']}\0{c['window']}"))
        keep += members[:cap]
    return keep


def _check(project: Project, clips: list[dict], skipped: list[dict]) -> None:
    spec = project.spec
    split = spec.dataset.split
    counts = Counter((c["label"], c["split"]) for c in clips)
    problems = []
    needed = [s for s in SPLITS if s == "train" or split.by in ("fold", "lists")
              or (s == "validation" and split.validation > 0) or (s == "test" and split.test > 0)]
    for i, name in enumerate(spec.classes):
        total = sum(counts[(name, s)] for s in SPLITS)
        if total == 0:
            why = Counter(s["reason"] for s in skipped if s["file"].startswith(name + "/"))
            detail = f" ({', '.join(f'{n} {r}' for r, n in sorted(why.items()))})" if why else ""
            problems.append(project.positions.problem(
                ("classes", i), f"class '{name}' has no usable clips{detail}; add recordings or "
                                f"remove the class"))
            continue
        for s in needed:
            if counts[(name, s)] == 0:
                groups = len({c["group"] for c in clips if c["label"] == name})
                problems.append(project.positions.problem(
                    ("dataset", "split"), f"class '{name}' has no clips in the {s} split "
                                          f"({total} clips in {groups} groups); add recordings, "
                                          f"change dataset.seed or the split fractions"))
    if problems:
        raise SpecError(problems)


def build_index(project: Project) -> dict:
    """The dataset index of a project (see the module docstring); SpecError on a bad dataset."""
    spec = project.spec
    if spec.dataset.layout == "synthetic":
        clips, skipped = _synthetic_index(project)
        converted: dict = {}
        duplicates: list[list[str]] = []
    else:
        clips, skipped, converted, duplicates = _file_index(project)
    clips = sorted(_cap(project, clips), key=lambda c: (c["file"], c["window"]))
    skipped.sort(key=lambda s: (s["file"], s["reason"], s["detail"]))
    _check(project, clips, skipped)
    counts = Counter((c["label"], c["split"]) for c in clips)
    summary = {
        "clips": {name: {s: counts[(name, s)] for s in SPLITS} for name in spec.classes},
        "groups": {s: len({c["group"] for c in clips if c["split"] == s}) for s in SPLITS},
        "speakers": {s: len({c["group"] for c in clips if c["split"] == s
                             and c["group"].startswith("speaker:")}) for s in SPLITS},
        "unheard_test_sources": unheard_sources(clips, spec.classes),
        "skipped": dict(sorted(Counter(s["reason"] for s in skipped).items())),
        "converted": converted,
        "duplicates": duplicates,
        "total": len(clips),
    }
    return {"classes": list(spec.classes), "layout": spec.dataset.layout,
            "synthetic": spec.dataset.layout == "synthetic", "sample_rate": spec.audio.sample_rate,
            "clip_samples": spec.audio.clip_samples, "clips": clips, "skipped": skipped,
            "summary": summary}


def unheard_sources(clips: list[dict], classes: list[str]) -> dict[str, dict]:
    """Per class: test windows and sources, and how many come from a source (recording or
    speaker) that has no window in the training split. A class whose test sources are all
    heard in training has a test figure that measures memory, not generalisation."""
    train = {(c["label"], c["source"]) for c in clips if c["split"] == "train"}
    out = {}
    for name in classes:
        test = [c for c in clips if c["label"] == name and c["split"] == "test"]
        sources = {c["source"] for c in test}
        unheard = {s for s in sources if (name, s) not in train}
        out[name] = {"test_windows": len(test), "test_sources": len(sources),
                     "unheard_sources": len(unheard),
                     "unheard_windows": sum(c["source"] in unheard for c in test)}
    return out


def memory_warnings(index: dict) -> list[str]:
    """One line per class whose test split holds no source unheard in training."""
    out = []
    for name, u in index["summary"].get("unheard_test_sources", {}).items():
        if u["test_windows"] and not u["unheard_windows"]:
            out.append(f"class '{name}': all {u['test_windows']} test windows come from "
                       f"recordings also in training ({u['test_sources']} sources): its test "
                       f"figure measures memory, not generalisation; use split by: recording or "
                       f"evaluation.cross_validation")
    return out


def write_index(project: Project, out_path: str | Path) -> dict:
    index = build_index(project)
    write_json(out_path, index)
    return index


def summarize(index: dict) -> str:
    """A few lines for humans: clips per class and split, what was skipped or converted."""
    s = index["summary"]
    head = "SYNTHETIC dataset (generated tones and noise, not recordings)" if index["synthetic"] \
        else f"dataset ({index['layout']})"
    width = max(len(c) for c in index["classes"])
    lines = [f"{head}: {s['total']} clips"]
    lines.append(f"  {'class':<{width}}  " + "  ".join(f"{x:>10}" for x in SPLITS))
    for name in index["classes"]:
        per = s["clips"][name]
        lines.append(f"  {name:<{width}}  " + "  ".join(f"{per[x]:>10}" for x in SPLITS))
    lines.append("  groups: " + ", ".join(f"{x} {s['groups'][x]}" for x in SPLITS)
                 + (" (speakers: " + ", ".join(f"{x} {s['speakers'][x]}" for x in SPLITS) + ")"
                    if any(s["speakers"].values()) else ""))
    for reason, n in s["skipped"].items():
        files = sorted({x["file"] for x in index["skipped"] if x["reason"] == reason})
        shown = ", ".join(files[:3]) + (f", ... ({len(files)} files)" if len(files) > 3 else "")
        lines.append(f"  skipped: {n} {reason}: {shown}")
    if s["converted"]:
        lines.append("  converted: " + ", ".join(f"{n} {r}" for r, n in s["converted"].items()))
    duplicates = s.get("duplicates", [])
    if duplicates:
        shown = "; ".join(" = ".join(d) for d in duplicates[:3])
        shown += "; ..." if len(duplicates) > 3 else ""
        lines.append(f"  duplicates: {sum(map(len, duplicates))} files in {len(duplicates)} "
                     f"set(s) of identical content, each set in one split: {shown}")
    unheard = s.get("unheard_test_sources", {})
    if unheard and not index["synthetic"]:
        lines.append("  test windows from recordings unheard in training: " + ", ".join(
            f"{name} {u['unheard_windows']}/{u['test_windows']}" for name, u in unheard.items()))
    lines += [f"  WARNING: {w}" for w in memory_warnings(index)]
    return "\n".join(lines)


# ----------------------------------------------------------------------- loading

def load_split(project: Project, index: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """int16 clips [N, clip_samples] and int64 labels (index into spec.classes) of one split.

    Audio is decoded exactly as when the index was built; a file whose content
    no longer matches its sha256 is an error (the index is stale).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    spec = project.spec
    n = spec.audio.clip_samples
    label_of = {name: i for i, name in enumerate(spec.classes)}
    chosen = [c for c in index["clips"] if c["split"] == split]
    out = np.zeros((len(chosen), n), dtype=np.int16)
    labels = np.array([label_of[c["label"]] for c in chosen], dtype=np.int64)
    if index["synthetic"]:
        roles = synthetic.roles(project)
        for row, c in enumerate(chosen):
            _, name, i = c["file"].split(":")
            out[row] = synthetic.clip(roles[name], name, int(i), spec.dataset.seed,
                                      spec.audio.sample_rate, n)
            if hashlib.sha256(out[row].tobytes()).hexdigest() != c["sha256"]:
                raise ValueError(f"{c['file']} no longer generates the clip in the index; "
                                 f"rebuild the index")
        return out, labels
    root = project.resolve(spec.dataset.root)
    rows_of: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row, c in enumerate(chosen):
        rows_of[c["file"]][c["window"]].append(row)
    sha_of = {c["file"]: c["sha256"] for c in chosen}

    def stale(message: str) -> SpecError:
        return SpecError(project.positions.problem(("dataset", "root"), message))

    for file, rows in rows_of.items():  # each file streamed once, up to its last window used
        try:
            with open(root / file, "rb") as f:
                if _sha256(f) != sha_of[file]:
                    raise stale(f"{file} changed since the dataset index was built; rebuild "
                                f"the index")
                f.seek(0)
                missing = set(rows)
                with audio.Stream(f, spec.audio.sample_rate) as stream:
                    for k, w in enumerate(stream.windows(n)):
                        for row in rows.get(k, ()):
                            out[row] = w
                        missing.discard(k)
                        if not missing:
                            break
        except OSError as exc:
            raise stale(f"{file}: {exc.strerror or exc}; the dataset changed since its index "
                        f"was built, rebuild the index") from None
        if missing:
            raise stale(f"{file} has no window {min(missing)}, which its index lists; rebuild "
                        f"the index")
    return out, labels
