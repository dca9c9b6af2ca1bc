"""Opening a serial port (pyserial) with one clear line when it cannot be opened: `micforge
monitor` and `micforge capture` share it."""

from __future__ import annotations

import errno
import time

READ_TIMEOUT = 0.1  # seconds a read waits, so a live view redraws and Ctrl-C is prompt


class PortError(Exception):
    pass


def _ports_present() -> str:
    from serial.tools import list_ports
    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    if not ports:
        return "no serial ports found"
    return "ports present: " + ", ".join(
        p.device + (f" ({p.description})" if p.description not in ("", "n/a", p.device) else "")
        for p in ports)


def open_port(name: str, baud: int, timeout: float = READ_TIMEOUT):
    """The port, opened with pyserial, or PortError with one line saying why."""
    import serial
    try:
        return serial.Serial(name, baudrate=baud, timeout=timeout)
    except serial.SerialException as exc:
        code = exc.errno
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "FileNotFoundError" in str(exc):
            raise PortError(f"{name}: no such serial port; {_ports_present()}") from None
        hint = {errno.EACCES: " (on Linux, add yourself to the dialout group and log in again)",
                errno.EBUSY: " (is another serial monitor using it?)"}.get(code, "")
        reason = exc.strerror or str(exc)
        raise PortError(f"{name}: cannot open: {reason}{hint}") from None
    except ValueError as exc:  # pyserial's answer to a baud rate it cannot set
        raise PortError(f"{name}: cannot open: {exc}") from None


def read_available(port, retries: int = 3, pause: float = 0.02) -> bytes:
    """What the port has (at least a byte, or nothing at the read timeout).

    Reads only what is there: a read that waits for more would lose what it got if the board
    hangs up meanwhile (pyserial raises, data and all). pyserial reports a disconnect as "ready
    to read but returned no data" (or EIO); a pseudo-terminal can report that once without one
    (data arriving while the port's input is flushed), so only `retries` failures in a row are
    a disconnect: the last one is raised (serial.SerialException is an OSError)."""
    for attempt in range(retries):
        try:
            return port.read(max(1, port.in_waiting))
        except OSError:
            if attempt == retries - 1:
                raise
            time.sleep(pause)
    return b""
