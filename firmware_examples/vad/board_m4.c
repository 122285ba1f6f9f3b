/*
 * main.c's board on QEMU's mps2-an386 (Cortex-M4F): text over semihosting and the stack's peak,
 * from ../cortex-m; instructions counted with SysTick.
 *
 * SysTick counts the processor clock, 25 MHz on this board. The Makefile runs QEMU with
 * -icount shift=0, where each instruction advances the virtual clock by 1 ns: one tick is then
 * 40 instructions. (On a real board the ticks are clock cycles.)
 */
#include "board.h"
#include "vad_board.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u) /* control and status */
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u) /* reload value */
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u) /* current value, counting down */
#define SYST_CSR_ENABLE_PROCESSOR_CLOCK 0x5u          /* ENABLE | CLKSOURCE, no interrupt */
#define SYST_MAX 0xFFFFFFu                           /* 24 bits: 671 M instructions at most */
#define INSTRUCTIONS_PER_TICK 40u

void board_write(const char *text)
{
    semihosting_write(text);
}

void board_count_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0; /* any write clears it; it reloads SYST_MAX on the next tick */
    SYST_CSR = SYST_CSR_ENABLE_PROCESSOR_CLOCK;
}

uint32_t board_count_stop(void)
{
    return (SYST_MAX - SYST_CVR) * INSTRUCTIONS_PER_TICK;
}

uint32_t board_stack_peak(void)
{
    return stack_peak_bytes();
}
