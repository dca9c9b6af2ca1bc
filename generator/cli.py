"""The `micforge` command.

    micforge validate SPEC...          check specs against their boards
    micforge build SPEC [--variant V]  build a project (or one variant) with SCons
    micforge verify SPEC               bit-exact check of C features against Python
    micforge evaluate SPEC --data DIR  score a folder of labelled recordings with the built model
    micforge simulate SPEC --variant V FILE...  the device's serial lines for audio files (host)
    micforge capture SPEC --variant V --port P --label C  record clips with the board's microphone
    micforge monitor --port P [--log F.csv]  the detector's serial lines, live
    micforge diff OLD NEW              what changed between two builds, for a code review
    micforge tune SEARCH [--trials N] [--address A]  search the design space under every board's budget
    micforge boards                    list the board catalogue
    micforge schema [-o FILE]          write the spec JSON schema for editors
    micforge clean [SPEC]              remove build outputs

A mistake in a spec prints `file:line:col: message` and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .errors import SpecError
from .paths import REPO

SCHEMA_PATH = REPO / "schema" / "micforge-spec.schema.json"


def _display(path: Path) -> str:
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_validate(args) -> int:
    from .boards import load_board
    from .checks import check_project
    from .features import design
    from .spec import load_spec
    failed = False
    for spec_path in args.specs:
        try:
            project = load_spec(spec_path, _display(Path(spec_path)))
            check_project(project)
        except SpecError as exc:
            print(exc, file=sys.stderr)
            failed = True
            continue
        s, fe = project.spec, design(project.spec)
        variants = ", ".join(f"{t.name} ({load_board(t.board).title})" for t in s.targets)
        print(f"{_display(Path(spec_path))}: ok — {len(s.classes)} classes, input "
              f"{fe.num_frames}x{fe.num_bins} {fe.kind}, hop {fe.hop_samples} samples "
              f"({1000 * fe.hop_samples / fe.sample_rate:g} ms); variants: {variants}")
    return 2 if failed else 0


def _scons(args_list: list[str]) -> int:
    """Run SCons in a child process and return its exit status.

    Ctrl-C in a terminal reaches both processes; SIGINT sent to this one alone (kill -INT,
    a CI runner) is passed on. Either way the child stops its stage, records the finished
    ones, prints INTERRUPTED and exits 130 (SConstruct, pipeline._user_errors); this process
    waits for it rather than killing it (a killed SCons forgets the stages it finished)."""
    cmd = [sys.executable, "-m", "SCons", "-C", str(REPO), "-Q"] + args_list
    child = subprocess.Popen(cmd)
    try:
        return child.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        child.send_signal(signal.SIGINT)
        if child.wait() == 130:
            return 130  # the child said so
        raise  # stopped between stages, silently: main() says so


def cmd_build(args) -> int:
    from .spec import load_spec
    spec_path = Path(args.spec).resolve()
    try:
        project = load_spec(spec_path, _display(spec_path))
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    names = [t.name for t in project.spec.targets]
    if args.variant and args.variant not in names:
        print(f"{_display(spec_path)}: no variant '{args.variant}'; variants: {', '.join(names)}",
              file=sys.stderr)
        return 2
    if args.capture and not args.variant:
        print("micforge build: --capture needs --variant", file=sys.stderr)
        return 2
    alias = project.name if not args.variant else _variant_alias(spec_path, args.variant)
    if args.capture:
        alias += "-capture"
    extra = [f"-j{args.jobs}"] if args.jobs else []
    if args.dry_run:
        extra.append("-n")
    if args.build_dir:
        extra.append(f"build_dir={Path(args.build_dir).resolve()}")
    cache = args.cache_dir or os.environ.get("MICFORGE_CACHE_DIR")
    if cache:
        extra.append(f"cache_dir={Path(cache).resolve()}")
    if args.verbose:
        os.environ["MICFORGE_VERBOSE"] = "1"  # stages print everything (generator.console)
    status = _scons(extra + [f"spec={spec_path}", alias])
    if status == 0 and not args.dry_run and not args.capture:
        from .paths import Artifacts
        from .summary import summary_lines
        build_dir = Path(args.build_dir).resolve() if args.build_dir else None
        art = Artifacts.for_project(project.name, build_dir)
        print("\n".join(summary_lines(project, art, [args.variant] if args.variant else None)))
    return status


def _variant_alias(spec_path: Path, variant: str) -> str:
    rel = spec_path.relative_to(REPO) if spec_path.is_relative_to(REPO) else spec_path
    return f"{rel.with_suffix('')}/{variant}"


def cmd_clean(args) -> int:
    targets = [f"spec={Path(args.spec).resolve()}"] if args.spec else []
    return _scons(["-c"] + targets + ["."])


def cmd_verify(args) -> int:
    from .dataset import build_index
    from .hostc import verify_project
    from .spec import load_spec
    try:
        project = load_spec(args.spec, _display(Path(args.spec)))
        result = verify_project(project, build_index(project), args.max_clips)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result.get("mismatches", 1) == 0 else 1


def cmd_evaluate(args) -> int:
    from .evaldata import evaluate_folder, format_folder_report
    from .fileio import write_json
    from .paths import Artifacts
    from .spec import load_spec
    spec_display = _display(Path(args.spec))
    try:
        project = load_spec(args.spec, spec_display)
        build_dir = Path(args.build_dir).resolve() if args.build_dir else None
        tflite = Artifacts.for_project(project.name, build_dir).tflite
        if not tflite.is_file():
            print(f"{spec_display}: no built model at {_display(tflite)}; "
                  f"run micforge build {spec_display} first", file=sys.stderr)
            return 2
        streaming = Artifacts.for_project(project.name, build_dir).streaming
        calibration = json.loads(streaming.read_text()) if streaming.is_file() else None
        result = evaluate_folder(project, tflite, Path(args.data), calibration)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(format_folder_report(result))
    if args.json:
        write_json(args.json, result)
    return 0


def cmd_simulate(args) -> int:
    from .fileio import write_json
    from .simulate import SimulateError, load, simulate_files
    from .spec import load_spec
    spec_display = _display(Path(args.spec))
    try:
        project = load_spec(args.spec, spec_display)
        build_dir = Path(args.build_dir).resolve() if args.build_dir else None
        sim = load(project, args.variant, build_dir, spec_display)
        if sim.stale:
            print(f"{spec_display}: note: {_display(sim.firmware_dir)} is out of date "
                  f"({', '.join(sim.stale)} differ from the current render); simulating the "
                  f"current render; run micforge build {spec_display} to update it",
                  file=sys.stderr)
        if not sim.serial:
            print(f"{spec_display}: note: variant '{args.variant}' has no serial output: the "
                  f"device prints no hop lines (--json has them)", file=sys.stderr)
        result = simulate_files(sim, [Path(f) for f in args.files])
    except (SpecError, SimulateError) as exc:
        print(exc, file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `| head`: stop quietly, as the reader asked
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.json:
        write_json(args.json, result)
    return 0


def cmd_boards(args) -> int:
    from .boards import all_boards
    rows = [("id", "board", "core", "clock", "flash", "arena in", "mic")]
    for b in all_boards():
        arena = b.region(b.arena_region)
        rows.append((b.id, b.title, b.core, f"{b.clock_hz // 1_000_000} MHz",
                     f"{b.flash_size // 1024} KB", f"{arena.name} {arena.length // 1024} KB",
                     f"{b.microphone.interface} ({b.microphone.peripheral})"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def schema_text() -> str:
    from .spec import ProjectSpec
    schema = ProjectSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "micforge project spec"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def cmd_schema(args) -> int:
    from .fileio import write_if_changed
    out = Path(args.output) if args.output else SCHEMA_PATH
    changed = write_if_changed(out, schema_text())
    print(f"{_display(out)}: {'written' if changed else 'up to date'}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="micforge", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="check specs against their boards")
    v.add_argument("specs", nargs="+")
    v.set_defaults(func=cmd_validate)
    b = sub.add_parser("build", help="build a project (all variants, or one)")
    b.add_argument("spec")
    b.add_argument("--variant", help="build only this variant's firmware (and what it needs)")
    b.add_argument("--capture", action="store_true",
                   help="with --variant: only its capture firmware (no training needed)")
    b.add_argument("-j", "--jobs", type=int, help="parallel SCons jobs")
    b.add_argument("-n", "--dry-run", action="store_true", help="show what would be rebuilt")
    b.add_argument("-v", "--verbose", action="store_true",
                   help="print every stage's output as it runs (default: one line per stage, "
                        "the rest in build/<project>/logs/)")
    b.add_argument("--build-dir", help="where artifacts go (default: build/ in the repository)")
    b.add_argument("--cache-dir", help="a shared build cache (SCons CacheDir): features, models and "
                                       "firmware built once are fetched by every machine with the "
                                       "same inputs (default: $MICFORGE_CACHE_DIR)")
    b.set_defaults(func=cmd_build)
    f = sub.add_parser("verify", help="C features == Python features, bit for bit")
    f.add_argument("spec")
    f.add_argument("--max-clips", type=int, default=None)
    f.set_defaults(func=cmd_verify)
    e = sub.add_parser("evaluate", help="score a folder of labelled recordings with the built model")
    e.add_argument("spec")
    e.add_argument("--data", required=True, help="a folder with one sub-folder of recordings per class")
    e.add_argument("--json", help="also write the results to this JSON file")
    e.add_argument("--build-dir", help="where the build put its artifacts (default: build/)")
    e.set_defaults(func=cmd_evaluate)
    m = sub.add_parser("simulate", help="run audio files through a variant's firmware core and "
                                        "model on the host; print the device's serial lines",
                       description="Print the hop lines the variant's firmware prints for each "
                                   "file (several files: clip=<i> prefixes and end lines, as a "
                                   "clip build). t_ms is the stream time at the end of the hop "
                                   "(not the device's time since boot); dsp_us, inf_us and ovr "
                                   "are 0.")
    m.add_argument("spec")
    m.add_argument("--variant", required=True, help="the variant (targets[].name) to simulate")
    m.add_argument("files", nargs="+", help="audio files (any rate and channels); each is a stream")
    m.add_argument("--build-dir", help="where the build put its artifacts (default: build/)")
    m.add_argument("--json", help="also write every hop's values to this JSON file")
    m.set_defaults(func=cmd_simulate)
    from . import capture, diff, monitor, tune
    capture.register(sub)
    monitor.register(sub)
    diff.register(sub)
    tune.register(sub)
    sub.add_parser("boards", help="list boards").set_defaults(func=cmd_boards)
    s = sub.add_parser("schema", help="write the spec JSON schema")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_schema)
    c = sub.add_parser("clean", help="remove build outputs")
    c.add_argument("spec", nargs="?")
    c.set_defaults(func=cmd_clean)
    return p


INTERRUPTED = "interrupted; run the same command again to resume (finished stages are kept)"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C is a request, not a bug: one line, no traceback
        print(INTERRUPTED if args.command == "build" else "interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
