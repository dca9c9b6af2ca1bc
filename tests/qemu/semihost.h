/* Bare-metal start-up for the QEMU tests: reset_handler zeroes .bss, turns the FPU on where
 * there is one, calls main() and exits QEMU through Arm semihosting (SYS_EXIT).
 * mf_write0 prints a NUL-terminated string on the host's stderr (SYS_WRITE0). */
#ifndef MF_SEMIHOST_H_
#define MF_SEMIHOST_H_

void mf_write0(const char *text);

#endif /* MF_SEMIHOST_H_ */
