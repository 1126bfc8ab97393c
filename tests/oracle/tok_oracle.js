#!/usr/bin/env node
// tok_oracle.js - HF tokenizers (Rust, @anush008/tokenizers) as the test oracle
// for src/tok/. Every mode reads JSON on stdin and writes compact JSON on stdout.
//
//   node tok_oracle.js encode TOKENIZER_JSON   [str,...]      -> [[id,...],...]
//   node tok_oracle.js decode TOKENIZER_JSON [--skip-special]  [[id,...],...] -> [str,...]
//   node tok_oracle.js pretok TOKENIZER_JSON   [str,...]      -> [[piece,...],...]
//   node tok_oracle.js randids TOKENIZER_JSON N                -> [[id,...],...]
//        N deterministic id sequences mixing single-byte tokens (broken and
//        split UTF-8), multi-byte tokens, random vocab ids and added tokens
//   node tok_oracle.js compare WHAT EXPECTED GOT [INPUTS]
//        compares two JSON arrays element by element, prints how many were
//        compared and the first mismatch in detail; exit 1 on any mismatch.
//
// encode adds no special tokens (addSpecialTokens: false), like axserve.
// Set RAYON_NUM_THREADS=1 to keep HF single-threaded.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, 'node_modules/@anush008/tokenizers'));

const readStdin = () => JSON.parse(fs.readFileSync(0, 'utf8'));
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

// byte-level alphabet (GPT-2 bytes_to_unicode), to turn pre-tokenizer
// pieces back into the original text
function unByte(s) {
    const keep = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const inv = {};
    let n = 0;
    for (let b = 0; b < 256; b++) inv[String.fromCodePoint(keep(b) ? b : 256 + n++)] = b;
    return Buffer.from([...s].map((c) => inv[c])).toString('utf8');
}

function randIds(t, n) {
    let seed = 12345;
    const rnd = (k) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return Math.floor((seed / 2147483648) * k);
    };
    const keep = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const byteId = [];
    for (let b = 0, m = 0; b < 256; b++) byteId.push(t.tokenToId(String.fromCodePoint(keep(b) ? b : 256 + m++)));
    const vocab = t.getVocabSize(false), total = t.getVocabSize(true);
    const utf8 = ['😀', '👨‍👩‍👧', 'é', '中', '\u{10FFFF}', 'ק'].map((s) => [...Buffer.from(s)]);
    const seqs = [];
    for (let i = 0; i < n; i++) {
        const len = 1 + rnd(12), ids = [];
        for (let k = 0; k < len; k++) {
            const r = rnd(10);
            if (r < 3) ids.push(byteId[rnd(256)]);
            else if (r < 5) for (const b of utf8[rnd(utf8.length)].slice(rnd(2))) ids.push(byteId[b]);
            else if (r < 8) ids.push(rnd(vocab));
            else ids.push(vocab + rnd(total - vocab));
        }
        seqs.push(ids);
    }
    return seqs;
}

function describe(v) {
    const s = JSON.stringify(v);
    return s.length > 400 ? s.slice(0, 400) + '...' : s;
}

function compare(what, expFile, gotFile, inFile) {
    const exp = JSON.parse(fs.readFileSync(expFile, 'utf8'));
    const got = JSON.parse(fs.readFileSync(gotFile, 'utf8'));
    const inputs = inFile ? JSON.parse(fs.readFileSync(inFile, 'utf8')) : null;
    if (!Array.isArray(exp) || !Array.isArray(got) || exp.length !== got.length) {
        console.log(`${what}: FAIL: expected ${exp.length} results, got ${got && got.length}`);
        process.exit(1);
    }
    let bad = 0, first = -1, units = 0;
    for (let i = 0; i < exp.length; i++) {
        units += Array.isArray(exp[i]) ? exp[i].length : exp[i].length;
        if (JSON.stringify(exp[i]) !== JSON.stringify(got[i])) {
            bad++;
            if (first < 0) first = i;
        }
    }
    const unit = Array.isArray(exp[0]) ? 'tokens' : 'chars';
    console.log(`${what}: ${exp.length - bad}/${exp.length} identical (${units} ${unit} compared)`);
    if (!bad) return;
    const e = exp[first], g = got[first];
    console.log(`first mismatch: case ${first}`);
    if (inputs) console.log('  input:    ' + describe(inputs[first]));
    if (Array.isArray(e)) {
        let k = 0;
        while (k < e.length && e[k] === g[k]) k++;
        console.log(`  differs at token ${k}`);
        console.log('  expected: ' + describe(e.slice(Math.max(0, k - 3), k + 8)));
        console.log('  got:      ' + describe(g.slice(Math.max(0, k - 3), k + 8)));
    } else {
        let k = 0;
        while (k < e.length && e[k] === g[k]) k++;
        console.log(`  differs at UTF-16 unit ${k}`);
        console.log('  expected: ' + describe(e.slice(Math.max(0, k - 20), k + 40)));
        console.log('  got:      ' + describe(g.slice(Math.max(0, k - 20), k + 40)));
    }
    process.exit(1);
}

async function main() {
    const [mode, file, opt] = process.argv.slice(2);
    if (mode === 'compare') return compare(file, opt, process.argv[5], process.argv[6]);
    const t = Tokenizer.fromFile(file);
    if (mode === 'encode') {
        const inputs = readStdin();
        const res = [];
        // batches of 256 keep memory flat on large corpora
        for (let i = 0; i < inputs.length; i += 256) {
            const enc = await t.encodeBatch(inputs.slice(i, i + 256), { addSpecialTokens: false });
            for (const e of enc) res.push(e.getIds());
        }
        out(res);
    } else if (mode === 'decode') {
        const skip = opt === '--skip-special';
        const all = readStdin();
        let res = [];
        for (let i = 0; i < all.length; i += 256) res = res.concat(await t.decodeBatch(all.slice(i, i + 256), skip));
        out(res);
    } else if (mode === 'randids') {
        out(randIds(t, Number(opt) || 1000));
    } else if (mode === 'pretok') {
        const pre = t.getPreTokenizer();
        out(readStdin().map((s) => pre.preTokenizeString(s).map((p) => unByte(p[0]))));
    } else {
        console.error('usage: tok_oracle.js encode|decode|pretok TOKENIZER_JSON, or compare');
        process.exit(2);
    }
}
main().catch((e) => {
    console.error('tok_oracle: ' + e.message);
    process.exit(1);
});
