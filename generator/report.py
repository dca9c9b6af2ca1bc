"""The build report: build/<project>/report.md, one page a reviewer reads first.

It takes the artifacts the stages wrote (dataset index, model analysis,
evaluation, firmware trees) and puts their summaries side by side, using each
stage's own formatter so a figure is computed in one place only.
"""

from __future__ import annotations

import json
from pathlib import Path

from .boards import load_board
from .fileio import write_if_changed
from .paths import Artifacts
from .spec import Project


def _block(text: str) -> str:
    return "```\n" + text.rstrip() + "\n```\n"


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
        lines += [spec.description, ""]
    lines += [
        f"Input: {design(spec).describe()}.", "",
        "## Data", "", _block(summarize(index)),
        "## Model", "", _block(format_analysis(analysis)),
        "## Evaluation (test split)", "", _block(format_evaluation(evaluation)),
        *[f"**{w}**\n" for w in memory_warnings(index)],
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
        lines.append(f"| {target.name} | {board.title} | `{folder.relative_to(art.root)}/` |")
        plan_file = folder / "flexram_plan.json"
        if plan_file.exists():
            plan = json.loads(plan_file.read_text())
            plans += [f"### {target.name}: FlexRAM plan (GPR17 = {plan['gpr17']})", "",
                      *[f"- {reason}" for reason in plan["reasons"]], ""]
    lines.append("")
    return "\n".join(lines + plans)


def write_report(project: Project, art: Artifacts, out: Path) -> None:
    write_if_changed(out, build_report(project, art))
