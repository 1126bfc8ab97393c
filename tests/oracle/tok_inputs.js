#!/usr/bin/env node
// tok_inputs.js - the tokenizer test inputs, as a JSON array of strings on stdout.
//   node tok_inputs.js corpus [MAX]  tests/data/tok-corpus: cases.json, every
//                                    locale/*.txt in ~2 KB chunks cut at line ends,
//                                    and the repo's own C sources and docs (code)
//   node tok_inputs.js corpus-subset every 6th input of corpus (for the ASan build)
//   node tok_inputs.js sweep         one line per codepoint of planes 0-3 and 14
//                                    (a sample of the others): the codepoint
//                                    between letters, digits, after a space and an
//                                    apostrophe, and between two combining marks
//                                    (planes 2-3 and 4-13, 15-16 sampled)
//   node tok_inputs.js bench BYTES   a deterministic multilingual text of at least
//                                    BYTES bytes (one string), for make bench-tokenizer
// Deterministic: same files, same output.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '../..');
const corpusDir = path.join(root, 'tests/data/tok-corpus');

function chunks(text, size) {
    const out = [];
    let cur = '';
    for (const line of text.split(/(?<=\n)/)) {
        if (cur.length + line.length > size && cur) {
            out.push(cur);
            cur = '';
        }
        cur += line;
    }
    if (cur) out.push(cur);
    return out;
}

function listFiles(dir, re) {
    let out = [];
    if (!fs.existsSync(dir)) return out;
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out = out.concat(listFiles(p, re));
        else if (re.test(e.name)) out.push(p);
    }
    return out;
}

function locales() {
    return listFiles(path.join(corpusDir, 'locale'), /\.txt$/).map((f) => fs.readFileSync(f, 'utf8'));
}

function corpus(max) {
    let inputs = JSON.parse(fs.readFileSync(path.join(corpusDir, 'cases.json'), 'utf8'));
    for (const text of locales()) inputs = inputs.concat(chunks(text, 2000));
    const code = listFiles(path.join(root, 'src'), /\.[ch]$/).concat(listFiles(path.join(root, 'tests/unit'), /\.c$/));
    for (const f of code) inputs = inputs.concat(chunks(fs.readFileSync(f, 'utf8'), 4000));
    const cfg = path.join(root, 'build/tokenizer-qwen3/tokenizer_config.json');
    if (fs.existsSync(cfg)) inputs.push(fs.readFileSync(cfg, 'utf8'));
    return max ? inputs.slice(0, max) : inputs;
}

function sweep() {
    const cps = [];
    for (let cp = 0; cp < 0x20000; cp++) if (cp < 0xd800 || cp >= 0xe000) cps.push(cp);
    for (let cp = 0x20000; cp < 0x40000; cp += 13) cps.push(cp); // CJK extensions
    for (let cp = 0xe0000; cp < 0xe1000; cp++) cps.push(cp);
    for (let cp = 0x40000; cp < 0x110000; cp += 97) if (cp < 0xe0000 || cp >= 0xe1000) cps.push(cp);
    const inputs = [];
    for (let i = 0; i < cps.length; i += 256) {
        let s = '';
        for (const cp of cps.slice(i, i + 256)) {
            const c = String.fromCodePoint(cp);
            s += `a${c}a 1${c}1 ${c}x'${c}\u0345${c}\u0316\n`;
        }
        inputs.push(s);
    }
    return inputs;
}

function bench(bytes) {
    // interleave locales line by line so every script appears throughout
    const lines = locales().map((t) => t.split(/(?<=\n)/));
    const cases = JSON.parse(fs.readFileSync(path.join(corpusDir, 'cases.json'), 'utf8'));
    let out = '', k = 0, size = 0;
    while (size < bytes) {
        for (const l of lines) {
            const line = l[k % l.length];
            out += line;
            size += Buffer.byteLength(line);
        }
        const c = cases[(k * 7919) % cases.length] + '\n';
        out += c;
        size += Buffer.byteLength(c);
        k++;
    }
    return [out];
}

const [mode, arg] = process.argv.slice(2);
const res = mode === 'corpus' ? corpus(Number(arg) || 0) : mode === 'corpus-subset' ? corpus(0).filter((_, i) => i % 6 === 0) : mode === 'sweep' ? sweep() : mode === 'bench' ? bench(Number(arg) || 2e6) : null;
if (!res) {
    console.error('usage: tok_inputs.js corpus [MAX] | sweep | bench BYTES');
    process.exit(2);
}
process.stdout.write(JSON.stringify(res));
