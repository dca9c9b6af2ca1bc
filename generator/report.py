"""The build report: build/<project>/report.md, one page a reviewer reads first.

It takes the artifacts the stages wrote (dataset index, model analysis,
evaluation, firmware trees) and puts their summaries side by side, using each
stage's own formatter so a figure is computed in one place only. Free text (the
description, board titles, anything a formatter prints) is escaped for Markdown
(generator.render: md_text, md_code; code blocks get a fence no line can close).
The same artifacts drawn as figures are generator.report_html's report.html.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .boards import load_board
from .fileio import write_if_changed
from .paths import Artifacts
from .render import md_code, md_text
from .spec import Project


def _block(text: str) -> str:
    """A fenced code block of `text`: the fence is longer than any run of backticks in it, so no
    line of the text (a file or class name, say) can close the block early."""
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return f"{fence}\n{text.rstrip()}\n{fence}\n"


def build_report(project: Project, art: Artifacts) -> str:
    from .analyze import format_analysis
    from .crossval import format_crossval
    from .features import design
    from .streaming import format_streaming
    from .dataset import memory_warnings, summarize
    from .evaluate import format_evaluation

    spec = project.spec
    index = json.loads(art.dataset_index.read_text())
    analysis = json.loads(art.analysis.read_text())
    evaluation = json.loads(art.evaluation.read_text())
    lines = [f"# {spec.name}: build report", ""]
    if spec.description:
        lines += [md_text(spec.description), ""]
    lines += [
        f"Input: {design(spec).describe()}.", "",
        "Figures (dataset, feature maps, training curves, confusion matrices, streams, memory "
        "and hop budget per variant): `report.html` beside this file.", "",
        "## Data", "", _block(summarize(index)),
        "## Model", "", _block(format_analysis(analysis)),
        "## Evaluation (test split)", "", _block(format_evaluation(evaluation)),
        *[f"**{md_text(w)}**\n" for w in memory_warnings(index)],
        *(["## Cross-validation (recordings unheard in training)", "",
             _block(format_crossval(json.loads(art.crossval.read_text())))]
          if art.crossval.exists() and spec.evaluation.cross_validation else []),
        *(["## Streams (the deployed detector)", "",
             _block(format_streaming(json.loads(art.streaming.read_text())))]
          if art.streaming.exists() and spec.evaluation.streaming else []),
        "## Firmware", "",
        "| variant | board | folder |", "|---|---|---|",
    ]
    plans = []
    for target in spec.targets:
        board = load_board(target.board)
        folder = art.firmware(target.name)
        # target names are identifiers (spec pattern), so the folder's code span holds no '|'
        lines.append(f"| {md_text(target.name)} | {md_text(board.title)} | "
                     f"{md_code(f'{folder.relative_to(art.root)}/')} |")
        plan_file = folder / "flexram_plan.json"
        if plan_file.exists():
            plan = json.loads(plan_file.read_text())
            plans += [f"### {md_text(target.name)}: FlexRAM plan (GPR17 = {plan['gpr17']})", "",
                      *[f"- {reason}" for reason in plan["reasons"]], ""]
    lines.append("")
    return "\n".join(lines + plans)


def write_report(project: Project, art: Artifacts, out: Path) -> None:
    write_if_changed(out, build_report(project, art))
