#!/bin/sh
# speech.sh OUT.wav VOICE GAP SENTENCE [GAP SENTENCE ...] TAIL
#
# Speaks each SENTENCE with espeak-ng's VOICE after GAP seconds of silence, then TAIL seconds of
# silence, as 16 kHz mono 16-bit PCM with pink noise about 34 dB under full scale mixed in:
# speech, silence and noise for the voice-activity detector. sox runs with -R (repeatable), so
# its dither and noise are the same samples on every build.
set -eu
out=$1 voice=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
while [ $# -gt 1 ]; do
    espeak-ng -v "$voice" -w "$work/raw$n.wav" "$2"
    sox -R "$work/raw$n.wav" -r 16000 -c 1 -b 16 "$work/part$(printf %02d $n).wav" pad "$1" 0
    n=$((n + 1))
    shift 2
done
sox -R "$work"/part*.wav "$work/voice.wav" pad 0 "$1"
sox -R -n -r 16000 -c 1 -b 16 "$work/noise.wav" synth "$(soxi -D "$work/voice.wav")" pinknoise vol 0.02
sox -R -m -v 0.9 "$work/voice.wav" -v 1 "$work/noise.wav" -t wav "$out.part"
mv "$out.part" "$out"
