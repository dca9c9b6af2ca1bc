"""report.html (generator/report_html.py) from artifacts made up in tmp_path for real specs: no
training. Every section is there, every figure parses (its embedded PNGs decode), nothing points
outside the file, free text is escaped, two renders are byte-identical, and the memory and hop
figures are the firmware families' own estimates."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from generator.boards import load_board
from generator.evaluate import metrics
from generator.fileio import write_json
from generator.paths import Artifacts
from generator.report_html import SECTIONS, build_report_html, hop_budget, write_report_html
from generator.spec import load_spec
from generator.variant import resolve

HOSTILE = "<script>alert(1)</script> & $x$ \u202e"
SOURCE = "rec$1$_<b>&\x01"  # a recording name as the dataset may hold it
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
SPLITS = ("train", "validation", "test")


def _spec(tmp_path: Path, name: str, edit=lambda text: text):
    text = (REPO / "projects" / f"{name}.yaml").read_text()
    text = re.sub(r"^description: .*$", lambda _: f"description: {json.dumps(HOSTILE)}", text, flags=re.M)
    path = tmp_path / f"{name}.yaml"
    path.write_text(edit(text))
    return load_spec(path, path.name)


def _index(classes: list[str]) -> dict:
    """Clips of a few recordings per class spread over the splits; one recording's name is
    hostile."""
    clips = []
    for c in classes:
        for r in range(5):
            source = SOURCE if (c, r) == (classes[0], 0) else f"{c}_{r}"
            for w in range(6 - r):
                split = SPLITS[(r + w) % 3] if r < 3 else "test"
                clips.append({"file": f"{c}/{source}_t{w}.wav", "group": f"{source}@{w}", "label": c,
                              "sha256": "0" * 64, "source": source, "split": split, "window": w})
    count = {c: {s: sum(x["label"] == c and x["split"] == s for x in clips) for s in SPLITS}
             for c in classes}
    return {"classes": classes, "clip_samples": 16000, "clips": clips, "layout": "folders",
            "sample_rate": 16000, "synthetic": False,
            "skipped": [{"file": "x.wav", "reason": "silent window", "detail": ""}],
            "summary": {"clips": count, "converted": {}, "duplicates": [],
                        "groups": {s: 10 for s in SPLITS}, "skipped": {"silent window": 1},
                        "speakers": {s: 0 for s in SPLITS}, "total": len(clips),
                        "unheard_test_sources": {c: {"test_sources": 3, "test_windows": count[c]["test"],
                                                     "unheard_sources": 2, "unheard_windows": 4}
                                                 for c in classes}}}


def _analysis(num_frames: int, num_bins: int, classes: int) -> dict:
    layers = [("CONV_2D", [1, 8, 8, 8], 4608, 80), ("CONV_2D", [1, 4, 4, 12], 13824, 876),
              ("MAX_POOL_2D", [1, 2, 2, 12], 0, 0), ("RESHAPE", [1, 48], 0, 0),
              ("FULLY_CONNECTED", [1, classes], 48 * classes, 49 * classes),
              ("SOFTMAX", [1, classes], 0, 0)]
    return {"arena": {"align": 16, "bytes": 4176, "margin": 512, "measured_bytes": 3664,
                      "runtime": "tflite_micro Python interpreter"}, "arena_bytes": 4176,
            "input": {"dtype": "int8", "name": "in", "scale": 0.0078125,
                      "shape": [1, num_frames, num_bins, 1], "zero_point": 0},
            "output": {"dtype": "int8", "name": "out", "scale": 0.00390625,
                       "shape": [1, classes], "zero_point": -128},
            "layers": [{"index": i, "op": op, "output": f"t{i}", "output_shape": shape, "macs": macs,
                        "params": params, "resolver": "Add", "version": 1, "weight_bytes": params}
                       for i, (op, shape, macs, params) in enumerate(layers)],
            "macs": sum(x[2] for x in layers), "params": sum(x[3] for x in layers),
            "model_bytes": 5184, "weight_bytes": 1120,
            "ops": [{"count": 2, "op": "CONV_2D", "resolver": "AddConv2D", "version": 3}],
            "resolver": ["AddConv2D"]}


def _evaluation(classes: list[str], rng) -> dict:
    y = np.repeat(np.arange(len(classes)), 20)
    runtimes = {}
    for key in ("float", "int8", "tflm"):
        pred = np.where(rng.random(len(y)) < 0.8, y, rng.integers(0, len(classes), len(y)))
        runtimes[key] = metrics(y, pred, classes)
    return {"classes": classes, "runtimes": runtimes, "test_clips": len(y), "float_int8_agreement": 0.95,
            "int8_drop_points": -1.0, "int8_tflm_max_abs_diff": 1, "int8_tflm_mismatch_clips": [3],
            "int8_tflm_mismatches": 1, "int8_tflm_prediction_differences": 0}


def _sweep(rng, smoothings=(1, 2, 3)) -> list[dict]:
    rows = []
    for s in smoothings:
        for t in np.arange(0.3, 0.96, 0.05):
            rate = float(np.clip(1.2 - t + rng.normal(0, 0.02), 0, 1))
            fa = float(max(0.0, 200 * (0.9 - t) / s))
            rows.append({"detected": int(280 * rate), "detection_rate": rate, "events": 280,
                         "false_alarms": int(fa), "false_alarms_per_hour": fa,
                         "false_alarms_per_hour_95": [fa * 0.8, fa * 1.2 + 3.7], "hours": 1.0,
                         "latency_median_s": 0.1 + t / 3, "latency_p95_s": 0.4 + t / 2,
                         "smoothing": s, "threshold": round(float(t), 2)})
    return rows


def _streaming(project, rng) -> dict:
    spec = project.spec
    sweep = _sweep(rng)
    at = next(r for r in sweep if r["smoothing"] == 3 and abs(r["threshold"] - 0.8) < 1e-9)
    return {"auto": False, "classes": spec.classes, "detect_classes": spec.detect_classes,
            "hysteresis": 0.1, "minutes": 60, "smoothing": 3, "threshold": 0.8,
            "test": {"at_threshold": at, "events": 280, "hops": 112470, "sweep": sweep}}


def _crossval(project) -> dict:
    spec = project.spec
    folds = []
    for n, name in enumerate([SOURCE, f"{spec.classes[0]}_1"]):
        folds.append({
            "accuracy": 0.97 - n / 50, "float_accuracy": 0.98, "fold": name, "test_windows": 200,
            "confusion": [[19, 1], [2, 178]], "train_windows": 300, "validation_windows": 80,
            "per_class": {}, "per_source": {f"{spec.classes[0]}/{name}": {"correct": 19, "recall": 0.95,
                                                                         "windows": 20}},
            "detection_recalls": {spec.classes[0]: {"detected": 19, "recall": 0.95, "windows": 20}},
            "false_positive_rates": {spec.classes[1]: {"false_positives": 2, "rate": 0.011,
                                                       "windows": 180}},
            "threshold_sweep": [{"false_positive_rate": 0.05 * (1 - t), "recall": 1 - t / 4,
                                 "threshold": t} for t in (0.5, 0.6, 0.7, 0.8, 0.9)]})
    folds.append({"fold": "empty", "skipped": "no windows"})
    return {"classes": spec.classes, "detect_classes": spec.detect_classes,
            "held_out_classes": [spec.classes[0]], "method": "leave_one_recording_out",
            "mean_accuracy": 0.96, "runtime": "tflm int8", "threshold": 0.8, "folds": folds,
            "splits": ["train", "validation"]}


def make_artifacts(project, root: Path) -> Artifacts:
    """Every artifact the report reads, for `project`, under root/<name>."""
    from generator.features import design
    spec = project.spec
    art = Artifacts(root / spec.name)
    rng = np.random.default_rng(0)
    fe = design(spec)
    index = _index(spec.classes)
    write_json(art.dataset_index, index)
    arrays = {}
    for split in SPLITS:
        labels = [spec.classes.index(c["label"]) for c in index["clips"] if c["split"] == split]
        if split == "train":
            labels = labels * 2  # augmented copies
        arrays[f"x_{split}"] = rng.integers(-128, 128, (len(labels), fe.num_frames, fe.num_bins),
                                            dtype=np.int8)
        arrays[f"y_{split}"] = np.asarray(labels, dtype=np.int64)
    art.features.parent.mkdir(parents=True, exist_ok=True)
    np.savez(art.features, **arrays)
    epochs = 12
    write_json(art.history, {"classes": spec.classes, "params": 1054, "samples": {}, "phases": {
        "train": {"best_epoch": 9, "epochs_run": epochs, "monitor": "val_loss", "metrics": {
            "loss": list(np.linspace(0.7, 0.2, epochs)), "val_loss": list(np.linspace(0.6, 0.15, epochs)),
            "accuracy": list(np.linspace(0.6, 0.95, epochs)),
            "val_accuracy": list(np.linspace(0.7, 0.97, epochs)),
            "learning_rate": [0.001] * 8 + [0.0005] * 4}}}})
    analysis = _analysis(fe.num_frames, fe.num_bins, len(spec.classes))
    write_json(art.analysis, analysis)
    write_json(art.evaluation, _evaluation(spec.classes, rng))
    if spec.evaluation.cross_validation:
        write_json(art.crossval, _crossval(project))
    if spec.evaluation.streaming:
        write_json(art.streaming, _streaming(project, rng))
    return art


@pytest.fixture(scope="module")
def fire_alarm(tmp_path_factory):
    """fire_alarm (cross-validation, streams, two RP2040 and two RT1062 variants), its page."""
    tmp = tmp_path_factory.mktemp("report_html")
    project = _spec(tmp, "fire_alarm")
    art = make_artifacts(project, tmp / "build")
    out = art.root / "report.html"
    write_report_html(project, art, out)
    return project, art, out.read_text(encoding="utf-8")


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def test_every_section_is_there_with_its_contents_link(fire_alarm):
    _, _, html = fire_alarm
    for key, title in SECTIONS:
        assert len(re.findall(rf'<section id="{key}">', html)) == 1, key
        assert f'<a href="#{key}">{title}</a>' in html
    for figure in ("splits", "sources", "features", "history", "confusion", "precision_recall",
                   "crossval", "streaming", "layers", "hop", "memory_pico", "memory_micromod",
                   "memory_evkb", "memory_teensy"):
        assert f'<figure id="fig-{figure}">' in html, figure
    assert len(_svgs(html)) == 14
    assert "one model per fold of the train and validation clips (the test split left out)" in html


def test_every_figure_parses_and_its_images_decode(fire_alarm):
    from PIL import Image

    _, _, html = fire_alarm
    images = 0
    for text in _svgs(html):
        root = ET.fromstring(text)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        for node in root.iter("{http://www.w3.org/2000/svg}image"):
            href = node.get("{http://www.w3.org/1999/xlink}href") or node.get("href")
            assert href.startswith("data:image/png;base64,")
            with Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))) as im:
                im.load()
                assert im.size[0] > 0 and im.size[1] > 0
            images += 1
    assert images >= 2  # the feature maps (and the colour bar)


def test_ids_are_unique_across_figures(fire_alarm):
    _, _, html = fire_alarm
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'(?:url\(#|href="#)([^")]+)', html):
        assert ref in ids, ref


def test_nothing_points_outside_the_file(fire_alarm):
    _, _, html = fire_alarm
    assert set(re.findall(r"""https?://[^\s"'<>)]+""", html)) <= NAMESPACES
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html
    for attr in re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", html):
        assert attr.startswith(("#", "data:")), attr
    assert "url(" not in html.replace("url(#", "")


def test_free_text_is_escaped(fire_alarm):
    _, _, html = fire_alarm
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$" in html
    assert "rec$1$_&lt;b&gt;&amp;" in html  # drawn literally (no mathtext), escaped in the SVG
    assert "\x01" not in html and "\u202e" not in html  # control characters replaced


def test_same_artifacts_give_the_same_bytes(fire_alarm):
    """A second render in another process (another hash seed) gives the same page."""
    project, art, html = fire_alarm
    code = ("import sys; from pathlib import Path; from generator.spec import load_spec; "
            "from generator.paths import Artifacts; from generator.report_html import build_report_html; "
            "p = Path(sys.argv[1]); sys.stdout.buffer.write(build_report_html("
            "load_spec(p, p.name), Artifacts(Path(sys.argv[2]))).encode())")
    proc = subprocess.run([sys.executable, "-c", code, str(project.path), str(art.root)],
                          capture_output=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "7"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode() == html


def test_memory_and_hop_are_the_families_estimates(fire_alarm):
    from generator.firmware import budget, imxrt, rp2040
    from generator.targets import family

    project, art, html = fire_alarm
    analysis = json.loads(art.analysis.read_text())
    targets = {t.name: t for t in project.spec.targets}
    pico = resolve(project, targets["pico"], load_board("rpi_pico"), analysis)
    ram = {r.name: r for r in rp2040.memory(pico, analysis["model_bytes"])}["RAM"]
    assert ram.used == pico.arena.bytes + rp2040.static_ram_bytes(pico)
    assert ram.size == 256 * 1024
    teensy = resolve(project, targets["teensy"], load_board("teensy41"), analysis)
    sizes = imxrt.estimate_sizes(teensy, teensy.arena.bytes)
    plan = imxrt.plan(teensy.board, sizes).to_json()
    regions = {r.name: r for r in imxrt.memory(teensy, analysis["model_bytes"], plan)}
    assert regions["DTCM"].used == sizes.dtcm and regions["DTCM"].size == plan["dtcm_size"]
    assert regions["ITCM"].size == plan["itcm_size"]
    assert regions["OCRAM2"].used + regions["OCRAM_FLEX"].used == sizes.ocram
    for v in (pico, teensy):
        b = hop_budget(v)
        assert b["total_us"] == pytest.approx(family(v.board).compute_us(v))
        assert b["front_us"] + b["invoke_us"] + b["other_us"] == pytest.approx(b["total_us"])
        assert b["hop_us"] == v.frontend.hop_us
    assert f"estimated (calibrated in rp2040js: {budget.CYCLES_PER_MAC:g} cycles/MAC" in html
    assert "not measured on one" in html  # the RT1062's figure is the RP2040's, said so


def test_a_variants_flexram_plan_file_is_what_the_page_shows(tmp_path):
    """The plan the firmware was rendered from (flexram_plan.json) is the one drawn."""
    project = _spec(tmp_path, "fire_alarm")
    art = make_artifacts(project, tmp_path / "build")
    from generator.flexram import gpr17_value

    gpr17 = f"0x{gpr17_value(itcm=4, dtcm=11, ocram=1, banks=16):08X}"
    plan = {**_teensy_plan(project, art), "gpr17": gpr17, "reasons": ["DTCM 11 banks: by hand"]}
    write_json(art.firmware("teensy") / "flexram_plan.json", plan)
    html = build_report_html(project, art)
    block = html[html.index('id="variant-teensy"'):]
    assert f"GPR17 = <code>{gpr17}</code>" in block and "DTCM 11 banks: by hand" in block
    assert [block.count(f'class="bank {k}"') for k in ("ITCM", "DTCM", "OCRAM")] == [4, 11, 1]
    evkb = html[html.index('id="variant-evkb"'):html.index('id="variant-teensy"')]
    assert "DTCM 11 banks: by hand" not in evkb  # no file: the plan is made from the estimates


def _teensy_plan(project, art) -> dict:
    from generator.firmware import imxrt
    analysis = json.loads(art.analysis.read_text())
    target = next(t for t in project.spec.targets if t.name == "teensy")
    v = resolve(project, target, load_board(target.board), analysis)
    return imxrt.plan(v.board, imxrt.estimate_sizes(v, v.arena.bytes)).to_json()


def test_a_build_without_cross_validation_or_streams_says_so(tmp_path):
    project = _spec(tmp_path, "demo", lambda t: t.replace("streaming: {minutes: 10}", "streaming: null"))
    assert project.spec.evaluation.streaming is None and project.spec.evaluation.cross_validation is None
    art = make_artifacts(project, tmp_path / "build")
    html = build_report_html(project, art)
    for key, _ in SECTIONS:
        assert f'<section id="{key}">' in html
    assert "No cross-validation in this build" in html
    assert "No stream evaluation in this build" in html
    assert 'id="fig-crossval"' not in html and 'id="fig-streaming"' not in html
    assert len(_svgs(html)) == 10  # 14 of fire_alarm less crossval, streams and two variants


def test_the_report_stage_writes_the_page_beside_report_md():
    """The build graph's report stage has report.html as its second target (act_report writes it)."""
    import ast
    from generator import pipeline

    assert "generator.report_html" in pipeline.action_imports()["report"]
    assert REPO / "generator" / "report_html.py" in pipeline.stage_modules("report")
    tree = ast.parse((REPO / "generator" / "pipeline.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "stage"
                and isinstance(n.args[0], ast.Constant) and n.args[0].value == "report")
    assert ast.unparse(call.args[1]) == "[art.report, art.report.with_suffix('.html')]"
