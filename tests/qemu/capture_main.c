/* The rendered capture packer (mf_capture.c) under QEMU: packs FRAMES frames of samples from a
 * 32-bit LCG (x = 1103515245 x + 12345, sample = x >> 16) with the header fields below, and
 * prints each frame as one line of hex. tests/test_capture.py packs the same frames with
 * generator.wire.pack and compares. */
#include <stdint.h>

#include "mf_capture.h"
#include "semihost.h"

#define FRAMES 3U

static int16_t samples[MF_CAPTURE_FRAME_SAMPLES];
static uint8_t frame[MF_CAPTURE_FRAME_BYTES];
static char line[2U * MF_CAPTURE_FRAME_BYTES + 2U];

int main(void)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t x = 1U;
    mf_capture_header_t h = {.seq = 0xFFFFFFFEU, .first = 0xFFFFFF00U, .rate = 16000U,
                             .overrun = 7U, .unsent = 512U, .flags = 0U};
    for (unsigned f = 0; f < FRAMES; f++) {
        for (unsigned i = 0; i < MF_CAPTURE_FRAME_SAMPLES; i++) {
            x = 1103515245U * x + 12345U;
            samples[i] = (int16_t)(x >> 16);
        }
        h.flags = (uint16_t)(f == 1U ? MF_CAPTURE_FLAG_GAP : 0U);
        const size_t n = mf_capture_pack(frame, &h, samples, MF_CAPTURE_FRAME_SAMPLES);
        for (size_t i = 0; i < n; i++) {
            line[2U * i] = hex[frame[i] >> 4];
            line[2U * i + 1U] = hex[frame[i] & 0x0FU];
        }
        line[2U * n] = '\n';
        line[2U * n + 1U] = '\0';
        mf_write0(line);
        h.seq++;
        h.first += MF_CAPTURE_FRAME_SAMPLES;
    }
    return 0;
}
