# axserve - one C program serving Qwen3 behind an OpenAI-compatible API.
#
#   make            build build/axserve and the default synthetic model
#   make run        ...and start the server on it
#   make test       every test: unit (plain and ASan+UBSan), oracles, end-to-end, fuzz smoke
#   make bench-*    benchmarks (never part of make test)
#   make lint       cppcheck + clang-tidy;  make format  clang-format
#
# Modules add their own rules in mk/*.mk (tests, benches, per-file flags).

# Use every core unless the caller chose (-jN on the command line wins).
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif

BUILD   ?= build
CC      ?= cc
OPT     ?= -O2
SAN     ?=
PKGS    := libmicrohttpd jansson libcurl libpcre2-8 libutf8proc
PYTHON  ?= /usr/bin/python3
MODEL   ?= $(BUILD)/models/default
TOKDIR  := $(BUILD)/tokenizer-qwen3

# Quiet compile lines unless V=1.
ifeq ($(V),1)
Q :=
else
Q := @
endif

ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifeq ($(SAN),fuzz)
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
endif

# Recursively expanded on purpose: pkg-config runs only after deps are in.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -g -Isrc $(PKG_CFLAGS) \
             $(SANFLAGS) -MMD -MP $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm -lpthread -ldl $(SANFLAGS) $(LDLIBS)

# Portable sources; ISA-specific kernels live under */arch/ and are added
# by mk/cpu.mk with their own flags.
LIB_SRC := $(shell find src -name '*.c' -not -path '*/arch/*' -not -name main.c | sort)
ARCH_SRC :=
EXTRA_LIB_OBJ :=

DEPS_STAMP := $(BUILD)/.deps-build

.PHONY: all run test unit deps deps-test bench lint format fuzz clean distclean
all: $(BUILD)/axserve $(MODEL)/.done

-include mk/*.mk

LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC) $(ARCH_SRC)) $(EXTRA_LIB_OBJ)

$(DEPS_STAMP):
	@mkdir -p $(BUILD)
	@tools/deps.sh build
	@touch $@

deps: $(DEPS_STAMP)
deps-test: deps
	@tools/deps.sh test

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libaxserve.a: $(LIB_OBJ)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)ar rcs $@ $^

$(BUILD)/axserve: $(BUILD)/obj/src/main.o $(BUILD)/libaxserve.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $^ -o $@ $(LDLIBS_ALL)

$(TOKDIR)/tokenizer.json: tools/fetch-tokenizer.sh | $(DEPS_STAMP)
	tools/fetch-tokenizer.sh $(TOKDIR)

# The default model: a small synthetic Qwen3 with the real tokenizer.
$(MODEL)/.done: $(BUILD)/axserve $(TOKDIR)/tokenizer.json
	$(BUILD)/axserve make-test-model $(MODEL) --tokenizer-from $(TOKDIR) $(DEFAULT_MODEL_ARGS)
	@touch $@

run: all
	$(BUILD)/axserve serve -m $(MODEL)

# ---- tests -------------------------------------------------------------
# Unit tests: tests/unit/test_*.c, one cmocka binary each, linked against
# the library. Suites: tests/suites/*.sh, each exits non-zero on failure.
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS_ALL) -Itests $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL) -lcmocka

unit: $(UNIT_BIN)

# Reference oracles (npm, test-time only), pinned by package-lock.json.
ORACLE := tests/oracle/node_modules/.stamp
$(ORACLE): tests/oracle/package.json tests/oracle/package-lock.json
	cd tests/oracle && npm ci --silent --no-audit --no-fund
	@touch $@

test: deps-test all $(ORACLE)
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 unit build/asan/axserve
	$(MAKE) --no-print-directory fuzz
	tests/run.sh

# Fuzz targets: tests/fuzz/fuzz_*.c (libFuzzer, clang). `make fuzz` builds
# them in build/fuzz; tests/suites/fuzz.sh runs each briefly on its seeds.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzzers/%,$(FUZZ_SRC))
$(BUILD)/fuzzers/%: tests/fuzz/%.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZER  $@")
	$(Q)$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -Itests $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)
fuzzers: $(FUZZ_BIN)
fuzz:
	$(MAKE) --no-print-directory BUILD=build/fuzz SAN=fuzz CC=clang OPT=-O1 fuzzers

bench: bench-tokenizer bench-cpu bench-server bench-axcl

lint: deps-test
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr -Isrc --std=c11 src tools
	clang-tidy --quiet $(LIB_SRC) -- -std=c11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS)

format:
	clang-format -i $$(find src tests tools bench -name '*.[ch]')

clean:
	rm -rf $(BUILD)/obj $(BUILD)/tests $(BUILD)/asan $(BUILD)/axserve $(BUILD)/libaxserve.a

distclean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
