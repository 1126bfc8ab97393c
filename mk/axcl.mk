# axcl.mk - the AXCL emulator (build/libaxcl_emu.so), its dependencies for
# the axcl tests, and `make bench-axcl`.
#
# The emulator is a shared library with the AXCL runtime's C ABI; axserve
# dlopens it through AXSERVE_AXCL_LIB. It links util/mem.c with hidden
# visibility so its allocations go through the same wrapper.

EMU_SRC := tools/axcl-emu/emu.c tools/axcl-emu/emu_exec.c src/util/mem.c
EMU_OBJ := $(patsubst %.c,$(BUILD)/emuobj/%.o,$(EMU_SRC))
EMU_LIB := $(BUILD)/libaxcl_emu.so

all: $(EMU_LIB)

$(BUILD)/emuobj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -Itools/axcl-emu -c $< -o $@

$(EMU_LIB): $(EMU_OBJ)
	$(CC) -shared $^ -o $@ -lm -lpthread $(SANFLAGS)

# The axcl unit tests load the emulator next to their build directory.
$(BUILD)/tests/test_axcl $(BUILD)/tests/test_axcl_emu: $(EMU_LIB)

# ---- bench ------------------------------------------------------------
BENCH_AXCL := $(BUILD)/bench/bench_axcl
$(BENCH_AXCL): bench/axcl/bench_axcl.c bench/axcl/vendor_replay.c $(BUILD)/libaxserve.a $(EMU_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itools/axcl-emu bench/axcl/bench_axcl.c bench/axcl/vendor_replay.c \
	  $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)

.PHONY: bench-axcl
bench-axcl: $(BUILD)/axserve $(BENCH_AXCL) $(EMU_LIB)
	bench/axcl/run.sh $(BUILD)

# Test driver for the backend alone (no engine): tests/suites/axcl.sh.
AXCL_DRIVE := $(BUILD)/tests/axcl-drive
$(AXCL_DRIVE): tests/axcl/drive.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)
unit: $(AXCL_DRIVE)
