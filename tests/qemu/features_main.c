/* Feature maps of the clips in clips.h (written by the test), one hex line each, over semihosting. */
#include <stdint.h>
#include "mf_features.h"
#include "clips.h"
#include "semihost.h"

static mf_features_t fe;
static int8_t map[MF_FE_MAP_SIZE];
static char line[MF_FE_MAP_SIZE * 2 + 2];

int main(void)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t c, i;
    if (mf_features_init(&fe) != 0) {
        mf_write0("init failed\n");
        return 1;
    }
    for (c = 0; c < NUM_CLIPS; c++) {
        mf_features_clip(&fe, clips[c], map);
        for (i = 0; i < MF_FE_MAP_SIZE; i++) {
            line[2 * i] = hex[(uint8_t)map[i] >> 4];
            line[2 * i + 1] = hex[(uint8_t)map[i] & 15U];
        }
        line[2 * MF_FE_MAP_SIZE] = '\n';
        line[2 * MF_FE_MAP_SIZE + 1] = 0;
        mf_write0(line);
    }
    return 0;
}
