# tok.mk - the tokenizer's extra targets.
#   make bench-tokenizer   encode/decode MB/s of src/tok/ vs HF tokenizers (single
#                          thread) and a naive string-merge BPE, plus load time
TOK_BENCH := $(BUILD)/bench/bench_tok

$(TOK_BENCH): bench/tokenizer/bench_tok.c $(BUILD)/libaxserve.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(BUILD)/libaxserve.a -o $@ $(LDLIBS_ALL)

.PHONY: bench-tokenizer
bench-tokenizer: $(TOK_BENCH) $(TOKDIR)/tokenizer.json tests/oracle/node_modules/.stamp
	bench/tokenizer/run.sh $(TOK_BENCH) $(TOKDIR)/tokenizer.json $(BUILD)/bench
