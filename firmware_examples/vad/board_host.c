/* main.c's board on a desktop: text to stdout; no instruction count, no stack figure. */
#include <stdio.h>

#include "vad_board.h"

void board_write(const char *text)
{
    fputs(text, stdout);
}

void board_count_start(void)
{
}

uint32_t board_count_stop(void)
{
    return 0;
}

uint32_t board_stack_peak(void)
{
    return 0;
}
