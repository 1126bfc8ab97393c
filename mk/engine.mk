# engine.mk - `make bench-engine`: batching, prefix cache and sampler costs
# of the engine on the CPU backend (bench/engine_bench.c). Never part of
# `make test`. BENCH_MODEL picks another model directory.
BENCH_MODEL ?= $(MODEL)

$(BUILD)/bench/engine_bench: bench/engine_bench.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)

.PHONY: bench-engine
bench-engine: $(BUILD)/bench/engine_bench $(MODEL)/.done
	$(BUILD)/bench/engine_bench $(BENCH_MODEL)
