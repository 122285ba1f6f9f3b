/*
 * The recording the example listens to: 16 kHz mono 16-bit PCM, written into audio.c at build
 * time from a WAV file by wav_to_c.py.
 */
#ifndef AUDIO_H
#define AUDIO_H

#include <stdint.h>

extern const int16_t audio_samples[];
extern const uint32_t audio_sample_count;

#endif /* AUDIO_H */
