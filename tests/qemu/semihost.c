/* Start-up and semihosting for the QEMU tests (see semihost.h); linked by link.ld's layout. */
#include <stdint.h>
#include "semihost.h"

extern uint32_t __bss_start, __bss_end, __stack_top;
int main(void);
void reset_handler(void);

static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void mf_write0(const char *text)
{
    semihost(0x04, text); /* SYS_WRITE0 */
}

void reset_handler(void)
{
    for (uint32_t *p = &__bss_start; p < &__bss_end; p++) {
        *p = 0;
    }
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88 |= (0xFU << 20); /* CPACR: FPU on */
#endif
    main();
    semihost(0x18, (const void *)0x20026U); /* SYS_EXIT, ADP_Stopped_ApplicationExit */
    for (;;) {
    }
}

__attribute__((section(".vectors"), used))
static const void *vectors[2] = {&__stack_top, (const void *)reset_handler};
