#!/usr/bin/env node
// gen-tok-unit-expect.js - writes tests/data/tok-unit-expect.json, the
// expectations of tests/unit/test_tok.c, all computed by HF tokenizers:
//   split:  [text, [piece, ...]]  the pieces of the Qwen2 split regex
//                                 (HF's pre-tokenizer, before NFC)
//   encode: [text, [id, ...]]     Qwen3 ids
//   decode: [[id, ...], skip, text]
// Run from the repo root after make and npm ci in tests/oracle:
//   node tools/gen-tok-unit-expect.js > tests/data/tok-unit-expect.json
'use strict';
const path = require('path');
const root = path.resolve(__dirname, '..');
const { Tokenizer } = require(path.join(root, 'tests/oracle/node_modules/@anush008/tokenizers'));
const t = Tokenizer.fromFile(path.join(root, 'build/tokenizer-qwen3/tokenizer.json'));

function unByte(s) {
    const keep = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const inv = {};
    let n = 0;
    for (let b = 0; b < 256; b++) inv[String.fromCodePoint(keep(b) ? b : 256 + n++)] = b;
    return Buffer.from([...s].map((c) => inv[c])).toString('utf8');
}

const split = [
    "Hello world", "it's", "IT'S", "they'RE", "we'Ve", "I'm", "you'LL", "he'd", "'s", "x's",
    "x'ſ", "x'ſt", "x'ﬆa", "x'x", "''s", "don't stop", "   x", "  \n x", "a\n\n\nb", "a \n \n b",
    "x\r\ny", "\t\tfoo", "a  b", "a   ", "   ", "\n", " \n", "\u00a0hello", "\u3000x", "x\u2028y",
    "x\u0085y", "$100", "3.14", "12345", "a1b2", "..., ok", " !!!\n\nx", "!!!\r\n\r\nx",
    "(a)", "-> =>", "😀😀 x", "a😀b", " 😀", "日本語のテキスト", "हिन्दी", "e\u0301", "x\u0301\u0301",
    "ＡＢＣ１２３", "½⅓", "٣٤", "𝟙𝟚", "<|im_start|>user", "\u001c\u001dx", "\u200bx", "\ufeffx",
    "a\u180eb", "𐗀x", "x\u0345y", "foo  bar\t\tbaz\n\n\nqux   ",
];
const encode = [
    "Hello world", "<|im_start|>user\nhi<|im_end|>\n", "<think>\n\n</think>\n\n", "<|im_sta",
    "e\u0301 vs é", "\u212b", "\u0958", "a\u1df6\u0316", "a\u1ab0\u0316", "\u1100\u1161\u11a8",
    "👨‍👩‍👧‍👦", "it'S ſ 'ſ", "", "\u0000", "x\r\n\r\n  y",
];
const decode = [
    [[9707, 1879], false], [[151644, 872, 198, 151645], false], [[151644, 872, 198, 151645], true],
    [[151667, 151668], true], [[172, 253, 246, 222], false], [[172, 253], false], [[172, 253, 32], false],
    [[253, 246], false], [[226, 222, 226], false], [[97, 255, 98], false], [[172, 151645, 253, 246, 222], true],
    [[172, 151645, 253, 246, 222], false], [[225, 243, 243], false],
];

(async () => {
    const pre = t.getPreTokenizer();
    const out = { split: [], encode: [], decode: [] };
    for (const s of split) out.split.push([s, pre.preTokenizeString(s).map((p) => unByte(p[0]))]);
    for (const s of encode) out.encode.push([s, (await t.encode(s, null, { addSpecialTokens: false })).getIds()]);
    for (const [ids, skip] of decode) out.decode.push([ids, skip, await t.decode(ids, skip)]);
    process.stdout.write(JSON.stringify(out, null, 1) + '\n');
})();
