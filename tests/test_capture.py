"""Capture: the wire format (generator.wire), the C packer it is rendered into, the windowing of
`micforge capture` (generator.capture) and the command against a pseudo-terminal (the rendered
capture projects are in tests/test_targets.py's goldens, beside the detectors).

The pty tests replay frames recorded from the capture firmware running in rp2040js with its PDM
pin driven from a real fire-alarm recording (tests/data/capture/alarm_0800.frames, see its
README), then corrupt one, drop one, or hang up mid-window. The RT1062 capture project (LPUART)
is checked by its link figures, its packer on a Cortex-M7, and its linker script on a linked image.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import termios
import threading
import time
import tty
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from generator import wire
from generator.boards import load_board
from generator.capture import Windower, window_name
from generator.cli import main
from generator.errors import SpecError
from generator.firmware import imxrt
from generator.spec import load_spec
from generator.targets import FAMILIES, capture_output_files, render_capture

from conftest import REPO

RECORDED = REPO / "tests" / "data" / "capture" / "alarm_0800.frames"
EXAMPLES = [("fire_alarm", "pico"), ("fire_alarm", "micromod"), ("fire_alarm", "evkb"),
            ("fire_alarm", "teensy"), ("keywords", "pico"), ("demo", "pico")]


def _frames(n: int, first: int = 0, rate: int = 16000, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [wire.pack(i, first + i * wire.FRAME_SAMPLES, rate,
                      rng.integers(-32768, 32767, wire.FRAME_SAMPLES, dtype=np.int16))
            for i in range(n)]


# ----------------------------------------------------------------------- wire format

def test_frame_layout_is_the_documented_one():
    samples = np.arange(wire.FRAME_SAMPLES, dtype=np.int16) - 128
    b = wire.pack(5, 0x01020304, 16000, samples, overrun=9, unsent=256, flags=wire.FLAG_GAP)
    assert len(b) == wire.frame_bytes() == 28 + 2 * 256 + 4
    assert b[:4] == b"MFC1"
    assert b[4:8] == (5).to_bytes(4, "little")
    assert b[8:12] == bytes([4, 3, 2, 1])
    assert int.from_bytes(b[12:16], "little") == 16000
    assert int.from_bytes(b[16:20], "little") == 9
    assert int.from_bytes(b[20:24], "little") == 256
    assert int.from_bytes(b[24:26], "little") == 256 and b[26:28] == b"\x01\x00"
    assert b[28:30] == (-128).to_bytes(2, "little", signed=True)
    assert int.from_bytes(b[-4:], "little") == zlib.crc32(b[:-4])


def test_deframer_finds_frames_in_any_split_and_skips_noise():
    frames = _frames(4)
    stream = b"mf capture board=pico rate=16000\r\n" + frames[0] + b"\x00\xffMFC" + \
        b"".join(frames[1:])
    for step in (1, 7, 544, 10_000):
        d = wire.Deframer()
        got = [f for i in range(0, len(stream), step) for f in d.feed(stream[i:i + step])]
        assert [f.seq for f in got] == [0, 1, 2, 3]
        assert d.crc_errors == 0 and d.text == ["mf capture board=pico rate=16000"]
        assert np.array_equal(got[2].samples,
                              np.frombuffer(frames[2][28:-4], dtype="<i2"))


def test_deframer_drops_corrupt_frames_and_resynchronises():
    frames = _frames(3)
    bad = bytearray(frames[1])
    bad[300] ^= 0x10  # one flipped bit in the payload
    bad[100:104] = b"MFC1"  # and a sync word inside it
    truncated = frames[0][:200]  # a frame cut short (link reset), then the next whole one
    d = wire.Deframer()
    got = d.feed(truncated + frames[0] + bytes(bad) + frames[2])
    assert [f.seq for f in got] == [0, 2]
    assert d.crc_errors >= 1


# ----------------------------------------------------------------------- windows

def _push_all(w: Windower, frames: list[bytes]):
    out = []
    for f in wire.Deframer().feed(b"".join(frames)):
        out += w.push(f)
    return out


def test_windows_are_cut_on_the_device_clock():
    frames = _frames(10, first=12345)
    got = _push_all(Windower(size=1000), frames)  # 2560 samples: two windows and a partial
    assert [w.index for w in got] == [0, 1] and all(w.samples is not None for w in got)
    allx = np.concatenate([np.frombuffer(f[28:-4], dtype="<i2") for f in frames])
    assert np.array_equal(got[1].samples, allx[1000:2000])


def test_a_lost_frame_drops_the_window_it_falls_in_and_keeps_the_clock():
    frames = _frames(12)
    del frames[5]  # samples 1280..1535: window 1 of 1000-sample windows
    got = _push_all(Windower(size=1000), frames)
    assert [(w.index, w.samples is None, w.lost) for w in got] == \
        [(0, False, 0), (1, True, 256), (2, False, 0)]
    allx = np.concatenate([np.frombuffer(f[28:-4], dtype="<i2") for f in _frames(12)])
    assert np.array_equal(got[2].samples, allx[2000:3000])  # not shifted by the loss
    assert got[1].cause == "link"


def test_device_losses_are_told_apart_from_link_losses():
    rng = np.random.default_rng(1)
    x = rng.integers(-100, 100, 256 * 8, dtype=np.int16)
    f = [wire.pack(i, i * 256, 16000, x[i * 256:(i + 1) * 256]) for i in range(3)]
    # the device could not send frame 3 (unsent += 256), then an overrun inside frame 5 (GAP)
    f.append(wire.pack(4, 4 * 256, 16000, x[1024:1280], unsent=256))
    f.append(wire.pack(5, 5 * 256, 16000, x[1280:1536], overrun=40, unsent=256,
                       flags=wire.FLAG_GAP))
    w = Windower(size=512)
    got = _push_all(w, f)
    assert [(x.index, x.samples is None, x.cause) for x in got] == \
        [(0, False, ""), (1, True, "device"), (2, True, "device")]
    assert w.lost_total == w.lost_device == 512


def test_the_sample_clock_wraps_at_32_bits():
    frames = _frames(8, first=(1 << 32) - 3 * 256)
    got = _push_all(Windower(size=512), frames)
    assert [w.index for w in got] == [0, 1, 2, 3] and all(w.samples is not None for w in got)


def test_window_names_follow_the_dataset_grouping():
    from generator.dataset import recording, source_id
    name = window_name("cap-pico-20261130T080000Z", 12_500)
    assert name == "cap-pico-20261130T080000Z_t0012.500.wav"
    assert recording(name) == ("cap-pico-20261130T080000Z", 12.5)
    assert source_id(name) == "cap-pico-20261130T080000Z"


# ----------------------------------------------------------------------- the command on a pty

@pytest.fixture()
def project(tmp_path):
    """fire_alarm's spec with its dataset root in tmp_path (nothing written under ../shared)."""
    spec = yaml.safe_load((REPO / "projects" / "fire_alarm.yaml").read_text())
    spec["dataset"]["root"] = str(tmp_path / "data")
    for c in spec["classes"]:
        (tmp_path / "data" / c).mkdir(parents=True)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class Board:
    """The host end of a pseudo-terminal that plays the board: writes `chunks` (bytes, or a
    float to pause) once the command has opened the port, and then hangs up once it has read
    everything (pyserial drops what was written before it opened the port; closing the master
    drops what is unread)."""

    def __init__(self, chunks, hang_up=True, baud=termios.B115200):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave
        self._chunks, self._hang_up, self._baud = chunks, hang_up, baud
        self.opened_at = None  # the line speed the reader set, once it opened the port
        self._thread = threading.Thread(target=self._play, daemon=True)

    def _wait(self, ready, seconds=20.0):
        end = time.monotonic() + seconds
        while not ready() and time.monotonic() < end:
            time.sleep(0.01)

    def _unread(self) -> int:
        return struct.unpack("i", fcntl.ioctl(self._slave, termios.FIONREAD, b"\0" * 4))[0]

    def _drained(self) -> None:
        """Until the reader has read everything (nothing unread at three looks 50 ms apart:
        written bytes reach the line discipline asynchronously), or stopped reading (0.5 s
        without progress)."""
        last, since, zeros = self._unread(), time.monotonic(), 0
        while zeros < 3 and time.monotonic() - since < 0.5:
            time.sleep(0.05)
            now = self._unread()
            zeros = zeros + 1 if now == 0 else 0
            if now != last:
                last, since = now, time.monotonic()

    def _play(self):
        # pyserial sets the line's speed when it opens the port (a new pty is at 38400), then
        # flushes its input: start writing a moment later.
        self._wait(lambda: termios.tcgetattr(self._slave)[5] == self._baud)
        self.opened_at = termios.tcgetattr(self._slave)[5]
        time.sleep(0.3)
        os.set_blocking(self.master, False)
        for c in self._chunks:
            if isinstance(c, float):
                time.sleep(c)
                continue
            i, stalled = 0, time.monotonic()
            while i < len(c) and time.monotonic() - stalled < 0.5:  # the reader may have quit
                try:
                    i += os.write(self.master, c[i:i + 4096])
                    stalled = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.005)
        if self._hang_up:
            self._drained()
            os.close(self.master)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._thread.join(timeout=30)
        os.close(self._slave)
        if not self._hang_up:
            os.close(self.master)


def _capture(project, port, *extra, label="alarm", variant="pico"):
    return main(["capture", str(project), "--variant", variant, "--port", port, "--label", label,
                 "--timeout", "1", *extra])


def _recorded() -> tuple[bytes, list[wire.Frame]]:
    data = RECORDED.read_bytes()
    return data, wire.Deframer().feed(data)


def _wavs(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_recorded_frames_become_wavs_equal_to_the_device_samples(project, capsys):
    data, frames = _recorded()
    assert len(frames) >= 70 and all(f.rate == 16000 for f in frames)
    with Board([data]) as board:
        status = _capture(project, board.port, "--count", "2")
    assert status == 0, capsys.readouterr().err
    folder = project.parent / "data" / "alarm"
    names = _wavs(folder)
    assert len(names) == 2 and all(n.startswith("cap-pico-") for n in names)
    assert names[0].endswith("_t0000.000.wav") and names[1].endswith("_t0001.000.wav")
    stream = np.concatenate([f.samples for f in frames])
    for k, name in enumerate(names):
        x, rate = sf.read(folder / name, dtype="int16")
        assert rate == 16000
        assert np.array_equal(x, stream[16000 * k:16000 * (k + 1)])


def test_corrupt_and_lost_frames_drop_their_window_and_a_hang_up_keeps_no_partial(project,
                                                                                     capsys):
    data, frames = _recorded()
    size = wire.frame_bytes()
    raw = [data[i:i + size] for i in range(data.index(wire.SYNC), len(data), size)]
    corrupt = bytearray(raw[10])
    corrupt[200] ^= 0x01  # window 0 (frames 0-62) loses frame 10
    stream = b"".join(raw[:10]) + bytes(corrupt) + b"".join(raw[11:])
    stream = stream[:size * 70 + 100]  # hang up in window 1, mid-frame
    with Board([stream]) as board:
        status = _capture(project, board.port, "--count", "3")
    out = capsys.readouterr()
    assert status == 1
    assert "disconnected" in out.err
    assert "lost 256 samples (link); window not written" in out.out
    assert "0 of 3 windows written, 1 dropped" in out.err
    assert "partial window" in out.err and "1 frames failed their CRC" in out.err
    assert _wavs(project.parent / "data" / "alarm") == []
    assert not list((project.parent / "data" / "alarm").iterdir())  # no temporary file either


def test_a_lost_frame_costs_its_window_only(project, capsys):
    data, frames = _recorded()
    size = wire.frame_bytes()
    raw = [data[i:i + size] for i in range(data.index(wire.SYNC), len(data), size)]
    # 0.128 s windows = 2048 samples = 8 frames; frame 10 falls in window 1
    with Board([b"".join(raw[:10] + raw[11:])]) as board:
        status = _capture(project, board.port, "--count", "3", "--seconds", "0.128")
    out = capsys.readouterr()
    assert status == 0, out.err
    names = _wavs(project.parent / "data" / "alarm")
    assert [n.rsplit("_t", 1)[1] for n in names] == ["0000.000.wav", "0000.256.wav",
                                                     "0000.384.wav"]
    assert "t=0.128 s: lost 256 samples (link); window not written" in out.out
    stream = np.concatenate([f.samples for f in frames])
    x, _ = sf.read(project.parent / "data" / "alarm" / names[1], dtype="int16")
    assert np.array_equal(x, stream[2 * 2048:3 * 2048])  # on the device clock, not shifted


def test_refuses_unknown_label_missing_port_and_other_rate(project, capsys):
    assert _capture(project, "/dev/null-no-such-port", label="alarm") == 2
    assert "/dev/null-no-such-port: no such serial port; " in capsys.readouterr().err
    assert _capture(project, "/dev/ttyACM0", label="smoke") == 2
    assert "'smoke' is not a class" in capsys.readouterr().err
    with Board([b"".join(_frames(20, rate=8000))]) as board:
        assert _capture(project, board.port) == 2
    err = capsys.readouterr().err
    assert "streams 8000 Hz; the spec records at 16000 Hz" in err
    assert _wavs(project.parent / "data" / "alarm") == []


def test_says_what_the_port_sent_when_it_is_not_capture_firmware(project, capsys):
    lines = b"".join(b"hop=%d t_ms=%d top=alarm score=1 det=- dsp_us=1 inf_us=2 ovr=0 q=1,2\r\n"
                     % (i, i) for i in range(5))
    with Board([lines], hang_up=False) as board:
        assert _capture(project, board.port) == 2
    err = capsys.readouterr().err
    assert "no capture frames in 1 s; it printed: hop=" in err
    assert "capture firmware flashed" in err


def test_an_rt1062_variant_records_over_its_uart_at_the_capture_baud(project, capsys):
    """The RT1062's capture firmware streams over LPUART: `micforge capture` opens the port at
    the family's capture_baud, skips the boot line and writes the frames' samples."""
    assert FAMILIES["imxrt1062"].capture_baud == 921600
    frames = _frames(70)
    boot = b"mf capture board=teensy41 rate=16000 frame=256 bytes=544\r\n"
    with Board([boot + b"".join(frames)], baud=termios.B921600) as board:
        status = _capture(project, board.port, "--count", "1", variant="teensy")
    assert status == 0, capsys.readouterr().err
    assert board.opened_at == termios.B921600
    (name,) = _wavs(project.parent / "data" / "alarm")
    assert name.startswith("cap-teensy-") and name.endswith("_t0000.000.wav")
    x, _ = sf.read(project.parent / "data" / "alarm" / name, dtype="int16")
    stream = np.concatenate([np.frombuffer(f[28:-4], dtype="<i2") for f in frames])
    assert np.array_equal(x, stream[:16000])


def test_never_overwrites_and_next_session_gets_its_own_recording(project, capsys):
    frames = b"".join(_frames(70))
    for _ in range(2):
        with Board([frames]) as board:
            assert _capture(project, board.port, "--count", "1") == 0
    names = _wavs(project.parent / "data" / "alarm")
    assert len(names) == 2 and names[0] != names[1]
    recs = {n.rsplit("_t", 1)[0] for n in names}
    assert len(recs) == 2  # two sessions, two recordings (the same second gets -2)


# ----------------------------------------------------------------------- the firmware

def _render(spec, variant, out):
    project = load_spec(REPO / "projects" / f"{spec}.yaml")
    target = next(t for t in project.spec.targets if t.name == variant)
    board = load_board(target.board)
    files = render_capture(project, target, board, out)
    assert sorted(str(f.relative_to(out)) for f in files) == capture_output_files(board)
    return {str(f.relative_to(out)): f.read_text() for f in files}


ARM = [shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")]


@pytest.mark.skipif(None in ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("core, variant", [("M0", "pico"), ("M7", "evkb")])
def test_the_c_packer_on_the_boards_core_equals_the_python_one(tmp_path, core, variant):
    """mf_capture.c compiled for the board's core and run under QEMU: the RP2040's Cortex-M0+
    (micro:bit, ARMv6-M) and the RT1062's Cortex-M7 (mps2-an500); its frames are byte for byte
    wire.pack's."""
    import test_parity_qemu as q
    _render("fire_alarm", variant, tmp_path / "fw")
    flags = [f"-I{tmp_path / 'fw'}", f"-I{q.QEMU_DIR}", *q.OUR_FLAGS]
    out = q._build_and_run(getattr(q, core), tmp_path,
                           [(tmp_path / "fw" / "mf_capture.c", flags),
                            (q.QEMU_DIR / "capture_main.c", flags)])
    lines = out.split()
    assert len(lines) == 3
    x, seq, first = 1, 0xFFFFFFFE, 0xFFFFFF00
    for f, line in enumerate(lines):
        samples = []
        for _ in range(wire.FRAME_SAMPLES):
            x = (1103515245 * x + 12345) & 0xFFFFFFFF
            samples.append(np.int16(np.uint16(x >> 16)))
        expected = wire.pack(seq + f, first + f * wire.FRAME_SAMPLES, 16000, samples, overrun=7,
                             unsent=512, flags=wire.FLAG_GAP if f == 1 else 0)
        assert bytes.fromhex(line) == expected
    frames = wire.Deframer().feed(b"".join(bytes.fromhex(line) for line in lines))
    assert [fr.seq for fr in frames] == [0xFFFFFFFE, 0xFFFFFFFF, 0]


@pytest.mark.skipif(ARM[0] is None, reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("variant, cpu", [
    ("pico", ["-mcpu=cortex-m0plus", "-mthumb"]),
    ("evkb", ["-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard", "-mthumb"])],
    ids=["cortex-m0plus", "cortex-m7"])
def test_the_portable_capture_files_compile_for_the_boards_core(tmp_path, variant, cpu):
    """The portable files of the capture tree build with -Werror for the board's core (no SDK
    here: capture_main.c and audio_in.c need the pico-sdk or the MCUXpresso SDK)."""
    _render("fire_alarm", variant, tmp_path)
    run = subprocess.run([ARM[0], *cpu, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror",
                          "-Wconversion", "-c", str(tmp_path / "mf_capture.c"),
                          "-o", str(tmp_path / "mf_capture.o")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ----------------------------------------------------------------------- the RT1062's link

def _variant(variant: str, edit: tuple[str, str] = ("", "")):
    """fire_alarm's `variant`, resolved, with one text edit of its spec."""
    from generator.variant import resolve
    path = REPO / "projects" / "fire_alarm.yaml"
    project = load_spec(path, text=path.read_text().replace(*edit))
    target = next(t for t in project.spec.targets if t.name == variant)
    return resolve(project, target, load_board(target.board))


def test_the_uart_divider_is_the_sdks_and_the_link_keeps_up():
    """LPUART_Init's search (fsl_lpuart.c) for the capture baud from the 80 MHz LPUART clock:
    OSR 29 x SBR 3 = 919,540 baud (-0.22%); a 544-byte frame takes 5.9 ms of a 16 ms frame."""
    link = imxrt.uart_link(FAMILIES["imxrt1062"].capture_baud)
    assert (link.osr, link.sbr, link.actual) == (29, 3, 919540)
    assert round(100 * link.error, 2) == -0.22
    assert imxrt.uart_link(115200).actual == 115107  # OSR 5 x SBR 139, as the SDK picks it
    assert 5900 < link.send_us(wire.frame_bytes()) < 5920
    v = _variant("teensy")
    assert imxrt.check_capture(v) == []
    assert imxrt.capture_compute_us(v) < 16000 * 0.4  # the loop idles 60% of each frame


def test_a_rate_the_uart_cannot_carry_is_refused_at_the_sample_rate():
    v = _variant("evkb", ("sample_rate: 16000", "sample_rate: 48000"))  # 102 KB/s of frames
    (problem,) = imxrt.check_capture(v)
    assert (problem.path, problem.line) == (str(REPO / "projects" / "fire_alarm.yaml"), 7)
    assert ("the capture link (LPUART1 at 921600 baud) needs 5.9 ms per 544-byte frame, longer "
            "than the 5.3 ms of audio a frame of 256 samples holds at 48000 Hz; record at 32000 "
            "Hz or less") in str(problem)
    with pytest.raises(SpecError):
        imxrt.render_capture(v, Path("/nonexistent/never-written"))


def test_the_capture_tree_runs_its_board_files_at_the_capture_baud(tmp_path):
    files = _render("fire_alarm", "teensy", tmp_path)
    assert "#define MICFORGE_UART_BAUD (921600U)" in files["board.h"]
    assert "921600" not in files["board_mpu.c"] + files["pin_mux.c"]  # only board.h sets it
    assert "OSR 29 x SBR 3: 919540 baud, -0.22% off" in files["capture_main.c"]
    assert "#define MF_HOP_SAMPLES         (256U)" in files["config.h"]  # audio_in.c's block
    assert "fills two buffers of 256 samples" in files["audio_in.c"]
    assert ".tensor_arena" not in files["linker.ld"] and "ITCM" not in files["linker.ld"].split(
        "MEMORY", 1)[1].split("}", 1)[0]
    plan = yaml.safe_load(files["flexram_plan.json"])
    assert (plan["itcm_banks"], plan["dtcm_banks"], plan["sizes"]["itcm_code"]) == (0, 1, 0)


CAPTURE_IMAGE_C = """
#include <stdint.h>
extern uint32_t __StackTop[];
__attribute__((section(".boot_hdr.conf"), used)) const uint32_t fcb[128] = {0x42464346u, 0x56010000u};
__attribute__((section(".boot_hdr.ivt"), used)) const uint32_t ivt[8] = {0x412000D1u, 0x60002000u};
__attribute__((section(".boot_hdr.boot_data"), used)) const uint32_t boot_data[4] = {0x60000000u, 0x800000u};
__attribute__((section("NonCacheable"), aligned(32))) int32_t dma[2][256];
int16_t samples[256];
uint8_t frame[544];
uint32_t seq = 1;
void Reset_Handler(void);
__attribute__((section(".isr_vector"), used)) const void *vectors[2] = {__StackTop, Reset_Handler};
int main(void) { frame[3] = (uint8_t)(samples[1] + dma[1][2] + (int)seq); return frame[3]; }
void Reset_Handler(void) { main(); for (;;) {} }
"""


@pytest.mark.skipif(ARM[0] is None, reason="needs arm-none-eabi-gcc")
def test_an_image_linked_with_the_capture_linker_script_passes_the_elf_checks(tmp_path):
    """The capture tree's linker.ld (its own FlexRAM plan: no arena, no ITCM) links a program
    shaped like the capture firmware, and generator.elfcheck finds the boot headers, the regions
    and the sections where flexram_plan.json says; the one check that does not apply is the
    tensor arena's, which the capture firmware does not have."""
    import json

    from generator.elfcheck import ARENA_SYMBOL, check_elf, format_report
    files = _render("fire_alarm", "teensy", tmp_path)
    (tmp_path / "image.c").write_text(CAPTURE_IMAGE_C)
    run = subprocess.run([ARM[0], "-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard",
                          "-mthumb", "-O2", "-ffunction-sections", "-fdata-sections", "image.c",
                          "-T", "linker.ld", "-nostartfiles", "--specs=nosys.specs",
                          "-Wl,--gc-sections", "-o", "fw.elf"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    board = load_board("teensy41")
    report = check_elf(tmp_path / "fw.elf", json.loads(files["flexram_plan.json"]), board)
    assert [p for p in report.problems if ARENA_SYMBOL not in p] == [], format_report(report)
    assert report.arena is None and report.itcm_code == 0
    used, size = report.usage["DTCM"]
    assert size == 32 * 1024 and board.imxrt.stack_bytes + 2 * 256 + 544 <= used <= size
    assert report.usage["OCRAM2"][0] >= 2048 + board.imxrt.heap_bytes  # eDMA buffers + heap
