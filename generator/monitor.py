"""`micforge monitor`: a detector's serial output, live in the terminal and as a CSV log.

Takes a serial port (USB CDC or UART) on which a micforge firmware prints what
templates/common/main.cpp prints: at boot "mf ready board=<id> arena=<n> used=<n> model=<n>
hop_us=<n>[ key=value...]", or "mf error: <why>" every second when it cannot start, then one
line per hop:

    [clip=<i> ]hop=<n> t_ms=<ms> top=<class> score=<q15> det=<class|-> dsp_us=<us> inf_us=<us> \
        ovr=<samples lost since boot> q=<int8 outputs,...>

(clip builds also print "clip=<i> end" and "mf done"; `micforge simulate` prints the same hop
lines). Produces a live view when stdout is a terminal (rich), otherwise one plain line per
event (detection onset and release, device errors, unparseable lines, samples lost, a summary
every SUMMARY_EVERY hops), and with --log a CSV file with one row per line received.

The core knows nothing of the display: `parse_line` (the hop line's one parser in the
repository) and `classify` turn a line into a Hop, Ready, DeviceError or Text; `LineSplitter`
cuts bytes into lines (at most MAX_LINE bytes each); `Session` holds what has been seen and
says which notes each line deserves; `CsvLog` writes the rows; `pump` is the read loop.
`PlainView` and `LiveView` show notes and session; `register` adds the subcommand to the CLI.

Exit statuses: 1 when the port disconnects (device unplugged or reset), 2 for a port that
cannot be opened or a log file that exists (without --append), 130 on Ctrl-C. The log is
flushed after every row, so it is complete up to the moment the monitor stops.
"""

from __future__ import annotations

import csv
import re
import sys
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple, TextIO

from .serialport import PortError, open_port, read_available

DEFAULT_BAUD = 115200
MAX_LINE = 4096         # bytes; a longer "line" is garbage (wrong baud rate, noise) and is cut
SUMMARY_EVERY = 50      # hops between plain-text summaries

Q15 = 32768
RECENT = 5              # unparseable lines the live view keeps

LOG_COLUMNS = ("host_time", "kind", "hop", "t_ms", "clip", "top", "score", "det", "dsp_us",
               "inf_us", "ovr", "q", "text")

# main.cpp's printf, key for key. Class names may hold spaces (the spec allows any name that
# makes a C identifier), so top and det end at the next key rather than at a space.
HOP_LINE = re.compile(
    r"(?:clip=(?P<clip>\d+) )?hop=(?P<hop>\d+) t_ms=(?P<t_ms>\d+) top=(?P<top>.+?) "
    r"score=(?P<score>-?\d+) det=(?P<det>.+?) dsp_us=(?P<dsp_us>\d+) inf_us=(?P<inf_us>\d+) "
    r"ovr=(?P<ovr>\d+) q=(?P<q>-?\d+(?:,-?\d+)*)")
CLIP_END = re.compile(r"clip=\d+ end")
READY_INTS = ("arena", "used", "model", "hop_us")


# ---------------------------------------------------------------------------- lines

@dataclass(frozen=True)
class Hop:
    """One hop line, its values as printed (det None for '-')."""
    hop: int
    t_ms: int
    top: str
    score: int
    det: str | None
    dsp_us: int
    inf_us: int
    ovr: int
    q: tuple[int, ...]
    clip: int | None = None

    @property
    def where(self) -> str:
        clip = f"clip={self.clip} " if self.clip is not None else ""
        return f"{clip}hop={self.hop} t_ms={self.t_ms}"


@dataclass(frozen=True)
class Ready:
    """The boot line: sizes in bytes, the hop's budget in microseconds, board-specific extras."""
    board: str
    arena: int
    used: int
    model: int
    hop_us: int
    extra: tuple[tuple[str, str], ...]
    text: str


@dataclass(frozen=True)
class DeviceError:
    why: str
    text: str


@dataclass(frozen=True)
class Text:
    """Any other line: `known` for the clip builds' "clip=<i> end" and "mf done", else
    unparseable (garbage, a cut or partial line, a format this monitor does not know)."""
    text: str
    known: bool = False


Line = Hop | Ready | DeviceError | Text


def parse_line(text: str) -> Hop | None:
    """A hop line's values, or None for any other line."""
    m = HOP_LINE.fullmatch(text.rstrip("\r\n"))
    if not m:
        return None
    return Hop(hop=int(m["hop"]), t_ms=int(m["t_ms"]), top=m["top"], score=int(m["score"]),
               det=None if m["det"] == "-" else m["det"], dsp_us=int(m["dsp_us"]),
               inf_us=int(m["inf_us"]), ovr=int(m["ovr"]),
               q=tuple(int(v) for v in m["q"].split(",")),
               clip=None if m["clip"] is None else int(m["clip"]))


def _parse_ready(text: str) -> Ready | None:
    if not text.startswith("mf ready "):
        return None
    pairs = [token.partition("=") for token in text[len("mf ready "):].split()]
    if any(not key or not sep for key, sep, _ in pairs):
        return None
    values = {key: value for key, _, value in pairs}
    if "board" not in values or not all(values.get(k, "").isdigit() for k in READY_INTS):
        return None
    extra = tuple((k, v) for k, _, v in pairs if k != "board" and k not in READY_INTS)
    return Ready(board=values["board"], extra=extra, text=text,
                 **{k: int(values[k]) for k in READY_INTS})


def classify(text: str) -> Line:
    """What a whole line (without its line end) is."""
    hop = parse_line(text)
    if hop is not None:
        return hop
    ready = _parse_ready(text)
    if ready is not None:
        return ready
    if text.startswith("mf error:"):
        return DeviceError(text[len("mf error:"):].strip(), text)
    return Text(text, known=text == "mf done" or bool(CLIP_END.fullmatch(text)))


def printable(text: str) -> str:
    """`text` safe to show on a terminal: control and format characters (escape sequences,
    NUL, bidi overrides) as Python escapes."""
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


class LineSplitter:
    """Bytes in, lines out, as (bytes without the line end, whole) pairs. A line longer than
    `limit` bytes is cut into pieces of `limit`; the pieces and the rest of that line are not
    whole (shown as unparseable, never parsed)."""

    def __init__(self, limit: int = MAX_LINE):
        self._buf = bytearray()
        self._limit = limit
        self._cut = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        self._buf += data
        out = []
        while True:
            end = self._buf.find(b"\n", 0, self._limit + 2)  # room for CR LF
            line = bytes(self._buf[:end]).rstrip(b"\r") if end >= 0 else None
            if line is not None and len(line) <= self._limit:
                if line or not self._cut:  # not the bare line end after a cut
                    out.append((line, not self._cut))
                del self._buf[:end + 1]
                self._cut = False
            elif len(self._buf) > self._limit + 1:
                out.append((bytes(self._buf[:self._limit]), False))
                del self._buf[:self._limit]
                self._cut = True
            else:
                return out

    def rest(self) -> bytes:
        """The partial line left (at a disconnect), and forget it."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


# ---------------------------------------------------------------------------- state

class Note(NamedTuple):
    """A plain-text line about an event (safe to print: `printable`); kind: ready, error,
    detect, release, ovr, text, unparsed or summary."""
    kind: str
    text: str


def _note(kind: str, text: str) -> Note:
    return Note(kind, printable(text))


@dataclass
class Session:
    """What the monitor has seen since it started. ovr counts since the device booted, so
    a Ready line resets the baseline; `lost` is what the device lost while monitored."""
    lines: int = 0
    hops: int = 0
    detections: int = 0
    unparsed: int = 0
    ready: Ready | None = None
    last: Hop | None = None
    det: str | None = None
    ovr_base: int | None = None
    lost: int = 0
    error: str | None = None
    error_repeats: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT))

    def update(self, line: Line) -> list[Note]:
        self.lines += 1
        if not isinstance(line, DeviceError):
            self.error_repeats = 0
        if isinstance(line, Hop):
            return self._hop(line)
        if isinstance(line, Ready):
            self.ready, self.det, self.ovr_base, self.error = line, None, 0, None
            return [_note("ready", line.text)]
        if isinstance(line, DeviceError):
            # halt() repeats its line every second: say it once, count the rest
            repeat = self.error == line.why and self.error_repeats > 0
            self.error, self.error_repeats = line.why, self.error_repeats + 1 if repeat else 1
            return [] if repeat else [_note("error", line.text)]
        if line.known:
            if self.det is not None and CLIP_END.fullmatch(line.text):
                # the device resets its detector for the next clip
                release, self.det = _note("release", f"{line.text}: release {self.det}"), None
                return [release]
            return [_note("text", line.text)]
        self.unparsed += 1
        self.recent.append(printable(line.text))
        return [_note("unparsed", "?? " + line.text)]

    def _hop(self, h: Hop) -> list[Note]:
        notes = []
        self.hops += 1
        self.last = h
        if self.ovr_base is None and h.ovr > 0:
            notes.append(_note("ovr", f"{h.where}: ovr={h.ovr} (samples lost before monitoring "
                                      f"began)"))
        elif self.ovr_base is not None and h.ovr > self.ovr_base:
            self.lost += h.ovr - self.ovr_base
            notes.append(_note("ovr", f"{h.where}: ovr={h.ovr}, {h.ovr - self.ovr_base} "
                                      f"samples lost"))
        self.ovr_base = h.ovr
        if h.det != self.det:
            if self.det is not None:
                notes.append(_note("release", f"{h.where}: release {self.det}"))
            if h.det is not None:
                self.detections += 1
                notes.append(_note("detect", f"{h.where}: DETECT {h.det} "
                                             f"(top={h.top} score={h.score / Q15:.2f})"))
            self.det = h.det
        if self.hops % SUMMARY_EVERY == 0:
            notes.append(_note("summary", f"{h.where}: top={h.top} score={h.score / Q15:.2f} "
                                          f"det={h.det or '-'} dsp_us={h.dsp_us} "
                                          f"inf_us={h.inf_us}{self._budget(h)} ovr={h.ovr} | "
                                          f"hops={self.hops} detections={self.detections}"))
        return notes

    def _budget(self, h: Hop) -> str:
        if self.ready is None or self.ready.hop_us <= 0:
            return ""
        return f" ({self.busy_percent(h):.0f}% of hop_us={self.ready.hop_us})"

    def busy_percent(self, h: Hop) -> float | None:
        """dsp_us + inf_us as a percentage of the hop (None before a Ready line)."""
        if self.ready is None or self.ready.hop_us <= 0:
            return None
        return 100 * (h.dsp_us + h.inf_us) / self.ready.hop_us


# ---------------------------------------------------------------------------- the log

class LogError(Exception):
    pass


def _exists(path: Path) -> str:
    return f"{path}: exists; not overwriting it (--append adds to it, or give another --log file)"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CsvLog:
    """One row per line (LOG_COLUMNS), flushed as written. `text` holds the line itself for
    every kind but hop (whose values have their columns); control characters are escaped."""

    def __init__(self, file: TextIO):
        self._file = file
        self._writer = csv.writer(file)

    @classmethod
    def open(cls, path: Path, append: bool = False) -> CsvLog:
        """A new log at `path`, or with `append` the end of an existing monitor log; LogError
        for a file that exists (without `append`) or is not a monitor log."""
        header = ",".join(LOG_COLUMNS)
        try:
            if not append:
                file = open(path, "x", newline="", encoding="utf-8")
            else:
                file = open(path, "a+", newline="", encoding="utf-8")
                file.seek(0)
                first = file.readline().rstrip("\r\n")
                if first and first != header:
                    file.close()
                    raise LogError(f"{path}: not a micforge monitor log (its first line is not "
                                   f"'{header}'); give another --log file")
        except FileExistsError:
            raise LogError(_exists(path)) from None
        except OSError as exc:
            raise LogError(f"{path}: cannot write the log: {exc.strerror or exc}") from None
        log = cls(file)
        if file.tell() == 0:
            log._row(LOG_COLUMNS)
        return log

    def write(self, line: Line, host_time: str) -> None:
        if isinstance(line, Hop):
            self._row((host_time, "hop", line.hop, line.t_ms,
                       "" if line.clip is None else line.clip, printable(line.top), line.score,
                       printable(line.det or "-"), line.dsp_us, line.inf_us, line.ovr,
                       ",".join(map(str, line.q)), ""))
            return
        kind = {Ready: "ready", DeviceError: "error"}.get(type(line), "text")
        self._row((host_time, kind) + ("",) * (len(LOG_COLUMNS) - 3) + (printable(line.text),))

    def _row(self, values) -> None:
        self._writer.writerow(values)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------- the loop

def pump(port, session: Session, view, log: CsvLog | None = None, now=utc_now) -> None:
    """Read lines from `port` (pyserial's read / in_waiting) until it fails (a disconnect:
    pyserial raises SerialException, an OSError), recording each line in `session` and `log`
    and showing it in `view`. The partial line left at a disconnect is recorded and shown as
    unparseable; at Ctrl-C (KeyboardInterrupt, passed on) it is only recorded."""
    splitter = LineSplitter()

    def take(raw: bytes, whole: bool, show: bool = True) -> None:
        text = raw.decode("utf-8", errors="replace")
        line = classify(text) if whole else Text(text)
        notes = session.update(line)
        if log is not None:
            log.write(line, now())
        if show:
            view.show(session, notes)

    try:
        while True:
            try:
                data = read_available(port)
            except OSError:
                break
            for raw, whole in splitter.feed(data):
                take(raw, whole)
            view.idle(session)
    except KeyboardInterrupt:
        rest = splitter.rest()
        if rest:
            take(rest, False, show=False)
        raise
    rest = splitter.rest()
    if rest:
        take(rest, False)


class PlainView:
    """One line per note, flushed (for pipes, `tee`, CI logs)."""

    def __init__(self, out: TextIO):
        self._out = out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def show(self, session: Session, notes: list[Note]) -> None:
        for note in notes:
            print(note.text, file=self._out, flush=True)

    def idle(self, session: Session) -> None:
        pass


NOTE_STYLES = {"ready": "green", "error": "bold red", "detect": "bold red", "release": "yellow",
               "ovr": "bold red", "text": "", "unparsed": "dim"}


class LiveView:
    """A rich Live panel (`panel`) redrawn at most 10 times a second, with the notes (but the
    summaries, which the panel replaces) printed above it as a scrolling history."""

    def __init__(self, port_name: str, console=None):
        from rich.console import Console
        from rich.live import Live
        self._port = port_name
        self._live = Live(console=console or Console(), auto_refresh=False)
        self._drawn = 0.0
        self._heard = time.monotonic()
        self._session: Session | None = None

    def __enter__(self):
        self._live.start()
        self._live.update(panel(Session(), self._port), refresh=True)
        return self

    def __exit__(self, *exc):
        if self._session is not None:  # the last lines may not be drawn yet
            self._live.update(panel(self._session, self._port), refresh=True)
        self._live.stop()
        return False

    def show(self, session: Session, notes: list[Note]) -> None:
        from rich.text import Text as RichText
        self._heard = time.monotonic()
        for note in notes:
            if note.kind != "summary":
                self._live.console.print(RichText(note.text, style=NOTE_STYLES[note.kind]))
        self.idle(session)

    def idle(self, session: Session) -> None:
        self._session = session
        clock = time.monotonic()
        if clock - self._drawn >= 0.1:
            self._drawn = clock
            self._live.update(panel(session, self._port, clock - self._heard), refresh=True)


def _bar(fraction: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def panel(session: Session, port_name: str, quiet_s: float = 0.0):
    """The live view of `session`: a rich renderable."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text as RichText
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", justify="right")
    grid.add_column()
    r = session.ready
    if r is None:
        grid.add_row("board", RichText("no 'mf ready' line seen (printed at boot, and over USB "
                                       "again when the port is opened; on a UART reset the "
                                       "board to see it)", style="dim"))
    else:
        extra = "".join(f" {k}={v}" for k, v in r.extra)
        grid.add_row("board", RichText(printable(f"{r.board}  arena={r.arena} used={r.used} "
                                                 f"model={r.model} hop_us={r.hop_us}{extra}")))
    h = session.last
    if h is None:
        grid.add_row("hop", RichText("waiting for hop lines", style="dim"))
    else:
        grid.add_row("hop", RichText(h.where))
        grid.add_row("top", RichText(f"{printable(h.top):<16} {_bar(h.score / Q15)} "
                                     f"{h.score / Q15:.2f}"))
        grid.add_row("detection", RichText("-", style="dim") if h.det is None else
                     RichText(f" DETECT {printable(h.det)} ", style="bold white on red"))
        busy = session.busy_percent(h)
        timing = f"dsp {h.dsp_us} us + inf {h.inf_us} us = {h.dsp_us + h.inf_us} us"
        if busy is None:
            grid.add_row("time", RichText(timing + " (hop budget unknown until 'mf ready')"))
        else:
            style = "green" if busy < 70 else "yellow" if busy < 100 else "bold red"
            grid.add_row("time", RichText(f"{timing}  {busy:.0f}% of the {r.hop_us} us hop",
                                          style=style))
        lost = f" (+{session.lost} while monitored: samples lost)" if session.lost else ""
        grid.add_row("ovr", RichText(f"{h.ovr}{lost}", style="bold red" if session.lost
                                     else "green"))
    grid.add_row("counts", f"{session.lines} lines, {session.hops} hops, "
                           f"{session.detections} detections, {session.unparsed} unparseable")
    if session.error is not None:
        times = f" (x{session.error_repeats})" if session.error_repeats > 1 else ""
        grid.add_row("error", RichText(f"mf error: {printable(session.error)}{times}",
                                       style="bold red"))
    if quiet_s >= 2:
        grid.add_row("", RichText(f"no line for {quiet_s:.0f} s", style="yellow"))
    for i, text in enumerate(session.recent):
        grid.add_row("unparseable" if i == 0 else "", RichText(text, style="dim"))
    # dynamic text goes in as rich Text, never as a str that rich would read as markup
    return Panel(grid, title=RichText(f"micforge monitor {printable(port_name)}"),
                 subtitle="Ctrl-C to stop", title_align="left")


# ---------------------------------------------------------------------------- the command

def run(args) -> int:
    """The `monitor` command: its exit status (module docstring)."""
    log_path = Path(args.log) if args.log else None
    if args.append and log_path is None:
        print("--append adds to a --log file; give one", file=sys.stderr)
        return 2
    if log_path is not None and log_path.exists() and not args.append:
        print(_exists(log_path), file=sys.stderr)
        return 2
    try:
        port = open_port(args.port, args.baud)
    except PortError as exc:
        print(exc, file=sys.stderr)
        return 2
    session = Session()
    try:
        # the log is opened after the port, so no empty log is left for a port that is absent
        log = CsvLog.open(log_path, args.append) if log_path is not None else None
    except LogError as exc:
        port.close()
        print(exc, file=sys.stderr)
        return 2
    view = LiveView(args.port) if sys.stdout.isatty() else PlainView(sys.stdout)
    try:
        with view:
            pump(port, session, view, log)
    except KeyboardInterrupt:
        return 130
    finally:
        port.close()
        if log is not None:
            log.close()
    print(f"{args.port}: disconnected after {session.lines} lines", file=sys.stderr)
    return 1


def register(subparsers) -> None:
    """Add `monitor` to an argparse subparsers object."""
    m = subparsers.add_parser(
        "monitor", help="show a device's serial lines live; log them to CSV",
        description="Read a micforge firmware's serial output (USB CDC or UART): a live view in "
                    "a terminal (board, top class and score, detection, front end and Invoke "
                    "time against the hop, samples lost), otherwise one line per event "
                    "(detections, errors, unparseable lines, samples lost, a summary every "
                    f"{SUMMARY_EVERY} hops). Exits 1 when the port disconnects, 2 when it "
                    "cannot be opened, 130 on Ctrl-C.")
    m.add_argument("--port", required=True,
                   help="the serial port: /dev/ttyACM0 (Pico USB), /dev/ttyUSB0, COM3, ...")
    m.add_argument("--log", metavar="FILE.csv",
                   help="also write one CSV row per line received (an existing file is refused)")
    m.add_argument("--append", action="store_true", help="add to an existing --log file")
    m.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"UART baud rate (default {DEFAULT_BAUD}; USB CDC ignores it)")
    m.set_defaults(func=run)
