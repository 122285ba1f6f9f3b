/*
 * Bare-metal Cortex-M4F example: streams STEPS rows of a synthetic sensor through the generated
 * model and prints each output row over semihosting, then the peak stack use.
 *
 *     edgeseq codegen model.onnx -o generated --name model
 *     make MODEL_DIR=generated NAME=model run       (QEMU mps2-an386; `make size`: flash, RAM)
 *
 * Output: one line per step, "step <t>: <y0> <y1> ..." (9 significant digits, enough to tell
 * float32 values apart), then "stack <bytes>". No printf: the formatting below is a few hundred
 * bytes where newlib's float printf would add tens of kilobytes to the flash figure.
 */
#include "board.h"
#include "edgeseq_model.h"
#include "synthetic_sensor.h"
#include "text_out.h"

#ifndef STEPS
#define STEPS 200
#endif

#define SIGNIFICANT_DIGITS 9

/* value as d.dddddddde[+-]x, computed in double so that the digits are those of the float. */
static char *append_float(char *out, float value)
{
    double m = (double)value;
    int exponent = 0, i;
    uint32_t digits;
    char text[SIGNIFICANT_DIGITS];
    if (value != value) {
        return append_text(out, "nan");
    }
    if (m < 0.0) {
        *out++ = '-';
        m = -m;
    }
    if (m > 3.5e38) {
        return append_text(out, "inf");
    }
    if (m != 0.0) {
        while (m >= 10.0) {
            m /= 10.0;
            exponent++;
        }
        while (m < 1.0) {
            m *= 10.0;
            exponent--;
        }
    }
    digits = (uint32_t)(m * 1e8 + 0.5);
    if (digits >= 1000000000u) { /* rounded up to 10.000... */
        digits /= 10u;
        exponent++;
    }
    for (i = SIGNIFICANT_DIGITS - 1; i >= 0; i--) {
        text[i] = (char)('0' + digits % 10u);
        digits /= 10u;
    }
    *out++ = text[0];
    *out++ = '.';
    for (i = 1; i < SIGNIFICANT_DIGITS; i++) {
        *out++ = text[i];
    }
    *out++ = 'e';
    *out++ = exponent < 0 ? '-' : '+';
    return append_unsigned(out, (uint32_t)(exponent < 0 ? -exponent : exponent));
}

int main(void)
{
    static MODEL(state_t) state;
    static char line[32 + 20 * MODEL(OUTPUT_SIZE)];
    float x[MODEL(INPUT_SIZE)], y[MODEL(OUTPUT_SIZE)];
    uint32_t sensor = 1;
    uint32_t t;
    int i, status;
    MODEL(reset)(&state);
    for (t = 0; t < STEPS; t++) {
        char *out = append_unsigned(append_text(line, "step "), t);
        synthetic_sensor_row(&sensor, x, MODEL(INPUT_SIZE), MODEL(VOCAB));
        status = MODEL(step)(&state, x, y);
        if (status != EDGESEQ_RT_OK) {
            out = append_unsigned(append_text(out, ": rejected, status "), (uint32_t)status);
            append_text(out, "\n")[0] = '\0';
            semihosting_write(line);
            return 1;
        }
        *out++ = ':';
        for (i = 0; i < MODEL(OUTPUT_SIZE); i++) {
            *out++ = ' ';
            out = append_float(out, y[i]);
        }
        append_text(out, "\n")[0] = '\0';
        semihosting_write(line);
    }
    append_text(append_unsigned(append_text(line, "stack "), stack_peak_bytes()), "\n")[0] = '\0';
    semihosting_write(line);
    return 0;
}
