"""`micforge tune`: search a spec's design space under every target board's budget.

    micforge tune SEARCH.yaml [--trials N] [--address ray://HOST:PORT] [--executor ray|local]
    micforge tune --apply OVERLAY SPEC [--dry-run]

Takes a search file (generator.search; or a spec, whose search/<name>.yaml beside it is
used), lists its seeded trials, writes each trial's spec to
<out>/trials/NNN/<spec file> and checks it before anything is trained
(generator.checks.check_project with the model's MACs and a lower bound of its arena from
generator.modelcost: every board's hop budget from the calibrated cost model, the arena
in its region); a trial that cannot fit is pruned with the reason and costs nothing. The
others are built by `micforge build` in a child process each, in its own build folder,
all sharing one SCons cache (the team cache when one is set, --cache-dir or
$MICFORGE_CACHE_DIR, else <out>/cache/scons) and the machine's per-clip feature cache
($MICFORGE_CACHE, default ~/.cache/micforge): a stage whose inputs another trial already
built is fetched, not run, and a clip whose features one trial computed is read by the
others. Trials run on Ray Tune (this machine, one trial per core; or an existing cluster with
--address) or, with --executor local, in local processes: the same trial list either way.

Writes to <out> (default build/tune/<search name>/): trials.json (every trial: its
parameters, status, objective, per-board figures, seconds, whether its features were built
or fetched), front.md (the Pareto front of objective vs per-board loop time vs arena vs
model size, and every trial), front.svg, and chosen.overlay.yaml: the best trial's changes
to the spec, which `--apply` writes into the spec (keeping its comments) only when asked.
Objectives never read the test split (generator.search.OBJECTIVES).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from . import search as S
from . import yamlpos
from .errors import Problem, SpecError
from .fileio import write_if_changed, write_json
from .paths import REPO, Artifacts

INSTALL_RAY = ("Ray is not installed: pip install 'micforge[tune]' (from the checkout: "
               "pip install -e '.[tune]'), or run the same trials without Ray: "
               "--executor local")


PASSED_ENV = ("MICFORGE_CACHE",)  # reaches every trial, also on a cluster's workers


class TuneError(Exception):
    """A problem running the search that is not a spec mistake (one line, exit 2)."""


# ------------------------------------------------------------------ before training

def estimate(project) -> dict | None:
    """What a trial's analysis will hold at least, from the spec alone: MACs (exact), an
    arena no smaller than the largest layer's int8 input + output, and a model no smaller
    than its int8 weights and int32 biases (its flash). None for a transfer spec (its body
    is the base's)."""
    from . import modelcost
    spec = project.spec
    if spec.transfer is not None:
        return None
    return {"macs": modelcost.macs(spec), "model_bytes": modelcost.model_bytes_lower_bound(spec),
            "arena": {"measured_bytes": modelcost.arena_lower_bound(spec)}, "lower_bounds": True}


def precheck(project) -> list[str]:
    """Why the trial cannot fit its boards, before training (empty when it may). The
    project's own checks, given the estimate when every arena is auto (a numeric arena is
    checked by check_project's own lower bound)."""
    from .checks import check_project
    spec = project.spec
    numeric = spec.arena.size != "auto" or any(
        t.arena is not None and t.arena.size != "auto" for t in spec.targets)
    try:
        check_project(project, None if numeric else estimate(project))
    except SpecError as exc:
        return [p.message for p in exc.problems]
    return []


# ------------------------------------------------------------------ one trial

def run_trial(job: dict) -> dict:
    """Build one trial spec (a child `micforge build`) and read its figures. Runs wherever
    the executor puts it (a Ray worker, a thread); everything it needs is in `job`."""
    from .cmsis import cache_root
    from .spec import load_spec
    started = time.monotonic()
    env = dict(os.environ)
    # One per-clip feature cache for every trial on this machine (and the host-compiled C
    # twin the streaming stage runs): the machine's micforge cache, not each build folder's.
    env.setdefault("MICFORGE_CACHE", str(cache_root()))
    env["PYTHONPATH"] = os.pathsep.join([job["repo"]] + [p for p in [env.get("PYTHONPATH")] if p])
    threads = str(job["threads"])
    env.update(OMP_NUM_THREADS=threads, TF_NUM_INTRAOP_THREADS=threads,
               TF_NUM_INTEROP_THREADS=threads, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "generator.cli", "build", job["spec"],
           "--build-dir", job["build"], "--cache-dir", job["cache_dir"]]
    with open(job["log"], "w", encoding="utf-8") as log:
        status = subprocess.run(cmd, cwd=job["repo"], env=env, stdout=log,
                                stderr=subprocess.STDOUT).returncode
    text = Path(job["log"]).read_text(encoding="utf-8", errors="replace")
    project = load_spec(job["spec"], Path(job["spec"]).name)
    result = {"id": job["id"], "seconds": round(time.monotonic() - started, 1),
              "host": os.uname().nodename, "pid": os.getpid(),
              "features": features_origin(text, project.name)}
    if status != 0:
        lines = [ln for ln in text.splitlines() if ": " in ln and ln.strip()]
        spec_lines = [ln.split(": ", 1)[1] for ln in lines if ln.startswith(job["spec"])
                      or ln.startswith(Path(job["spec"]).name)]
        result.update(status="infeasible" if spec_lines else "failed",
                      reason="; ".join(spec_lines) or (lines[-1] if lines else f"exit {status}"))
        return result
    try:
        result.update(status="ok", **figures(project, Path(job["build"]), job["objective"]))
    except (OSError, KeyError, ValueError) as exc:
        result.update(status="failed", reason=f"reading the build's figures: {exc}")
    return result


def features_origin(log: str, name: str) -> str:
    """How the trial got its features: 'computed' (the stage ran), 'cache' (fetched from the
    shared cache: another trial built the same front end) or 'kept' (up to date from an
    earlier run of the search)."""
    if re.search(r"Retrieved `[^']*/features/features\.npz' from cache", log):
        return "cache"
    if re.search(rf"^\[{re.escape(name)}\] features\b", log, re.M):
        return "computed"
    return "kept"


def objective_values(project, art: Artifacts) -> dict[str, float]:
    """Every objective the build's artifacts give (generator.search.OBJECTIVES); none reads
    analysis/evaluation.json (the test split)."""
    out = {}
    history = json.loads(art.history.read_text())
    phase = list(history["phases"].values())[-1]
    accuracy = phase["metrics"].get("val_accuracy")
    if accuracy:
        out["validation_accuracy"] = float(accuracy[phase["best_epoch"] - 1])
    if project.spec.evaluation.cross_validation is not None:
        from .crossval import held_out_recalls
        cv = json.loads(art.crossval.read_text())
        if cv.get("mean_accuracy") is not None:
            out["crossval_accuracy"] = float(cv["mean_accuracy"])
        recalls = [v["recall"] for _, _, v in held_out_recalls(cv)]
        if recalls:
            out["crossval_recall"] = float(sum(recalls) / len(recalls))
    if project.spec.detection.threshold == "auto" and art.streaming.is_file():
        st = json.loads(art.streaming.read_text())  # the calibration's own choice
        out["stream_detection_rate"] = (float(st["validation"]["chosen"]["detection_rate"])
                                        if st.get("target_met") else 0.0)
    return out


def figures(project, build_root: Path, objective: str) -> dict:
    """The trial's objective, all objectives, and per target its estimated loop time per hop
    (the family's calibrated cost model on the measured MACs), the arena and the model."""
    from .boards import load_board
    from .targets import family
    from .variant import resolve
    art = Artifacts.for_project(project.name, build_root)
    analysis = json.loads(art.analysis.read_text())
    calibration = (json.loads(art.streaming.read_text())
                   if project.spec.detection.threshold == "auto" else None)
    values = objective_values(project, art)
    if objective not in values:
        raise ValueError(f"the build gives no {objective}")
    targets = {}
    for target in project.spec.targets:
        board = load_board(target.board)
        v = resolve(project, target, board, analysis, calibration)
        targets[target.name] = {"board": board.id,
                                "loop_ms": round(family(board).compute_us(v) / 1000, 3),
                                "hop_ms": v.frontend.hop_us / 1000,
                                "arena_bytes": v.arena.bytes, "arena_region": board.arena_region}
    return {"objective": values[objective], "objectives": values,
            "macs": int(analysis["macs"]), "model_bytes": int(analysis["model_bytes"]),
            "arena_bytes": int(analysis["arena_bytes"]), "targets": targets}


# ------------------------------------------------------------------ executors

def run_local(jobs: list[dict], workers: int, report) -> dict[int, dict]:
    """The trials in local processes, `workers` at a time, in the order given."""
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_trial, job): job for job in jobs}
        for done in concurrent.futures.as_completed(futures):
            job = futures[done]
            try:
                results[job["id"]] = done.result()
            except Exception as exc:  # noqa: BLE001 - one broken trial must not end the search
                results[job["id"]] = {"id": job["id"], "status": "failed", "reason": repr(exc)}
            report(results[job["id"]])
    return results


def _ray_trial(config: dict) -> dict:
    """A Ray Tune function trainable: one trial, its result as JSON (one flat metric), with
    the Ray node that ran it."""
    import ray
    result = run_trial(config["job"])
    result["ray_node"] = ray.get_runtime_context().get_node_id()[:12]
    return {"result": json.dumps(result)}


def run_ray(jobs: list[dict], address: str | None, cpus_per_trial: int, storage: Path,
            report, info: dict) -> dict[int, dict]:
    """The trials on Ray Tune: a grid over the listed trials (Ray draws nothing), each trial
    asking for `cpus_per_trial` CPUs; locally Ray gets every core of this machine, with
    `address` the trials go to that cluster. Every node must see the checkout, the data and
    `storage` at the same paths (one machine, or a shared file system)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise TuneError(INSTALL_RAY) from None
    # Workers of a cluster do not inherit this shell: pass what the trials read.
    env_vars = {"PYTHONPATH": str(REPO)}
    env_vars.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    init = dict(include_dashboard=False, log_to_driver=False,
                runtime_env={"env_vars": env_vars})
    if address:
        ray.init(address=address, **init)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), **init)  # never a cluster found
    try:
        info["workers"] = (f"Ray, {ray.cluster_resources().get('CPU', 0):g} CPUs on "
                           f"{len([n for n in ray.nodes() if n.get('Alive')])} node(s), "
                           f"{cpus_per_trial} per trial")
        print(info["workers"], flush=True)
        name = lambda t: f"trial_{t.config['job']['id']:03d}"  # noqa: E731
        done: dict[int, dict] = {}

        class Progress(tune.Callback):
            """Each trial's line as it completes (Ray's own output is off)."""

            def on_trial_complete(self, iteration, trials, trial, **info):
                result = (trial.last_result or {}).get("result")
                if result:
                    done[trial.config["job"]["id"]] = json.loads(result)
                    report(done[trial.config["job"]["id"]])

        tuner = tune.Tuner(
            tune.with_resources(_ray_trial, {"cpu": cpus_per_trial}),
            param_space={"job": tune.grid_search(jobs)},
            tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=name,
                                        trial_dirname_creator=name),
            run_config=tune.RunConfig(name="ray", storage_path=str(storage), verbose=0,
                                      callbacks=[Progress()]))
        grid = tuner.fit()
        results = {}
        for r in grid:
            job = r.config["job"]
            if r.error is not None or "result" not in (r.metrics or {}):
                results[job["id"]] = {"id": job["id"], "status": "failed",
                                      "reason": f"ray: {r.error}"}
            else:
                results[job["id"]] = json.loads(r.metrics["result"])
            if job["id"] not in done:
                report(results[job["id"]])
        return results
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ the front

def _costs(t: dict, names: list[str]) -> tuple:
    """What a trial costs, each the lower the better: the objective negated, the hop (the
    detector's response interval, searched when detection.hop_frames is), every target's
    loop time per hop, the arena and the model's bytes (its flash)."""
    return (-t["objective"], max(t["targets"][n]["hop_ms"] for n in names),
            *(t["targets"][n]["loop_ms"] for n in names), t["arena_bytes"], t["model_bytes"])


def pareto(trials: list[dict], names: list[str]) -> list[dict]:
    """The trials no other trial beats or equals on every count of _costs while beating it
    on one."""
    ok = [t for t in trials if t["status"] == "ok"]
    costs = {t["id"]: _costs(t, names) for t in ok}

    def dominated(a):
        return any(all(x <= y for x, y in zip(costs[b["id"]], costs[a["id"]]))
                   and costs[b["id"]] != costs[a["id"]] for b in ok)
    return [t for t in ok if not dominated(t)]


def choose(front: list[dict], names: list[str]) -> dict | None:
    """The best objective; ties go to the cheaper trial (hop, first target's loop time,
    arena, model bytes), then the earlier one."""
    return min(front, key=lambda t: (_costs(t, names), t["id"])) if front else None


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={S.json_text(v)}" for k, v in params.items()) or "(the spec)"


def front_markdown(run: dict, plot: str | None = None) -> str:
    """front.md: the search, its Pareto front (with `plot`, the front's image beside it) and
    every trial."""
    from .render import md_text
    names, objective = run["targets"], run["objective"]
    trials = run["trials"]
    front_ids = set(run["front"])
    counts = {s: sum(t["status"] == s for t in trials)
              for s in ("ok", "pruned", "invalid", "infeasible", "failed")}
    lines = [f"# micforge tune: {md_text(run['name'])}", "",
             f"Search `{md_text(run['search'])}` on `{md_text(run['spec'])}`: {len(trials)} trials "
             f"(seed {run['seed']}; trial 0 is the spec itself), objective **{objective}**: "
             f"{md_text(S.OBJECTIVES[objective])}.", ""]
    if run["budget"]:
        fixed = ", ".join(f"`{k}: {S.json_text(v)}`" for k, v in run["budget"].items())
        lines += [f"Every trial ran with these budget overrides (not in the overlay): {fixed}.",
                  ""]
    lines += [f"Trained {counts['ok']}, pruned before training {counts['pruned']}, invalid "
              f"{counts['invalid']}, refused after training {counts['infeasible']}, failed "
              f"{counts['failed']}; features built {run['features']['computed']} times, fetched "
              f"{run['features']['cache']} times. Wall time {run['wall_seconds']:.0f} s "
              f"({run['workers']}), load average {run['load_start']} at the "
              f"start, {run['load_end']} at the end.", ""]
    head = (["trial", objective] + [f"{n} ms/hop" for n in names]
            + ["arena B", "model B", "MACs", "changes"])

    def row(t):
        return ([str(t["id"]), _pct(t["objective"])]
                + [f"{t['targets'][n]['loop_ms']:.1f} of {t['targets'][n]['hop_ms']:g}"
                   for n in names]
                + [f"{t['arena_bytes']:,}", f"{t['model_bytes']:,}", f"{t['macs']:,}",
                   md_text(_params_text(t["changes"]))])
    lines += ["## Pareto front", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row(t)) + " |" for t in trials if t["id"] in front_ids]
    if plot:
        lines += ["", f"![The objective against the first target's loop time and the arena; "
                      f"the front in red]({plot})"]
    chosen = run["chosen"]
    if chosen is not None:
        lines += ["", f"Chosen: trial {chosen} (best {objective}; ties to the cheaper trial), "
                      f"written as `chosen.overlay.yaml`."]
    else:
        lines += ["", "No trial was trained successfully: nothing chosen."]
    head = ["trial", "status", objective, "seconds", "features", "parameters / reason"]
    lines += ["", "## All trials", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in trials:
        what = _params_text(t["params"]) + (f"; {t['reason']}" if t.get("reason") else "")
        lines.append("| " + " | ".join([
            str(t["id"]) + (" *" if t["id"] in front_ids else ""), t["status"],
            _pct(t.get("objective")), f"{t.get('seconds', 0):.1f}", t.get("features", "-"),
            md_text(what)]) + " |")
    lines += ["", "(* on the front.)", ""]
    return "\n".join(lines)


def front_svg(run: dict, path: Path) -> bool:
    """Objective against the first target's loop time (marker area: arena), the front
    joined; False when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    matplotlib.rcParams["svg.hashsalt"] = "micforge"  # stable ids: the same run, the same file
    names, objective = run["targets"], run["objective"]
    first = names[0]
    ok = [t for t in run["trials"] if t["status"] == "ok"]
    front = sorted((t for t in ok if t["id"] in set(run["front"])),
                   key=lambda t: t["targets"][first]["loop_ms"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in ((axes[0], "loop", f"{first}: estimated loop time per hop (ms)"),
                           (axes[1], "arena", "tensor arena (bytes)")):
        def x(t):
            return t["targets"][first]["loop_ms"] if key == "loop" else t["arena_bytes"]
        ax.scatter([x(t) for t in ok], [100 * t["objective"] for t in ok],
                   s=[20 + t["arena_bytes"] / 500 for t in ok], c="#9db4d0", edgecolors="#345",
                   label="trial")
        ax.scatter([x(t) for t in front], [100 * t["objective"] for t in front], s=60,
                   c="#d0533a", label="Pareto front", zorder=3)
        for t in ok:
            ax.annotate(str(t["id"]), (x(t), 100 * t["objective"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        if key == "loop":  # the budget: each hop the trials use
            for hop in sorted({t["targets"][first]["hop_ms"] for t in ok}):
                ax.axvline(hop, color="#888", linestyle="--", label=f"{first} hop {hop:g} ms")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{objective} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"micforge tune {run['name']}: {len(ok)} trained trials")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="svg", metadata={"Date": None})
    plt.close(fig)
    write_if_changed(path, tmp.read_bytes())
    tmp.unlink()
    return True


# ------------------------------------------------------------------ the overlay

def flow(value) -> str:
    """A value as one line of YAML (flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10 ** 6, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def overlay_text(search: S.Search, run: dict, trial: dict, overlay_display: str) -> str:
    base = S.baseline_params(search)
    t0 = next((t for t in run["trials"] if t["id"] == 0 and t["status"] == "ok"), None)
    lines = [f"# micforge tune overlay: the changes trial {trial['id']} of search {run['name']} "
             f"({run['search']}) makes to {run['spec']}.",
             f"# {run['objective']} {_pct(trial['objective'])}"
             + (f" (the spec itself, trial 0: {_pct(t0['objective'])})" if t0 else "") + "; "
             + "; ".join(f"{n} {trial['targets'][n]['loop_ms']:.1f} of "
                         f"{trial['targets'][n]['hop_ms']:g} ms per hop" for n in run["targets"])
             + f"; arena {trial['arena_bytes']:,} B; model {trial['model_bytes']:,} B."]
    if run["budget"]:
        lines.append("# The trials ran with budget overrides this overlay does not carry: "
                     + ", ".join(f"{k}: {flow(v)}" for k, v in run["budget"].items()) + ".")
    lines += ["# Review it, then write it into the spec (its comments are kept; --dry-run shows "
              "the diff):",
              f"#   micforge tune --apply {overlay_display} {run['spec']}",
              f"spec: {flow(Path(run['spec']).name)}", f"trial: {trial['id']}"]
    changes = trial["changes"]
    if not changes:
        lines.append("changes: {}  # the spec itself is the best trial")
    else:
        lines.append("changes:")
        lines += [f"  {k}: {flow(v)}  # was {flow(base[k])}" for k, v in changes.items()]
    return "\n".join(lines) + "\n"


class Overlay(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    spec: str = Field(description="The spec file the overlay was made for (its name).")
    trial: int = Field(description="The trial it comes from.")
    changes: dict[str, Any] = Field(description="Spec field (dotted path) -> new value.")


class ApplyError(Exception):
    """The overlay cannot be written into the spec's text safely."""


def _lookup(node, key):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _last_end(node) -> int:
    """Where the last token of a node ends (a block collection's end mark runs on to the next
    key)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style \
            and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node.end_mark.index


def edit_text(text: str, path: tuple[str, ...], value) -> str:
    """`text` with the value at `path` replaced, or added to the deepest section present:
    in a flow mapping before its '}', in a block mapping as a line after its last."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    depth = 0
    while depth < len(path):
        child = _lookup(node, path[depth])
        if child is None:
            break
        node, depth = child, depth + 1
    if depth == len(path):
        start = node.start_mark.index
        end = (node.end_mark.index if isinstance(node, yaml.ScalarNode) or node.flow_style
               else _last_end(node))
        return text[:start] + flow(value) + text[end:]
    if not isinstance(node, yaml.MappingNode):
        raise ApplyError(f"{'.'.join(path[:depth])} is not a mapping in the spec")
    for key in reversed(path[depth + 1:]):
        value = {key: value}
    entry = f"{path[depth]}: {flow(value)}"
    if node.flow_style:
        close = node.end_mark.index - 1
        if text[close] != "}":
            raise ApplyError(f"cannot find the end of {'.'.join(path[:depth])}")
        return text[:close] + (", " if node.value else "") + entry + text[close:]
    if not node.value:
        raise ApplyError(f"{'.'.join(path[:depth])} is an empty block mapping")
    indent = " " * node.value[0][0].start_mark.column
    end = text.find("\n", _last_end(node))
    end = len(text) if end < 0 else end
    return text[:end] + "\n" + indent + entry + text[end:]


def apply_overlay(overlay_path: Path, spec_path: Path, dry_run: bool = False) -> str:
    """Write an overlay's changes into the spec's text; returns the unified diff. The result
    must parse to exactly the spec's data with the changes set, and validate, or nothing is
    written."""
    from .spec import load_spec
    from .validate import validate
    data, pos = yamlpos.load(overlay_path, S.display_path(overlay_path))
    overlay = validate(Overlay, data if isinstance(data, dict) else {}, pos)
    project = load_spec(spec_path, S.display_path(spec_path))
    problems = [pos.problem(("changes", key), problem, at_key=True)
                for key in overlay.changes
                if (problem := S._field_problem(project.spec, S.field_path(key)))]
    if problems:
        raise SpecError(problems)
    text = spec_path.read_text(encoding="utf-8")
    expected, _ = yamlpos.loads(text, str(spec_path))
    new = text
    for key, value in overlay.changes.items():
        S.set_value(expected, S.field_path(key), value)
        new = edit_text(new, S.field_path(key), value)
    got, _ = yamlpos.loads(new, str(spec_path))
    if got != expected:
        raise ApplyError("the edited text does not read back as the spec with the changes "
                         "(anchors or merges in the way?); merge the overlay by hand")
    load_spec(spec_path, S.display_path(spec_path), text=new)
    diff = "".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                        S.display_path(spec_path), S.display_path(spec_path)))
    if not dry_run:
        write_if_changed(spec_path, new)
    return diff


# ------------------------------------------------------------------ the command

def search_file_for(path: Path) -> Path:
    """A search file as given, or a spec's: search/<name>.yaml or <name>.search.yaml beside
    it. (The examples' live in projects/search/: every projects/*.yaml is built as a spec.)"""
    data, _ = yamlpos.load(path, S.display_path(path))
    if isinstance(data, dict) and "space" in data:
        return path
    stem = path.name.rsplit(".", 1)[0]
    candidates = [path.parent / "search" / path.name, path.with_name(f"{stem}.search.yaml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SpecError(Problem(S.display_path(path), 0, 0,
                            f"a spec, and no search file for it: write "
                            f"{S.display_path(candidates[0])} (spec, trials, seed, space: see "
                            f"micforge tune --help)"))


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def plan(search: S.Search, trials: list[dict], out: Path, cache_dir: Path, threads: int
         ) -> tuple[list[dict], list[dict]]:
    """(records, jobs): each trial's spec written and checked; a job for each one to train."""
    from .pipeline import spec_slice
    from .spec import load_spec
    records, jobs, groups = [], [], {}
    spec_name = search.project.path.name
    for trial in trials:
        started = time.monotonic()
        folder = out / "trials" / f"{trial['id']:03d}"
        spec_file = folder / spec_name
        data = S.trial_spec_data(search, trial["params"])
        header = (f"# micforge tune {search.name}, trial {trial['id']}: {search.project.path.name} "
                  f"with {_params_text(trial['params'])}\n")
        write_if_changed(spec_file, header + yaml.safe_dump(data, sort_keys=False))
        record = {"id": trial["id"], "params": trial["params"],
                  "changes": S.changed_params(search, trial["params"]),
                  "folder": str(folder.relative_to(out))}
        try:
            project = load_spec(spec_file, S.display_path(spec_file))
        except SpecError as exc:
            record.update(status="invalid", reason="; ".join(p.message for p in exc.problems),
                          seconds=round(time.monotonic() - started, 3))
            records.append(record)
            continue
        why = precheck(project)
        if why:
            record.update(status="pruned", reason="; ".join(why),
                          seconds=round(time.monotonic() - started, 3))
            records.append(record)
            continue
        record["status"] = "queued"
        records.append(record)
        key = spec_slice(project.spec, "index") + spec_slice(project.spec, "features")
        groups.setdefault(key, []).append(trial["id"])
        jobs.append({"id": trial["id"], "spec": str(spec_file), "build": str(folder / "build"),
                     "log": str(folder / "build.log"), "repo": str(REPO),
                     "cache_dir": str(cache_dir),
                     "threads": threads, "objective": search.objective})
    # The first trial of each front end first: the others then fetch its features.
    firsts = {ids[0] for ids in groups.values()}
    jobs.sort(key=lambda j: (j["id"] not in firsts, j["id"]))
    return records, jobs


def _print_trials(search: S.Search, trials: list[dict]) -> None:
    print(f"{search.name}: {len(trials)} trials (seed {search.file.seed}), objective "
          f"{search.objective}, targets {', '.join(search.targets)}")
    for t in trials:
        print(f"  {t['id']:3d}  {_params_text(t['params'])}")
    sys.stdout.flush()


def cmd_tune(args) -> int:
    if args.apply:
        return _cmd_apply(args)
    if not args.search:
        print("micforge tune: give a search file (or a spec with one beside it)", file=sys.stderr)
        return 2
    try:
        path = search_file_for(Path(args.search))
        search = S.load_search(path, S.display_path(path))
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    trials = S.trial_list(search, args.trials)
    _print_trials(search, trials)
    if args.list:
        return 0
    executor = args.executor or "ray"
    if executor == "local" and args.address:
        print("micforge tune: --address needs --executor ray", file=sys.stderr)
        return 2
    if executor == "ray" and not _has_ray():
        print(f"micforge tune: {INSTALL_RAY}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve() if args.out else REPO / "build" / "tune" / search.name
    team = args.cache_dir or os.environ.get("MICFORGE_CACHE_DIR")
    cache_dir = Path(team).resolve() if team else out / "cache" / "scons"
    cache_dir.mkdir(parents=True, exist_ok=True)  # SCons races to make it when trials start at once
    records, jobs = plan(search, trials, out, cache_dir, args.cpus_per_trial)
    by_id = {r["id"]: r for r in records}
    for r in records:
        if r["status"] != "queued":
            print(f"  trial {r['id']}: {r['status']} ({r['seconds']:.3f} s): {r['reason']}")
    run = {"name": search.name, "search": S.display_path(search.path),
           "spec": S.display_path(search.project.path), "seed": search.file.seed,
           "objective": search.objective, "budget": search.file.budget,
           "space": {k: v.model_dump(by_alias=True, exclude_none=True)
                     for k, v in search.file.space.items()},
           "targets": search.targets, "executor": executor, "load_start": _load()}
    write_json(out / "trials.json", {**run, "trials": records})
    workers = max(1, (os.cpu_count() or 1) // args.cpus_per_trial)
    run["workers"] = f"local processes, {workers} at a time on {os.cpu_count()} cores"
    print(f"running {len(jobs)} trials ({args.address or 'this machine'}); trial folders in "
          f"{S.display_path(out / 'trials')}", flush=True)

    def report(result):  # as each trial ends: its line, and trials.json so far
        print(f"  trial {result['id']}: {result['status']}"
              + (f" {search.objective} {_pct(result.get('objective'))}" if result["status"] == "ok"
                 else f": {result.get('reason', '')}")
              + f" ({result.get('seconds', 0):.0f} s, features {result.get('features', '-')})",
              flush=True)
        by_id[result["id"]].update(result)
        write_json(out / "trials.json", {**run, "trials": records})
    started = time.monotonic()
    try:
        if executor == "ray":
            results = run_ray(jobs, args.address, args.cpus_per_trial, out, report, run)
        else:
            results = run_local(jobs, workers, report)
    except TuneError as exc:
        print(f"micforge tune: {exc}", file=sys.stderr)
        return 2
    for trial_id, result in results.items():
        by_id[trial_id].update(result)
    run.update(wall_seconds=round(time.monotonic() - started, 1), load_end=_load())
    return finish(search, run, records, out)


def _has_ray() -> bool:
    import importlib.util
    return importlib.util.find_spec("ray") is not None


def finish(search: S.Search, run: dict, records: list[dict], out: Path) -> int:
    """Write trials.json, front.md, front.svg and the overlay; print the front."""
    names = search.targets
    front = pareto(records, names)
    chosen = choose(front, names)
    run.update(trials=records, front=[t["id"] for t in front],
               chosen=None if chosen is None else chosen["id"],
               features={k: sum(r.get("features") == k for r in records)
                         for k in ("computed", "cache", "kept")})
    write_json(out / "trials.json", run)
    svg = front_svg(run, out / "front.svg")
    text = front_markdown(run, "front.svg" if svg else None)
    write_if_changed(out / "front.md", text)
    print(text)
    print(f"written: {S.display_path(out / 'trials.json')}, {S.display_path(out / 'front.md')}"
          + (f", {S.display_path(out / 'front.svg')}" if svg else
             " (no front.svg: pip install matplotlib)"))
    if chosen is None:
        return 1
    overlay = out / "chosen.overlay.yaml"
    write_if_changed(overlay, overlay_text(search, run, chosen, S.display_path(overlay)))
    print(f"chosen: trial {chosen['id']}: {S.display_path(overlay)}; review it, then "
          f"micforge tune --apply {S.display_path(overlay)} {run['spec']}")
    return 0


def _cmd_apply(args) -> int:
    if not args.search:
        print("micforge tune --apply OVERLAY SPEC: give the spec to write into", file=sys.stderr)
        return 2
    try:
        diff = apply_overlay(Path(args.apply), Path(args.search), args.dry_run)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    except ApplyError as exc:
        print(f"{args.search}: {exc}", file=sys.stderr)
        return 2
    print(diff or f"{args.search}: already holds the overlay's values", end="" if diff else "\n")
    if diff and not args.dry_run:
        print(f"{args.search}: written")
    return 0


def register(subparsers) -> None:
    """Add `micforge tune` to the CLI's subparsers."""
    t = subparsers.add_parser(
        "tune", help="search the design space under every board's budget (Ray Tune)",
        description="Run a search file's trials (each a full build of a spec variant), prune "
                    "those that cannot fit their boards before training, and write the Pareto "
                    "front and the best trial's overlay to build/tune/<name>/.")
    t.add_argument("search", nargs="?", help="a search file (projects/search/NAME.yaml), or a "
                                             "spec with one in search/ beside it; with "
                                             "--apply, the spec to edit")
    t.add_argument("--trials", type=int, help="configurations to draw (default: the file's)")
    t.add_argument("--address", help="an existing Ray cluster (ray://HOST:PORT or HOST:PORT); "
                                     "default: Ray on this machine, one trial per core")
    t.add_argument("--executor", choices=("ray", "local"),
                   help="ray (the default; pip install 'micforge[tune]') or local: the same "
                        "trials in local processes, without Ray")
    t.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs each trial asks for")
    t.add_argument("--out", help="output folder (default: build/tune/<search name>)")
    t.add_argument("--cache-dir", help="the team cache every trial shares (default: "
                                       "$MICFORGE_CACHE_DIR, else <out>/cache/scons)")
    t.add_argument("--list", action="store_true", help="list the trials and stop")
    t.add_argument("--apply", metavar="OVERLAY", help="write OVERLAY's changes into the spec "
                                                      "given as the argument")
    t.add_argument("--dry-run", action="store_true", help="with --apply: show the diff only")
    t.set_defaults(func=cmd_tune)


def main(argv: list[str] | None = None) -> int:
    """`python -m generator.tune ...`, the same as `micforge tune ...`."""
    p = argparse.ArgumentParser(prog="micforge")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["tune"] + list(sys.argv[1:] if argv is None else argv))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
