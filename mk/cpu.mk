# cpu.mk - the CPU backend's ISA-specific kernels, its aarch64 cross build
# (kernel tests under qemu-user) and `make bench-cpu`.
#
# x86 kernels compile only on x86-64 hosts and arm kernels only on aarch64;
# anything else gets the portable build (scalar reference kernels).

CPU_ARCH_DIR := src/backend/cpu/arch
CPU_MACHINE := $(shell $(CC) -dumpmachine 2>/dev/null)

ifneq ($(filter x86_64-% amd64-%,$(CPU_MACHINE)),)
ARCH_SRC += $(CPU_ARCH_DIR)/x86/x86.c $(CPU_ARCH_DIR)/x86/avx2.c $(CPU_ARCH_DIR)/x86/avx512.c \
    $(CPU_ARCH_DIR)/x86/avx512_attn.c $(CPU_ARCH_DIR)/x86/avx512_attn_block.c \
    $(CPU_ARCH_DIR)/x86/avx512_panel.c \
    $(CPU_ARCH_DIR)/x86/avx512vnni.c \
    $(CPU_ARCH_DIR)/x86/avx512bf16.c $(CPU_ARCH_DIR)/x86/avx512_split.c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512_attn.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma \
    -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512_attn_block.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx2 \
    -mfma -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512_panel.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512vnni.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma \
    -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512bf16.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mavx2 -mfma \
    -mf16c
$(BUILD)/obj/$(CPU_ARCH_DIR)/x86/avx512_split.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512bf16 \
    -mavx512vnni -mavx2 -mfma
else ifneq ($(filter aarch64-%,$(CPU_MACHINE)),)
ARCH_SRC += $(CPU_ARCH_DIR)/arm/arm.c $(CPU_ARCH_DIR)/arm/neon.c $(CPU_ARCH_DIR)/arm/dotprod.c
$(BUILD)/obj/$(CPU_ARCH_DIR)/arm/dotprod.o: CFLAGS += -march=armv8.2-a+dotprod
else
ARCH_SRC += $(CPU_ARCH_DIR)/generic/generic.c
endif

# ---- aarch64 cross build of the kernels and their checks -------------------
# build/aarch64/kern_test: static, so qemu-aarch64 runs it without a sysroot.
AARCH64_CC ?= aarch64-linux-gnu-gcc
AARCH64_DIR := build/aarch64
CPU_AARCH64_SRC := src/backend/cpu/kernels.c $(CPU_ARCH_DIR)/arm/arm.c \
    $(CPU_ARCH_DIR)/arm/neon.c src/util/mem.c src/util/err.c src/util/log.c
CPU_AARCH64_FLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -Isrc

$(AARCH64_DIR)/obj/dotprod.o: $(CPU_ARCH_DIR)/arm/dotprod.c $(CPU_ARCH_DIR)/arm/neon_impl.h \
    $(CPU_ARCH_DIR)/expf_poly.h src/backend/cpu/kernels.h
	@mkdir -p $(dir $@)
	$(AARCH64_CC) $(CPU_AARCH64_FLAGS) -march=armv8.2-a+dotprod -c $< -o $@

$(AARCH64_DIR)/kern_test: tests/aarch64/kern_main.c tests/unit/kern_checks.h $(CPU_AARCH64_SRC) \
    $(CPU_ARCH_DIR)/arm/neon_impl.h $(CPU_ARCH_DIR)/expf_poly.h src/backend/cpu/kernels.h \
    $(AARCH64_DIR)/obj/dotprod.o
	@mkdir -p $(dir $@)
	$(AARCH64_CC) $(CPU_AARCH64_FLAGS) -static tests/aarch64/kern_main.c $(CPU_AARCH64_SRC) \
	    $(AARCH64_DIR)/obj/dotprod.o -o $@ -lm

.PHONY: cpu-aarch64
cpu-aarch64: $(AARCH64_DIR)/kern_test

# ---- make bench-cpu --------------------------------------------------------
$(BUILD)/bench/membw: bench/cpu/membw.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)

.PHONY: bench-cpu
bench-cpu: $(BUILD)/axserve $(BUILD)/bench/membw
	AX=$(BUILD)/axserve BW=$(BUILD)/bench/membw sh bench/cpu/bench_cpu.sh

# kernel compute throughput (CPU time, cache-resident weights)
$(BUILD)/bench/kbench: bench/cpu/kbench.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)

.PHONY: bench-kern
bench-kern: $(BUILD)/bench/kbench
	$(BUILD)/bench/kbench

# per-token cost of the thread pool's hand-offs (tiny matrices, full depth)
.PHONY: bench-cpu-overhead
bench-cpu-overhead: $(BUILD)/axserve
	AX=$(BUILD)/axserve sh bench/cpu/bench_overhead.sh
