/*
 * A stand-in for the Arduino core's Arduino.h with just what the sketch uses, so that the sketch
 * can be compile-checked (make check) where no Arduino toolchain is installed.
 */
#ifndef ARDUINO_H_STAND_IN
#define ARDUINO_H_STAND_IN

#include <stddef.h>
#include <stdint.h>

enum { A0 = 14, A1, A2, A3 };

int analogRead(uint8_t pin);
unsigned long millis(void);

class SerialPort {
public:
    void begin(unsigned long baud);
    size_t print(const char *text);
    size_t print(double value, int digits);
    size_t println(const char *text = "");
};

extern SerialPort Serial;

#endif /* ARDUINO_H_STAND_IN */
