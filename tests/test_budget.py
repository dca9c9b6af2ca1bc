"""generator.firmware.budget: one estimate of the loop's time per hop and of memory per region,
read by the checks, the build summary, report.html, micforge diff and micforge tune."""

from __future__ import annotations

import pytest

from generator.boards import load_board
from generator.firmware import budget, imxrt, rp2040
from generator.spec import load_spec
from generator.targets import family
from generator.variant import resolve

from conftest import REPO

ANALYSIS = {"arena": {"measured_bytes": 4000}, "macs": 100_000, "model_bytes": 9000}


def _variants():
    project = load_spec(REPO / "projects" / "fire_alarm.yaml")
    return {t.name: resolve(project, t, load_board(t.board), ANALYSIS)
            for t in project.spec.targets}


def test_each_part_of_the_hop_is_its_own_cost():
    vs = _variants()
    pico, teensy = vs["pico"], vs["teensy"]
    fe = pico.frontend
    b = rp2040.budget(pico)
    assert b.front_us == pytest.approx(fe.hop_frames * 512 * budget.DSP_CYCLES_PER_FFT_POINT / 125)
    assert b.invoke_us == pytest.approx(100_000 * budget.CYCLES_PER_MAC / 125)
    assert b.audio_us == pytest.approx(fe.hop_samples * rp2040.DECIMATION_CYCLES_PER_SAMPLE / 125)
    assert b.total_us == pytest.approx(b.front_us + b.invoke_us + b.audio_us + b.serial_us)
    assert rp2040.compute_us(pico) == b.total_us == rp2040.estimated_hop_us(pico)
    # the RT1062 reads an I2S microphone: no PDM decimation in its loop (it had the RP2040's)
    t = imxrt.budget(teensy)
    assert t.audio_what == "SAI copy"
    assert t.audio_us == pytest.approx(fe.hop_samples * imxrt.SAI_COPY_CYCLES_PER_SAMPLE / 600)
    assert t.serial_us == pytest.approx(budget.serial_line_us(teensy, teensy.board.imxrt.uart_baud))
    assert imxrt.compute_us(teensy) == t.total_us < b.total_us


def test_without_the_model_the_budget_is_a_lower_bound():
    project = load_spec(REPO / "projects" / "fire_alarm.yaml")
    target = project.spec.targets[0]
    v = resolve(project, target, load_board(target.board))
    b = family(v.board).budget(v)
    assert b.invoke_us is None and not b.known
    assert b.total_us == pytest.approx(b.front_us + b.audio_us + b.serial_us)
    assert rp2040.estimated_hop_us(v) is None


def test_memory_regions_hold_what_the_estimates_put_there():
    vs = _variants()
    pico = vs["pico"]
    regions = {r.name: r for r in rp2040.memory(pico, 9000)}
    assert dict(regions["FLASH"].parts)[budget.MODEL] == 9000
    assert regions["RAM"].used == pico.arena.bytes + rp2040.static_ram_bytes(pico)
    teensy = vs["teensy"]
    sizes = imxrt.estimate_sizes(teensy, teensy.arena.bytes)
    plan = imxrt.plan(teensy.board, sizes).to_json()
    regions = {r.name: r for r in imxrt.memory(teensy, 9000, plan)}
    assert regions["DTCM"].used == sizes.dtcm
    assert dict(regions["DTCM"].parts)[budget.ARENA] == teensy.arena.bytes
