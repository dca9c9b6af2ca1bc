"""micforge tune: the search file (generator/search.py), pruning before training, the front,
the overlay and its --apply (generator/tune.py), and a two-trial search of the demo project
with the local executor (and, where Ray is installed, the same search on Ray)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from generator import search as S
from generator import tune
from generator.errors import SpecError
from generator.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "projects" / "demo.yaml"
FIRE = REPO / "projects" / "fire_alarm.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # spec paths in messages are relative to the working folder


def write(tmp_path: Path, text: str, name: str = "t.search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as exc:
        S.load_search(path, "s.yaml")
    return [str(p) for p in exc.value.problems]


# ------------------------------------------------------------------ the search file

def test_model_errors_at_their_lines(tmp_path):
    path = write(tmp_path, f"""spec: {FIRE}
trials: 0
space:
  model.filters: {{choice: [[8, 12]], int: [1, 2]}}
  training.epochs: {{int: [50, 10]}}
  training.learning_rate: {{loguniform: [0, 0.1]}}
  features.mel_bands: {{choice: [24], step: 2}}
tirals: 3
""")
    assert problems(path) == [
        "s.yaml:2:9: input should be greater than or equal to 1, got 0",
        "s.yaml:4:18: give exactly one of choice, int, uniform, loguniform",
        "s.yaml:5:20: the range 50 .. 10 is empty: lo must not exceed hi",
        "s.yaml:6:40: loguniform needs lo > 0",
        "s.yaml:7:44: step applies to int and uniform only",
        "s.yaml:8:1: unknown key 'tirals' (did you mean 'trials'?)",
    ]


def test_key_paths_checked_against_the_spec(tmp_path):
    path = write(tmp_path, f"""spec: {FIRE}
space:
  features.mel_band: {{choice: [24, 32]}}
  dataset.seed: {{int: [0, 3]}}
  model.architecture: {{choice: [ds_cnn]}}
  features.window.x: {{choice: [1]}}
  model.blocks: {{int: [2, 4]}}
objective: stream_detection_rate
targets: [pico, nano]
budget:
  model.blocks: 3
  targets: []
""")
    assert problems(path) == [
        "s.yaml:3:3: features has no key 'mel_band' (did you mean 'mel_bands'?)",
        "s.yaml:4:3: 'dataset' cannot be searched: the search varies audio, features, "
        "augmentation, model, training, quantization, detection, arena (the data, classes, "
        "targets and evaluation are what trials are measured with)",
        "s.yaml:5:3: model.architecture cannot be searched: the other model fields belong to "
        "one architecture; write one search file per architecture",
        "s.yaml:6:3: 'features.window' is a value, not a section: it has no 'x'; search the "
        "whole value",
        # fire_alarm's model is a compact_cnn: blocks is a ds_cnn field
        "s.yaml:7:3: model has no key 'blocks'; its keys: architecture, dropout, filters, "
        "first_stride, kernel",
        "s.yaml:8:12: stream_detection_rate needs detection.threshold: auto (with "
        "false_alarms_per_hour): the validation stream calibrates it",
        "s.yaml:9:17: projects/fire_alarm.yaml has no variant 'nano'; variants: pico, "
        "micromod, evkb, teensy",
        "s.yaml:11:3: model has no key 'blocks'; its keys: architecture, dropout, filters, "
        "first_stride, kernel",
        "s.yaml:11:3: model.blocks is both searched and fixed by the budget; remove one",
        "s.yaml:12:3: 'targets' cannot be overridden in a search",
    ]


def test_values_checked_against_the_fields_constraints(tmp_path):
    path = write(tmp_path, f"""spec: {FIRE}
space:
  features.mel_bands: {{choice: [24, 200]}}
  augmentation.pitch.probability: {{uniform: [0.2, 1.5]}}
  training.epochs: {{int: [0, 10], step: 5}}
  detection.hysteresis: {{uniform: [0.1, 0.9]}}
  quantization.mode: {{choice: [ptq, int4]}}
""")
    assert problems(path) == [
        "s.yaml:3:37: features.mel_bands: 200 is not valid for fire_alarm.yaml: input should "
        "be less than or equal to 128, got 200",
        "s.yaml:4:51: augmentation.pitch.probability: 1.5 is not valid for fire_alarm.yaml: "
        "input should be less than or equal to 1, got 1.5",
        "s.yaml:5:27: training.epochs: 0 is not valid for fire_alarm.yaml: input should be "
        "greater than or equal to 1, got 0",
        # a value that makes the spec invalid (fire_alarm's threshold is 0.7)
        "s.yaml:6:41: detection.hysteresis: 0.9 is not valid for fire_alarm.yaml: detection: "
        "hysteresis (0.9) must be below threshold (0.7) or the detection never turns off",
        "s.yaml:7:37: quantization.mode: \"int4\" is not valid for fire_alarm.yaml: 'int4' is "
        "not allowed here; expected 'ptq' or 'qat'",
    ]


def test_a_broken_budget_is_reported_alone(tmp_path):
    path = write(tmp_path, f"""spec: {FIRE}
budget:
  training.batch_size: 0
space:
  features.mel_bands: {{choice: [24, 32]}}
""")
    assert problems(path) == [
        "s.yaml:3:24: training.batch_size: 0 is not valid for fire_alarm.yaml: input should "
        "be greater than or equal to 1, got 0"]


def test_a_crossval_objective_never_sees_the_test_split(tmp_path):
    spec = tmp_path / "fire.yaml"
    spec.write_text(FIRE.read_text().replace(
        "dataset:\n  root: ../../shared", f"dataset:\n  root: {FIRE.parent}/../../shared").replace(
        "cross_validation: {method: leave_one_recording_out}",
        "cross_validation: {method: leave_one_recording_out, include_test: true}"))
    text = f"spec: {spec}\nobjective: crossval_recall\nspace:\n  model.first_stride: {{int: [2, 4]}}\n"
    assert problems(write(tmp_path, text)) == [
        f"s.yaml:2:12: crossval_recall would choose with the test split: {spec} sets "
        f"evaluation.cross_validation.include_test: true (or the budget does); set it to false "
        f"there, or add evaluation.cross_validation.include_test: false to this file's budget"]
    fixed = text + "budget:\n  evaluation.cross_validation.include_test: false\n"
    assert S.load_search(write(tmp_path, fixed), "s.yaml").objective == "crossval_recall"
    # validation_accuracy reads the validation split: the folds do not matter to it
    other = text.replace("crossval_recall", "validation_accuracy")
    assert S.load_search(write(tmp_path, other), "s.yaml").objective == "validation_accuracy"


def test_a_combination_is_left_to_the_trial(tmp_path):
    """frame_length 1024 needs fft_size 1024, which the space also holds: accepted, and the
    draw that pairs 1024 with 512 becomes an invalid trial that costs nothing."""
    path = write(tmp_path, f"""spec: {FIRE}
trials: 3
seed: 2
space:
  features.frame_length: {{choice: [512, 1024]}}
  features.fft_size: {{choice: [512, 1024]}}
""")
    search = S.load_search(path, "s.yaml")
    trials = S.trial_list(search)
    assert len(trials) == 4  # the whole space: the spec's (512, 512) and three draws
    records, jobs = tune.plan(search, trials, tmp_path / "out", tmp_path / "cache", 1)
    invalid = [r for r in records if r["status"] == "invalid"]
    assert [r["params"] for r in invalid] == [{"features.frame_length": 1024,
                                               "features.fft_size": 512}]
    assert "frame_length (1024) must not exceed fft_size (512)" in invalid[0]["reason"]
    assert len(jobs) == 3


@pytest.mark.parametrize("name", ["demo", "fire_alarm", "keywords"])
def test_the_examples_searches(name):
    """Each example's search file validates, is found from its spec, and lists its trials."""
    path = tune.search_file_for(REPO / "projects" / f"{name}.yaml")
    assert path == REPO / "projects" / "search" / f"{name}.yaml"
    search = S.load_search(path)
    assert search.name == name and search.project.path == REPO / "projects" / f"{name}.yaml"
    trials = S.trial_list(search)
    assert len(trials) == search.file.trials + 1 and trials[0]["params"] == S.baseline_params(search)


def test_trials_are_seeded_and_distinct(tmp_path):
    text = f"""spec: {FIRE}
trials: 6
seed: {{seed}}
space:
  features.mel_bands: {{{{choice: [24, 32, 40]}}}}
  model.first_stride: {{{{int: [2, 4], step: 2}}}}
  training.learning_rate: {{{{loguniform: [0.0005, 0.005]}}}}
  augmentation.pitch.probability: {{{{uniform: [0.4, 1.0], step: 0.1}}}}
"""
    one = S.load_search(write(tmp_path, text.format(seed=1), "a.search.yaml"))
    again = S.load_search(write(tmp_path, text.format(seed=1), "b.search.yaml"))
    other = S.load_search(write(tmp_path, text.format(seed=2), "c.search.yaml"))
    trials = S.trial_list(one)
    assert trials == S.trial_list(again)
    assert trials != S.trial_list(other)
    assert [t["id"] for t in trials] == list(range(7))
    assert trials[0]["params"] == {"features.mel_bands": 32, "model.first_stride": 4,
                                   "training.learning_rate": 0.001,
                                   "augmentation.pitch.probability": 0.8}
    assert len({json.dumps(t["params"]) for t in trials}) == 7
    for t in trials[1:]:
        p = t["params"]
        assert p["features.mel_bands"] in (24, 32, 40) and p["model.first_stride"] in (2, 4)
        assert 0.0005 <= p["training.learning_rate"] <= 0.005
        assert round(p["augmentation.pitch.probability"] * 10) == p[
            "augmentation.pitch.probability"] * 10
    small = S.load_search(write(tmp_path, f"""spec: {FIRE}
trials: 10
space:
  model.first_stride: {{choice: [2, 4]}}
""", "d.search.yaml"))
    assert [t["params"] for t in S.trial_list(small)] == [{"model.first_stride": 4},
                                                          {"model.first_stride": 2}]


def test_trial_spec_data(tmp_path):
    search = S.load_search(write(tmp_path, f"""spec: {FIRE}
targets: [pico, teensy]
budget:
  evaluation.streaming.minutes: 10
space:
  features.mel_bands: {{choice: [24, 40]}}
"""))
    data = S.trial_spec_data(search, {"features.mel_bands": 40})
    assert data["features"]["mel_bands"] == 40
    assert data["evaluation"]["streaming"] == {"minutes": 10}
    assert [t["name"] for t in data["targets"]] == ["pico", "teensy"]
    assert Path(data["dataset"]["root"]).is_absolute()
    assert Path(data["dataset"]["root"]) == (FIRE.parent / "../../shared/data/fire_alarm").resolve()
    spec_file = tmp_path / "trial" / "fire_alarm.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(yaml.safe_dump(data, sort_keys=False))
    project = load_spec(spec_file)
    assert project.spec.name == "fire_alarm"  # artifacts keep their names: the cache matches
    assert project.resolve(project.spec.dataset.root) == Path(data["dataset"]["root"])
    assert S.changed_params(search, {"features.mel_bands": 32}) == {}


# ------------------------------------------------------------------ pruning

def _trial_project(tmp_path: Path, base: Path, changes: dict):
    data, _ = __import__("generator.yamlpos", fromlist=["load"]).load(base)
    for key, value in changes.items():
        S.set_value(data, S.field_path(key), value)
    path = tmp_path / f"trial{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path)


def test_pruning_before_training(tmp_path):
    assert tune.precheck(_trial_project(tmp_path, DEMO, {})) == []
    # demo's 92,672 MACs at filters [8, 16]; [12, 24] does not fit the Pico's 32 ms hop
    wide = tune.precheck(_trial_project(tmp_path, DEMO, {"model.filters": [12, 24]}))
    assert len(wide) == 1
    assert wide[0].startswith("target 'pico': a hop of 32000 us is shorter than the estimated ")
    assert wide[0].endswith("raise hop_frames to 2 or make the model smaller")
    # arena: auto, a model whose largest layer alone (992 int8 inputs, 31 x 32 x 256 outputs),
    # + the 512-byte margin, overflows
    # the Pico's RAM: the estimate's lower bound prunes it before training
    huge = tune.precheck(_trial_project(tmp_path, DEMO, {"model.filters": [256],
                                                         "model.first_stride": 1}))
    assert any(m.startswith("target 'pico': an arena of 255456 bytes plus about") for m in huge)
    # a numeric arena: the spec's own check against its region
    fixed = tune.precheck(_trial_project(tmp_path, DEMO, {"arena.size": 250000}))
    assert len(fixed) == 1
    assert fixed[0].startswith("target 'pico': an arena of 250000 bytes plus about ")
    assert fixed[0].endswith("exceeds Raspberry Pi Pico + PDM microphone's RAM (262144 bytes); "
                             "make the model smaller")

    # flash: weights and biases alone (2.4 MB of int8 3x3 kernels) leave no room for code
    heavy = tune.precheck(_trial_project(tmp_path, DEMO, {"model.filters": [16, 512, 512]}))
    assert any(m.startswith("the model needs at least 2,441,432 bytes, more than half of the "
                            "2,097,152 bytes of flash on Raspberry Pi Pico")
               for m in heavy), heavy


def test_pruned_trials_cost_nothing(tmp_path):
    search = S.load_search(write(tmp_path, f"""spec: {DEMO}
trials: 3
space:
  model.filters: {{choice: [[8, 16], [12, 24], [16, 32]]}}
"""))
    records, jobs = tune.plan(search, S.trial_list(search), tmp_path / "out", tmp_path / "c", 1)
    pruned = [r for r in records if r["status"] == "pruned"]
    assert sorted(r["params"]["model.filters"] for r in pruned) == [[12, 24], [16, 32]]
    assert all(r["seconds"] < 1 and r["reason"].startswith("target 'pico'") for r in pruned)
    assert [j["id"] for j in jobs] == [0]


# ------------------------------------------------------------------ the front

def _record(i, objective, loop, arena, model, status="ok"):
    return {"id": i, "status": status, "objective": objective, "arena_bytes": arena,
            "model_bytes": model, "macs": 1, "params": {}, "changes": {},
            "targets": {"pico": {"loop_ms": loop, "hop_ms": 32}}}


def test_pareto_and_choice():
    records = [_record(0, 0.90, 10, 4000, 5000), _record(1, 0.95, 20, 4000, 5000),
               _record(2, 0.90, 12, 4000, 5000),  # beaten by 0
               _record(3, 0.95, 20, 3000, 5000),  # beats 1
               _record(4, 0.99, 30, 9000, 9000), _record(5, 1.0, 1, 1, 1, status="pruned")]
    front = tune.pareto(records, ["pico"])
    assert [t["id"] for t in front] == [0, 3, 4]
    assert tune.choose(front, ["pico"])["id"] == 4
    tie = [_record(7, 0.99, 30, 9000, 9000), _record(8, 0.99, 25, 9000, 9000)]
    assert tune.choose(tie, ["pico"])["id"] == 8
    # a longer hop (detection.hop_frames searched) is a cost: it answers later
    slow = _record(9, 0.99, 20, 9000, 9000)
    slow["targets"]["pico"]["hop_ms"] = 64
    assert [t["id"] for t in tune.pareto(tie + [slow], ["pico"])] == [8, 9]
    assert tune.choose(tie + [slow], ["pico"])["id"] == 8


def test_features_origin():
    assert tune.features_origin("Retrieved `/x/b/demo/features/features.npz' from cache\n",
                                "demo") == "cache"
    assert tune.features_origin("[demo] index  1 s\n[demo] features  2 s\n", "demo") == "computed"
    assert tune.features_origin("[demo] model  1 s\n", "demo") == "kept"


# ------------------------------------------------------------------ the overlay

def _fire_search(tmp_path):
    return S.load_search(write(tmp_path, f"""spec: {FIRE}
space:
  features.mel_bands: {{choice: [32, 40]}}
  augmentation.pitch.probability: {{choice: [0.5, 0.8]}}
  augmentation.background.classes: {{choice: [[background]]}}
  training.learning_rate: {{choice: [0.001, 0.002]}}
  model.filters: {{choice: [[8, 12], [8, 16]]}}
  arena.margin: {{choice: [512, 256]}}
"""))


CHANGES = {"features.mel_bands": 40, "augmentation.pitch.probability": 0.5,
           "augmentation.background.classes": ["background"], "training.learning_rate": 0.002,
           "model.filters": [8, 16], "arena.margin": 256}


def _overlay(tmp_path, search, changes=CHANGES):
    params = {**S.baseline_params(search), **changes}
    trial = {**_record(7, 0.99, 3.9, 4176, 5184), "params": params,
             "changes": S.changed_params(search, params)}
    run = {"name": "fire_alarm", "search": "projects/search/fire_alarm.yaml",
           "spec": "projects/fire_alarm.yaml", "objective": "crossval_accuracy",
           "budget": {"evaluation.streaming.minutes": 10}, "targets": ["pico"],
           "trials": [{**_record(0, 0.984, 3.9, 4176, 5184)}, trial]}
    path = tmp_path / "chosen.overlay.yaml"
    path.write_text(tune.overlay_text(search, run, trial, "chosen.overlay.yaml"))
    return path


def test_overlay_lists_only_the_changes(tmp_path):
    search = _fire_search(tmp_path)
    path = _overlay(tmp_path, search, {**CHANGES, "arena.margin": 512})  # 512: the default
    text = path.read_text()
    data = yaml.safe_load(text)
    assert data == {"spec": "fire_alarm.yaml", "trial": 7, "changes": {
        k: v for k, v in CHANGES.items() if k != "arena.margin"}}
    assert "  features.mel_bands: 40  # was 32\n" in text
    assert "crossval_accuracy 99.0% (the spec itself, trial 0: 98.4%)" in text
    assert "budget overrides this overlay does not carry: evaluation.streaming.minutes: 10" in text


def test_apply_keeps_the_comments(tmp_path):
    search = _fire_search(tmp_path)
    overlay = _overlay(tmp_path, search)
    spec = tmp_path / "fire_alarm.yaml"
    shutil.copy(FIRE, spec)
    before = spec.read_text()
    diff = tune.apply_overlay(overlay, spec, dry_run=True)
    assert spec.read_text() == before  # a dry run writes nothing
    assert tune.apply_overlay(overlay, spec) == diff
    after = spec.read_text()
    comments = [ln for ln in before.splitlines() if ln.lstrip().startswith("#")]
    assert all(c in after.splitlines() for c in comments)
    got = load_spec(spec).spec
    assert got.features.mel_bands == 40
    assert got.augmentation.pitch.probability == 0.5
    assert got.augmentation.pitch.semitones.min == -7  # its flow mapping's other keys kept
    assert got.augmentation.background.classes == ["background"]
    assert got.training.learning_rate == 0.002 and got.training.epochs == 60
    assert got.model.filters == [8, 16] and got.arena.margin == 256
    removed = [ln for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    assert removed == ["-  mel_bands: 32",
                       "-  pitch: {probability: 0.8, semitones: {min: -7, max: 7}}",
                       "-  background: {probability: 0.7, snr_db: {min: -5, max: 20}}",
                       "-  filters: [8, 12]"]
    assert "+  background: {probability: 0.7, snr_db: {min: -5, max: 20}, classes: " \
           "[background]}" in diff
    assert "+  learning_rate: 0.002" in diff and "+arena: {margin: 256}" in diff
    assert tune.apply_overlay(overlay, spec) == ""  # applied twice: nothing to change


def test_apply_refuses_what_is_not_a_field(tmp_path):
    overlay = write(tmp_path, "spec: fire_alarm.yaml\ntrial: 1\nchanges:\n"
                              "  features.mel_band: 40\n", "o.yaml")
    with pytest.raises(SpecError) as exc:
        tune.apply_overlay(overlay, FIRE)
    assert [p.message for p in exc.value.problems] == [
        "features has no key 'mel_band' (did you mean 'mel_bands'?)"]
    assert exc.value.problems[0].line == 4
    bad = write(tmp_path, "spec: fire_alarm.yaml\ntrial: 1\nchanges:\n  features.mel_bands: 400\n",
                "p.yaml")
    spec = tmp_path / "fire_alarm.yaml"
    shutil.copy(FIRE, spec)
    with pytest.raises(SpecError):
        tune.apply_overlay(bad, spec)
    assert spec.read_text() == FIRE.read_text()


def test_without_ray_the_command_says_how_to_install(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, f"spec: {DEMO}\nspace:\n  features.mel_bands: {{choice: [24]}}\n")
    monkeypatch.setattr(tune, "_has_ray", lambda: False)
    assert tune.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'micforge[tune]'" in err and "--executor local" in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ a real search

DEMO_SEARCH = f"""spec: {DEMO}
trials: 1
seed: 1
objective: validation_accuracy
budget:
  training.epochs: 5
  evaluation.streaming.minutes: 0.5
space:
  training.learning_rate: {{choice: [0.002, 0.004]}}
"""


@pytest.fixture(scope="module")
def demo_search(tmp_path_factory):
    """Two trials of the demo (the spec and one learning rate), one at a time, so the second
    finds the first one's features in the shared cache."""
    root = tmp_path_factory.mktemp("tune")
    path = root / "demo.search.yaml"
    path.write_text(DEMO_SEARCH)
    out = root / "local"
    status = tune.main([str(path), "--executor", "local", "--out", str(out),
                        "--cpus-per-trial", str(os.cpu_count())])
    return root, path, out, status


def _results(out: Path) -> dict:
    run = json.loads((out / "trials.json").read_text())
    keep = ("id", "params", "status", "objective", "objectives", "macs", "model_bytes",
            "arena_bytes", "targets")
    return {t["id"]: {k: t.get(k) for k in keep} for t in run["trials"]}


@pytest.mark.slow
def test_two_trial_search_on_the_demo(demo_search):
    root, path, out, status = demo_search
    assert status == 0
    run = json.loads((out / "trials.json").read_text())
    trials = run["trials"]
    assert [t["status"] for t in trials] == ["ok", "ok"]
    assert trials[0]["params"] == {"training.learning_rate": 0.003}
    assert trials[1]["params"]["training.learning_rate"] in (0.002, 0.004)
    # the second trial's features are the first one's, fetched from the shared cache
    assert [t["features"] for t in trials] == ["computed", "cache"]
    second = (out / trials[1]["folder"] / "build.log").read_text()
    assert "/features/features.npz' from cache" in second and "[demo] features" not in second
    assert "[demo] model" in second  # its own training
    for t in trials:
        assert 0 <= t["objective"] <= 1
        assert t["objective"] == t["objectives"]["validation_accuracy"]
        assert set(t["targets"]) == {"pico", "teensy"}
        assert 0 < t["targets"]["pico"]["loop_ms"] < t["targets"]["pico"]["hop_ms"] == 32
        assert t["arena_bytes"] > 0 and t["model_bytes"] > 0
    front = (out / "front.md").read_text()
    assert "## Pareto front" in front and "## All trials" in front
    assert run["chosen"] in run["front"]
    overlay = out / "chosen.overlay.yaml"
    data = yaml.safe_load(overlay.read_text())
    assert data["trial"] == run["chosen"]
    assert set(data["changes"]) <= {"training.learning_rate"}
    spec = root / "demo.yaml"
    shutil.copy(DEMO, spec)
    assert tune.main(["--apply", str(overlay), str(spec), "--dry-run"]) == 0
    assert spec.read_text() == DEMO.read_text()
    if _has_matplotlib():
        assert (out / "front.svg").read_text().startswith("<?xml")
        assert "the front in red](front.svg)" in front  # the table and its plot


def _has_matplotlib() -> bool:
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


@pytest.mark.slow
def test_ray_runs_the_same_trials(demo_search):
    """The same search on Ray (this machine): the same trial list and the same results.
    Its trials fetch the local run's artifacts from the same SCons cache."""
    pytest.importorskip("ray")
    root, path, out, status = demo_search
    assert status == 0
    ray_out = root / "ray"
    assert tune.main([str(path), "--out", str(ray_out), "--cache-dir",
                      str(out / "cache" / "scons")]) == 0
    assert _results(ray_out) == _results(out)
