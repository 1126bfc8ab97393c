#!/bin/sh
# run.sh BENCH_BIN TOKENIZER_JSON WORKDIR - `make bench-tokenizer`.
# Builds a ~2.5 MB multilingual text from the committed corpus (deterministic:
# tests/oracle/tok_inputs.js bench), runs bench_tok (ours + naive BPE) and
# HF tokenizers single-threaded (RAYON_NUM_THREADS=1) on it, and prints the
# MB/s side by side with ratios. Times are process CPU time, best of 5 (3 for
# load). Numbers are noisy on a shared machine: the ratios, measured in the
# same run, are what to look at.
set -eu
bin=$1 tok=$2 dir=$3
mkdir -p "$dir"
node tests/oracle/tok_inputs.js bench 2500000 |
    node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8"))[0])' >"$dir/bench.txt"
echo "text: $dir/bench.txt, $(wc -c <"$dir/bench.txt") bytes"
"$bin" "$tok" "$dir/bench.txt" >"$dir/ours.json"
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node bench/tokenizer/hf_bench.js "$tok" "$dir/bench.txt" >"$dir/hf.json"
node -e '
const fs = require("fs");
const o = JSON.parse(fs.readFileSync(process.argv[1])), h = JSON.parse(fs.readFileSync(process.argv[2]));
const r = (a, b) => (a / b).toFixed(2) + "x";
console.log(`tokens: ours ${o.tokens}, HF ${h.tokens} ${o.tokens === h.tokens ? "(same count)" : "(DIFFERENT)"}`);
console.log(`load tokenizer.json:   ours ${o.load_ms} ms      HF ${h.load_ms} ms`);
console.log(`encode (1 thread):     ours ${o.encode_mbs} MB/s   HF ${h.encode_mbs} MB/s   naive BPE ${o.naive_encode_mbs} MB/s`);
console.log(`decode (1 thread):     ours ${o.decode_mbs} MB/s   HF ${h.decode_mbs} MB/s`);
console.log(`ratios: encode ours/HF ${r(o.encode_mbs, h.encode_mbs)}, ours/naive ${r(o.encode_mbs, o.naive_encode_mbs)}, decode ours/HF ${r(o.decode_mbs, h.decode_mbs)}, naive output identical: ${o.naive_same}`);
' "$dir/ours.json" "$dir/hf.json"
