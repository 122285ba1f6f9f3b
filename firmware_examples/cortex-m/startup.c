/*
 * Reset and exceptions for a Cortex-M4F: the vector table, then reset_handler, which turns the
 * FPU on, sets up .data and .bss, paints the stack (to measure its peak later) and runs main.
 * Symbols __data_*, __bss_*, __stack_* come from mps2_an386.ld.
 */
#include "board.h"

#define CPACR (*(volatile uint32_t *)0xE000ED88u) /* Coprocessor Access Control Register */
#define CPACR_CP10_CP11_FULL_ACCESS (0xFu << 20)  /* CP10 and CP11 are the FPU */
#define STACK_PAINT 0xA5A5A5A5u

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];

int main(void);
void reset_handler(void);
static void fault_handler(void);

/* The first 16 entries (the core's exceptions): initial stack pointer, then handlers. */
typedef union {
    void (*handler)(void);
    const uint32_t *stack_top;
} vector_t;

__attribute__((section(".vectors"), used)) static const vector_t vectors[16] = {
    {.stack_top = __stack_top},
    {reset_handler},
    {fault_handler}, /* NMI */
    {fault_handler}, /* HardFault */
    {fault_handler}, /* MemManage */
    {fault_handler}, /* BusFault */
    {fault_handler}, /* UsageFault */
    {0}, {0}, {0}, {0},
    {fault_handler}, /* SVCall */
    {fault_handler}, /* DebugMonitor */
    {0},
    {fault_handler}, /* PendSV */
    {fault_handler}, /* SysTick */
};

void reset_handler(void)
{
    uint32_t *word, *stack_pointer;
    volatile uint32_t *unused;
    const uint32_t *source = __data_load;
    /* Before any floating-point instruction: the compiler may use FPU registers from here on. */
    CPACR |= CPACR_CP10_CP11_FULL_ACCESS;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (word = __data_start; word < __data_end; word++) {
        *word = *source++;
    }
    for (word = __bss_start; word < __bss_end; word++) {
        *word = 0;
    }
    /* Paint the free stack below our own frame; volatile keeps it a loop, not a call to memset
     * (whose frame would lie in the area being painted). */
    __asm__ volatile("mov %0, sp" : "=r"(stack_pointer));
    for (unused = __stack_bottom; unused < stack_pointer; unused++) {
        *unused = STACK_PAINT;
    }
    semihosting_exit(main() == 0);
}

uint32_t stack_peak_bytes(void)
{
    const uint32_t *word = __stack_bottom;
    while (word < __stack_top && *word == STACK_PAINT) {
        word++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)word);
}

static void fault_handler(void)
{
    semihosting_write("fault: unexpected exception\n");
    semihosting_exit(0);
}
