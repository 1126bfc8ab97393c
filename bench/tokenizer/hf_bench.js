#!/usr/bin/env node
// hf_bench.js - HF tokenizers (Rust, via @anush008/tokenizers) on the same text
// as bench_tok: load time, encode and decode MB/s, best of REPS runs, one JSON
// object on stdout. Run with RAYON_NUM_THREADS=1 (run.sh does) so HF uses a
// single thread. '<' is replaced as in bench_tok so both see the same text.
// Times are process CPU time (process.cpuUsage), as in bench_tok: the machine
// is shared and waiting for a CPU should not count.
// usage: node hf_bench.js TOKENIZER_JSON TEXT_FILE
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.resolve(__dirname, '../../tests/oracle/node_modules/@anush008/tokenizers'));
const REPS = 5;
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; }; // ms
(async () => {
    const [file, textFile] = process.argv.slice(2);
    let load = 1e9, t;
    for (let r = 0; r < 3; r++) {
        const t0 = cpu();
        t = Tokenizer.fromFile(file);
        load = Math.min(load, cpu() - t0);
    }
    const text = fs.readFileSync(textFile, 'utf8').replace(/</g, '(');
    const bytes = Buffer.byteLength(text);
    // chunks of whole lines of at most 4000 bytes, the rule of bench_tok.c
    const chunks = [];
    let cur = '', curBytes = 0;
    for (const line of text.split(/(?<=\n)/)) {
        const lb = Buffer.byteLength(line);
        if (cur && curBytes + lb > 4000) {
            chunks.push(cur);
            cur = '';
            curBytes = 0;
        }
        cur += line;
        curBytes += lb;
    }
    if (cur) chunks.push(cur);
    let enc = 1e9, dec = 1e9, ids, out;
    for (let r = 0; r < REPS; r++) {
        const t0 = cpu();
        ids = [];
        for (const c of chunks) for (const id of (await t.encode(c, null, { addSpecialTokens: false })).getIds()) ids.push(id);
        const t1 = cpu();
        out = await t.decode(ids, false);
        const t2 = cpu();
        enc = Math.min(enc, (t1 - t0) / 1e3);
        dec = Math.min(dec, (t2 - t1) / 1e3);
    }
    console.log(JSON.stringify({ bytes, tokens: ids.length, load_ms: +load.toFixed(1),
        encode_mbs: +(bytes / 1e6 / enc).toFixed(2), decode_mbs: +(Buffer.byteLength(out) / 1e6 / dec).toFixed(2) }));
})();
