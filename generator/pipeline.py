"""The build graph: which stage reads which slice of the spec, and the SCons glue.

Each stage is a function elsewhere in `generator` from validated inputs to an
artifact; the actions here only load the spec, call it and return. Heavy
imports (TensorFlow) happen inside the actions, so reading the graph — and a
no-op rebuild — never imports them.

`declare(env, project)` adds one project's targets to an SCons environment:

    index -> features -> model -> tflite -> analysis / evaluation
                                          -> firmware/<variant> (one per target) -> report
    index -> crossval (when evaluation.cross_validation is set)          -> report

Every target depends on a `Value` holding exactly the spec slice it reads,
on its input artifacts, and on the source of the code that makes it.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

from .paths import REPO, Artifacts
from .spec import Project, ProjectSpec, Target, load_spec

# Which top-level spec sections each stage reads. Firmware reads a per-target
# slice as well (only its own target, so editing one variant rebuilds only it).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "index": ("audio", "classes", "dataset"),
    "features": ("audio", "classes", "features", "augmentation", "detection.classes"),
    "model": ("classes", "augmentation", "model", "training", "transfer"),
    "crossval": ("audio", "classes", "dataset.split", "features", "augmentation",
                 "detection.classes", "model", "training", "transfer", "quantization",
                 "evaluation"),
    "tflite": ("quantization",),
    "analysis": ("arena",),
    "evaluation": ("classes",),
    "streaming": ("audio", "classes", "features", "detection", "evaluation.streaming"),
    "firmware": ("name", "audio", "features", "classes", "detection", "arena"),
    "report": ("name", "description", "targets", "detection.classes", "evaluation"),
}

def spec_slice(spec: ProjectSpec, stage: str, target: Target | None = None) -> str:
    """Canonical JSON of the part of the spec that `stage` reads."""
    data = spec.model_dump(mode="json")
    picked = {}
    for key in STAGE_SECTIONS[stage]:  # "section" or "section.field"
        section, _, field = key.partition(".")
        picked[key] = data[section][field] if field else data[section]
    if stage in ("features", "crossval", "report", "streaming"):
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
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            entries.append(f"{os.path.relpath(os.path.join(dirpath, name), root)}\t{st.st_size}\t{st.st_mtime_ns}")
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
    """Every template: each variant renders its family's tree and templates/common."""
    return sorted(p for p in (REPO / "templates").rglob("*") if p.is_file())


# ----------------------------------------------------------------- the actions
# Each receives SCons (target, source, env); env["SPEC"] is the spec path.

def _project(env) -> Project:
    """The spec exactly as the graph was built from it (SPEC_TEXT), never the file as it is
    now: an edit during a build must not reach a later stage of that build."""
    return load_spec(env["SPEC"], env["SPEC_DISPLAY"], text=env["SPEC_TEXT"])


def _load_json(path) -> dict:
    return json.loads(Path(str(path)).read_text())


def act_index(target, source, env):
    from .dataset import summarize, write_index
    index = write_index(_project(env), Path(str(target[0])))
    print(summarize(index))


def act_features(target, source, env):
    from .featurestage import build_features
    build_features(_project(env), _load_json(source[0]), Path(str(target[0])))


def act_model(target, source, env):
    from .train import train
    train(_project(env), Path(str(source[0])), Path(str(target[0])), Path(str(target[1])))


def act_tflite(target, source, env):
    from .convert import to_tflite
    to_tflite(_project(env), Path(str(source[0])), Path(str(source[1])), Path(str(target[0])))


def act_analysis(target, source, env):
    from .analyze import analyze, format_analysis
    from .checks import check_project
    project = _project(env)
    result = analyze(project, Path(str(source[0])), Path(str(target[0])))
    print(format_analysis(result))
    check_project(project, result)


def act_evaluation(target, source, env):
    from .evaluate import evaluate, format_evaluation
    result = evaluate(_project(env), Path(str(source[0])), Path(str(source[1])),
                      Path(str(source[2])), Path(str(target[0])))
    print(format_evaluation(result))


def act_crossval(target, source, env):
    from .crossval import cross_validate, format_crossval
    result = cross_validate(_project(env), _load_json(source[0]), Path(str(target[0])))
    print(format_crossval(result))


def act_streaming(target, source, env):
    from .streaming import format_streaming, write_streaming
    result = write_streaming(_project(env), _load_json(source[0]), Path(str(source[1])),
                             Path(str(target[0])))
    print(format_streaming(result))


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


def act_report(target, source, env):
    from .report import write_report
    write_report(_project(env), Artifacts(Path(env["ART_ROOT"])), Path(str(target[0])))


def _user_errors(action):
    """Report a SpecError raised inside a stage as `file:line:col: message`, not a traceback."""
    def run(target, source, env):
        from .errors import SpecError
        try:
            action(target, source, env)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    run.__name__ = action.__name__
    return run


def _quiet(label: str):
    def show(target, source, env):
        return f"[{env['PROJECT']}] {label}"
    return show


# ----------------------------------------------------------------- the graph

def declare(env, project: Project, all_projects: dict[str, Project] | None = None,
            build_dir: Path | None = None, spec_text: str | None = None) -> dict:
    """Add a project's targets to `env`; returns {stage: nodes} and registers aliases."""
    from SCons.Script import Action, Alias, Value  # imported here: only SConstruct needs SCons

    from .boards import board_files, load_board
    from .targets import output_files

    spec = project.spec
    art = Artifacts.for_project(spec.name, build_dir)
    rel = project.path.relative_to(REPO) if project.path.is_relative_to(REPO) else project.path
    base_env = dict(SPEC=str(project.path), SPEC_DISPLAY=str(rel), SPEC_TEXT=spec_text or
                    project.path.read_text(encoding="utf-8"), PROJECT=spec.name,
                    ART_ROOT=str(art.root))

    def stage(name, targets, sources, action, target_obj=None, **extra):
        nodes = env.Command(
            [str(t) for t in targets],
            [str(s) if isinstance(s, (str, Path)) else s for s in sources] + [Value(spec_slice(spec, name, target_obj))]
            + [str(p) for p in stage_modules(name)],
            Action(_user_errors(action), _quiet(name + (f" {target_obj.name}" if target_obj else ""))),
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
    if spec.evaluation.cross_validation is not None:
        nodes["crossval"] = stage("crossval", [art.crossval], [art.dataset_index], act_crossval)
        report_inputs.append(art.crossval)
    calibrated = []  # the firmware reads the streaming stage's threshold when it is auto
    if spec.evaluation.streaming is not None:
        nodes["streaming"] = stage("streaming", [art.streaming], [art.dataset_index, art.tflite],
                                   act_streaming)
        report_inputs.append(art.streaming)
        if spec.detection.threshold == "auto":
            calibrated = [art.streaming]
    variant_nodes = {}
    templates = _template_files()
    for target in spec.targets:
        out_dir = art.firmware(target.name)
        outs = [out_dir / f for f in output_files(project, target, load_board(target.board))]
        variant_nodes[target.name] = stage(
            "firmware", outs,
            [art.tflite, art.analysis, *calibrated, *board_files(target.board)] + templates,
            act_firmware, target, VARIANT=target.name, OUT_DIR=str(out_dir))
        Alias(f"{rel.with_suffix('')}/{target.name}", variant_nodes[target.name])
    nodes["firmware"] = [n for v in variant_nodes.values() for n in v]
    nodes["report"] = stage("report", [art.report],
                            report_inputs + [str(n) for n in nodes["firmware"]], act_report)
    Alias(str(rel.with_suffix("")), nodes["report"] + nodes["firmware"])
    Alias(spec.name, nodes["report"] + nodes["firmware"])
    return nodes


def main_scons(env, spec_paths: list[Path], build_dir: Path | None = None) -> None:
    """Called by SConstruct: declare every project; user errors stop the build cleanly."""
    from .errors import SpecError
    projects: dict[str, Project] = {}
    texts: dict[str, str] = {}  # each spec read once: the snapshot every stage parses
    try:
        for path in spec_paths:
            rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            text = path.read_text(encoding="utf-8")
            project = load_spec(path, str(rel), text=text)
            projects[project.name] = project
            texts[project.name] = text
        for project in projects.values():
            declare(env, project, projects, build_dir, texts[project.name])
    except SpecError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
