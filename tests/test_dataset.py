"""The dataset index: layouts, bad files, leak-free splits, errors at spec lines, loading."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generator import audio, dataset
from generator.errors import SpecError
from generator.spec import load_spec

RATE = 16000
REPO = Path(__file__).resolve().parent.parent


def write_wav(path: Path, x, rate=RATE, subtype="PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype, format="WAV")
    return path


def noise(seconds=1.0, seed=0, rate=RATE, level=0.1):
    return level * np.random.default_rng(seed).uniform(-1, 1, int(round(seconds * rate)))


def spec_file(tmp_path: Path, dataset_yaml: str, classes: str = "[a, b]") -> Path:
    """A spec whose line 2 is `classes:` and whose dataset section starts on line 3."""
    text = (f"name: t\nclasses: {classes}\ndataset:\n{dataset_yaml}"
            "model: {architecture: compact_cnn}\ntargets:\n  - {name: pico, board: rpi_pico}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def folder_set(tmp_path: Path, per_class: int = 6) -> Path:
    for cls in ("a", "b"):
        for i in range(per_class):
            write_wav(tmp_path / "data" / cls / f"{cls}{i}.wav", noise(seed=100 * ord(cls) + i))
    return tmp_path / "data"


def test_bad_files_are_handled_or_reported(tmp_path):
    root = folder_set(tmp_path)
    a = root / "a"
    write_wav(a / "stereo.wav", np.stack([noise(seed=1), noise(seed=2)], axis=1))
    write_wav(a / "eight_bit.wav", noise(seed=3), subtype="PCM_U8")
    write_wav(a / "cd_rate.wav", noise(seed=4, rate=44100), rate=44100)
    write_wav(a / "long.wav", noise(2.6, seed=5))  # 3 windows, the last zero-padded
    write_wav(a / "short.wav", noise(0.2, seed=6))
    write_wav(a / "quiet.wav", noise(seed=7, level=1e-4))
    (a / "empty.wav").write_bytes(b"")
    (a / "notes.wav").write_text("a text file renamed to .wav\n" * 20)
    (a / "corrupt.wav").write_bytes((a / "a0.wav").read_bytes()[:30])
    (a / "readme.txt").write_text("not audio")
    (a / ".DS_Store").write_bytes(b"\0\1")
    (root / "extra").mkdir()
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0, test: 0}\n"))
    index = dataset.build_index(project)
    reasons = {s["file"]: s["reason"] for s in index["skipped"]}
    assert reasons == {"a/short.wav": "too short", "a/quiet.wav": "silent window",
                       "a/empty.wav": "empty file", "a/notes.wav": "not an audio file",
                       "a/corrupt.wav": "unreadable audio", "a/readme.txt": "not an audio file",
                       "extra/": "folder is not a class"}
    windows = defaultdict(list)
    for c in index["clips"]:
        windows[c["file"]].append(c["window"])
    assert windows["a/long.wav"] == [0, 1, 2]
    assert {"a/stereo.wav", "a/eight_bit.wav", "a/cd_rate.wav"} <= set(windows)
    assert index["summary"]["converted"] == {"converted from PCM_U8": 1, "mixed to mono": 1,
                                             "resampled from 44100 Hz": 1}
    text = dataset.summarize(index)
    assert "1 too short" in text and "1 resampled from 44100 Hz" in text
    x, y = dataset.load_split(project, index, "train")
    assert x.shape == (len(index["clips"]), RATE) and x.dtype == np.int16 and y.dtype == np.int64
    assert sorted(set(y.tolist())) == [0, 1]


def test_empty_class_is_an_error_at_its_spec_line(tmp_path):
    root = folder_set(tmp_path)
    for p in (root / "b").iterdir():
        p.write_bytes(b"")
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0, test: 0}\n"),
                        "spec.yaml")
    with pytest.raises(SpecError) as info:
        dataset.build_index(project)
    assert str(info.value) == ("spec.yaml:2:14: class 'b' has no usable clips (6 empty file); "
                               "add recordings or remove the class")


def test_class_without_folder_and_missing_root_point_at_the_spec(tmp_path):
    folder_set(tmp_path)
    project = load_spec(spec_file(tmp_path, "  root: data\n", "[a, b, c]"), "spec.yaml")
    with pytest.raises(SpecError, match=r"^spec.yaml:2:17: class 'c' has no folder in dataset "
                                        r"root data \(there: a, b\)$"):
        dataset.build_index(project)
    project = load_spec(spec_file(tmp_path, "  root: nowhere\n"), "spec.yaml")
    with pytest.raises(SpecError, match=r"^spec.yaml:4:9: dataset root nowhere is not a folder"):
        dataset.build_index(project)


def test_class_missing_from_a_split_is_an_error_at_the_split(tmp_path):
    root = folder_set(tmp_path, per_class=30)
    for p in sorted((root / "b").iterdir())[1:]:
        p.unlink()
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0.3, test: 0.3}\n"),
                        "spec.yaml")
    with pytest.raises(SpecError) as info:
        dataset.build_index(project)
    lines = str(info.value).splitlines()
    assert lines and all(re.match(r"spec.yaml:5:10: class 'b' has no clips in the "
                                  r"(train|validation|test) split \(1 clips in 1 groups\)", l)
                         for l in lines)
    assert len(lines) == 2  # the one clip of 'b' is in one split, missing from the other two


def test_windowed_recording_groups_by_segment_and_never_overlaps_across_splits(tmp_path):
    # One 30 s recording cut into 1 s windows every 0.5 s, as in fire_alarm/alarm.
    rec = noise(30.5, seed=9)
    for k in range(60):
        t = k * 0.5
        write_wav(tmp_path / "data" / "a" / f"siren_0001_t{t:05.1f}.wav",
                  rec[int(t * RATE):int(t * RATE) + RATE])
        write_wav(tmp_path / "data" / "b" / f"b{k}.wav", noise(seed=100 + k))
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0.25, test: 0.25, "
                                            "segment_seconds: 3}\n  seed: 2\n"))
    index = dataset.build_index(project)
    alarm = [c for c in index["clips"] if c["label"] == "a"]
    starts = {c["file"]: float(re.search(r"_t([\d.]+)\.wav", c["file"]).group(1)) for c in alarm}
    assert {c["group"] for c in alarm} == {f"siren_0001@{s}" for s in range(10)}
    assert all(c["group"] == f"siren_0001@{int(starts[c['file']] // 3)}" for c in alarm)
    assert len({c["split"] for c in alarm}) == 3
    for c in alarm:
        for d in alarm:
            if c["split"] != d["split"]:
                assert abs(starts[c["file"]] - starts[d["file"]]) >= 1.0, (c, d)
    guarded = [s for s in index["skipped"] if s["reason"] == "overlaps another split"]
    assert guarded and len(alarm) + len(guarded) == 60


def test_group_key_rule():
    assert dataset.group_key("yes/022cd682_nohash_0.wav", 0, 3) == "speaker:022cd682"
    assert dataset.group_key("_unknown_/backward_bfd26d6b_nohash_2.wav", 0, 3) == "speaker:bfd26d6b"
    assert dataset.group_key("alarm/alarm_1151_t003.5.wav", 3.5, 3) == "alarm_1151@1"
    assert dataset.group_key("bg/esc10_rain_1-17367-A.wav", 0, 3) == "esc10_rain_1-17367@0"
    assert dataset.group_key("bg/esc10_rain_1-17367-B.wav", 0, 3) == "esc10_rain_1-17367@0"
    assert dataset.group_key("_silence_/silence_1024.wav", 0, 3) == "silence_1024@0"
    assert dataset.group_key("long.wav", 7.0, 3) == "long@2"


def test_speech_commands_layout_lists_unknown_and_background_noise(tmp_path):
    root = tmp_path / "data"
    speakers = [f"{i:08x}" for i in range(0x1a2b3c00, 0x1a2b3c0c)]
    for w, word in enumerate(("yes", "no", "cat", "dog")):
        for i, spk in enumerate(speakers):  # distinct content: a copy under two words conflicts
            write_wav(root / word / f"{spk}_nohash_0.wav", noise(seed=100 * w + i))
    write_wav(root / "_background_noise_" / "white_noise.wav", noise(30.0, seed=1))
    (root / "validation_list.txt").write_text("".join(f"{w}/{speakers[0]}_nohash_0.wav\n"
                                                      for w in ("yes", "no", "cat")))
    (root / "testing_list.txt").write_text("".join(f"{w}/{speakers[1]}_nohash_0.wav\n"
                                                   for w in ("yes", "no", "dog")))
    project = load_spec(spec_file(tmp_path, "  root: data\n  layout: speech_commands\n"
                                            "  split: {by: lists, validation: 0.3, test: 0.3}\n  seed: 4\n",
                                  "[yes, no, _silence_, _unknown_]"))
    index = dataset.build_index(project)  # seed 4 puts some of the 10 noise segments in each split
    by_file = {(c["file"], c["window"]): c for c in index["clips"]}
    assert by_file[(f"yes/{speakers[0]}_nohash_0.wav", 0)]["split"] == "validation"
    assert by_file[(f"dog/{speakers[1]}_nohash_0.wav", 0)]["split"] == "test"
    assert by_file[(f"dog/{speakers[1]}_nohash_0.wav", 0)]["label"] == "_unknown_"
    assert by_file[(f"cat/{speakers[5]}_nohash_0.wav", 0)]["split"] == "train"
    noise_windows = [c for c in index["clips"] if c["label"] == "_silence_"]
    assert [c["window"] for c in noise_windows] == list(range(30))


def test_esc50_layout_splits_by_fold(tmp_path):
    root = tmp_path / "data"
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, 6):
        for cat in ("rain", "dog", "rooster"):
            name = f"{fold}-{1000 + 10 * fold + len(cat)}-A.wav"
            write_wav(root / "audio" / name, noise(5.0, seed=100 * fold + len(cat)))
            rows.append(f"{name},{fold},0,{cat},False,{name[2:6]},A")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    project = load_spec(spec_file(tmp_path, "  root: data\n  layout: esc50\n  split: {by: fold, "
                                            "validation_folds: [4], test_folds: [5]}\n",
                                  "[rain, _unknown_]"))
    index = dataset.build_index(project)
    fold_of = {c["file"]: int(c["file"].split("/")[1][0]) for c in index["clips"]}
    assert all(c["split"] == {4: "validation", 5: "test"}.get(fold_of[c["file"]], "train")
               for c in index["clips"])
    assert {c["window"] for c in index["clips"]} == set(range(5))
    assert index["summary"]["clips"] == {"rain": {"train": 15, "validation": 5, "test": 5},
                                         "_unknown_": {"train": 30, "validation": 10, "test": 10}}


def test_stale_index_is_refused(tmp_path):
    root = folder_set(tmp_path)
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0, test: 0}\n"))
    index = dataset.build_index(project)
    write_wav(root / "a" / "a0.wav", noise(seed=999))
    with pytest.raises(SpecError, match="a/a0.wav changed since the dataset index was built"):
        dataset.load_split(project, index, "train")


def test_cap_keeps_a_deterministic_subset(tmp_path):
    folder_set(tmp_path, per_class=10)
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0, test: 0}\n"
                                            "  max_clips_per_class: 4\n"))
    first, second = dataset.build_index(project), dataset.build_index(project)
    assert first == second and first["summary"]["clips"]["a"]["train"] == 4


def test_synthetic_demo_is_deterministic_and_labelled():
    project = load_spec(REPO / "projects" / "demo.yaml")
    index = dataset.build_index(project)
    assert index == dataset.build_index(project)
    assert index["synthetic"] and dataset.summarize(index).startswith("SYNTHETIC")
    assert index["summary"]["clips"]["beep"] == {"train": 48, "validation": 6, "test": 6}
    x, y = dataset.load_split(project, index, "test")
    again, _ = dataset.load_split(project, index, "test")
    assert np.array_equal(x, again) and x.shape == (12, RATE)
    assert len({row.tobytes() for row in x}) == 12


# ------------------------------------------------------------- the shared data

def _speaker(file: str) -> str | None:
    m = re.search(r"([0-9a-f]{8})_nohash_", file)
    return m.group(1) if m else None


@pytest.mark.shared
def test_kws_speakers_never_in_two_splits_and_index_is_reproducible(shared_data):
    project = load_spec(REPO / "projects" / "keywords.yaml")
    start = time.perf_counter()
    index = dataset.build_index(project)
    seconds = time.perf_counter() - start
    assert len(index["clips"]) == 1250 and seconds < 10
    splits_of = defaultdict(set)
    for c in index["clips"]:
        if _speaker(c["file"]):
            splits_of[_speaker(c["file"])].add(c["split"])
    assert len(splits_of) > 100 and all(len(s) == 1 for s in splits_of.values())
    text = json.dumps(index, sort_keys=True)
    assert text == json.dumps(dataset.build_index(project), sort_keys=True)
    assert str(shared_data) not in text and '"/' not in text
    start = time.perf_counter()
    x, y = dataset.load_split(project, index, "train")
    assert time.perf_counter() - start < 5
    train = [c for c in index["clips"] if c["split"] == "train"]
    assert len(x) == len(train) == len(y)
    for row in (0, len(train) // 2, len(train) - 1):
        expected, _ = sf.read(shared_data / "kws" / train[row]["file"], dtype="int16")
        assert np.array_equal(x[row], expected)
        assert y[row] == project.spec.classes.index(train[row]["label"])


@pytest.mark.shared
def test_fire_alarm_windows_of_one_recording_never_overlap_across_splits(shared_data):
    project = load_spec(REPO / "projects" / "fire_alarm.yaml")
    index = dataset.build_index(project)
    alarm = [c for c in index["clips"] if c["label"] == "alarm"]
    assert {c["split"] for c in alarm} == {"train", "validation", "test"}
    timed = [(re.search(r"(alarm_\d+)_t(\d+\.\d)", c["file"]).groups(), c["split"]) for c in alarm]
    for (rec_a, t_a), split_a in timed:
        for (rec_b, t_b), split_b in timed:
            if rec_a == rec_b and split_a != split_b:
                assert abs(float(t_a) - float(t_b)) >= 1.0
    # ESC-10 takes A/B/C of one source clip stay together.
    esc = defaultdict(set)
    for c in index["clips"]:
        m = re.search(r"(esc10_.*_\d-\d+)-[A-Z]\.wav", c["file"])
        if m:
            esc[m.group(1)].add(c["split"])
    assert esc and all(len(s) == 1 for s in esc.values())


def test_split_needs_its_layout_and_speaker_ids(tmp_path):
    folder_set(tmp_path)
    with pytest.raises(SpecError, match=r"^spec.yaml:5:10: split by: fold needs layout: esc50"):
        load_spec(spec_file(tmp_path, "  root: data\n  split: {by: fold, validation_folds: [1], "
                                      "test_folds: [2]}\n"), "spec.yaml")
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {by: speaker, validation: 0, "
                                            "test: 0}\n"), "spec.yaml")
    with pytest.raises(SpecError, match=r"^spec.yaml:5:15: split by: speaker, but no file name "
                                        r"carries a speaker id"):
        dataset.build_index(project)


def _recordings(tmp_path: Path, n_rec: int = 6, windows: int = 8) -> Path:
    """n_rec recordings of class a cut into 1 s windows every 0.5 s, and loose b clips."""
    for r in range(n_rec):
        rec = noise(windows / 2 + 1, seed=300 + r)
        for k in range(windows):
            t = k * 0.5
            write_wav(tmp_path / "data" / "a" / f"siren_{r:04d}_t{t:05.1f}.wav",
                      rec[int(t * RATE):int(t * RATE) + RATE])
    for k in range(30):
        write_wav(tmp_path / "data" / "b" / f"b{k}.wav", noise(seed=500 + k))
    return tmp_path / "data"


def test_split_by_recording_never_puts_one_recording_in_two_splits(tmp_path):
    _recordings(tmp_path)
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {by: recording, "
                                            "validation: 0.25, test: 0.25}\n  seed: 3\n"))
    index = dataset.build_index(project)
    splits = defaultdict(set)
    for c in index["clips"]:
        splits[c["source"]].add(c["split"])
        assert c["group"] == c["source"]
    assert all(len(s) == 1 for s in splits.values())
    assert {c["split"] for c in index["clips"] if c["label"] == "a"} == set(dataset.SPLITS)
    assert not [s for s in index["skipped"] if s["reason"] == "overlaps another split"]
    unheard = index["summary"]["unheard_test_sources"]["a"]
    assert unheard["unheard_windows"] == unheard["test_windows"] > 0
    assert dataset.memory_warnings(index) == []


def test_a_test_split_of_heard_recordings_is_called_memory(tmp_path):
    _recordings(tmp_path, n_rec=2, windows=40)
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0.2, "
                                            "test: 0.2}\n  seed: 1\n"))
    index = dataset.build_index(project)
    warnings = dataset.memory_warnings(index)
    assert len(warnings) == 1 and warnings[0].startswith("class 'a': all ")
    assert "measures memory, not generalisation" in dataset.summarize(index)


def test_source_id_rule():
    assert dataset.source_id("yes/022cd682_nohash_0.wav") == "speaker:022cd682"
    assert dataset.source_id("alarm/alarm_1151_t003.5.wav") == "alarm_1151"
    assert dataset.source_id("bg/esc10_rain_1-17367-B.wav") == "esc10_rain_1-17367"
    assert dataset.group_key("alarm/alarm_1151_t003.5.wav", 3.5, None) == "alarm_1151"


# -------------------------------------------- builds under faults (issue 12, items 3, 7, 10)

def _splits_by_content(index: dict) -> dict[tuple[str, int], set[str]]:
    out = defaultdict(set)
    for c in index["clips"]:
        out[(c["sha256"], c["window"])].add(c["split"])
    return out


def test_identical_content_under_two_names_stays_in_one_split(tmp_path):
    root = folder_set(tmp_path, per_class=20)
    write_wav(root / "a" / "rec_0001.wav", noise(7.0, seed=77))  # 7 windows, 3 s segments
    copies = {f"a/copy_{i:02d}.wav": f"a/a{i}.wav" for i in range(12)}
    copies["a/backup/rec_0001.wav"] = "a/rec_0001.wav"
    copies["b/again_b3.wav"] = "b/b3.wav"
    for copy, original in copies.items():
        (root / copy).parent.mkdir(parents=True, exist_ok=True)
        (root / copy).write_bytes((root / original).read_bytes())
    spec = spec_file(tmp_path, "  root: data\n  split: {validation: 0.25, test: 0.25, "
                               "segment_seconds: 3}\n  seed: 5\n")
    index = dataset.build_index(load_spec(spec))
    # The reproduction: by name alone some copies hash to another split than their original.
    assert any(dataset._hash_split(5, dataset.group_key(c, 0, 3), 0.25, 0.25)
               != dataset._hash_split(5, dataset.group_key(o, 0, 3), 0.25, 0.25)
               for c, o in copies.items())
    assert all(len(s) == 1 for s in _splits_by_content(index).values())
    by_file = defaultdict(dict)
    for c in index["clips"]:
        by_file[c["file"]][c["window"]] = c
    for copy, original in copies.items():
        assert by_file[copy].keys() == by_file[original].keys()
        for k, c in by_file[copy].items():
            o = by_file[original][k]
            assert (c["split"], c["group"], c["source"]) == (o["split"], o["group"], o["source"])
    groups = defaultdict(set)
    for c in index["clips"]:
        groups[c["group"]].add(c["split"])
    assert all(len(s) == 1 for s in groups.values())
    assert index["summary"]["duplicates"] == sorted(sorted([c, o]) for c, o in copies.items())
    assert "duplicates: 28 files in 14 set(s) of identical content" in dataset.summarize(index)
    assert index == dataset.build_index(load_spec(spec))


def test_identical_content_under_two_labels_is_a_conflict_and_neither_is_kept(tmp_path):
    root = folder_set(tmp_path)
    (root / "b" / "mislabelled.wav").write_bytes((root / "a" / "a2.wav").read_bytes())
    index = dataset.build_index(load_spec(spec_file(tmp_path, "  root: data\n  split: "
                                                              "{validation: 0, test: 0}\n")))
    conflicts = {s["file"]: s["detail"] for s in index["skipped"]
                 if s["reason"] == "conflicting labels"}
    assert conflicts == {
        "a/a2.wav": "labelled a, but the same content is b/mislabelled.wav (b); none is used "
                    "until the labels agree",
        "b/mislabelled.wav": "labelled b, but the same content is a/a2.wav (a); none is used "
                             "until the labels agree"}
    assert not {"a/a2.wav", "b/mislabelled.wav"} & {c["file"] for c in index["clips"]}
    assert index["summary"]["duplicates"] == [["a/a2.wav", "b/mislabelled.wav"]]
    assert "skipped: 2 conflicting labels: a/a2.wav, b/mislabelled.wav" in dataset.summarize(index)


def test_a_copy_that_metadata_puts_in_another_split_is_dropped(tmp_path):
    root = tmp_path / "data"
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, 6):
        for cat in ("rain", "dog"):
            name = f"{fold}-{1000 + 10 * fold + len(cat)}-A.wav"
            write_wav(root / "audio" / name, noise(2.0, seed=100 * fold + len(cat)))
            rows.append(f"{name},{fold},0,{cat},False,{name[2:6]},A")
    (root / "audio" / "5-9999-A.wav").write_bytes((root / "audio" / "1-1014-A.wav").read_bytes())
    rows.append("5-9999-A.wav,5,0,rain,False,9999,A")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    index = dataset.build_index(load_spec(spec_file(
        tmp_path, "  root: data\n  layout: esc50\n  split: {by: fold, validation_folds: [4], "
                  "test_folds: [5]}\n", "[rain, _unknown_]")))
    assert [(s["file"], s["reason"]) for s in index["skipped"]] == [
        ("audio/5-9999-A.wav", "duplicate in another split")] * 2
    assert "audio/5-9999-A.wav" not in {c["file"] for c in index["clips"]}
    assert {c["split"] for c in index["clips"] if c["file"] == "audio/1-1014-A.wav"} == {"train"}


def test_broken_and_looping_symlinks_are_listed_as_bad_files(tmp_path):
    from generator.pipeline import dataset_listing

    root = folder_set(tmp_path)
    (root / "a" / "dead.wav").symlink_to("nowhere.wav")  # dangling
    (root / "a" / "loop").symlink_to(".")                # its own folder
    (root / "a" / "self.wav").symlink_to("self.wav")     # a link to itself
    (root / "stale").symlink_to(tmp_path / "gone")       # dangling, in the root
    write_wav(tmp_path / "elsewhere.wav", noise(seed=55))
    (root / "a" / "linked.wav").symlink_to(tmp_path / "elsewhere.wav")  # a good link: used
    listing = dataset_listing(root)  # read while the build graph is made: used to crash
    assert "a/dead.wav\tNo such file or directory\tnowhere.wav" in listing.splitlines()
    assert "a/self.wav\tToo many levels of symbolic links\tself.wav" in listing.splitlines()
    index = dataset.build_index(load_spec(spec_file(tmp_path, "  root: data\n  split: "
                                                              "{validation: 0, test: 0}\n")))
    assert {(s["file"], s["reason"], s["detail"]) for s in index["skipped"]} == {
        ("a/dead.wav", "broken symlink", "it points to 'nowhere.wav', which does not exist"),
        ("a/loop", "symlink loop", "it points to a folder that contains it"),
        ("a/self.wav", "symlink loop", "its chain of links comes back to itself"),
        ("stale", "broken symlink", "it points to an absolute path, which does not exist")}
    assert "a/linked.wav" in {c["file"] for c in index["clips"]}
    assert "skipped: 2 symlink loop: a/loop, a/self.wav" in dataset.summarize(index)
    write_wav(root / "a" / "nowhere.wav", noise(seed=56))  # repairing a link re-runs the index
    assert dataset_listing.__wrapped__(root) != listing


def test_indexing_a_long_recording_streams_and_loads_the_same_windows(tmp_path):
    import hashlib
    import tracemalloc

    root = folder_set(tmp_path, per_class=2)
    long = root / "a" / "long.wav"
    with sf.SoundFile(long, "w", 44100, 2, "PCM_16", format="WAV") as f:
        rng = np.random.default_rng(1)
        for _ in range(12):  # 2 minutes, 10 s at a time
            f.write(0.2 * rng.uniform(-1, 1, (441000, 2)))
    project = load_spec(spec_file(tmp_path, "  root: data\n  split: {validation: 0, test: 0}\n"))
    tracemalloc.start()
    try:
        index = dataset.build_index(project)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # decoding the whole file held 2 x 8 bytes per frame: 169 MB here
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MB"
    mine = [c for c in index["clips"] if c["file"] == "a/long.wav"]
    assert [c["window"] for c in mine] == list(range(120))
    assert {c["sha256"] for c in mine} == {hashlib.sha256(long.read_bytes()).hexdigest()}
    x, _ = dataset.load_split(project, index, "train")
    rows = [i for i, c in enumerate(c for c in index["clips"] if c["split"] == "train")
            if c["file"] == "a/long.wav"]
    _, expected = audio.windows(long.read_bytes(), RATE, RATE)
    assert np.array_equal(x[rows], np.stack(expected))
