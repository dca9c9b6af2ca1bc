"""The capture firmware's wire format: framed, checksummed int16 samples.

The capture firmware (firmware/<variant>-capture/, rendered from templates/capture/) sends the
microphone's samples, exactly as the detector's audio_in.c produces them, in frames. Every field
is little-endian:

    offset  size  field
    0       4     sync      "MFC1"
    4       4     seq       frame number since the microphone started (u32, wraps)
    8       4     first     index of the frame's first sample since the microphone started,
                            counting samples lost on the device (u32, wraps)
    12      4     rate      sample rate in Hz
    16      4     overrun   samples the microphone's DMA overwrote before the firmware read
                            them, since boot (cumulative)
    20      4     unsent    samples of frames the firmware did not send because the link was
                            not taking them (no host, or the host not reading), since boot
    24      2     count     samples in this frame (FRAME_SAMPLES)
    26      2     flags     bit 0 GAP: an overrun happened while this frame was read, so its
                            samples are not contiguous (the host drops the frame)
    28      2*count samples int16
    28+2*count 4  crc       CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 0 .. 28+2*count-1

A receiver finds frames by the sync word and keeps only those whose CRC matches; bytes between
frames (a boot line, noise) are skipped and counted. Samples are never lost silently: `first`
of consecutive good frames must follow on (first + count); a difference is lost audio, and
`overrun` / `unsent` say how much of it the device itself lost (the rest was lost in transit:
a frame that failed its CRC or never arrived).

This module is the one definition of the format: templates/capture/common/mf_capture.h reads its
constants from here (generator.firmware.capture), and tests pack frames with `pack`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

SYNC = b"MFC1"
HEADER = struct.Struct("<4sIIIIIHH")
CRC = struct.Struct("<I")
FRAME_SAMPLES = 256  # 16 ms at 16 kHz: 544-byte frames, 34.0 KB/s
MAX_SAMPLES = 4096   # a count above this is not a frame (resynchronise)
FLAG_GAP = 0x0001
CRC32_POLY = 0xEDB88320  # reflected IEEE 802.3 polynomial (zlib.crc32)
U32 = 1 << 32


def frame_bytes(count: int = FRAME_SAMPLES) -> int:
    return HEADER.size + 2 * count + CRC.size


@dataclass(frozen=True)
class Frame:
    seq: int
    first: int
    rate: int
    overrun: int
    unsent: int
    flags: int
    samples: np.ndarray  # int16

    @property
    def gap(self) -> bool:
        return bool(self.flags & FLAG_GAP)


def pack(seq: int, first: int, rate: int, samples, overrun: int = 0, unsent: int = 0,
         flags: int = 0) -> bytes:
    """One frame's bytes, as the firmware's mf_capture_pack writes them."""
    pcm = np.asarray(samples, dtype="<i2")
    head = HEADER.pack(SYNC, seq % U32, first % U32, rate, overrun % U32, unsent % U32,
                       len(pcm), flags)
    body = head + pcm.tobytes()
    return body + CRC.pack(zlib.crc32(body))


@dataclass
class Deframer:
    """Bytes in, good frames out; counts what it had to skip.

    `feed(data)` returns the frames completed by `data`. A sync word followed by an impossible
    count, or a frame whose CRC fails, is skipped one byte at a time so that a sync word inside
    a corrupted frame cannot hide the next real one.
    """

    crc_errors: int = 0
    skipped_bytes: int = 0
    text: list[str] = field(default_factory=list)  # printable lines among the skipped bytes
    _buf: bytearray = field(default_factory=bytearray)
    _line: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while True:
            at = self._buf.find(SYNC)
            if at < 0:
                keep = len(SYNC) - 1  # a sync word may straddle two reads
                self._skip(max(0, len(self._buf) - keep))
                return frames
            self._skip(at)
            if len(self._buf) < HEADER.size:
                return frames
            count = struct.unpack_from("<H", self._buf, 24)[0]
            if count == 0 or count > MAX_SAMPLES:
                self._skip(1)
                continue
            size = frame_bytes(count)
            if len(self._buf) < size:
                return frames
            body = bytes(self._buf[:size - CRC.size])
            if CRC.unpack_from(self._buf, size - CRC.size)[0] != zlib.crc32(body):
                self.crc_errors += 1
                self._skip(1)
                continue
            _, seq, first, rate, overrun, unsent, count, flags = HEADER.unpack_from(body)
            samples = np.frombuffer(body, dtype="<i2", offset=HEADER.size, count=count)
            frames.append(Frame(seq, first, rate, overrun, unsent, flags,
                                samples.astype(np.int16)))
            del self._buf[:size]

    def _skip(self, n: int) -> None:
        if n <= 0:
            return
        for b in self._buf[:n]:
            if b in (10, 13):
                if self._line:
                    self.text.append(self._line.decode("ascii", "replace"))
                    del self.text[:-20]
                self._line.clear()
            elif 32 <= b < 127 and len(self._line) < 200:
                self._line.append(b)
            else:
                self._line.clear()  # binary noise, not a line
        self.skipped_bytes += n
        del self._buf[:n]
