"""Validator tests: the examples pass, values in and out of range behave, derived facts hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from generator import cli
from generator.boards import all_boards, load_board
from generator.checks import check_project
from generator.features import design
from generator.errors import SpecError
from generator.spec import c_identifier, load_spec
from generator.yamlpos import loads

EXAMPLES = sorted((REPO / "projects").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_validate(path):
    project = load_spec(path)
    check_project(project)
    assert project.spec.targets


def test_fire_alarm_derived_shape():
    spec = load_spec(REPO / "projects" / "fire_alarm.yaml").spec
    # 1 s at 16 kHz, 512-sample frames every 512 samples: 31 frames of 32 mel bands.
    fe = design(spec)
    assert (fe.num_frames, fe.num_bins) == (31, 32)
    assert fe.hop_samples == 512
    assert spec.detect_classes == ["alarm"]


def test_keywords_yes_no_stay_strings():
    spec = load_spec(REPO / "projects" / "keywords.yaml").spec
    assert spec.classes[:2] == ["yes", "no"]
    assert spec.detect_classes == ["yes", "no", "up", "down"]


def test_c_identifiers():
    assert c_identifier("_silence_") == "SILENCE"
    assert c_identifier("fire alarm") == "FIRE_ALARM"


def test_positions_track_nested_values():
    _, pos = loads("a:\n  b: [1, 2]\n  c:\n    d: x\n", "f.yaml")
    assert pos.of_value(("a", "b", 1)) == (2, 10)
    assert pos.of_value(("a", "c", "d")) == (4, 8)
    assert pos.of_key(("a", "c")) == (3, 3)


def _spec_text(extra: str = "", target: str = "{name: pico, board: rpi_pico}") -> str:
    return ("name: t\nclasses: [a, b]\ndataset: {layout: synthetic}\n"
            f"model: {{architecture: compact_cnn}}\n{extra}targets:\n  - {target}\n")


@pytest.mark.parametrize("extra,ok", [
    ("audio: {sample_rate: 16000}\n", True),
    ("audio: {sample_rate: 3999}\n", False),
    ("features: {frame_length: 256, frame_step: 128, fft_size: 256}\ndetection: {hop_frames: 10}\n", True),
    ("features: {frame_step: 600}\n", False),
    ("detection: {threshold: 0.6, hysteresis: 0.59}\n", True),
    ("detection: {threshold: 1.0}\n", False),
    ("arena: {size: 65536, margin: 1024}\n", True),
    ("arena: {margin: 2048}\n", False),
    ("dataset_extra: 1\n", False),
])
def test_values(tmp_path, extra, ok):
    path = tmp_path / "s.yaml"
    path.write_text(_spec_text(extra))
    if ok:
        check_project(load_spec(path))
    else:
        with pytest.raises(SpecError):
            check_project(load_spec(path))


def test_all_problems_reported_together(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(_spec_text("audio: {sample_rate: 1}\nfeatures: {fft_size: 3}\n"))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert len(exc.value.problems) == 2


def test_boards_load_and_are_consistent():
    boards = all_boards()
    assert {b.id for b in boards} == {"rpi_pico", "sparkfun_micromod_rp2040", "mimxrt1060_evkb", "teensy41"}
    for b in boards:
        assert b.region(b.arena_region).kind in ("ram", "dtcm")
        flash = b.regions("flash")
        assert len(flash) == 1 and flash[0].length == b.flash_size
    rt = load_board("teensy41")
    assert rt.flexram.banks * rt.flexram.bank_size == 512 * 1024


def test_committed_schema_is_current():
    committed = cli.SCHEMA_PATH.read_text()
    assert committed == cli.schema_text(), "schema is stale: run `micforge schema`"
    schema = json.loads(committed)
    assert "sample_rate" in json.dumps(schema)
    # every field is documented
    for name, definition in schema.get("$defs", {}).items():
        for field, body in definition.get("properties", {}).items():
            assert body.get("description"), f"{name}.{field} has no description"


def test_merge_keys_share_settings_between_targets(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(_spec_text(target="&pico {name: pico, board: rpi_pico, led_pin: 15}\n"
                                      "  - {<<: *pico, name: pico_debug, build_type: Debug}"))
    targets = load_spec(path).spec.targets
    assert [(t.name, t.led_pin, t.build_type) for t in targets] == [
        ("pico", 15, "Release"), ("pico_debug", 15, "Debug")]


def test_a_spec_path_that_is_a_folder_is_one_line(tmp_path):
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path, "specs")
    assert str(exc.value) == "specs: is a folder; give the YAML file itself"
    for command in (["validate"], ["build"], ["verify"]):
        proc = subprocess.run([sys.executable, "-m", "generator.cli", *command, str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == f"{tmp_path}: is a folder; give the YAML file itself\n"


def test_scons_given_a_folder_as_spec_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "SCons", "-Q", f"spec={tmp_path}",
                           f"build_dir={tmp_path / 'build'}"], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"{tmp_path}: is a folder; give the YAML file itself\n"


def test_names_that_make_file_names_are_capped(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(_spec_text(target="{name: " + "v" * 65 + ", board: rpi_pico}")
                    .replace("name: t\n", "name: " + "n" * 64 + "\n"))
    with pytest.raises(SpecError) as exc:
        load_spec(path, "s.yaml")
    assert str(exc.value) == ("s.yaml:6:12: name is 65 characters long; at most 64 (it names its "
                              "firmware folder)")


def _transfer_spec(folder, name: str, base: str) -> None:
    (folder / f"{name}.yaml").write_text(_spec_text(f"transfer: {{base: {base}}}\n")
                                         .replace("name: t\n", f"name: {name}\n"))


def test_transfer_cycle_through_other_specs_is_found_when_loading(tmp_path):
    (tmp_path / "more").mkdir()
    _transfer_spec(tmp_path, "a", "more/b.yaml")
    _transfer_spec(tmp_path / "more", "b", "../c.yml")
    (tmp_path / "c.yml").write_text(_spec_text("transfer: {base: a.yaml}\n"))
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path / "a.yaml", "a.yaml")
    assert str(exc.value) == ("a.yaml:5:18: transfer.base leads back to this spec (a.yaml -> "
                              "more/b.yaml -> c.yml -> a.yaml); a model cannot start from itself: "
                              "one of these specs must name another base")


def test_transfer_chain_without_this_spec_in_a_cycle_is_not_its_error(tmp_path):
    _transfer_spec(tmp_path, "a", "b.yaml")
    _transfer_spec(tmp_path, "b", "c.yaml")
    _transfer_spec(tmp_path, "c", "b.yaml")  # b and c report their own cycle
    _transfer_spec(tmp_path, "d", "missing.yaml")  # reported when its model is needed
    _transfer_spec(tmp_path, "e", "a.yaml")
    for name in "ade":
        assert load_spec(tmp_path / f"{name}.yaml").spec.transfer
    with pytest.raises(SpecError, match="leads back to this spec"):
        load_spec(tmp_path / "b.yaml")


def test_ctrl_c_in_a_command_is_one_line_and_status_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_boards", interrupted)
    assert cli.main(["boards"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_transfer_base_that_is_the_specs_own_model_is_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text(_spec_text("transfer: {base: build/t/model/model.keras}\n"))
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "build", "-n", "--build-dir",
                           str(tmp_path / "build"), str(tmp_path / "s.yaml")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"{tmp_path / 's.yaml'}:5:18: transfer.base build/t/model/model.keras "
                           f"is the model this spec builds; a model cannot start from itself\n")
