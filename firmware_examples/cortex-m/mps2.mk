# The toolchain and the QEMU command line of every firmware for QEMU's mps2-an386 (Cortex-M4F):
# included by cortex-m/, vad/ and examples/keyword_spotting/firmware/. CROSS and QEMU may be set.
CROSS ?= arm-none-eabi-
QEMU ?= qemu-system-arm
CC = $(CROSS)gcc
SIZE = $(CROSS)size
ARCH = -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
# Semihosting output goes to QEMU's stdout (the chardev); SYS_EXIT ends QEMU with the program's
# status. A run rule adds the kernel (and -icount shift=0 to count instructions: one per ns of
# virtual time, what SysTick then counts) and puts it under `timeout`.
MPS2_QEMU = $(QEMU) -machine mps2-an386 -nographic -monitor none -serial none \
    -chardev stdio,id=console -semihosting-config enable=on,target=native,chardev=console
