"""`micforge monitor` (generator/monitor.py): the hop-line parser, line splitting, the session's
notes, the CSV log, the rich panel, and the command end to end on a pseudo-terminal that plays
the device (recorded lines in main.cpp's format, then a disconnect)."""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import threading
import time
from types import SimpleNamespace

import pytest
from rich.console import Console

from conftest import REPO
from generator import monitor as M
from generator.simulate import format_line

# Recorded lines of a Pico build of fire_alarm: the stdio driver ends lines with CR LF.
READY = b"mf ready board=pico arena=30720 used=27412 model=19384 hop_us=32000\r\n"
HOPS = (b"hop=0 t_ms=5384 top=background score=30111 det=- dsp_us=1256 inf_us=2690 ovr=0 q=-128,127\r\n"
        b"hop=1 t_ms=5416 top=alarm score=24576 det=alarm dsp_us=1251 inf_us=2688 ovr=0 q=127,-128\r\n"
        b"hop=2 t_ms=5448 top=alarm score=31457 det=alarm dsp_us=1260 inf_us=2691 ovr=256 q=127,-128\r\n"
        b"hop=3 t_ms=5480 top=background score=21845 det=- dsp_us=1249 inf_us=2690 ovr=256 q=-128,127\r\n")
GARBAGE = b"\x00\xfe\x1b[2J\x80\x7f\r\n"  # noise on the line: NUL, bad UTF-8, an escape sequence
SPLIT = (b"hop=4 t_ms=5512 top=backgr",
         b"ound score=28000 det=- dsp_us=1255 inf_us=2689 ovr=256 q=-128,127\r\n")
LONG = b"\xaa" * 5000 + b"\n"  # a wrong baud rate: no line end for 5000 bytes
ERRORS = b"mf error: Invoke failed\r\n" * 2  # halt() repeats it every second
PARTIAL = b"hop=5 t_ms=55"  # unplugged mid-line
WRITES = [READY + HOPS, GARBAGE, SPLIT[0], SPLIT[1], LONG, ERRORS, PARTIAL]

HOST_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _run(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    M.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["monitor"] + argv)
    return args.func(args)


def _read_log(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- the parser

def test_parse_line_reads_the_firmware_printf():
    # The line built from main.cpp's own format string, so a change there breaks this test.
    template = (REPO / "templates" / "common" / "main.cpp.j2").read_text()
    fmt = re.search(r'printf\("(hop=%lu[^"]*)"', template).group(1)
    line = "clip=3 " + fmt % (12, 5384, "alarm", 31457, "-", 812, 2950, 7) + "127,-128"
    assert M.parse_line(line) == M.Hop(hop=12, t_ms=5384, top="alarm", score=31457, det=None,
                                       dsp_us=812, inf_us=2950, ovr=7, q=(127, -128), clip=3)


def test_parse_line_reads_simulate_and_the_readme():
    line = format_line(4, 160, "glass break", 20000, "glass break", [-3, 5, 127])
    assert M.parse_line(line) == M.Hop(hop=4, t_ms=160, top="glass break", score=20000,
                                       det="glass break", dsp_us=0, inf_us=0, ovr=0,
                                       q=(-3, 5, 127))
    readme = next(ln for ln in (REPO / "README.md").read_text().splitlines()
                  if ln.startswith("hop="))
    assert M.parse_line(readme + "\r\n").det == "alarm"


@pytest.mark.parametrize("text", ["clip=0 end", "mf done", "hop=5 t_ms=55",
                                  "hop=1 t_ms=2 top=a score=1 det=- dsp_us=1 inf_us=1 ovr=0 q=",
                                  "hop=1 t_ms=2 top=a score=1 det=- dsp_us=1 inf_us=1 ovr=0 q=1,2 x",
                                  "xhop=1 t_ms=2 top=a score=1 det=- dsp_us=1 inf_us=1 ovr=0 q=1"])
def test_parse_line_refuses_other_lines(text):
    assert M.parse_line(text) is None


def test_classify_boot_lines():
    ready = M.classify("mf ready board=micromod arena=65536 used=60112 model=40000 hop_us=32000 "
                       "flexram=itcm:4,dtcm:8,ocram:4")
    assert (ready.board, ready.arena, ready.used, ready.model, ready.hop_us, ready.extra) == \
        ("micromod", 65536, 60112, 40000, 32000, (("flexram", "itcm:4,dtcm:8,ocram:4"),))
    assert M.classify("mf error: microphone start failed") == \
        M.DeviceError("microphone start failed", "mf error: microphone start failed")
    for bad in ["mf ready board=pico arena=x used=1 model=1 hop_us=1",
                "mf ready board=pico arena=1 used=1 model=1 hop_us=1 junk",
                "mf ready arena=1 used=1 model=1 hop_us=1"]:
        assert M.classify(bad) == M.Text(bad)
    assert M.classify("clip=2 end") == M.Text("clip=2 end", known=True)
    assert M.classify("mf done") == M.Text("mf done", known=True)


def test_printable_escapes_terminal_controls():
    assert M.printable("a\x00b\x1b[2J\u202ec\ufffd é") == "a\\x00b\\x1b[2J\\u202ec\ufffd é"


# ---------------------------------------------------------------------------- lines and state

def test_line_splitter_cuts_long_lines_and_keeps_partials():
    s = M.LineSplitter(limit=8)
    assert s.feed(b"12345678\r\nabc") == [(b"12345678", True)]
    assert s.feed(b"defghijklmn\nok\n") == [(b"abcdefgh", False), (b"ijklmn", False), (b"ok", True)]
    assert s.feed(b"123456789") == []
    assert s.feed(b"\n") == [(b"12345678", False), (b"9", False)]
    assert s.feed(b"x" * 16 + b"\r\n") == [(b"x" * 8, False), (b"x" * 8, False)]
    assert s.feed(b"y" * 8 + b"\r\r\r\n") == [(b"y" * 8, False)]  # no empty line after a cut
    assert s.feed(b"tail") == []
    assert s.rest() == b"tail" and s.rest() == b""


def test_session_notes_for_a_clip_build():
    session = M.Session()
    lines = ["clip=0 hop=0 t_ms=32 top=beep score=30000 det=beep dsp_us=0 inf_us=0 ovr=0 q=127,-128",
             "clip=0 end",
             "clip=1 hop=0 t_ms=32 top=background score=32000 det=- dsp_us=0 inf_us=0 ovr=0 q=-128,127",
             "clip=1 end", "mf done"]
    notes = [n for ln in lines for n in session.update(M.classify(ln))]
    assert notes == [M.Note("detect", "clip=0 hop=0 t_ms=32: DETECT beep (top=beep score=0.92)"),
                     M.Note("release", "clip=0 end: release beep"),
                     M.Note("text", "clip=1 end"), M.Note("text", "mf done")]
    assert (session.lines, session.hops, session.detections, session.unparsed) == (5, 2, 1, 0)


def test_session_summary_every_50_hops_with_the_budget():
    session = M.Session()
    session.update(M.classify(READY.decode().strip()))
    summaries = []
    for i in range(120):
        hop = M.classify(f"hop={i} t_ms={i * 32} top=alarm score=16384 det=- dsp_us=1000 "
                         f"inf_us=7000 ovr=0 q=0,0")
        summaries += [n.text for n in session.update(hop) if n.kind == "summary"]
    assert summaries == [
        "hop=49 t_ms=1568: top=alarm score=0.50 det=- dsp_us=1000 inf_us=7000 "
        "(25% of hop_us=32000) ovr=0 | hops=50 detections=0",
        "hop=99 t_ms=3168: top=alarm score=0.50 det=- dsp_us=1000 inf_us=7000 "
        "(25% of hop_us=32000) ovr=0 | hops=100 detections=0"]


def test_session_ovr_baseline_without_a_ready_line():
    session = M.Session()
    hop = "hop={} t_ms=1 top=a score=1 det=- dsp_us=1 inf_us=1 ovr={} q=0,0"
    assert session.update(M.classify(hop.format(0, 512))) == [
        M.Note("ovr", "hop=0 t_ms=1: ovr=512 (samples lost before monitoring began)")]
    assert session.update(M.classify(hop.format(1, 512))) == []
    assert session.update(M.classify(hop.format(2, 600))) == [
        M.Note("ovr", "hop=2 t_ms=1: ovr=600, 88 samples lost")]
    assert session.lost == 88


def test_session_notes_escape_device_text():
    session = M.Session()
    notes = session.update(M.classify("hop=0 t_ms=1 top=a\x1b[2J score=1 det=a\x1b[2J dsp_us=1 "
                                      "inf_us=1 ovr=0 q=0,0"))
    assert notes == [M.Note("detect", "hop=0 t_ms=1: DETECT a\\x1b[2J (top=a\\x1b[2J score=0.00)")]


def test_csv_log_rows():
    out = io.StringIO()
    log = M.CsvLog(out)
    log.write(M.classify("clip=2 hop=7 t_ms=256 top=beep score=-3 det=beep dsp_us=5 inf_us=6 "
                         "ovr=0 q=1,-2"), "2024-01-02T03:04:05.678Z")
    log.write(M.Text("bad\x1bline"), "2024-01-02T03:04:05.679Z")
    assert out.getvalue() == ('2024-01-02T03:04:05.678Z,hop,7,256,2,beep,-3,beep,5,6,0,"1,-2",\r\n'
                              '2024-01-02T03:04:05.679Z,text,,,,,,,,,,,bad\\x1bline\r\n')


# ---------------------------------------------------------------------------- the live panel

def test_panel_shows_state_and_never_reads_device_text_as_markup():
    session = M.Session()
    for ln in [READY.decode().strip(),
               "hop=0 t_ms=5384 top=[bold]x score=31457 det=[bold]x dsp_us=1256 inf_us=29744 "
               "ovr=0 q=127,-128",
               "hop=1 t_ms=5416 top=[bold]x score=16384 det=[bold]x dsp_us=1256 inf_us=29744 "
               "ovr=300 q=127,-128",
               "\x1b[2Jnoise", "mf error: Invoke failed", "mf error: Invoke failed"]:
        session.update(M.classify(ln))
    console = Console(width=100, file=io.StringIO(), color_system=None, record=True)
    console.print(M.panel(session, "/dev/ttyACM0"))
    rows = [ln.strip("│ ") for ln in console.export_text().splitlines()]
    assert "hop  hop=1 t_ms=5416" in rows
    assert "top  [bold]x          " + "█" * 15 + "░" * 15 + " 0.50" in rows
    assert "detection   DETECT [bold]x" in rows
    assert "time  dsp 1256 us + inf 29744 us = 31000 us  97% of the 32000 us hop" in rows
    assert "ovr  300 (+300 while monitored: samples lost)" in rows
    assert "counts  6 lines, 2 hops, 1 detections, 1 unparseable" in rows
    assert "error  mf error: Invoke failed (x2)" in rows
    assert "unparseable  \\x1b[2Jnoise" in rows


# ---------------------------------------------------------------------------- the command

@pytest.fixture
def device(monkeypatch):
    """A pseudo-terminal playing the device: play(log) starts writing WRITES once the monitor
    has opened the port (it creates the log right after; opening flushes the input), each
    write after the monitor has read the one before (so SPLIT arrives in two reads), then
    closes the master side: a disconnect. Yields the slave's path and `play`."""
    master, slave = os.openpty()
    fed = [0]

    class Counting(M.LineSplitter):
        def feed(self, data):
            fed[0] += len(data)
            return super().feed(data)

    monkeypatch.setattr(M, "LineSplitter", Counting)

    def wait(done, what):
        deadline = time.monotonic() + 10
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.005)

    def play(log):
        try:
            wait(log.exists, "the monitor to open the port")
            written = 0
            for chunk in WRITES:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(master, view):]
                written += len(chunk)
                wait(lambda: fed[0] == written, "the monitor to read")
        finally:
            os.close(master)

    threads = []

    def start(log):
        t = threading.Thread(target=play, args=(log,), daemon=True)
        t.start()
        threads.append(t)

    yield os.ttyname(slave), start
    for t in threads:
        t.join(10)
    os.close(slave)


def test_monitor_pty_to_disconnect(device, tmp_path, capsys):
    port, start = device
    log = tmp_path / "run.csv"
    start(log)
    assert _run(["--port", port, "--log", str(log)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "mf ready board=pico arena=30720 used=27412 model=19384 hop_us=32000",
        "hop=1 t_ms=5416: DETECT alarm (top=alarm score=0.75)",
        "hop=2 t_ms=5448: ovr=256, 256 samples lost",
        "hop=3 t_ms=5480: release alarm",
        "?? \\x00\ufffd\\x1b[2J\ufffd\\x7f",
        "?? " + "\ufffd" * 4096,
        "?? " + "\ufffd" * 904,
        "mf error: Invoke failed",
        "?? hop=5 t_ms=55"]
    assert err == f"{port}: disconnected after 12 lines\n"

    rows = _read_log(log)
    assert list(rows[0]) == list(M.LOG_COLUMNS)
    assert [r["kind"] for r in rows] == ["ready"] + ["hop"] * 4 + ["text", "hop", "text", "text",
                                                                   "error", "error", "text"]
    assert all(HOST_TIME.fullmatch(r["host_time"]) for r in rows)
    assert [r["host_time"] for r in rows] == sorted(r["host_time"] for r in rows)
    assert rows[3] == {**rows[3], "hop": "2", "t_ms": "5448", "clip": "", "top": "alarm",
                       "score": "31457", "det": "alarm", "dsp_us": "1260", "inf_us": "2691",
                       "ovr": "256", "q": "127,-128", "text": ""}
    assert rows[6] == {**rows[6], "hop": "4", "top": "background", "score": "28000", "det": "-",
                       "q": "-128,127"}
    assert rows[0]["text"] == READY.decode().strip() and rows[0]["hop"] == ""
    assert rows[5]["text"] == "\\x00\ufffd\\x1b[2J\ufffd\\x7f"
    assert [len(rows[i]["text"]) for i in (7, 8)] == [4096, 904]
    assert rows[9]["text"] == rows[10]["text"] == "mf error: Invoke failed"
    assert rows[11]["text"] == "hop=5 t_ms=55"
    assert '"127,-128"' in log.read_text()


def test_monitor_missing_port_lists_ports(monkeypatch, tmp_path, capsys):
    from serial.tools import list_ports
    monkeypatch.setattr(list_ports, "comports", lambda: [
        SimpleNamespace(device="/dev/ttyS0", description="n/a"),
        SimpleNamespace(device="/dev/ttyACM0", description="Pico - Board CDC")])
    missing = str(tmp_path / "ttyACM9")
    log = tmp_path / "run.csv"
    assert _run(["--port", missing, "--log", str(log)]) == 2
    assert capsys.readouterr() == ("", f"{missing}: no such serial port; ports present: "
                                       f"/dev/ttyACM0 (Pico - Board CDC), /dev/ttyS0\n")
    assert not log.exists()
    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert _run(["--port", missing]) == 2
    assert capsys.readouterr().err == f"{missing}: no such serial port; no serial ports found\n"


class FakePort:
    """pyserial's read and close over recorded chunks; then `end` is raised. With `watch`,
    each read first notes that file's lines (what the monitor has flushed so far)."""

    in_waiting = 0

    def __init__(self, chunks, end, watch=None):
        self.chunks, self.end, self.closed = list(chunks), end, False
        self.watch, self.seen = watch, []

    def read(self, size):
        if self.watch is not None:
            self.seen.append(len(self.watch.read_text().splitlines()))
        if self.chunks:
            return self.chunks.pop(0)
        raise self.end

    def close(self):
        self.closed = True


def test_monitor_ctrl_c_is_quiet_and_keeps_the_log(monkeypatch, tmp_path, capsys):
    log = tmp_path / "run.csv"
    port = FakePort([READY + HOPS, PARTIAL], KeyboardInterrupt(), watch=log)
    monkeypatch.setattr(M, "open_port", lambda name, baud: port)
    assert _run(["--port", "fake", "--log", str(log)]) == 130
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "mf ready board=pico arena=30720 used=27412 model=19384 hop_us=32000",
        "hop=1 t_ms=5416: DETECT alarm (top=alarm score=0.75)",
        "hop=2 t_ms=5448: ovr=256, 256 samples lost",
        "hop=3 t_ms=5480: release alarm"]
    assert err == ""
    rows = _read_log(log)
    assert [r["kind"] for r in rows] == ["ready", "hop", "hop", "hop", "hop", "text"]
    assert rows[-1]["text"] == "hop=5 t_ms=55"
    assert port.seen == [1, 6, 6]  # each row flushed as it is written: header, 5 lines
    assert port.closed


def test_monitor_refuses_to_overwrite_a_log(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(M, "open_port", lambda name, baud: pytest.fail("port opened"))
    log = tmp_path / "run.csv"
    log.write_text("keep me\n")
    assert _run(["--port", "fake", "--log", str(log)]) == 2
    assert capsys.readouterr().err == (f"{log}: exists; not overwriting it (--append adds to it, "
                                       f"or give another --log file)\n")
    assert log.read_text() == "keep me\n"


def test_monitor_append(monkeypatch, tmp_path, capsys):
    import serial
    log = tmp_path / "run.csv"
    for _ in range(2):
        port = FakePort([READY], serial.SerialException("read failed: [Errno 5] I/O error"))
        monkeypatch.setattr(M, "open_port", lambda name, baud: port)
        assert _run(["--port", "fake", "--log", str(log), "--append"]) == 1
    assert capsys.readouterr().err == "fake: disconnected after 1 lines\n" * 2
    assert log.read_text().count("host_time") == 1
    assert [r["kind"] for r in _read_log(log)] == ["ready", "ready"]

    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    port = FakePort([], OSError())
    assert _run(["--port", "fake", "--log", str(other), "--append"]) == 2
    assert capsys.readouterr().err == (f"{other}: not a micforge monitor log (its first line is "
                                       f"not '{','.join(M.LOG_COLUMNS)}'); give another --log "
                                       f"file\n")
    assert other.read_text() == "a,b\n1,2\n" and port.closed


def test_live_view_prints_events_above_the_panel():
    console = Console(width=100, file=io.StringIO(), force_terminal=True, color_system=None)
    session = M.Session()
    with M.LiveView("fake", console) as view:
        M.pump(FakePort([READY + HOPS], OSError()), session, view, now=lambda: "t")
    text = console.file.getvalue()
    for note in ["DETECT alarm (top=alarm score=0.75)", "hop=3 t_ms=5480: release alarm",
                 "micforge monitor fake", "5 lines, 4 hops, 1 detections, 0 unparseable"]:
        assert note in text
    assert session.lines == 5
