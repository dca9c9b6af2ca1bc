/* Every intrinsic of generator/cmsis_core/cmsis_compiler.h, applied to the operands in
 * operands.h (written by the test), printed over semihosting as "NAME hex hex ...\n" for the
 * test to compare with the Arm architecture's definitions. The DSP-extension intrinsics only
 * where the core has them (__ARM_FEATURE_DSP). */
#include <stdint.h>
#include "cmsis_compiler.h"
#include "operands.h"
#include "semihost.h"

static char line[8 + NUM_OPERANDS * 17 + 2];

static void put(const char *name, const uint64_t *values, uint32_t digits)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t n = 0, i, d;
    while (*name) {
        line[n++] = *name++;
    }
    for (i = 0; i < NUM_OPERANDS; i++) {
        line[n++] = ' ';
        for (d = digits; d-- > 0;) {
            line[n++] = hex[(values[i] >> (4U * d)) & 15U];
        }
    }
    line[n++] = '\n';
    line[n] = 0;
    mf_write0(line);
}

static uint64_t r[NUM_OPERANDS];

#define EACH(name, expr)                                 \
    do {                                                 \
        for (uint32_t i = 0; i < NUM_OPERANDS; i++) {    \
            const uint32_t a = op_a[i], b = op_b[i];     \
            const uint32_t c = op_c[i];                  \
            const uint64_t d = op_d[i];                  \
            (void)a; (void)b; (void)c; (void)d;          \
            r[i] = (uint64_t)(uint32_t)(expr);           \
        }                                                \
        put(name, r, 8);                                 \
    } while (0)

#define EACH64(name, expr)                               \
    do {                                                 \
        for (uint32_t i = 0; i < NUM_OPERANDS; i++) {    \
            const uint32_t a = op_a[i], b = op_b[i];     \
            const uint64_t d = op_d[i];                  \
            r[i] = (uint64_t)(expr);                     \
        }                                                \
        put(name, r, 16);                                \
    } while (0)

int main(void)
{
    EACH("CLZ", __CLZ(a));
    EACH("ROR", __ROR(a, b));
    EACH("SSAT16", __SSAT((int32_t)a, 16));
    EACH("SSAT8", __SSAT((int32_t)a, 8));
    EACH("SSAT32", __SSAT((int32_t)a, 32));
    EACH("USAT16", __USAT((int32_t)a, 16));
    EACH("USAT0", __USAT((int32_t)a, 0));
#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)
    EACH("QADD16", __QADD16(a, b));
    EACH("QSUB16", __QSUB16(a, b));
    EACH("SHADD16", __SHADD16(a, b));
    EACH("SHSUB16", __SHSUB16(a, b));
    EACH("QASX", __QASX(a, b));
    EACH("QSAX", __QSAX(a, b));
    EACH("SHASX", __SHASX(a, b));
    EACH("SHSAX", __SHSAX(a, b));
    EACH("QADD8", __QADD8(a, b));
    EACH("QSUB8", __QSUB8(a, b));
    EACH("QADD", __QADD((int32_t)a, (int32_t)b));
    EACH("QSUB", __QSUB((int32_t)a, (int32_t)b));
    EACH("SMUAD", __SMUAD(a, b));
    EACH("SMUADX", __SMUADX(a, b));
    EACH("SMUSD", __SMUSD(a, b));
    EACH("SMUSDX", __SMUSDX(a, b));
    EACH("SMLAD", __SMLAD(a, b, c));
    EACH("SMLADX", __SMLADX(a, b, c));
    EACH("SMLSD", __SMLSD(a, b, c));
    EACH("SMLSDX", __SMLSDX(a, b, c));
    EACH("SMMLA", __SMMLA((int32_t)a, (int32_t)b, (int32_t)c));
    EACH("SXTB16", __SXTB16(a));
    EACH("PKHBT0", __PKHBT(a, b, 0));
    EACH("PKHBT16", __PKHBT(a, b, 16));
    EACH("PKHTB0", __PKHTB(a, b, 0));
    EACH("PKHTB16", __PKHTB(a, b, 16));
    EACH("PKHTB5", __PKHTB(a, b, 5));
    EACH64("SMLALD", __SMLALD(a, b, d));
    EACH64("SMLALDX", __SMLALDX(a, b, d));
#endif
    return 0;
}
