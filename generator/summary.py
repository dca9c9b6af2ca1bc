"""The figures `micforge build` ends with: a few lines a person reads before anything else.

Test accuracy three ways, the arena and the ops, then per variant the hop budget (the family's
estimate of the loop's time per hop against the hop: front end, Invoke, microphone and serial
line; generator.firmware.budget) and where its firmware is. Everything comes from the build's artifacts; a figure the build has not made yet
(a variant-only build before training, say) is left out, never guessed.
"""

from __future__ import annotations

from pathlib import Path

from .fileio import read_json
from .paths import Artifacts
from .spec import Project


def _load(path: Path) -> dict | None:
    """An artifact, or None when it is missing or unreadable: a summary never fails a build."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def summary_lines(project: Project, art: Artifacts, variants: list[str] | None = None) -> list[str]:
    from .boards import load_board
    from .targets import family
    from .variant import resolve

    spec = project.spec
    lines = []
    evaluation, analysis = _load(art.evaluation), _load(art.analysis)
    head = f"{spec.name}:"
    if evaluation:
        acc = {k: f"{100 * v['accuracy']:.1f}%" for k, v in evaluation["runtimes"].items()}
        head += (f" test accuracy float {acc.get('float')} / int8 {acc.get('int8')} / TFLM "
                 f"{acc.get('tflm')} ({evaluation['test_clips']} clips)")
    if analysis:
        ops = sorted(set(analysis["resolver"]))
        head += (f"; arena {analysis['arena_bytes']:,} B; {len(ops)} ops "
                 f"({', '.join(o.removeprefix('Add') for o in ops)})")
    lines.append(head)
    streaming = _load(art.streaming)
    if streaming:
        at = streaming["test"]["at_threshold"]
        lines.append(f"  test stream: {100 * at['detection_rate']:.1f}% of events detected, "
                     f"{at['false_alarms_per_hour']:.1f} false alarms per hour at threshold "
                     f"{streaming['threshold']:g}")
    for target in spec.targets:
        if variants and target.name not in variants:
            continue
        board = load_board(target.board)
        where = art.firmware(target.name)
        line = f"  {target.name:<10} {board.title}"
        if analysis:
            try:
                v = resolve(project, target, board, analysis, streaming)
                b = family(board).budget(v)
                line += (f": loop {b.total_us / 1000:.1f} of {b.hop_us / 1000:.0f} ms per hop "
                         f"(estimated: front end {b.front_us / 1000:.1f} + Invoke "
                         f"{(b.invoke_us or 0) / 1000:.1f} + {b.audio_what} "
                         f"{b.audio_us / 1000:.1f} + serial line {b.serial_us / 1000:.1f})")
            except Exception:  # a spec error is the build's to report, not the summary's
                pass
        if where.is_dir():
            line += f"; firmware in {where}"
        lines.append(line)
    html = art.report.with_suffix(".html")
    if html.is_file():
        lines.append(f"  report: {html} (and {art.report.name})")
    elif art.report.is_file():
        lines.append(f"  report: {art.report}")
    return lines
