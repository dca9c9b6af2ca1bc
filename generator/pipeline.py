"""The build graph: which stage reads which slice of the spec, and the SCons glue.

Each stage is a function elsewhere in `generator` from validated inputs to an
artifact; the actions here only load the spec, call it and return. Heavy
imports (TensorFlow) happen inside the actions, so reading the graph — and a
no-op rebuild — never imports them.

`declare(env, project)` adds one project's targets to an SCons environment:

    index -> features -> model -> tflite -> analysis / evaluation
                                          -> firmware/<variant> (one per target) -> report
    index -> folds -> crossval (when evaluation.cross_validation is set) -> report

Every target depends on a `Value` holding exactly the spec slice it reads,
on its input artifacts, and on the source of the code that makes it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

from .paths import REPO, Artifacts
from .spec import Project, ProjectSpec, Target, load_spec

# Which top-level spec sections each stage reads. Firmware reads a per-target
# slice as well (only its own target, so editing one variant rebuilds only it).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "index": ("audio", "classes", "dataset"),
    "features": ("audio", "classes", "features", "augmentation", "detection.classes"),
    "model": ("classes", "augmentation", "model", "training", "transfer"),
    "folds": ("audio", "classes", "dataset.split", "features", "augmentation",
              "detection.classes", "model", "training", "transfer", "quantization",
              "evaluation.cross_validation"),
    # scoring the folds is cheap: a new threshold re-scores them, trains nothing
    "crossval": ("classes", "detection.classes", "detection.threshold",
                 "evaluation.cross_validation"),
    "tflite": ("quantization", "training", "augmentation.spec_augment"),  # qat fine-tunes
    "analysis": ("arena",),
    "evaluation": ("classes",),
    "streaming": ("audio", "classes", "features", "detection", "evaluation.streaming"),
    "firmware": ("name", "audio", "features", "classes", "detection", "arena"),
    "capture": ("name", "audio"),
    "report": ("name", "description", "targets", "detection.classes", "evaluation"),
}

def spec_slice(spec: ProjectSpec, stage: str, target: Target | None = None) -> str:
    """Canonical JSON of the part of the spec that `stage` reads."""
    data = spec.model_dump(mode="json")
    picked = {}
    for key in STAGE_SECTIONS[stage]:  # "section" or "section.field"
        section, _, field = key.partition(".")
        picked[key] = data[section][field] if field else data[section]
    if stage in ("features", "folds", "crossval", "report", "streaming"):
        picked["detect_classes"] = spec.detect_classes  # the default depends on `classes`
    if target is not None:
        picked["target"] = target.model_dump(mode="json")
    return json.dumps(picked, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=None)  # projects sharing a dataset walk it once per build
def dataset_listing(root: Path) -> str:
    """Every file under the dataset root with its size and mtime, as one string.

    The index depends on this one Value rather than on thousands of File nodes:
    an added, removed or touched file re-runs the index (cheap), whose content
    hashes then decide whether anything downstream changes. Checking it costs
    one directory walk, which keeps a no-op build fast.

    As the index does, a link to a folder is followed in the root (a class folder may
    be a link) unless it points to the root or above, and listed but not walked deeper.
    A link that cannot be followed (dangling, or a loop) or a file gone meanwhile is
    listed with the error and the link's target instead of its size, never a crash
    before the build starts: the index reports it as a skipped file, and repairing it
    changes this listing.
    """
    top = os.fspath(root)
    real_top = os.path.realpath(top)

    def walked(dirpath: str, name: str) -> bool:
        path = os.path.join(dirpath, name)
        if not os.path.islink(path):
            return True
        real = os.path.realpath(path)  # a link in the root, unless to the root or above
        return dirpath == top and os.path.commonpath([real_top, real]) != real

    entries = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if walked(dirpath, d))
        for name in sorted(filenames + links):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            try:
                st = os.stat(path)
            except OSError as exc:
                try:
                    target = os.readlink(path)
                except OSError:
                    target = ""
                entries.append(f"{rel}\t{exc.strerror or type(exc).__name__}\t{target}")
                continue
            entries.append(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}")
    return "\n".join(entries)


@functools.lru_cache(maxsize=None)
def action_imports() -> dict[str, tuple[str, ...]]:
    """{stage: the generator modules its act_<stage> function imports}, read from this file."""
    import ast

    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("act_"):
            out[node.name[4:]] = tuple(sorted(
                f"generator.{n.module}" for n in ast.walk(node)
                if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module))
    return out


@functools.lru_cache(maxsize=None)
def stage_modules(stage: str) -> tuple[Path, ...]:
    """The source files of the code a stage runs: everything its action's imports reach in
    the package's import graph (generator.depgraph), plus, where targets.py is reached, the
    family modules it loads by name and the files they copy. Derived, never hand-listed: editing a
    module rebuilds exactly the stages that run it. pipeline.py itself is left out: its
    actions only call the stages."""
    from .depgraph import closure, module_file, module_graph
    from .targets import FAMILIES

    graph = module_graph()
    modules = closure(graph, list(action_imports()[stage]))
    data: list[Path] = []
    if "generator.targets" in modules:  # it imports the family modules by name
        modules |= closure(graph, [f.module for f in FAMILIES.values()])
        data = [REPO / "generator" / f for fam in FAMILIES.values() for f in fam.data_files]
    return tuple(sorted({module_file(m) for m in modules} | set(data)))


def _template_files() -> list[Path]:
    """Every firmware template: each variant renders its family's tree and templates/common
    (templates/report/ is the report's own input)."""
    return sorted(p for p in (REPO / "templates").rglob("*")
                  if p.is_file() and p.relative_to(REPO / "templates").parts[0] != "report")


# ----------------------------------------------------------------- the actions
# Each receives SCons (target, source, env); env["SPEC"] is the spec path.

def _project(env) -> Project:
    """The spec exactly as the graph was built from it (SPEC_TEXT), never the file as it is
    now: an edit during a build must not reach a later stage of that build."""
    return load_spec(env["SPEC"], env["SPEC_DISPLAY"], text=env["SPEC_TEXT"])


def _shown(path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load_json(path) -> dict:
    return json.loads(Path(str(path)).read_text())


def act_index(target, source, env):
    from .dataset import summarize, write_index
    index = write_index(_project(env), Path(str(target[0])))
    print(summarize(index))
    s = index["summary"]
    splits = {k: sum(c.get(k, 0) for c in s["clips"].values()) for k in ("train", "validation", "test")}
    return (f"{s['total']} windows of {len(s['clips'])} classes: train {splits['train']}, "
            f"validation {splits['validation']}, test {splits['test']}")


def act_features(target, source, env):
    from .features import design
    from .featurestage import build_features
    project = _project(env)
    build_features(project, _load_json(source[0]), Path(str(target[0])))
    return design(project.spec).describe()


def act_model(target, source, env):
    from .train import train
    train(_project(env), Path(str(source[0])), Path(str(target[0])), Path(str(target[1])))
    phases = _load_json(target[1])["phases"]
    run = phases.get("train") or next(iter(phases.values()))
    val = run["metrics"].get("val_accuracy") or [0.0]
    return (f"{run['epochs_run']} epochs, best validation accuracy {100 * max(val):.1f}% "
            f"(epoch {run['best_epoch']})")


def act_tflite(target, source, env):
    from .convert import to_tflite
    to_tflite(_project(env), Path(str(source[0])), Path(str(source[1])), Path(str(target[0])))
    return f"{Path(str(target[0])).stat().st_size:,} bytes, int8 in and out"


def act_analysis(target, source, env):
    from .analyze import analyze, format_analysis
    from .checks import check_project
    project = _project(env)
    result = analyze(project, Path(str(source[0])), Path(str(target[0])))
    print(format_analysis(result))
    check_project(project, result)
    return (f"{result['macs']:,} MACs, {len(set(result['resolver']))} ops, arena "
            f"{result['arena_bytes']:,} B, model {result['model_bytes']:,} B")


def act_evaluation(target, source, env):
    from .evaluate import evaluate, format_evaluation
    result = evaluate(_project(env), Path(str(source[0])), Path(str(source[1])),
                      Path(str(source[2])), Path(str(target[0])))
    print(format_evaluation(result))
    acc = {k: f"{100 * v['accuracy']:.1f}%" for k, v in result["runtimes"].items()}
    return (f"test accuracy float {acc.get('float')}, int8 {acc.get('int8')}, TFLM "
            f"{acc.get('tflm')} ({result['test_clips']} clips)")


def act_folds(target, source, env):
    from .crossval import train_folds
    meta = train_folds(_project(env), _load_json(source[0]), Path(str(target[0])))
    trained = [f for f in meta["folds"] if "skipped" not in f]
    return (f"{len(trained)} of {len(meta['folds'])} folds ({meta['method']}) trained on "
            f"{' + '.join(meta['splits'])}, {sum(f['test_windows'] for f in trained):,} "
            f"held-out windows scored under TFLM")


def act_crossval(target, source, env):
    from .crossval import format_crossval, score_folds
    project = _project(env)
    calibration = _load_json(source[1]) if project.spec.detection.threshold == "auto" else None
    result = score_folds(project, Path(str(source[0])), Path(str(target[0])), calibration)
    print(format_crossval(result))
    mean = result["mean_accuracy"]
    return ("no fold trained" if mean is None else
            f"mean accuracy {100 * mean:.1f}% on recordings each fold never heard "
            f"(threshold {result['threshold']:g})")


def act_streaming(target, source, env):
    from .streaming import format_streaming, write_streaming
    result = write_streaming(_project(env), _load_json(source[0]), Path(str(target[0])))
    print(format_streaming(result))
    at = result["test"]["at_threshold"]
    return (f"test stream ({result['minutes']} min): {100 * at['detection_rate']:.1f}% of events "
            f"detected, {at['false_alarms_per_hour']:.1f} false alarms/h at threshold "
            f"{result['threshold']:g}")


def act_firmware(target, source, env):
    from .boards import load_board
    from .targets import render_target
    project = _project(env)
    variant = next(t for t in project.spec.targets if t.name == env["VARIANT"])
    board = load_board(variant.board)
    analysis = _load_json(source[1])
    tflite = Path(str(source[0])).read_bytes()
    calibration = _load_json(source[2]) if project.spec.detection.threshold == "auto" else None
    render_target(project, variant, board, analysis, tflite, Path(env["OUT_DIR"]), calibration)
    return f"{len(target)} files in {_shown(env['OUT_DIR'])} ({board.title})"


def act_capture(target, source, env):
    from .boards import load_board
    from .targets import render_capture
    project = _project(env)
    variant = next(t for t in project.spec.targets if t.name == env["VARIANT"])
    render_capture(project, variant, load_board(variant.board), Path(env["OUT_DIR"]))
    return f"{len(target)} files in {_shown(env['OUT_DIR'])}"


def act_report(target, source, env):
    from .report import write_report
    from .report_html import write_report_html
    project, art = _project(env), Artifacts(Path(env["ART_ROOT"]))
    write_report(project, art, Path(str(target[0])))
    write_report_html(project, art, Path(str(target[1])))


def _user_errors(action, label: str = ""):
    """Run a stage: a SpecError it raises prints as `file:line:col: message`, not a traceback.

    While a stage runs in the main thread (always, unless -j > 1), Ctrl-C (SIGINT) raises
    KeyboardInterrupt in it, so the stage stops at once and its clean-up runs (outputs are
    written atomically: none is left half-written); then the handler in place before the
    stage (SConstruct's: record the finished stages, one line, exit 130) ends the build.
    TensorFlow makes a KeyboardInterrupt unreliable: raised while Python runs a weakref
    callback or a __del__ (its graph code runs many) it is printed as "Exception ignored"
    and dropped; raised while pybind11 handles another error it becomes a RuntimeError.
    So once Ctrl-C is pressed, none is printed, SIGINT is sent again every half second
    until the stage gives way, and whatever the stage then raises, or its return, ends
    the build the same way."""
    def run(target, source, env):
        import signal
        import threading

        from . import console
        from .errors import SpecError

        project = env["PROJECT"]
        log = Path(env["ART_ROOT"]) / "logs" / (label.replace(" ", "-") + ".log")

        done = threading.Event()

        def resend():
            while not done.wait(0.5):
                os.kill(os.getpid(), signal.SIGINT)

        def unraisable(info):
            if not isinstance(info.exc_value, KeyboardInterrupt):
                default_unraisable(info)

        def interrupt(signum, frame):
            if done.is_set():  # already stopping
                return
            if resender.ident is None:
                sys.unraisablehook = unraisable
                resender.start()
            raise KeyboardInterrupt

        def stop():
            done.set()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if callable(outer):
                outer(signal.SIGINT, None)  # SConstruct's ends the process
            raise KeyboardInterrupt  # no handler of ours: SCons reports the interruption

        resender = threading.Thread(target=resend, daemon=True)
        default_unraisable = sys.unraisablehook
        in_main = threading.current_thread() is threading.main_thread()
        outer = signal.signal(signal.SIGINT, interrupt) if in_main else None
        if console.is_tty() and not console.verbose():
            console.terminal().write(f"[{project}] {label} ...\r")
        start = time.monotonic()
        try:
            with console.stage_log(log):
                summary = action(target, source, env)
            if resender.ident is not None:
                stop()
            console.say(("\r\x1b[K" if console.is_tty() else "")
                        + console.stage_line(project, label, time.monotonic() - start, summary))
            for warning in console.warnings_in(log):
                console.say(f"  {warning}")
        except BaseException as exc:
            if resender.ident is not None:
                stop()
            if isinstance(exc, SpecError):
                print(exc, file=sys.stderr)
                return 2
            if not isinstance(exc, KeyboardInterrupt) and not console.verbose():
                print(f"[{project}] {label} FAILED after {time.monotonic() - start:.1f} s; the "
                      f"end of {log}:\n{console.tail(log)}", file=sys.stderr)
            raise
        finally:
            sys.unraisablehook = default_unraisable
            if in_main:
                signal.signal(signal.SIGINT, signal.SIG_DFL if outer is None else outer)
        return 0
    run.__name__ = action.__name__
    return run


def _quiet(label: str):
    """What SCons prints before a stage: nothing (the stage prints its own line when it ends),
    except in a dry run (-n), which lists the stages that would run."""
    def show(target, source, env):
        from SCons.Script import GetOption
        return f"[{env['PROJECT']}] {label}" if GetOption("no_exec") else ""
    return show


# ----------------------------------------------------------------- the graph

def heal(env, path: Path) -> bool:
    """Delete an artifact whose file changed since SCons built it (truncated, hand-edited,
    half-copied), so that this build makes it again instead of handing it to the next stage.
    Compares the size and modification time (whole seconds) SCons recorded: a stat, no
    hashing, so a change within the second of the build that keeps the size goes unseen.
    Returns whether the file was removed."""
    if not path.is_file():
        return False
    ninfo = getattr(env.File(str(path)).get_stored_info(), "ninfo", None)
    size, stamp = getattr(ninfo, "size", None), getattr(ninfo, "timestamp", None)
    if size is None or stamp is None:
        return False  # not built by this build folder's SCons: nothing to compare with
    st = path.stat()
    if st.st_size == size and int(st.st_mtime) == int(stamp):  # SCons keeps whole seconds
        return False
    print(f"{path}: changed since it was built ({size} -> {st.st_size} bytes); building it again")
    path.unlink()
    return True


def declare(env, project: Project, all_projects: dict[str, Project] | None = None,
            build_dir: Path | None = None, spec_text: str | None = None) -> dict:
    """Add a project's targets to `env`; returns {stage: nodes} and registers aliases."""
    from SCons.Script import Action, Alias, Value  # imported here: only SConstruct needs SCons

    from .boards import board_files, load_board
    from .targets import capture_output_files, has_capture, output_files

    spec = project.spec
    art = Artifacts.for_project(spec.name, build_dir)
    rel = project.path.relative_to(REPO) if project.path.is_relative_to(REPO) else project.path
    base_env = dict(SPEC=str(project.path), SPEC_DISPLAY=str(rel), SPEC_TEXT=spec_text or
                    project.path.read_text(encoding="utf-8"), PROJECT=spec.name,
                    ART_ROOT=str(art.root))

    def stage(name, targets, sources, action, target_obj=None, **extra):
        label = name + (f" {target_obj.name}" if target_obj else "")
        nodes = env.Command(
            [str(t) for t in targets],
            [str(s) if isinstance(s, (str, Path)) else s for s in sources] + [Value(spec_slice(spec, name, target_obj))]
            + [str(p) for p in stage_modules(name)],
            Action(_user_errors(action, label), _quiet(label)),
            **base_env, **extra)
        return nodes

    nodes: dict[str, list] = {}
    index_inputs = []
    if spec.dataset.layout != "synthetic":
        index_inputs.append(Value(dataset_listing(project.resolve(spec.dataset.root))))
    nodes["index"] = stage("index", [art.dataset_index], index_inputs, act_index)
    nodes["features"] = stage("features", [art.features], [art.dataset_index], act_features)
    model_inputs = [art.features]
    if spec.transfer is not None and spec.transfer.base.endswith((".yaml", ".yml")):
        base = project.resolve(spec.transfer.base)
        base_project = next((p for p in (all_projects or {}).values() if p.path == base), None)
        if base_project is not None:
            model_inputs.append(Artifacts.for_project(base_project.name, build_dir).keras_model)
    elif spec.transfer is not None:
        model_inputs.append(project.resolve(spec.transfer.base))
    nodes["model"] = stage("model", [art.keras_model, art.history], model_inputs, act_model)
    nodes["tflite"] = stage("tflite", [art.tflite], [art.keras_model, art.features], act_tflite)
    nodes["analysis"] = stage("analysis", [art.analysis], [art.tflite], act_analysis)
    nodes["evaluation"] = stage("evaluation", [art.evaluation],
                                [art.keras_model, art.tflite, art.features], act_evaluation)
    report_inputs = [art.dataset_index, art.analysis, art.evaluation]
    calibrated = []  # the firmware reads the streaming stage's threshold when it is auto
    if spec.evaluation.streaming is not None:
        nodes["streaming"] = stage("streaming", [art.streaming],
                                   [art.dataset_index, art.tflite, art.analysis], act_streaming)
        report_inputs.append(art.streaming)
        if spec.detection.threshold == "auto":
            calibrated = [art.streaming]
    if spec.evaluation.cross_validation is not None:
        nodes["folds"] = stage("folds", [art.crossval_folds], [art.dataset_index], act_folds)
        nodes["crossval"] = stage("crossval", [art.crossval], [art.crossval_folds, *calibrated],
                                  act_crossval)
        report_inputs.append(art.crossval)
    variant_nodes = {}
    nodes["capture"] = []
    templates = _template_files()
    for target in spec.targets:
        out_dir = art.firmware(target.name)
        outs = [out_dir / f for f in output_files(project, target, load_board(target.board))]
        variant_nodes[target.name] = stage(
            "firmware", outs,
            [art.tflite, art.analysis, *calibrated, *board_files(target.board)] + templates,
            act_firmware, target, VARIANT=target.name, OUT_DIR=str(out_dir))
        # The capture project needs no model: `<spec>/<variant>-capture` builds it alone.
        board, capture = load_board(target.board), []
        if has_capture(board):
            cap_dir = art.capture_firmware(target.name)
            capture = stage("capture", [cap_dir / f for f in capture_output_files(board)],
                            [*board_files(target.board)] + templates, act_capture, target,
                            VARIANT=target.name, OUT_DIR=str(cap_dir))
            Alias(f"{rel.with_suffix('')}/{target.name}-capture", capture)
        nodes["capture"] += capture
        Alias(f"{rel.with_suffix('')}/{target.name}", variant_nodes[target.name] + capture)
    nodes["firmware"] = [n for v in variant_nodes.values() for n in v]
    report_templates = sorted(p for p in (REPO / "templates" / "report").rglob("*") if p.is_file())
    nodes["report"] = stage("report", [art.report, art.report.with_suffix(".html")],
                            report_inputs + [art.history, art.features] + report_templates
                            + [str(n) for n in nodes["firmware"]], act_report)
    from SCons.Script import GetOption
    if not GetOption("no_exec"):  # a dry run changes nothing
        for node in [n for group in nodes.values() for n in group]:
            heal(env, Path(str(node)))
    Alias(str(rel.with_suffix("")), nodes["report"] + nodes["firmware"] + nodes["capture"])
    Alias(spec.name, nodes["report"] + nodes["firmware"] + nodes["capture"])
    return nodes


def main_scons(env, spec_paths: list[Path], build_dir: Path | None = None) -> None:
    """Called by SConstruct: declare every project; user errors stop the build cleanly.

    SCons swaps in its own SIGINT handler while it builds, one that waits for the running
    stages (see _user_errors); the handler in place when the build starts (SConstruct's)
    is put back in front of it. SCons offers no option for this, hence the wrapper."""
    import signal

    from SCons.Taskmaster.Job import Jobs

    from .errors import SpecError
    from .yamlpos import read_text

    scons_setup = Jobs._setup_sig_handler
    if not getattr(scons_setup, "keeps_sigint", False):
        def setup(jobs) -> None:
            ours = signal.getsignal(signal.SIGINT)
            scons_setup(jobs)  # also SIGTERM and SIGHUP, which keep SCons's handling
            if callable(ours) and ours is not signal.default_int_handler:
                signal.signal(signal.SIGINT, ours)
        setup.keeps_sigint = True
        Jobs._setup_sig_handler = setup

    projects: dict[str, Project] = {}
    texts: dict[str, str] = {}  # each spec read once: the snapshot every stage parses
    try:
        for path in spec_paths:
            rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            text = read_text(path, str(rel))
            project = load_spec(path, str(rel), text=text)
            projects[project.name] = project
            texts[project.name] = text
            base = project.spec.transfer.base if project.spec.transfer else ""
            own_model = Artifacts.for_project(project.name, build_dir).keras_model
            if base and project.resolve(base) == own_model:  # (a .yaml base: load_spec checks)
                raise SpecError(project.positions.problem(
                    ("transfer", "base"), f"transfer.base {base} is the model this spec builds; "
                                          f"a model cannot start from itself"))
        for project in projects.values():
            declare(env, project, projects, build_dir, texts[project.name])
    except SpecError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
