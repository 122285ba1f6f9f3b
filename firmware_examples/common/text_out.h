/* Building output lines without printf: a firmware's console is semihosting or a UART, and
 * newlib's printf family would add kilobytes of flash (and, for %f, software double arithmetic).
 * Each function writes at out and returns the end of what it wrote; the caller sizes the buffer. */
#ifndef EDGESEQ_TEXT_OUT_H
#define EDGESEQ_TEXT_OUT_H

#include <stdint.h>

static inline char *append_text(char *out, const char *text)
{
    while (*text != '\0') {
        *out++ = *text++;
    }
    return out;
}

/* value in decimal, at most 10 digits. */
static inline char *append_unsigned(char *out, uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (n > 0) {
        *out++ = digits[--n];
    }
    return out;
}

#endif
