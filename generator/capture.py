"""`micforge capture`: labelled clips recorded with the board's own microphone.

The board runs the capture firmware of a variant (firmware/<variant>-capture/: the detector's
microphone driver, pins and rate, streaming samples in generator.wire frames). This module reads
those frames from a serial port, cuts the stream into windows of `seconds` and writes each
complete window as a WAV into the spec's dataset, under the class folder:

    <dataset root>/<label>/<recording>_t<offset>.wav

`<recording>` is one id per capture session (cap-<variant>-<UTC time>), `<offset>` the window's
start in seconds since the session's first sample: the names follow the dataset's grouping
rules (generator.dataset: the recording is the stem without `_t<offset>`), so every window of a
session lands in the same split and cross-validation fold, and windows of different sessions
are different recordings. The next `micforge build` indexes them like any other file.

Nothing is written that was not heard whole: a window with lost samples (a frame that failed its
CRC or never came, a device overrun or an unsent frame) is dropped and reported, and the
windows go on at their fixed places on the device's sample clock; a window cut short by a
disconnect or Ctrl-C is never written. A WAV is written to a hidden temporary file and linked to
its name, so a file is complete or absent, and an existing file is never replaced.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .wire import U32, Deframer, Frame

FULL_SCALE = 32767
CLIP_LEVEL = 32767  # a sample at +32767 or -32768 is clipped (or about to be)


class CaptureError(Exception):
    """A problem the user fixes (wrong port, label, firmware); the message says how."""


@dataclass(frozen=True)
class Window:
    index: int          # k: samples [k * size, (k + 1) * size) of the session
    samples: np.ndarray | None  # None: lost
    lost: int = 0       # samples missing (lost windows)
    cause: str = ""


@dataclass
class Level:
    """Level of the last frame and clipping so far, for the meter."""

    peak_dbfs: float = -math.inf
    rms_dbfs: float = -math.inf
    clipped: int = 0          # samples at full scale in the session
    clipped_window: int = 0   # in the window being recorded

    def update(self, samples: np.ndarray) -> None:
        x = samples.astype(np.float64)
        peak = float(np.max(np.abs(x))) if len(x) else 0.0
        rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
        self.peak_dbfs = 20 * math.log10(peak / FULL_SCALE) if peak else -math.inf
        self.rms_dbfs = 20 * math.log10(rms / FULL_SCALE) if rms else -math.inf
        n = int(np.count_nonzero((samples >= CLIP_LEVEL) | (samples <= -CLIP_LEVEL - 1)))
        self.clipped += n
        self.clipped_window += n


@dataclass
class Windower:
    """Frames in stream order in, complete or lost windows out.

    Windows sit at fixed places on the device's sample clock, counted from the first frame's
    `first`; lost audio (a jump in `first`, or a frame flagged GAP) marks the windows it
    touches as lost, whatever arrives around it.
    """

    size: int
    start: int | None = None   # device sample index of the session's sample 0
    pos: int = 0               # next sample of the session expected
    lost_total: int = 0
    lost_device: int = 0       # of which the device reported (overrun + unsent)
    _buf: np.ndarray = field(default=None)
    _lost_here: int = 0
    _causes: set = field(default_factory=set)
    _last: Frame | None = None

    def __post_init__(self):
        self._buf = np.zeros(self.size, dtype=np.int16)

    def push(self, frame: Frame) -> list[Window]:
        out: list[Window] = []
        if self.start is None:
            self.start = frame.first
        at = (frame.first - self.start) % U32 + (self.pos // U32) * U32  # unwrap the u32 clock
        if at < self.pos:  # an old or repeated frame (a replay after a reconnect): nothing new
            return out
        if at > self.pos:
            missing = at - self.pos
            device = 0
            if self._last is not None:
                device = ((frame.overrun - self._last.overrun) % U32
                          + (frame.unsent - self._last.unsent) % U32)
            cause = ("device" if device >= missing else
                     "link" if device == 0 else "device+link")
            self.lost_device += min(device, missing)
            self._lose(missing, cause, out)
        self._last = frame
        if frame.gap:
            self.lost_device += len(frame.samples)
            self._lose(len(frame.samples), "device", out)
        else:
            self._take(frame.samples, out)
        return out

    def _lose(self, n: int, cause: str, out: list[Window]) -> None:
        self.lost_total += n
        while n > 0:
            take = min(n, self.size - self.pos % self.size)
            self._lost_here += take
            self._causes.add(cause)
            self.pos += take
            n -= take
            self._close_if_full(out)

    def _take(self, x: np.ndarray, out: list[Window]) -> None:
        while len(x):
            off = self.pos % self.size
            take = min(len(x), self.size - off)
            self._buf[off:off + take] = x[:take]
            self.pos += take
            x = x[take:]
            self._close_if_full(out)

    def _close_if_full(self, out: list[Window]) -> None:
        if self.pos % self.size:
            return
        k = self.pos // self.size - 1
        if self._lost_here:
            out.append(Window(k, None, self._lost_here, "+".join(sorted(self._causes))))
        else:
            out.append(Window(k, self._buf.copy()))
        self._lost_here = 0
        self._causes = set()

    @property
    def partial_seconds_samples(self) -> int:
        """Samples of the window being recorded (dropped if the session ends now)."""
        return self.pos % self.size


def recording_id(variant: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"cap-{variant}-{now:%Y%m%dT%H%M%SZ}"


def window_name(recording: str, offset_ms: int) -> str:
    """`<recording>_t<seconds>.wav`, the offset exact to the millisecond (windows are a whole
    number of milliseconds long)."""
    return f"{recording}_t{offset_ms // 1000:04d}.{offset_ms % 1000:03d}.wav"


def unique_recording(folder: Path, recording: str) -> str:
    """`recording`, or `recording-2`, -3...: no file of the folder starts with it."""
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    candidate, n = recording, 1
    while any(name.startswith(candidate + "_t") for name in names):
        n += 1
        candidate = f"{recording}-{n}"
    return candidate


def write_window(folder: Path, name: str, samples: np.ndarray, rate: int) -> Path:
    """Write a WAV atomically and never over an existing file."""
    import soundfile as sf
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f".{name}.{os.getpid()}.partial"
    try:
        sf.write(tmp, samples, rate, subtype="PCM_16", format="WAV")
        os.link(tmp, final)  # fails if `final` exists: nothing is replaced
    except FileExistsError:
        raise CaptureError(f"{final} exists already; not overwritten") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


@dataclass
class Session:
    """One capture run: where windows go and what happened."""

    folder: Path
    recording: str
    rate: int
    seconds: float
    count: int
    written: list[Path] = field(default_factory=list)
    paths: dict[int, Path] = field(default_factory=dict)  # window index -> its WAV
    lost: list[Window] = field(default_factory=list)
    level: Level = field(default_factory=Level)
    deframer: Deframer = field(default_factory=Deframer)
    windower: Windower = field(default=None)
    frames: int = 0

    def __post_init__(self):
        self.windower = Windower(round(self.seconds * self.rate))

    @property
    def done(self) -> bool:
        return len(self.written) >= self.count

    def feed(self, data: bytes) -> list[Window]:
        """Bytes from the port in; the windows this completed (written or lost) out."""
        closed = []
        for frame in self.deframer.feed(data):
            if frame.rate != self.rate:
                raise CaptureError(
                    f"the board streams {frame.rate} Hz; the spec records at {self.rate} Hz: "
                    f"flash the capture firmware built from this spec")
            self.frames += 1
            self.level.update(frame.samples)
            for w in self.windower.push(frame):
                if self.done:
                    break
                closed.append(w)
                if w.samples is None:
                    self.lost.append(w)
                else:
                    name = window_name(self.recording, w.index * round(self.seconds * 1000))
                    self.paths[w.index] = write_window(self.folder, name, w.samples, self.rate)
                    self.written.append(self.paths[w.index])
                self.level.clipped_window = 0
            if self.done:
                break
        return closed


def run(session: Session, port, timeout_s: float = 3.0, show=None) -> None:
    """Read `port` into `session` until it has `count` windows. Raises CaptureError on a
    disconnect, on silence longer than `timeout_s`, or on frames of another rate; `show(session,
    closed)` is called after every read (the meter)."""
    from .serialport import read_available
    last_data = time.monotonic()
    while not session.done:
        try:
            data = read_available(port)
        except OSError as exc:
            raise CaptureError(f"{port.port}: disconnected ({exc})") from None
        now = time.monotonic()
        if data:
            last_data = now
        elif now - last_data > timeout_s:
            if session.frames == 0:
                seen = session.deframer.text[-3:]
                said = f"; it printed: {' | '.join(seen)}" if seen else ""
                raise CaptureError(
                    f"{port.port}: no capture frames in {timeout_s:g} s{said}: is the capture "
                    f"firmware flashed (firmware/<variant>-capture/)?")
            raise CaptureError(f"{port.port}: no data for {timeout_s:g} s (board reset or "
                               f"unplugged?)")
        closed = session.feed(data) if data else []
        if show is not None:
            show(session, closed)


# ------------------------------------------------------------------------- the command

def _meter(session: Session, width: int = 30) -> str:
    """`window 3/10 [#####.....] peak -6.1 dBFS rms -23.4 dBFS` and warnings."""
    lv, w = session.level, session.windower
    frac = w.partial_seconds_samples / w.size
    bar = "#" * round(frac * width) + "." * (width - round(frac * width))
    loud = max(0.0, min(1.0, (lv.peak_dbfs + 60) / 60)) if lv.peak_dbfs > -math.inf else 0.0
    level = "|" * round(loud * 20) + " " * (20 - round(loud * 20))
    text = (f"window {len(session.written) + 1}/{session.count} [{bar}] "
            f"level [{level}] peak {lv.peak_dbfs:6.1f} dBFS")
    if lv.clipped_window:
        text += f"  CLIPPING: {lv.clipped_window} samples at full scale, move away or lower the gain"
    if w.lost_total:
        text += f"  lost {w.lost_total} samples"
    return text


def _report_closed(session: Session, closed: list[Window], echo) -> None:
    for w in closed:
        t = w.index * round(session.seconds * 1000) / 1000
        if w.samples is None:
            echo(f"  t={t:g} s: lost {w.lost} samples ({w.cause}); window not written")
        else:
            peak = int(np.max(np.abs(w.samples.astype(np.int32))))
            echo(f"  t={t:g} s: {session.paths[w.index].name} "
                 f"(peak {20 * math.log10(max(peak, 1) / FULL_SCALE):.1f} dBFS)")


def cmd_capture(args) -> int:
    import sys

    from .boards import load_board
    from .errors import SpecError
    from .serialport import PortError, open_port
    from .spec import load_spec
    from .targets import FAMILIES, has_capture

    def fail(message: str, status: int = 2) -> int:
        print(f"micforge capture: {message}", file=sys.stderr)
        return status

    try:
        project = load_spec(args.spec, args.spec)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    spec = project.spec
    target = next((t for t in spec.targets if t.name == args.variant), None)
    if target is None:
        return fail(f"{args.spec}: no variant '{args.variant}'; variants: "
                    f"{', '.join(t.name for t in spec.targets)}")
    board = load_board(target.board)
    if not has_capture(board):
        return fail(f"variant '{target.name}' ({board.title}): no capture firmware for "
                    f"{board.soc} boards")
    if args.label not in spec.classes:
        return fail(f"'{args.label}' is not a class of {args.spec}; classes: "
                    f"{', '.join(spec.classes)}")
    if spec.dataset.layout != "folders":
        return fail(f"{args.spec}: dataset layout '{spec.dataset.layout}'; capture writes into "
                    f"a folder-per-class dataset (layout: folders)")
    seconds = args.seconds if args.seconds is not None else spec.audio.clip_seconds
    if seconds <= 0 or args.count < 1 or abs(seconds * 1000 - round(seconds * 1000)) > 1e-6:
        return fail("--seconds must be > 0 and a whole number of milliseconds, --count >= 1")
    folder = project.resolve(spec.dataset.root) / args.label
    recording = unique_recording(folder, recording_id(target.name))
    try:
        port = open_port(args.port, args.baud or FAMILIES[board.soc].capture_baud)
    except PortError as exc:
        return fail(str(exc))
    session = Session(folder, recording, spec.audio.sample_rate, seconds, args.count)
    echo = print
    live = None
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.live import Live
        console = Console()
        live = Live(console=console, refresh_per_second=8, transient=True)
        live.start()
        echo = console.print

    def show(s: Session, closed: list[Window]) -> None:
        _report_closed(s, closed, echo)
        if live is not None:
            live.update(_meter(s))

    echo(f"recording '{args.label}' from {args.port}: {args.count} x {seconds:g} s into "
         f"{folder}/{recording}_t*.wav (Ctrl-C stops; a partial window is not kept)")
    status = 0
    try:
        run(session, port, args.timeout, show)
    except CaptureError as exc:
        status = fail(str(exc), 2 if session.frames == 0 else 1)
    except KeyboardInterrupt:
        status = 130
    finally:
        if live is not None:
            live.stop()
        port.close()
    w = session.windower
    lost = f", {w.lost_total} samples lost ({w.lost_device} on the device)" if w.lost_total else ""
    partial = w.partial_seconds_samples if not session.done else 0
    dropped = f"; the partial window ({partial / session.rate:.2f} s) was not written" \
        if partial and status else ""
    bad = (f"; {session.deframer.crc_errors} frames failed their CRC"
           if session.deframer.crc_errors else "")
    print(f"{len(session.written)} of {args.count} windows written, {len(session.lost)} "
          f"dropped{lost}{bad}{dropped}", file=sys.stderr if status else sys.stdout)
    if session.level.clipped:
        print(f"warning: {session.level.clipped} samples clipped at full scale", file=sys.stderr)
    return status


def register(sub) -> None:
    c = sub.add_parser(
        "capture", help="record labelled clips with the board's microphone (capture firmware)",
        description="Read the capture firmware's frames (firmware/<variant>-capture/) from "
                    "PORT and write --count windows of --seconds as WAVs into the spec's "
                    "dataset, under the class folder. Windows with lost samples are dropped "
                    "and reported; existing files are never replaced.")
    c.add_argument("spec")
    c.add_argument("--variant", required=True, help="the variant whose capture firmware runs")
    c.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0 or COM5")
    c.add_argument("--label", required=True, help="the class the recording is of")
    c.add_argument("--seconds", type=float, help="window length (default: audio.clip_seconds)")
    c.add_argument("--count", type=int, default=10, help="windows to write (default 10)")
    c.add_argument("--baud", type=int, help="serial baud rate (default: the board's capture "
                                            "link; USB CDC ignores it)")
    c.add_argument("--timeout", type=float, default=3.0,
                   help="seconds without data before giving up (default 3)")
    c.set_defaults(func=cmd_capture)
