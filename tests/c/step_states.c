/*
 * Steps one generated model (built with -DMODEL_NAME=<name>, see tests/test_hostile_c.py) through
 * the rows on stdin, MODEL(INPUT_SIZE) numbers a line, and prints one line per row:
 *
 *     status;y0 y1 ...;arena
 *
 * status as NAME_step returned it, y as %.9g (empty when the step was refused) and the whole
 * state struct after the call as the hex bits of each float, so that a test can compare the
 * recurrent state's bytes before and after a refused step.
 */
#include <stdio.h>
#include <string.h>

#include "edgeseq_model.h"

static MODEL(state_t) state;

int main(void)
{
    float x[MODEL(INPUT_SIZE)], y[MODEL(OUTPUT_SIZE)];
    int i;
    MODEL(reset)(&state);
    for (;;) {
        int status;
        for (i = 0; i < MODEL(INPUT_SIZE); i++) {
            if (scanf("%f%*[,]", &x[i]) != 1) { /* numbers separated by commas or blanks */
                return 0;
            }
        }
        status = MODEL(step)(&state, x, y);
        printf("%d;", status);
        for (i = 0; status == EDGESEQ_RT_OK && i < MODEL(OUTPUT_SIZE); i++) {
            printf(i ? " %.9g" : "%.9g", (double)y[i]);
        }
        printf(";");
        for (i = 0; i < MODEL(ARENA_FLOATS); i++) {
            uint32_t bits;
            memcpy(&bits, &state.arena[i], sizeof bits);
            printf(i ? " %08lx" : "%08lx", (unsigned long)bits);
        }
        printf("\n");
    }
}
