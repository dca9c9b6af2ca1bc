"""RP2040 firmware in the rp2040js emulator, fed real clips, checked against the host.

Two steps around a firmware build you make yourself (this script never builds the SDK):

  1. python benchmarks/rp2040_emulator.py clips projects/fire_alarm.yaml clips.h WAV...
     writes a header of the clips (one stream per file, int16 at the spec's rate, see below),
     to build the firmware with:  cmake -DMICFORGE_CLIP_HEADER=$PWD/clips.h ...
  2. python benchmarks/rp2040_emulator.py run projects/fire_alarm.yaml model.tflite \
         firmware.uf2 --bootrom bootrom.bin WAV...   (the same WAVs, in the same order)
     runs benchmarks/rp2040_emulator.mjs (needs node and `npm install rp2040js` in the
     current folder or NODE_PATH), parses the firmware's serial lines, and compares every hop
     line (hop, q=, top, det) with the twin; prints one row per clip, the mean emulated DSP /
     Invoke microseconds per hop, and the largest ovr= (samples lost: 0 in a clip build).

  3. python benchmarks/rp2040_emulator.py size firmware.elf rpi_pico
     prints `arm-none-eabi-size` and the bytes of each memory region of the board file, from
     the sections `arm-none-eabi-objdump -h` lists (flash: text + rodata + the load images of
     .data and the other sections copied to RAM at boot; RAM regions: data + bss + stacks), and
     the arena.

Each clip is a stream long enough for whole hops to fill the feature map (the spec's clip, or
twice it when the hop does not divide it: the next WAVs' windows follow); the firmware prints
a line per hop once the map is full, and every line is compared with `micforge simulate`'s
twin of the same variant (generator.simulate: the rendered C front end, scores and detector on
the host, TFLM), which needs the project built (micforge build).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator import audio, features  # noqa: E402
from generator.render import c_array, c_comment  # noqa: E402
from generator.spec import load_spec  # noqa: E402

# One hop line of main.cpp (clip= only in clip builds); ovr = microphone samples lost since boot.
LINE = re.compile(r"(?:clip=(?P<clip>\d+) )?hop=(?P<hop>\d+) t_ms=(?P<t_ms>\d+) top=(?P<top>\S+) "
                  r"score=(?P<score>-?\d+) det=(?P<det>\S+) dsp_us=(?P<dsp_us>\d+) "
                  r"inf_us=(?P<inf_us>\d+) ovr=(?P<ovr>\d+) q=(?P<q>-?\d+(?:,-?\d+)*)")


def stream_seconds(spec) -> float:
    """Clip length that gives the device at least one full feature map in whole hops: the
    spec's clip when its whole hops fill the map, else twice it (a hop that does not divide
    the clip, as keywords' 9 frames)."""
    fe = features.design(spec)
    pushed = spec.audio.clip_samples // fe.hop_samples * fe.hop_samples
    frames = 0 if pushed < fe.frame_length else 1 + (pushed - fe.frame_length) // fe.frame_step
    return spec.audio.clip_seconds * (1 if frames >= fe.num_frames else 2)


def load_clips(spec, wavs: list[Path], seconds: float | None = None) -> list[np.ndarray]:
    """One stream per WAV: its first window, then the next WAVs' (wrapping), cut to `seconds`
    (default stream_seconds): every clip gives the device whole hops and full maps."""
    rate, n = spec.audio.sample_rate, spec.audio.clip_samples
    windows = [audio.windows(Path(w).read_bytes(), rate, n)[1][0] for w in wavs]
    length = round((seconds or stream_seconds(spec)) * rate)
    out = []
    for i in range(len(windows)):
        parts, k = [], i
        while sum(map(len, parts)) < length:
            parts.append(windows[k % len(windows)])
            k += 1
        out.append(np.concatenate(parts)[:length])
    return out


def write_header(clips: list[np.ndarray], out: Path, spec_name: str) -> None:
    samples = np.concatenate(clips)
    text = (f"/* {len(clips)} clips from {c_comment(spec_name)} for the emulator; see "
            f"benchmarks/rp2040_emulator.py. */\n#include <stdint.h>\n"
            f"#define MF_NUM_CLIPS ({len(clips)}U)\n"
            f"static const uint32_t mf_clip_lengths[MF_NUM_CLIPS] = {{\n    "
            f"{c_array([len(c) for c in clips])}\n}};\n"
            f"static const int16_t mf_clips[{len(samples)}] = {{\n    "
            f"{c_array(samples.tolist(), 16)}\n}};\n")
    out.write_text(text)


def twin_lines(project, variant: str, clips: list[np.ndarray], build_dir: Path | None = None):
    """Per clip, the hop lines (hop, raw int8 outputs, top, det) `micforge simulate` gives:
    the firmware's own C front end, scores and detector on the host, TFLM per hop."""
    from generator.simulate import simulator

    sim = simulator(project, variant, build_dir)
    out = []
    for clip in clips:
        r = sim.run(clip)
        out.append([(i, [int(v) for v in r.raw[i]], sim.classes[int(r.top[i])],
                     sim.classes[int(r.det[i])] if r.det[i] >= 0 else "-") for i in range(len(r))])
    return out


def run_emulator(image: Path, bootrom: Path, max_seconds: float) -> str:
    cmd = ["node", str(REPO / "benchmarks" / "rp2040_emulator.mjs"), "--bootrom", str(bootrom),
           "--image", str(image), "--until", "mf done", "--max-seconds", str(max_seconds)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"emulator failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr}")
    return res.stdout


class Section(NamedTuple):
    """One ELF section as `objdump -h` lists it: VMA is where it runs, LMA where its bytes are
    stored in the image; `load` means the image holds them (not NOBITS: .bss, NOLOAD)."""
    name: str
    size: int
    vma: int
    lma: int
    alloc: bool
    load: bool


_SECTION = re.compile(r"^\s*\d+\s+(\S+)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+"
                      r"[0-9a-fA-F]+\s+2\*\*\d+\s*$")


def parse_sections(objdump_h: str) -> list[Section]:
    """The sections of `arm-none-eabi-objdump -h` output (each row is followed by its flags)."""
    lines = objdump_h.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            flags = {f.strip() for f in (lines[i + 1] if i + 1 < len(lines) else "").split(",")}
            out.append(Section(m[1], int(m[2], 16), int(m[3], 16), int(m[4], 16),
                               "ALLOC" in flags, "LOAD" in flags))
    return out


def region_use(sections: list[Section], regions) -> tuple[dict[str, int], list[tuple[str, int, str]]]:
    """Bytes used per board memory region, and (section, bytes, region) rows. A section uses its
    size where it runs (VMA); one whose bytes are in the image and stored elsewhere (LMA != VMA:
    .data, scratch code, copied at boot) uses its size there too, so flash = text + rodata + the
    load images of .data and the like. Sections that are not allocated (debug) use nothing."""
    used = {r.name: 0 for r in regions}
    rows = []

    def place(name: str, size: int, addr: int, what: str) -> None:
        for r in regions:
            if r.origin <= addr < r.end:
                used[r.name] += size
                rows.append((name + what, size, r.name))
                return

    for sec in sections:
        if not sec.alloc or not sec.size:
            continue
        place(sec.name, sec.size, sec.vma, "")
        if sec.load and sec.lma != sec.vma:
            place(sec.name, sec.size, sec.lma, " (load image)")
    return used, rows


def size_report(elf: Path, board_id: str) -> None:
    from generator.boards import load_board

    board = load_board(board_id)
    print(subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True,
                         check=True).stdout.rstrip())
    out = subprocess.run(["arm-none-eabi-objdump", "-h", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    used, rows = region_use(parse_sections(out), board.memory)
    for name, size, region in rows:
        print(f"  {name:<40} {size:>8} bytes in {region}")
    syms = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True,
                          check=True).stdout
    arena = next((int(ln.split()[1], 16) for ln in syms.splitlines()
                  if ln.endswith(" mf_tensor_arena")), 0)
    for r in board.memory:
        print(f"{r.name:<10} {used[r.name]:>8} of {r.length:>8} bytes")
    print(f"arena      {arena:>8} bytes (mf_tensor_arena)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clips", help="write the clip header")
    c.add_argument("spec", type=Path)
    c.add_argument("header", type=Path)
    c.add_argument("wavs", type=Path, nargs="+")
    c.add_argument("--seconds", type=float, help="clip length (default: the spec's clip, or "
                                                     "twice it when its whole hops do not fill "
                                                     "the feature map)")
    r = sub.add_parser("run", help="run the firmware and compare every hop line with the twin")
    r.add_argument("spec", type=Path)
    r.add_argument("tflite", type=Path, help="(unused: the twin reads the project's build)")
    r.add_argument("image", type=Path, help="firmware .uf2 or .bin built with the clip header")
    r.add_argument("--bootrom", type=Path, required=True, help="RP2040 boot ROM image (16 KB)")
    r.add_argument("--variant", help="the variant the firmware was built for (default: the first)")
    r.add_argument("--build-dir", type=Path, help="the project's build folder (default: build/)")
    r.add_argument("--seconds", type=float, help="the clip length the header was written with")
    r.add_argument("--max-seconds", type=float, default=120, help="emulated seconds at most")
    r.add_argument("--log", type=Path, help="also save the raw serial output here")
    r.add_argument("wavs", type=Path, nargs="+")
    z = sub.add_parser("size", help="memory use of a built firmware per board region")
    z.add_argument("elf", type=Path)
    z.add_argument("board")
    args = ap.parse_args(argv)
    if args.cmd == "size":
        size_report(args.elf, args.board)
        return 0

    project = load_spec(args.spec)
    spec = project.spec
    clips = load_clips(spec, args.wavs, args.seconds)
    if args.cmd == "clips":
        write_header(clips, args.header, project.path.name)
        print(f"{args.header}: {len(clips)} clips of {len(clips[0]) / spec.audio.sample_rate:g} s, "
              f"{sum(map(len, clips))} samples")
        return 0

    text = run_emulator(args.image, args.bootrom, args.max_seconds)
    if args.log:
        args.log.write_text(text)
    device: dict[int, list] = {}
    for m in LINE.finditer(text):
        if m["clip"] is not None:
            device.setdefault(int(m["clip"]), []).append(m)
    twin = twin_lines(project, args.variant or spec.targets[0].name, clips, args.build_dir)
    print(next((ln for ln in text.splitlines() if ln.startswith("mf ready")), "(no ready line)"))
    print(f"{'clip':>4} {'file':<36} {'hops':>5} {'equal':>5} {'last top':>10} {'last det':>10} "
          f"{'dsp_us':>7} {'inf_us':>7}")
    lines = same = ovr = 0
    dsp, inf = [], []
    for i, (wav, want) in enumerate(zip(args.wavs, twin)):
        got = device.get(i, [])
        pairs = list(zip(got, want))
        ok = sum(int(m["hop"]) == h and [int(v) for v in m["q"].split(",")] == q
                 and m["top"] == top and m["det"] == det for m, (h, q, top, det) in pairs)
        lines += len(want)
        same += ok if len(got) == len(want) else 0
        dsp += [int(m["dsp_us"]) for m in got]
        inf += [int(m["inf_us"]) for m in got]
        ovr = max([ovr] + [int(m["ovr"]) for m in got])
        last = got[-1] if got else None
        print(f"{i:>4} {wav.name[:36]:<36} {len(got):>5} {ok:>5} {last['top'] if last else '-':>10} "
              f"{last['det'] if last else '-':>10} {np.mean([int(m['dsp_us']) for m in got]) if got else 0:>7.0f} "
              f"{np.mean([int(m['inf_us']) for m in got]) if got else 0:>7.0f}"
              f"{'' if ok == len(want) == len(got) else '  MISMATCH'}")
    print(f"hop lines equal to the twin (micforge simulate): {same}/{lines}; emulated per hop at "
          f"125 MHz: DSP {np.mean(dsp) if dsp else float('nan'):.0f} us (max {max(dsp, default=0)}), "
          f"inference {np.mean(inf) if inf else float('nan'):.0f} us (max {max(inf, default=0)}), "
          f"hop {features.design(spec).hop_us} us; ovr={ovr}")
    return 0 if same == lines and lines and ovr == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
