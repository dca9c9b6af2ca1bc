"""UF2 writer: a flat binary image to the 512-byte-block UF2 format of the RP2040 boot ROM.

`to_uf2(data, base, family) -> bytes` packs `data` (to be written at address
`base`) into blocks of 256 payload bytes, each a 512-byte UF2 block with the
family-id flag set (https://github.com/microsoft/uf2, "UF2 file format").
The module has no imports from micforge: the firmware renderer copies it
verbatim into each RP2040 project as uf2.py, where CMake runs it after the
link (`python3 uf2.py in.bin out.uf2 --base 0x10000000 --family 0xe48bff56`),
so no picotool is needed.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

MAGIC_START0 = 0x0A324655  # "UF2\n"
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_FAMILY_ID_PRESENT = 0x00002000
PAYLOAD = 256  # bytes of data per block, as the RP2040 boot ROM requires
BLOCK = 512
DATA_FIELD = 476


def to_uf2(data: bytes, base: int, family: int) -> bytes:
    """UF2 blocks for `data` at `base`; a trailing partial page is zero-padded."""
    if base % PAYLOAD:
        raise ValueError(f"base 0x{base:x} is not {PAYLOAD}-byte aligned")
    if not data:
        raise ValueError("empty image")
    count = -(-len(data) // PAYLOAD)
    out = bytearray()
    for n in range(count):
        chunk = data[n * PAYLOAD:(n + 1) * PAYLOAD].ljust(PAYLOAD, b"\0")
        head = struct.pack("<8I", MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID_PRESENT,
                           base + n * PAYLOAD, PAYLOAD, n, count, family)
        out += head + chunk.ljust(DATA_FIELD, b"\0") + struct.pack("<I", MAGIC_END)
    assert len(out) == count * BLOCK
    return bytes(out)


def from_uf2(blob: bytes) -> tuple[int, bytes, int]:
    """(base, data, family) of a UF2 written by `to_uf2` (contiguous blocks); checks every field."""
    if len(blob) % BLOCK or not blob:
        raise ValueError("not a whole number of 512-byte blocks")
    count = len(blob) // BLOCK
    data = bytearray()
    base = family = None
    for n in range(count):
        block = blob[n * BLOCK:(n + 1) * BLOCK]
        m0, m1, flags, addr, size, index, total, fam = struct.unpack_from("<8I", block)
        (end,) = struct.unpack_from("<I", block, BLOCK - 4)
        if (m0, m1, end) != (MAGIC_START0, MAGIC_START1, MAGIC_END):
            raise ValueError(f"block {n}: bad magic")
        if index != n or total != count or size != PAYLOAD or not flags & FLAG_FAMILY_ID_PRESENT:
            raise ValueError(f"block {n}: bad header")
        if base is None:
            base, family = addr, fam
        if addr != base + n * PAYLOAD or fam != family:
            raise ValueError(f"block {n}: address or family out of sequence")
        data += block[32:32 + PAYLOAD]
    return base, bytes(data), family


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a UF2 file from a flat binary image.")
    ap.add_argument("bin", type=Path, help="input binary (objcopy -O binary)")
    ap.add_argument("uf2", type=Path, help="output UF2 file")
    ap.add_argument("--base", type=lambda s: int(s, 0), required=True, help="load address")
    ap.add_argument("--family", type=lambda s: int(s, 0), required=True, help="UF2 family id")
    args = ap.parse_args(argv)
    blob = to_uf2(args.bin.read_bytes(), args.base, args.family)
    tmp = args.uf2.with_suffix(args.uf2.suffix + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(args.uf2)
    print(f"{args.uf2}: {len(blob) // BLOCK} blocks at 0x{args.base:08x}, family 0x{args.family:08x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
