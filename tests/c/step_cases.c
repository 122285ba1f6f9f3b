/*
 * Steps any of many generated models through the rows on stdin (see tests/test_codegen_conv_ops.py),
 * so that one build serves every case:
 *
 *     step_cases NAME < rows        one line per row: "status;y0 y1 ..." (y empty when refused)
 *
 * Built with the folder of cases.h on the include path; cases.h, written by the test, includes
 * every model's NAME.h and defines CASES as X(name) X(name) ... and MAX_INPUT, MAX_OUTPUT.
 * Exit status: 0; 1 for an unknown NAME or a row cut short.
 */
#include <stdio.h>
#include <string.h>

#include "cases.h"

#define X(name)                                                                              \
    static name##_state_t name##_state;                                                      \
    static void name##_reset_stream(void) { name##_reset(&name##_state); }                   \
    static int name##_step_stream(const float *x, float *y) { return name##_step(&name##_state, x, y); }
CASES
#undef X

typedef struct {
    const char *name;
    int input_size, output_size;
    void (*reset)(void);
    int (*step)(const float *x, float *y);
} model_case_t;

static const model_case_t models[] = {
#define X(name) {#name, name##_INPUT_SIZE, name##_OUTPUT_SIZE, name##_reset_stream, name##_step_stream},
    CASES
#undef X
};

static float x[MAX_INPUT], y[MAX_OUTPUT];

int main(int argc, char **argv)
{
    const model_case_t *model = NULL;
    size_t k;
    int i;
    for (k = 0; argc == 2 && k < sizeof models / sizeof models[0]; k++) {
        if (strcmp(models[k].name, argv[1]) == 0) {
            model = &models[k];
        }
    }
    if (model == NULL) {
        fprintf(stderr, "usage: step_cases NAME < rows (NAME: a model of cases.h)\n");
        return 1;
    }
    model->reset();
    for (;;) {
        int status;
        for (i = 0; i < model->input_size; i++) {
            if (scanf("%f%*[,]", &x[i]) != 1) {
                return i == 0 ? 0 : 1;
            }
        }
        status = model->step(x, y);
        printf("%d;", status);
        for (i = 0; status == 0 && i < model->output_size; i++) {
            printf(i ? " %.9g" : "%.9g", (double)y[i]);
        }
        printf("\n");
    }
}
