// Run an RP2040 firmware image in the rp2040js emulator and print its UART0 output.
//
//   node benchmarks/rp2040_emulator.mjs --bootrom <bootrom.bin> --image <firmware.uf2|.bin>
//        [--until "mf done"] [--max-seconds 60] [--profile pcs.txt]
//
// Takes: the RP2040 boot ROM (16 KB, B1/B2, e.g. built from raspberrypi/pico-bootrom; the
// firmware calls ROM routines) and a firmware image, UF2 or flat binary at 0x10000000.
// Produces: the firmware's UART0 bytes on stdout; exits when a line contains --until or after
// --max-seconds of emulated time. The core runs at 125 MHz with rp2040js' per-instruction cycle
// counts (flash XIP is modelled without wait states), and the emulated timer follows those
// cycles, so the firmware's time_us_32() measurements are emulated microseconds.
// --profile writes a histogram of the program counter, sampled every 16 instructions, as
// "<hex pc> <hex lr> <count>" lines (lr names the caller of leaf functions) (map them to functions with arm-none-eabi-nm / addr2line).
// Needs: npm install rp2040js (run from a folder where it is installed, or set NODE_PATH).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

async function loadRp2040js() {
  try {
    return await import('rp2040js');
  } catch {
    const require = createRequire(pathToFileURL(process.cwd() + '/'));
    return await import(pathToFileURL(require.resolve('rp2040js')).href);
  }
}

const FLASH_START = 0x10000000;
const UF2_MAGIC = [0x0a324655, 0x9e5d5157];

function loadImage(path, flash) {
  const data = readFileSync(path);
  if (path.endsWith('.uf2')) {
    for (let off = 0; off + 512 <= data.length; off += 512) {
      const view = new DataView(data.buffer, data.byteOffset + off, 512);
      if (view.getUint32(0, true) !== UF2_MAGIC[0] || view.getUint32(4, true) !== UF2_MAGIC[1]) {
        throw new Error(`${path}: block ${off / 512} is not UF2`);
      }
      const addr = view.getUint32(12, true);
      const size = view.getUint32(16, true);
      flash.set(data.subarray(off + 32, off + 32 + size), addr - FLASH_START);
    }
  } else {
    flash.set(data, 0);
  }
}

const { Simulator, ConsoleLogger, LogLevel } = await loadRp2040js();
const bootrom = readFileSync(arg('bootrom'));
const until = arg('until', 'mf done');
const maxNanos = Number(arg('max-seconds', '60')) * 1e9;
const profilePath = arg('profile', null);
const pcs = new Map();

const PIO_BLOCKS = (mcu) => mcu.pio;
const sim = new Simulator();
const mcu = sim.rp2040;
mcu.logger = new ConsoleLogger(LogLevel.Error); // unimplemented-register notes go to stderr only if errors
mcu.loadBootrom(new Uint32Array(bootrom.buffer, bootrom.byteOffset, bootrom.length / 4));
loadImage(arg('image'), mcu.flash);

let line = '';
let done = false;
mcu.uart[0].onByte = (value) => {
  const ch = String.fromCharCode(value);
  process.stdout.write(ch);
  if (ch === '\n') {
    if (line.includes(until)) done = true;
    line = '';
  } else if (ch !== '\r') {
    line += ch;
  }
};

// The Simulator's own loop yields to the event loop every million instructions; this one runs
// straight through, which is all a batch measurement needs. rp2040js runs the PIO state machines
// from a JS timer, unrelated to emulated time; here each enabled state machine steps once per
// (its clock divider) CPU cycles instead, so PIO + DMA drivers (the PDM microphone) keep time.
// rp2040js also steps every state machine up to 1000 times on the spot when the firmware enables
// one (RPPIO.run, continued from a JS timer): a PDM state machine would shift in ~500 samples of
// its pin at once (5 words of zeros in a live-microphone build). Only stepPio steps them here.
for (const pio of PIO_BLOCKS(mcu)) pio.run = () => {};
const cycleNanos = 1e9 / 125e6;
const machines = PIO_BLOCKS(mcu).flatMap((pio) => pio.machines.map((m) => ({ pio, m, debt: 0 })));
function stepPio(cycles) {
  let changed = null;
  for (const s of machines) {
    if (!s.m.enabled) continue;
    const div = Math.max(1, s.m.clockDivInt + s.m.clockDivFrac / 256);
    for (s.debt += cycles; s.debt >= div; s.debt -= div) {
      s.m.step();
      changed = s.pio;
    }
  }
  if (changed) for (const pio of PIO_BLOCKS(mcu)) pio.checkChangedPins();
}
mcu.core.PC = FLASH_START;
while (!done && sim.clock.nanos < maxNanos) {
  for (let i = 0; i < 100000 && !done; i++) {
    if (mcu.core.waiting) {
      const nanos = sim.clock.nanosToNextAlarm;
      sim.clock.tick(nanos);
      stepPio(nanos / cycleNanos);
    } else {
      if (profilePath && (i & 15) === 0) {
        const key = `${mcu.core.PC.toString(16)} ${(mcu.core.LR & ~1).toString(16)}`;
        pcs.set(key, (pcs.get(key) || 0) + 1);
      }
      const cycles = mcu.core.executeInstruction();
      sim.clock.tick(cycles * cycleNanos);
      stepPio(cycles);
    }
  }
}
if (profilePath) {
  const { writeFileSync } = await import('node:fs');
  const lines = [...pcs.entries()].sort((a, b) => b[1] - a[1]).map(([key, n]) => `${key} ${n}`);
  writeFileSync(profilePath, lines.join('\n') + '\n');
}
if (!done) {
  process.stderr.write(`\nstopped after ${maxNanos / 1e9} emulated seconds without "${until}"\n`);
  process.exit(3);
}
process.exit(0); // rp2040js keeps its own PIO timer alive once a state machine runs
