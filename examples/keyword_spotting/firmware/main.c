/*
 * Keyword spotting on a Cortex-M4F (QEMU mps2-an386): every test clip's log-mel frames
 * (kws_frames.h, written by kws.py) through the generated model one frame a step, the state reset
 * before each clip; the clip's decision is the class of the largest score after its last frame.
 *
 * Output, over semihosting:
 *   "clip <i>: class <k> scores <hex> ..."   per clip, each score as the 8 hex digits of its
 *                                            float32 bits (exact, and no float printing code)
 *   "calibration <n> instructions ticks <t>" SysTick ticks over a loop of n instructions
 *   "steps <s> ticks <t>"                    SysTick ticks inside every step, summed
 *   "stack <bytes>"                          the peak stack use
 * Run QEMU with -icount: its clock then advances with each instruction executed, so ticks count
 * instructions (the calibration line says how many per tick).
 */
#include "board.h"
#include "edgeseq_model.h"
#include "kws_frames.h"
#include "text_out.h"

#if KWS_BANDS != MODEL(INPUT_SIZE)
#error "the frames have another number of bands than the model takes"
#endif

/* SysTick, the core's 24-bit down-counter, run from the processor clock, no interrupt. */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_ENABLE_PROCESSOR_CLOCK 0x5u
#define SYST_MASK 0xFFFFFFu
#define CALIBRATION_LOOPS 100000u /* of two instructions each (subs, bne) */

static char *append_bits(char *out, float value)
{
    static const char hex[] = "0123456789abcdef";
    union {
        float f;
        uint32_t u;
    } bits;
    int shift;
    bits.f = value;
    for (shift = 28; shift >= 0; shift -= 4) {
        *out++ = hex[(bits.u >> shift) & 0xFu];
    }
    return out;
}

static void write_line(char *line, char *end)
{
    append_text(end, "\n")[0] = '\0';
    semihosting_write(line);
}

/* Ticks elapsed from `start` to `end` of the down-counter (less than one wrap apart). */
static uint32_t ticks_between(uint32_t start, uint32_t end)
{
    return (start - end) & SYST_MASK;
}

static uint32_t calibration_ticks(void)
{
    uint32_t loops = CALIBRATION_LOOPS, start = SYST_CVR;
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(loops) : : "cc");
    return ticks_between(start, SYST_CVR);
}

int main(void)
{
    static MODEL(state_t) state;
    static char line[48 + 9 * MODEL(OUTPUT_SIZE)];
    float scores[MODEL(OUTPUT_SIZE)];
    uint32_t clip, frame, step_ticks = 0, start;
    int k, best, status;
    SYST_RVR = SYST_MASK;
    SYST_CVR = 0u;
    SYST_CSR = SYST_ENABLE_PROCESSOR_CLOCK;
    for (clip = 0; clip < KWS_CLIPS; clip++) {
        char *out;
        MODEL(reset)(&state);
        for (frame = 0; frame < KWS_FRAMES; frame++) {
            start = SYST_CVR;
            status = MODEL(step)(&state, &kws_frames[(clip * KWS_FRAMES + frame) * KWS_BANDS], scores);
            step_ticks += ticks_between(start, SYST_CVR);
            if (status != EDGESEQ_RT_OK) {
                out = append_unsigned(append_text(line, "clip "), clip);
                write_line(line, append_unsigned(append_text(out, ": rejected, status "), (uint32_t)status));
                return 1;
            }
        }
        for (best = 0, k = 1; k < MODEL(OUTPUT_SIZE); k++) {
            best = scores[k] > scores[best] ? k : best;
        }
        out = append_unsigned(append_text(line, "clip "), clip);
        out = append_text(append_unsigned(append_text(out, ": class "), (uint32_t)best), " scores");
        for (k = 0; k < MODEL(OUTPUT_SIZE); k++) {
            out = append_bits(append_text(out, " "), scores[k]);
        }
        write_line(line, out);
    }
    write_line(line, append_unsigned(append_text(append_unsigned(append_text(line, "calibration "),
                                                                 2u * CALIBRATION_LOOPS),
                                                 " instructions ticks "),
                                     calibration_ticks()));
    write_line(line, append_unsigned(append_text(append_unsigned(append_text(line, "steps "), KWS_CLIPS * KWS_FRAMES),
                                                 " ticks "),
                                     step_ticks));
    write_line(line, append_unsigned(append_text(line, "stack "), stack_peak_bytes()));
    return 0;
}
