/*
 * What the bare-metal example needs from its board (QEMU mps2-an386): text output and exit
 * through Arm semihosting (semihosting.c), and the stack's high-water mark (startup.c).
 */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

/* Write a NUL-terminated string to the host's console. */
void semihosting_write(const char *text);

/* End the program: QEMU exits with status 0 if success is non-zero, else 1. */
void semihosting_exit(int success);

/* The most stack used since reset, in bytes (the stack is painted at reset, then scanned). */
uint32_t stack_peak_bytes(void);

#endif /* BOARD_H */
