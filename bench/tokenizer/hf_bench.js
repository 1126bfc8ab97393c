#!/usr/bin/env node
// hf_bench.js - HF tokenizers (Rust, via @anush008/tokenizers) on the same text
// as bench_tok: load time, encode and decode MB/s, best of REPS runs, one JSON
// object on stdout. Run with RAYON_NUM_THREADS=1 (run.sh does) so HF uses a
// single thread. '<' is replaced as in bench_tok so both see the same text.
// usage: node hf_bench.js TOKENIZER_JSON TEXT_FILE
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.resolve(__dirname, '../../tests/oracle/node_modules/@anush008/tokenizers'));
const REPS = 5;
(async () => {
    const [file, textFile] = process.argv.slice(2);
    let load = 1e9, t;
    for (let r = 0; r < 3; r++) {
        const t0 = process.hrtime.bigint();
        t = Tokenizer.fromFile(file);
        load = Math.min(load, Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const text = fs.readFileSync(textFile, 'utf8').replace(/</g, '(');
    const bytes = Buffer.byteLength(text);
    let enc = 1e9, dec = 1e9, ids, out;
    for (let r = 0; r < REPS; r++) {
        const t0 = process.hrtime.bigint();
        ids = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
        const t1 = process.hrtime.bigint();
        out = await t.decode(ids, false);
        const t2 = process.hrtime.bigint();
        enc = Math.min(enc, Number(t1 - t0) / 1e9);
        dec = Math.min(dec, Number(t2 - t1) / 1e9);
    }
    console.log(JSON.stringify({ bytes, tokens: ids.length, load_ms: +load.toFixed(1),
        encode_mbs: +(bytes / 1e6 / enc).toFixed(2), decode_mbs: +(Buffer.byteLength(out) / 1e6 / dec).toFixed(2) }));
})();
