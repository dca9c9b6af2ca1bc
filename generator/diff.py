"""`micforge diff OLD NEW`: what changed between two builds, as Markdown for a code review.

Takes two build folders: build/<project>/ each, or build roots holding several projects (then
every project present in both; a project folder against a root takes the root's project of the
same name). Writes, per project: the model's ops with their versions, MACs, sizes and accuracy
figures (analysis/, model.keras compared in its canonical form, generator.kerassave); per
firmware folder (firmware/<variant>/ and firmware/<variant>-capture/): the tensor arena, memory
per board region and the hop budget, the changed constants (#defines and const tables of the
generated C), and a unified diff of the generated files with the inputs-hash header lines masked
(they change with any input; config.h's is shown once) and the model array summarised by size
and sha256.

Memory and hop figures are estimates, computed by the build's own estimators (variant.resolve,
then the firmware family's `context` and `compute_us`); they need the spec each build was made
from (--spec, --old-spec, or --rev for the spec at a git revision), and say whether that spec
reproduces the build's inputs hash. The i.MX RT FlexRAM figures are the plan the build wrote.

Exit status: 0 when no generated firmware file differs (apart from its inputs-hash line), 1 when
some firmware changed (a file, a variant or a project added or removed included), 2 on a usage
error (a missing folder, a spec that does not load).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecError
from .fileio import read_json
from .firmware.budget import HopBudget
from .render import md_code, md_text

SAME, CHANGED, USAGE = 0, 1, 2
PROJECT_MARKERS = ("firmware", "analysis", "tflite", "model", "report.md")
HASH = re.compile(r"([Ii]nputs hash:? )([0-9a-f]{16})")
MODEL_ARRAY_FILE = "model_data.cc"
MODEL_ARRAY = re.compile(r"(_model_data\[\d*\]\s*=\s*\{\n)(.*?)(\n\};)", re.S)
C_SOURCES = (".c", ".h", ".cc", ".cpp")
DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?![\w(])[ \t]*(.*?)[ \t]*$", re.M)
TABLE = re.compile(r"\bconst\s+[\w\s*]*?\b(\w+)\s*(?:\[[^\]]*\])+\s*=\s*\{(.*?)\};", re.S)
C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s,{}]+')
CAPTURE_SUFFIX = "-capture"
DEFAULT_MAX_LINES = 400


class UsageError(Exception):
    """A mistake in the command line: exit status 2 with this message."""


# ---------------------------------------------------------------- reading a build folder

def is_project(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in PROJECT_MARKERS)


def projects_in(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(root.iterdir())
            if not p.name.startswith(".") and is_project(p)}


def firmware_files(folder: Path) -> dict[str, bytes]:
    """{relative path: bytes} of a generated project; a `build/` folder (CMake's, per the
    READMEs) and hidden files (an interrupted write's temporary) are not generated files."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (path.is_file() and not any(p.startswith(".") for p in rel.parts)
                and not (len(rel.parts) > 1 and rel.parts[0] == "build")):
            out[rel.as_posix()] = path.read_bytes()
    return out


def firmware_folders(root: Path) -> dict[str, Path]:
    base = root / "firmware"
    if not base.is_dir():
        return {}
    return {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def model_array(text: str) -> bytes | None:
    """The bytes of model_data.cc's array (the .tflite the firmware holds)."""
    m = MODEL_ARRAY.search(text)
    if m is None:
        return None
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", m.group(2)))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def comparable(name: str, data: bytes) -> str | None:
    """A generated file's text as compared: inputs hashes masked, the model array as one line
    (size and sha256); None for a binary file."""
    if b"\0" in data:
        return None
    text = HASH.sub(r"\1<hash>", data.decode("utf-8", "replace"))
    if name.rsplit("/", 1)[-1] == MODEL_ARRAY_FILE:
        array = model_array(text)
        if array is not None:
            text = MODEL_ARRAY.sub(lambda m: f"{m.group(1)}    /* {len(array)} bytes, sha256 "
                                             f"{sha(array)} */{m.group(3)}", text)
    return text


def defines(files: dict[str, bytes]) -> dict[tuple[str, str], str]:
    """{(file, NAME): value} of every object-like #define with a value in the C sources (a
    second definition of a name in a file, e.g. under #if, gets NAME#2)."""
    out = {}
    for name, data in files.items():
        if not name.endswith(C_SOURCES):
            continue
        seen: dict[str, int] = {}
        for m in DEFINE.finditer(data.decode("utf-8", "replace")):
            if not m.group(2):
                continue
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
            key = m.group(1) if seen[m.group(1)] == 1 else f"{m.group(1)}#{seen[m.group(1)]}"
            out[(name, key)] = m.group(2)
    return out


def tables(files: dict[str, bytes]) -> dict[tuple[str, str], list[str]]:
    """{(file, name): values} of the const arrays with initialisers in the C sources (front-end
    windows and mel weights, the decimator's tables, labels); not the model array."""
    out = {}
    for name, data in files.items():
        if not name.endswith(C_SOURCES) or name.rsplit("/", 1)[-1] == MODEL_ARRAY_FILE:
            continue
        for m in TABLE.finditer(data.decode("utf-8", "replace")):
            out[(name, m.group(1))] = TOKEN.findall(C_COMMENT.sub(" ", m.group(2)))
    return out


# ---------------------------------------------------------------- estimates from the spec

@dataclass(frozen=True)
class Region:
    name: str
    what: str
    used: int
    size: int | None  # the region's bytes, None when unknown


@dataclass(frozen=True)
class Estimate:
    """A variant's estimated memory and hop budget, from the build's own estimators
    (generator.firmware.budget, through the family)."""

    board: str
    regions: tuple[Region, ...]
    budget: HopBudget
    reproduces: bool  # the spec renders this build's inputs hash (config.h)


def estimate(project, variant: str, root: Path, files: dict[str, bytes]) -> Estimate | str:
    """The estimates of `variant` built into `root` by `project` (or why there are none)."""
    from . import targets
    from .boards import load_board
    from .flexram import PlanError
    from .variant import resolve

    target = next((t for t in project.spec.targets if t.name == variant), None)
    if target is None:
        return f"the spec has no target '{variant}'"
    analysis = read_json(root / "analysis" / "analysis.json")
    model = model_array(files.get(MODEL_ARRAY_FILE, b"").decode("utf-8", "replace"))
    if analysis is None or model is None:
        return "no analysis/analysis.json or model array in this build"
    board = load_board(target.board)
    try:
        v = resolve(project, target, board, analysis, read_json(root / "analysis" / "streaming.json"))
    except (KeyError, TypeError) as exc:
        return f"the build's analysis/analysis.json does not fit this generator ({exc!r})"
    family = targets.family(board)
    try:
        ctx = family.context(v, analysis, model)
    except (SpecError, PlanError, ValueError) as exc:
        return f"the spec does not render this variant: {exc}"
    except (KeyError, TypeError) as exc:  # an analysis.json older than this generator
        return f"the build's analysis/analysis.json does not fit this generator ({exc!r})"
    built = HASH.search(files.get("config.h", b"").decode("utf-8", "replace"))
    plan = ctx["plan"].to_json() if "plan" in ctx else None
    regions = [Region(r.name, ", ".join(what for what, _ in r.parts) or r.note, r.used,
                      r.size or None)
               for r in family.memory(v, ctx["model_len"], plan) if r.estimated]
    return Estimate(board=board.title, regions=tuple(regions), budget=family.budget(v),
                    reproduces=built is not None and built.group(2) == ctx["digest"])


def plan_regions(plan: dict, board=None) -> list[Region]:
    """The FlexRAM plan's needs against its banks (flexram_plan.json, as the build wrote it)."""
    sizes = plan["sizes"]
    ocram = plan["ocram_flex_size"]
    what = "eDMA buffers + heap (FlexRAM OCRAM banks"
    if board is not None:
        ocram += sum(r.length for r in board.regions("ocram"))
        what += " + dedicated OCRAM"
    return [Region("ITCM", "hot CMSIS-NN/DSP code",
                   sizes["itcm_code"] if plan["itcm_code_in_itcm"] else 0, plan["itcm_size"]),
            Region("DTCM", "arena + stack + .data/.bss + feature buffers", sizes["dtcm"],
                   plan["dtcm_size"]),
            Region("OCRAM", what + ")", sizes["ocram"], ocram)]


# ---------------------------------------------------------------- comparing

@dataclass
class FirmwareDiff:
    """One firmware folder (a variant, or its capture project) in OLD and NEW."""

    name: str
    old: dict[str, bytes]
    new: dict[str, bytes]
    changed: list[str] = field(default_factory=list)   # differ after masking
    hash_only: list[str] = field(default_factory=list)  # differ in the inputs-hash line alone
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __post_init__(self):
        for name in sorted(set(self.old) | set(self.new)):
            a, b = self.old.get(name), self.new.get(name)
            if a is None:
                self.added.append(name)
            elif b is None:
                self.removed.append(name)
            elif a != b:
                text = comparable(name, a)
                same = text is not None and text == comparable(name, b)
                (self.hash_only if same else self.changed).append(name)

    @property
    def firmware_changed(self) -> bool:
        return bool(self.changed or self.added or self.removed)


def _pct(used: float, size: float | None) -> str:
    return f" ({100 * used / size:.1f}%)" if size else ""


def _bytes(n: int | None) -> str:
    return "—" if n is None else f"{n:,} B"


def _cell(text: str) -> str:
    """A code span inside a table cell (md_code, with `|` escaped: GFM splits cells on it)."""
    return md_code(text).replace("|", "\\|")


def _row(label: str, old: str, new: str) -> str:
    mark = "" if old == new else "changed"
    return f"| {label} | {old} | {new} | {mark} |"


def _table(rows: list[str], head: str = "| | old | new | |") -> list[str]:
    return [head, "|" + "---|" * (head.count("|") - 1)] + rows + [""]


def _fence(text: str, info: str = "") -> list[str]:
    """A fenced block that no run of backticks inside `text` can close."""
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text.rstrip("\n"), fence, ""]


def _ops(analysis: dict | None, tflite: Path) -> dict[str, str]:
    """{op (resolver): 'vN xC'} from the analysis; versions are read from the flatbuffer
    (generator.analyze, the schema TFLM ships) when the analysis predates recording them."""
    if analysis is None:
        return {}
    ops = analysis.get("ops", [])
    if any("version" not in op for op in ops) and tflite.is_file():
        from .analyze import read_layers

        versions: dict[str, int] = {}
        for layer in read_layers(tflite.read_bytes())[0]:
            versions[layer["op"]] = max(versions.get(layer["op"], 0), layer["version"])
        ops = [dict(op, version=versions.get(op["op"])) for op in ops]
    out = {}
    for op in ops:
        version = op.get("version")
        out[f"{op['op']} ({op.get('resolver', '?')})"] = (
            f"v{version} x{op['count']}" if version is not None else f"x{op['count']}")
    return out


def _percent(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _keras_sha(path: Path) -> str:
    """sha256 of a .keras file's canonical form: equal for equal models, whether or not the
    build saved it with kerassave.save_stable."""
    from .kerassave import canonical

    if not path.is_file():
        return "—"
    try:
        return f"sha256 {sha(canonical(path.read_bytes()))}"
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        return f"unreadable ({exc})"


def model_rows(old: Path, new: Path) -> list[str]:
    """The model's figures: ops, size, MACs, arena, accuracy, streams."""
    figures = []
    for root in (old, new):
        a = read_json(root / "analysis" / "analysis.json") or {}
        e = read_json(root / "analysis" / "evaluation.json") or {}
        s = read_json(root / "analysis" / "streaming.json") or {}
        c = read_json(root / "analysis" / "crossval.json") or {}
        tflite = root / "tflite" / "model.tflite"
        keras = root / "model" / "model.keras"
        run = e.get("runtimes", {})
        at = s.get("test", {}).get("at_threshold", {})
        fa95 = at.get("false_alarms_per_hour_95")
        f = {
            "MACs": f"{a['macs']:,}" if "macs" in a else "—",
            "parameters": f"{a['params']:,}" if "params" in a else "—",
            "model.tflite": (f"{_bytes(tflite.stat().st_size)}, sha256 {sha(tflite.read_bytes())}"
                             if tflite.is_file() else "—"),
            "model.keras (canonical form, generator.kerassave)": _keras_sha(keras),
            "tensor arena measured (TFLM) + margin": (
                f"{a['arena']['measured_bytes']:,} + {a['arena']['margin']:,} B"
                if "arena" in a else "—"),
            "test accuracy float / int8 / TFLM": " / ".join(
                _percent(run.get(r, {}).get("accuracy")) for r in ("float", "int8", "tflm"))
                + (f" ({e['test_clips']} clips)" if "test_clips" in e else ""),
            "int8 TFLite vs TFLM: clips differing": str(e.get("int8_tflm_prediction_differences",
                                                               "—")),
            "cross-validation mean accuracy (TFLM)": (
                f"{_percent(c.get('mean_accuracy'))} ({len(c.get('folds', []))} folds)"
                if c else "—"),
            "stream: threshold": str(s.get("threshold", "—")),
            "stream: detection rate": (
                f"{_percent(at['detection_rate'])} ({at['detected']}/{at['events']})"
                if "detection_rate" in at else "—"),
            "stream: false alarms per hour (95% interval)": (
                f"{at['false_alarms_per_hour']:.1f} ({fa95[0]:.1f}-{fa95[1]:.1f})"
                if fa95 else "—"),
            "stream: onset latency median / p95": (
                f"{1000 * at['latency_median_s']:.0f} / {1000 * at['latency_p95_s']:.0f} ms"
                if at.get("latency_median_s") is not None else "—"),
        }
        figures.append((_ops(a, tflite), f))
    (old_ops, old_f), (new_ops, new_f) = figures
    rows = [_row(md_text(f"op {op}"), old_ops.get(op, "—"), new_ops.get(op, "—"))
            for op in sorted(set(old_ops) | set(new_ops))]
    rows += [_row(md_text(k), md_text(old_f[k]), md_text(new_f[k])) for k in old_f]
    return _table(rows)


def constant_rows(fw: FirmwareDiff) -> list[str]:
    old_d, new_d = defines(fw.old), defines(fw.new)
    rows = []
    for key in sorted(set(old_d) | set(new_d)):
        a, b = old_d.get(key), new_d.get(key)
        if a != b:
            cells = ["—" if v is None else _cell(v) for v in (a, b)]
            rows.append(f"| {md_text(key[0])} | {md_text(key[1])} | {cells[0]} | {cells[1]} |")
    old_t, new_t = tables(fw.old), tables(fw.new)
    for k in sorted(set(old_t) | set(new_t)):
        a, b = old_t.get(k), new_t.get(k)
        if a == b:
            continue
        if a is not None and b is not None and len(a) == len(b):
            what = f"{len(b)} values, {sum(x != y for x, y in zip(a, b))} differ"
        else:
            what = f"{len(b)} values" if b is not None else "—"
        rows.append(f"| {md_text(k[0])} | {md_text(k[1] + '[]')} | "
                    f"{f'{len(a)} values' if a is not None else '—'} | {md_text(what)} |")
    if not rows:
        return []
    return ["Changed constants:", ""] + _table(rows, "| file | constant | old | new |")


def unified(fw: FirmwareDiff, max_lines: int) -> str:
    out = []
    for name in fw.changed + fw.added + fw.removed:
        a, b = fw.old.get(name), fw.new.get(name)
        ta = "" if a is None else comparable(name, a)
        tb = "" if b is None else comparable(name, b)
        if ta is None or tb is None:
            out.append(f"Binary file {name}: sha256 {sha(a or b'')} -> {sha(b or b'')}\n")
            continue
        lines = list(difflib.unified_diff(
            ta.splitlines(keepends=True), tb.splitlines(keepends=True),
            fromfile=f"old/{fw.name}/{name}" if a is not None else "/dev/null",
            tofile=f"new/{fw.name}/{name}" if b is not None else "/dev/null"))
        lines = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n"
                 for ln in lines]
        if max_lines and len(lines) > max_lines:
            lines = lines[:max_lines] + [f"... {len(lines) - max_lines} more lines of "
                                         f"{name} (--max-lines 0 shows all)\n"]
        out.extend(lines)
    return "".join(out)


def _hash_of(files: dict[str, bytes]) -> str | None:
    m = HASH.search(files.get("config.h", b"").decode("utf-8", "replace"))
    return m.group(2) if m else None


def estimate_rows(fw: FirmwareDiff, sides: list[tuple[Path, object]]
                  ) -> tuple[list[str], list[tuple[str, str]]]:
    """Rows of the variant's table (arena, model array, regions, hop) and notes under it."""
    cols, notes = [], []
    for (root, project), files, label in zip(sides, (fw.old, fw.new), ("old", "new")):
        col: dict[str, str] = {}
        arena = defines({k: v for k, v in files.items() if k == "model.h"}).get(
            ("model.h", "MF_ARENA_BYTES"))
        col["tensor arena (model.h MF_ARENA_BYTES)"] = (
            f"{int(arena.strip('()U')):,} B" if arena else "—")
        array = model_array(files.get(MODEL_ARRAY_FILE, b"").decode("utf-8", "replace"))
        col["model array (model_data.cc)"] = (f"{len(array):,} B, sha256 {sha(array)}"
                                              if array is not None else "—")
        est = None
        if fw.name.endswith(CAPTURE_SUFFIX) or not files:
            pass
        elif project is None:
            notes.append((label, "no spec given (--spec, --old-spec, --rev): no RAM, flash or "
                                 "hop estimates"))
        else:
            est = estimate(project, fw.name, root, files)
            if isinstance(est, str):
                notes.append((label, est))
                est = None
            elif not est.reproduces:
                notes.append((label, "the spec does not reproduce this build's inputs hash "
                                     "(config.h): the spec, model, board or generator differ "
                                     "from the build's; the estimates are the spec's"))
        if est is not None:
            for r in est.regions:
                col[f"{r.name}, estimated: {r.what}"] = (
                    f"{r.used:,} of {r.size:,} B{_pct(r.used, r.size)}" if r.size
                    else f"{r.used:,} B")
            b = est.budget
            inv = "Invoke ?" if b.invoke_us is None else f"Invoke {b.invoke_us:,.0f}"
            col["hop budget, estimated (us)"] = (
                f"{b.total_us:,.0f} of {b.hop_us:,}{_pct(b.total_us, b.hop_us)}: front "
                f"end {b.front_us:,.0f} + {inv} + {b.audio_what} {b.audio_us:,.0f} + serial "
                f"line {b.serial_us:,.0f}")
        elif "flexram_plan.json" in files:
            for r in plan_regions(json.loads(files["flexram_plan.json"])):
                col[f"{r.name}, planned (flexram_plan.json): {r.what}"] = (
                    f"{r.used:,} of {r.size:,} B{_pct(r.used, r.size)}")
        cols.append(col)
    keys = list(dict.fromkeys(list(cols[0]) + list(cols[1])))
    rows = [_row(md_text(k), md_text(cols[0].get(k, "—")), md_text(cols[1].get(k, "—")))
            for k in keys]
    return rows, notes


def firmware_section(fw: FirmwareDiff, sides, max_lines: int) -> list[str]:
    rows, notes = estimate_rows(fw, sides)
    status = ("firmware changed" if fw.firmware_changed else "no firmware change")
    out = [f"### {md_text(fw.name)}: {status}", ""]
    if not fw.old or not fw.new:
        out += [f"Only in {'NEW' if fw.new else 'OLD'}: {len(fw.new or fw.old)} files.", ""]
        return out
    capture = fw.name.endswith(CAPTURE_SUFFIX)  # no model: no arena, model or estimates
    if not capture and (fw.firmware_changed or any(r.endswith("changed |") for r in rows)):
        out += _table(rows)
        out += [f"Note ({label}): {md_text(text)}" for label, text in notes]
        out += [""] if notes else []
    if not fw.firmware_changed and not fw.hash_only:
        return out + ["Identical files.", ""]
    parts = []
    for what, names in (("changed", fw.changed), ("added", fw.added), ("removed", fw.removed)):
        if names:
            parts.append(f"{what}: " + ", ".join(md_code(n) for n in names))
    if fw.hash_only:
        old_h, new_h = _hash_of(fw.old), _hash_of(fw.new)
        shown = f" (config.h: {old_h} -> {new_h})" if old_h and new_h and old_h != new_h else ""
        parts.append(f"{len(fw.hash_only)} more differ in their inputs-hash line alone{shown}")
    out += ["Files: " + "; ".join(parts) + ".", ""]
    if fw.firmware_changed:
        out += constant_rows(fw)
        out += _fence(unified(fw, max_lines), "diff")
    return out


# ---------------------------------------------------------------- the command

@dataclass(frozen=True)
class Pair:
    name: str
    old: Path | None
    new: Path | None


def pairs(old: Path, new: Path, specs: dict) -> list[Pair]:
    """The projects to compare: two project folders, two roots, or a project folder and a root."""
    for path, label in ((old, "OLD"), (new, "NEW")):
        if not path.is_dir():
            raise UsageError(f"{path}: {label} is not a folder")
    old_p, new_p = is_project(old), is_project(new)
    if old_p and new_p:
        names = [n for n in specs if n in (old.name, new.name)] or list(specs)
        name = names[0] if len(names) == 1 else new.name
        return [Pair(name, old, new)]
    if old_p or new_p:
        project, root = (old, new) if old_p else (new, old)
        name = next(iter(specs)) if len(specs) == 1 else project.name
        inside = projects_in(root)
        if name not in inside:
            raise UsageError(f"{root}: no project '{name}' in this build root "
                             f"(it holds {', '.join(inside) or 'none'})")
        return [Pair(name, project, inside[name]) if old_p else Pair(name, inside[name], project)]
    old_all, new_all = projects_in(old), projects_in(new)
    if not old_all and not new_all:
        raise UsageError(f"{old} and {new} hold no build (build/<project>/ folders with "
                         f"firmware/, analysis/, ...)")
    return [Pair(n, old_all.get(n), new_all.get(n)) for n in sorted(set(old_all) | set(new_all))]


def load_specs(paths: list[str], rev: str | None = None) -> dict:
    """{project name: Project} of spec files, or of their content at git revision `rev`."""
    from .spec import load_spec

    out = {}
    for given in paths:
        path = Path(given)
        if not path.is_file():
            raise UsageError(f"{given}: no such spec file")
        text, display = None, given
        if rev is not None:
            text = _git_show(path, rev)
            if text is None:
                continue
            display = f"{rev}:{given}"
        try:
            project = load_spec(path, display, text=text)
        except SpecError as exc:
            raise UsageError(str(exc)) from None
        out[project.name] = project
    return out


def _git_show(path: Path, rev: str) -> str | None:
    """The file at `rev` (None when it is not in that revision); UsageError for a bad rev."""
    def git(*args):
        return subprocess.run(["git", "-C", str(path.resolve().parent), *args],
                              capture_output=True, text=True)
    check = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if check.returncode != 0:
        raise UsageError(f"--rev {rev}: not a git revision of the repository holding {path}")
    shown = git("show", f"{rev}:./{path.name}")
    return shown.stdout if shown.returncode == 0 else None


def render(old: Path, new: Path, old_specs: dict, new_specs: dict, rev: str | None = None,
           max_lines: int = DEFAULT_MAX_LINES, labels: tuple[str, str] | None = None
           ) -> tuple[str, int]:
    """(Markdown, exit status) of the comparison of two builds."""
    labels = labels or (str(old), str(new))
    found = pairs(old, new, {**old_specs, **new_specs})
    sections, changed = [], []
    for pair in found:
        if pair.old is None or pair.new is None:
            only = "NEW" if pair.old is None else "OLD"
            has_fw = bool(firmware_folders(pair.old or pair.new))
            if has_fw:
                changed.append(f"{pair.name} (only in {only})")
            sections += [f"## {md_text(pair.name)}", "", f"Only in {only}.", ""]
            continue
        sides = [(pair.old, old_specs.get(pair.name)), (pair.new, new_specs.get(pair.name))]
        out = [f"## {md_text(pair.name)}", ""]
        specs = []
        for (_, project), label in zip(sides, ("old", "new")):
            specs.append(f"{label} {md_code(project.positions.path) if project else 'none'}")
        out += ["Specs: " + ", ".join(specs) + ".", "", "### Model", ""]
        out += model_rows(pair.old, pair.new)
        old_fw, new_fw = firmware_folders(pair.old), firmware_folders(pair.new)
        names = sorted(set(old_fw) | set(new_fw))
        diffs = [FirmwareDiff(n, firmware_files(old_fw[n]) if n in old_fw else {},
                              firmware_files(new_fw[n]) if n in new_fw else {}) for n in names]
        moved = [d.name for d in diffs if d.firmware_changed]
        if moved:
            changed.append(f"{pair.name}: {', '.join(moved)}")
        for d in diffs:
            out += firmware_section(d, sides, max_lines)
        sections += out
    status = CHANGED if changed else SAME
    head = ["# micforge diff", "", "| | build |", "|---|---|",
            f"| old | {_cell(labels[0])}" + (f" (git revision {_cell(rev)})" if rev else "") + " |",
            f"| new | {_cell(labels[1])} |", ""]
    if changed:
        head += [f"**Firmware changed** (exit status {CHANGED}): "
                 + "; ".join(md_text(c) for c in changed) + ".", ""]
    else:
        head += [f"**No firmware change** (exit status {SAME}): every generated firmware file "
                 f"is the same, apart from inputs-hash lines.", ""]
    head += ["Memory and hop figures are estimates from the build's estimators, not a linked "
             "ELF's sizes. Inputs-hash header lines are masked in the diffs.", ""]
    return "\n".join(head + sections).rstrip("\n") + "\n", status


def cmd_diff(args) -> int:
    try:
        new_specs = load_specs(args.spec)
        old_specs = load_specs(args.old_spec)
        if args.rev is not None and args.spec:
            from_rev = load_specs(args.spec, args.rev)
            old_specs = {**from_rev, **old_specs}
        elif not args.old_spec:
            old_specs = dict(new_specs)
        text, status = render(Path(args.old), Path(args.new), old_specs, new_specs, args.rev,
                              args.max_lines, (args.old, args.new))
    except UsageError as exc:
        print(f"micforge diff: {exc}", file=sys.stderr)
        return USAGE
    if args.output:
        from .fileio import write_if_changed
        write_if_changed(args.output, text)
    else:
        sys.stdout.write(text)
    return status


def register(sub) -> None:
    d = sub.add_parser(
        "diff", help="compare two builds as Markdown for a review (exit 1: the firmware changed)",
        description="Compare two build folders (build/<project>/, or build roots: every project "
                    "in both) per variant: ops and versions, arena, estimated memory per region "
                    "and hop budget, accuracy, changed constants, and a unified diff of the "
                    "generated sources. Exit status 0: no generated firmware file differs; 1: "
                    "some do; 2: usage error. For a git revision, build it into a folder of its "
                    "own first: git worktree add OLDTREE REV && micforge build OLDTREE/SPEC "
                    "--build-dir OLDBUILD, then micforge diff OLDBUILD build --rev REV "
                    "--spec SPEC.")
    d.add_argument("old", help="the old build: build/<project>/ or a build root")
    d.add_argument("new", help="the new build: build/<project>/ or a build root")
    d.add_argument("--spec", action="append", default=[],
                   help="the spec NEW was built from (repeat for several projects); also OLD's "
                        "unless --old-spec or --rev says otherwise; enables the estimates")
    d.add_argument("--old-spec", action="append", default=[],
                   help="the spec OLD was built from (repeat for several projects)")
    d.add_argument("--rev", help="OLD was built from this git revision: labels it, and takes "
                                 "OLD's spec from the --spec files as they were at REV")
    d.add_argument("--output", "-o", help="write the Markdown here instead of stdout")
    d.add_argument("--max-lines", type=int, default=DEFAULT_MAX_LINES,
                   help=f"diff lines shown per file (default {DEFAULT_MAX_LINES}; 0: all)")
    d.set_defaults(func=cmd_diff)
