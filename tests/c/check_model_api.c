/*
 * Checks the C API contract of one generated model, built with -DMODEL_NAME=<name> (see
 * tests/test_codegen_host.py):
 *   - NAME_RAM_BYTES is the size of the state, and reset gives the same state every time;
 *   - a rejected step (NaN, +Inf or -Inf in any input, a bad token id, a NULL pointer) returns
 *     its status and leaves the whole state and the output untouched, byte for byte;
 *   - the stream then goes on exactly as if the rejected steps had never been made, and two
 *     states are independent streams.
 * Prints "ok", or the first failed check; exit status 0 or 1.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "edgeseq_model.h"
#include "synthetic_sensor.h"

#define STEPS 50
#define CHECK(condition)                                                        \
    do {                                                                        \
        if (!(condition)) {                                                     \
            printf("failed: %s (%s line %d)\n", #condition, __FILE__, __LINE__); \
            return 1;                                                           \
        }                                                                       \
    } while (0)

static MODEL(state_t) stream, replay, fresh, before;

/* One step with x[position] = bad must return `expected` and change neither state nor y. */
static int check_rejected(const float *x, int position, float bad, int expected)
{
    float bad_x[MODEL(INPUT_SIZE)], y[MODEL(OUTPUT_SIZE)], y_before[MODEL(OUTPUT_SIZE)];
    memcpy(bad_x, x, sizeof bad_x);
    bad_x[position] = bad;
    memset(y, 0x5a, sizeof y);
    memcpy(y_before, y, sizeof y);
    before = stream;
    CHECK(MODEL(step)(&stream, bad_x, y) == expected);
    CHECK(memcmp(&stream, &before, sizeof stream) == 0);
    CHECK(memcmp(y, y_before, sizeof y) == 0);
    return 0;
}

static int check_bad_inputs(const float *x)
{
    const float not_finite[] = {NAN, INFINITY, -INFINITY};
    float y[MODEL(OUTPUT_SIZE)];
    int i, k;
    for (i = 0; i < MODEL(INPUT_SIZE); i++) {
        for (k = 0; k < 3; k++) {
            CHECK(check_rejected(x, i, not_finite[k], EDGESEQ_RT_NOT_FINITE) == 0);
        }
    }
    if (MODEL(VOCAB) > 0) {
        const float not_tokens[] = {0.5f, (float)MODEL(VOCAB), -(float)MODEL(VOCAB) - 1.0f, 1e30f};
        for (k = 0; k < 4; k++) {
            CHECK(check_rejected(x, 0, not_tokens[k], EDGESEQ_RT_BAD_TOKEN) == 0);
        }
    }
    before = stream;
    CHECK(MODEL(step)(NULL, x, y) == EDGESEQ_RT_NULL_POINTER);
    CHECK(MODEL(step)(&stream, NULL, y) == EDGESEQ_RT_NULL_POINTER);
    CHECK(MODEL(step)(&stream, x, NULL) == EDGESEQ_RT_NULL_POINTER);
    CHECK(memcmp(&stream, &before, sizeof stream) == 0);
    return 0;
}

static int check(void)
{
    float x[MODEL(INPUT_SIZE)], y[MODEL(OUTPUT_SIZE)], y_replay[MODEL(OUTPUT_SIZE)];
    uint32_t sensor = 1;
    int t;
    CHECK(MODEL(RAM_BYTES) == sizeof(MODEL(state_t)));
    MODEL(reset)(&stream);
    MODEL(reset)(&replay);
    MODEL(reset)(&fresh);
    for (t = 0; t < STEPS; t++) {
        synthetic_sensor_row(&sensor, x, MODEL(INPUT_SIZE), MODEL(VOCAB));
        if (t % 10 == 5) {
            CHECK(check_bad_inputs(x) == 0);
        }
        CHECK(MODEL(step)(&stream, x, y) == EDGESEQ_RT_OK);
        CHECK(MODEL(step)(&replay, x, y_replay) == EDGESEQ_RT_OK);
        CHECK(memcmp(y, y_replay, sizeof y) == 0);
    }
    CHECK(memcmp(&stream, &replay, sizeof stream) == 0);
    CHECK(memcmp(&stream, &fresh, sizeof stream) != 0);
    MODEL(reset)(&stream);
    CHECK(memcmp(&stream, &fresh, sizeof stream) == 0);
    if (MODEL(VOCAB) > 0) { /* negative ids count from the end, as in ONNX Gather */
        x[0] = -1.0f;
        CHECK(MODEL(step)(&stream, x, y) == EDGESEQ_RT_OK);
    }
    return 0;
}

int main(void)
{
    if (check() != 0) {
        return 1;
    }
    printf("ok\n");
    return 0;
}
