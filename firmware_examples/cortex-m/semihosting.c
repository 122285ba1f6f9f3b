/*
 * Arm semihosting: the debugger (here QEMU, run with -semihosting-config enable=on) serves
 * requests the program makes with `bkpt 0xAB`, operation in r0 and its argument in r1.
 */
#include "board.h"

#define SYS_WRITE0 0x04                      /* write a NUL-terminated string */
#define SYS_EXIT 0x18                        /* report an exception or the end of the program */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026 /* normal end: QEMU exits with status 0 */
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023   /* anything else: QEMU exits with status 1 */

static void semihosting_call(uint32_t operation, const void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

void semihosting_write(const char *text)
{
    semihosting_call(SYS_WRITE0, text);
}

void semihosting_exit(int success)
{
    const uint32_t reason = success ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR;
    semihosting_call(SYS_EXIT, (const void *)reason);
    for (;;) {
    }
}
