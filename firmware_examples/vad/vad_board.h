/*
 * What main.c needs from where it runs: board_m4.c (QEMU's mps2-an386, through ../cortex-m's
 * semihosting and stack painting) or board_host.c (a desktop). The board's build defines
 * BOARD_COUNTS_INSTRUCTIONS and BOARD_MEASURES_STACK to 1 where it counts or measures them.
 */
#ifndef VAD_BOARD_H
#define VAD_BOARD_H

#include <stdint.h>

#ifndef BOARD_COUNTS_INSTRUCTIONS
#define BOARD_COUNTS_INSTRUCTIONS 0
#endif
#ifndef BOARD_MEASURES_STACK
#define BOARD_MEASURES_STACK 0
#endif

/* Write a NUL-terminated string to the console. */
void board_write(const char *text);

/* Count the instructions run from board_count_start to board_count_stop, which returns them. */
void board_count_start(void);
uint32_t board_count_stop(void);

/* The most stack used since reset, in bytes. */
uint32_t board_stack_peak(void);

#endif /* VAD_BOARD_H */
