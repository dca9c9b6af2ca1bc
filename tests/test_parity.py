"""The rendered C front end, built with host gcc and CMSIS-DSP from the sdist, equals the Python
reference bit for bit; a constant edited in the rendered C only is caught; the module compiles
for Cortex-M0+ and M7 with -Wall -Werror."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from generator import cmsis, hostc
from generator import features as F
from generator.spec import ProjectSpec, load_spec

from conftest import REPO

pytestmark = pytest.mark.slow  # the first run downloads and compiles CMSIS-DSP (about 30 s)


def _project(name: str = "fire_alarm", **features):
    project = load_spec(REPO / "projects" / f"{name}.yaml")
    data = project.spec.model_dump(mode="json")
    data["features"].update(features)
    return dataclasses.replace(project, spec=ProjectSpec.model_validate(data))


def _clips(fe: F.FrontEnd, n: int, seed: int = 1) -> np.ndarray:
    """Silence, full-scale square waves, and noisy tones over 90 dB of level."""
    rng = np.random.default_rng(seed)
    t = np.arange(fe.clip_samples) / fe.sample_rate
    out = [np.zeros(fe.clip_samples), np.where(np.arange(fe.clip_samples) % 7 < 3, 32767, -32768)]
    for _ in range(n - 2):
        level = 10 ** rng.uniform(-4.5, 0)
        out.append(rng.normal(0, level * 6000, fe.clip_samples)
                   + level * 30000 * np.sin(2 * np.pi * rng.uniform(50, 7900) * t))
    return np.clip(np.round(np.stack(out)), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def fire_alarm_host():
    project = _project()
    return project, hostc.host_front_end(project)


@pytest.mark.parametrize("features", [
    {},
    {"kind": "spectrogram"},
    {"frame_length": 400, "frame_step": 160, "fft_size": 512, "window": "hamming"},
    {"frame_length": 256, "frame_step": 128, "fft_size": 256, "mel_bands": 20, "fmin_hz": 60.0},
])
def test_c_equals_python_on_synthetic_clips(features):
    project = _project(**features)
    host = hostc.host_front_end(project)
    report = hostc.verify(project, _clips(host.fe, 24), host)
    assert report == {"clips": 24, "values": 24 * host.fe.num_frames * host.fe.num_bins,
                      "mismatches": 0, "first": ""}


@pytest.mark.parametrize("features", [{}, {"kind": "spectrogram"}])
def test_cortex_m7_build_of_cmsis_dsp_equals_python(features):
    """The DSP code paths (Cortex-M7), built as the firmware must: bit-exact. With the
    radix-4 butterfly on its DSP path too, the check catches the rounding difference."""
    project = _project(**features)
    m7 = hostc.host_front_end(project, variant="dsp")
    clips = _clips(m7.fe, 24)
    assert hostc.verify(project, clips, m7)["mismatches"] == 0
    assert hostc.verify_stream(project, clips[:4].reshape(-1), m7)["mismatches"] == 0
    with pytest.raises(hostc.ParityError):
        hostc.verify(project, clips, hostc.host_front_end(project, variant="dsp_all"))


def _rendered_copy(project, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    hostc.render_sources(F.design(project.spec), src, project.path.name)
    return src


def test_hand_edited_window_value_fails_the_parity_check(tmp_path, fire_alarm_host):
    project, host = fire_alarm_host
    src = _rendered_copy(project, tmp_path)
    path = src / "mf_features.c"
    text = path.read_text()
    table = re.search(r"mf_window\[MF_FE_FRAME_LENGTH\] = \{\n    ([^}]*)\}", text)
    values = [int(v) for v in table.group(1).replace("\n", " ").split(",") if v.strip()]
    assert values == list(host.fe.window), "the rendered window is the designed one"
    values[200] += 1  # one LSB of one window value, in the C only
    edited = text[:table.start(1)] + ", ".join(map(str, values)) + "\n" + text[table.end(1):]
    path.write_text(edited)
    broken = hostc.HostFrontEnd(host.fe, hostc.build_library(src))
    clips = _clips(host.fe, 8)
    with pytest.raises(hostc.ParityError, match="differ between the C front end"):
        hostc.verify(project, clips, broken)
    assert hostc.verify(project, clips, host)["mismatches"] == 0


def test_hand_edited_frame_step_fails_the_stream_check(tmp_path, fire_alarm_host):
    project, host = fire_alarm_host
    src = _rendered_copy(project, tmp_path)
    path = src / "mf_features.h"
    text = path.read_text()
    step = f"#define MF_FE_FRAME_STEP       ({host.fe.frame_step}U)"
    assert step in text
    path.write_text(text.replace(step, f"#define MF_FE_FRAME_STEP       ({host.fe.frame_step // 2}U)"))
    broken = hostc.HostFrontEnd(host.fe, hostc.build_library(src))
    stream = _clips(host.fe, 4).reshape(-1)
    with pytest.raises(hostc.ParityError, match="streamed feature values differ"):
        hostc.verify_stream(project, stream, broken)
    assert hostc.verify_stream(project, stream, host)["mismatches"] == 0


def test_cmsis_sources_come_from_the_installed_version():
    dsp = cmsis.cmsis_dsp()
    assert dsp.version == cmsis.installed_version()
    assert all(p.is_file() for p in dsp.sources)
    assert (dsp.include_dirs[0] / "arm_math.h").is_file()
    assert not list(dsp.root.rglob("cmsis_compiler.h")), "the sdist has no CMSIS-Core headers"
    assert cmsis.cmsis_dsp().root == dsp.root  # cached: no second download


def test_cmsis_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    """No cache and no package index: one error naming the command and the cache to fill."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no extra index or find-links from config
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(cmsis.CmsisError, match=r"could not download the cmsisdsp .* sources"):
        cmsis.cmsis_dsp(tmp_path)
    assert not (tmp_path / f"cmsis-dsp-{cmsis.installed_version()}").exists()


ARM_GCC = shutil.which("arm-none-eabi-gcc")


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("cpu", [["-mcpu=cortex-m0plus"],
                                 ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]])
def test_module_builds_and_links_for_cortex_m(tmp_path, cpu):
    """The rendered module (-Wall -Wextra -Werror) and CMSIS-DSP link into a Cortex-M program.

    CMSIS-Core headers are not in the sdist; like the sdist's own setup.py, the build
    uses CMSIS-DSP's portable configuration (__GNUC_PYTHON__) for this check.
    """
    project = _project()
    src = _rendered_copy(project, tmp_path)
    (src / "main.c").write_text(
        '#include "mf_stream.h"\n'
        "static mf_stream_t stream;\n"
        "static int16_t block[MF_FE_HOP_SAMPLES];\n"
        "int main(void) {\n"
        "    uint32_t n = 0;\n"
        "    if (mf_stream_init(&stream) != 0) { return 1; }\n"
        "    while (!mf_stream_ready(&stream)) { n += mf_stream_push(&stream, block); }\n"
        "    return (int)n + mf_stream_map(&stream)[0];\n"
        "}\n")
    dsp = cmsis.cmsis_dsp()
    common = [*cpu, "-mthumb", "-O2", "-ffunction-sections", "-fdata-sections",
              "-D__GNUC_PYTHON__", f"-I{src}", *[f"-I{d}" for d in dsp.include_dirs]]
    ours = [str(src / f) for f in ("mf_features.c", "mf_stream.c", "main.c")]
    elf = tmp_path / "fe.elf"
    run = subprocess.run([ARM_GCC, *common, "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", *ours],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([ARM_GCC, *common, "-c", *map(str, dsp.sources)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    objects = sorted(str(p) for p in tmp_path.glob("*.o"))
    run = subprocess.run([ARM_GCC, *cpu, "-mthumb", "-specs=nosys.specs", "-Wl,--gc-sections",
                          "-o", str(elf), *objects, "-lm"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    for symbol in ("mf_stream_push", "mf_features_frame", "arm_rfft_q15", "arm_mult_q15"):
        assert re.search(rf"\b{symbol}\b", nm), symbol


@pytest.mark.shared
def test_c_equals_python_on_every_fire_alarm_clip(shared_data, fire_alarm_host):
    """All 609 files of the task (including the 9 the index skips), then micforge verify."""
    import soundfile as sf
    from generator.dataset import build_index
    project, host = fire_alarm_host
    files = sorted((shared_data / "fire_alarm").rglob("*.wav"))
    assert len(files) == 609
    clips = np.stack([sf.read(f, dtype="int16")[0][:host.fe.clip_samples] for f in files])
    report = hostc.verify(project, clips, host)
    assert report["clips"] == 609 and report["mismatches"] == 0
    assert report["values"] == 609 * 31 * 32
    result = hostc.verify_project(project, build_index(project))
    assert result["clips"] == 600 and result["mismatches"] == 0, result["errors"]
    assert result["variants"] == ["portable", "dsp"]
    assert result["stream_columns"] == 2 * (8 * 16000) // 512
    assert result["values"] == 2 * (600 * 31 * 32 + 250 * 32)
