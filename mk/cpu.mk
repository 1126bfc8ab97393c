# cpu.mk - the CPU backend's ISA-specific kernels, its aarch64 cross build
# (kernel tests under qemu-user) and `make bench-cpu`.
#
# x86 kernels compile only on x86-64 hosts and arm kernels only on aarch64;
# anything else gets the portable build (scalar reference kernels).

CPU_ARCH_DIR := src/backend/cpu/arch
CPU_MACHINE := $(shell $(CC) -dumpmachine 2>/dev/null)

ifneq ($(filter x86_64-% amd64-%,$(CPU_MACHINE)),)
ARCH_SRC += $(CPU_ARCH_DIR)/x86/x86.c $(CPU_ARCH_DIR)/x86/avx2.c $(CPU_ARCH_DIR)/x86/avx512.c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c
else ifneq ($(filter aarch64-%,$(CPU_MACHINE)),)
ARCH_SRC += $(CPU_ARCH_DIR)/arm/arm.c $(CPU_ARCH_DIR)/arm/neon.c $(CPU_ARCH_DIR)/arm/dotprod.c
$(BUILD)/obj/$(CPU_ARCH_DIR)/arm/dotprod.o: CFLAGS += -march=armv8.2-a+dotprod
else
ARCH_SRC += $(CPU_ARCH_DIR)/generic/generic.c
endif
