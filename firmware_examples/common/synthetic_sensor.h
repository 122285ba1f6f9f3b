/*
 * A deterministic stand-in for a sensor, so that an example runs anywhere and a host can replay
 * exactly the stream it saw (tests/codegen_builds.py does): a 32-bit linear congruential
 * generator whose top 24 bits make each value.
 */
#ifndef SYNTHETIC_SENSOR_H
#define SYNTHETIC_SENSOR_H

#include <stdint.h>

/* Advance the generator; return its top 24 bits. */
static inline uint32_t synthetic_sensor_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* One input row of n values: readings k / 2^23 - 1 in [-1, 1) (exact in float32) or, for a
 * token model (vocab > 0), token ids k mod vocab; k is the generator's next 24 bits. */
static inline void synthetic_sensor_row(uint32_t *state, float *x, int n, int vocab)
{
    int i;
    for (i = 0; i < n; i++) {
        const uint32_t k = synthetic_sensor_next(state);
        x[i] = vocab > 0 ? (float)(k % (uint32_t)vocab) : (float)k / 8388608.0f - 1.0f;
    }
}

#endif /* SYNTHETIC_SENSOR_H */
