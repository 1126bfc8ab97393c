#!/usr/bin/python3
"""gen-tok-cases.py - writes tests/data/tok-corpus/cases.json, the hand-picked
tokenizer test strings (a JSON array): contractions in every case, whitespace
runs, CRLF, emoji and ZWJ sequences, NFC cases, full-width forms, digits,
special tokens whole and partial, code. The expected ids are not here: the
suite asks HF tokenizers at test time.

usage: tools/gen-tok-cases.py > tests/data/tok-corpus/cases.json
"""
import itertools
import json

cases = []
add = cases.append

# contractions, every case, with various neighbours
conts = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
variants = set()
for c in conts:
    letters = c[1:]
    for combo in itertools.product(*[(ch.lower(), ch.upper()) for ch in letters]):
        variants.add("'" + ''.join(combo))
variants |= {"'\u017f", "'\u017ft", "'\ufb06a", "'\ufb05", "'\u0130", "'\u1e9e", "'K",
             "'\u212a", "'\uff33", "\u2019s", "'x", "'", "''s", "'s'", "'S'LL"}
for v in sorted(variants):
    for pre in ['', 'x', ' ', '1', 'é', '日', "'", '\n', 'it']:
        for post in ['', 'x', ' ', '1', 'é', '\n', "'", 'ſ']:
            add(pre + v + post)
add("I'm sure it's what you'd've wanted; they'RE here, WE'LL see, she'S done, don'T.")

# whitespace runs: every 1- and 2-char combination, 3-char with a subset
ws = [' ', '\t', '\n', '\r', '\u00a0', '\u3000', '\u2028', '\u2029', '\u000b', '\u000c',
      '\u0085', '\u1680', '\u2007', '\u202f', '\u205f', '\u200b', '\u180e', '\u001c', '\ufeff']
for n in (1, 2):
    for combo in itertools.product(ws, repeat=n):
        s = ''.join(combo)
        for post in ['', 'x', '1', '!', ' x', '\n']:
            add('a' + s + post)
            add(s + post)
small = [' ', '\t', '\n', '\r', '\u00a0', '\u3000']
for combo in itertools.product(small, repeat=3):
    add('x' + ''.join(combo) + 'y')
    add(''.join(combo) + '!!')
add('line one\r\nline two\r\n\r\n\r\nline three\n\n\n   indented\n\t\ttabbed\r\r\n\n')
add('   leading and trailing   ')
add('\n\n\n')
add(' ' * 40 + 'x' + '\t' * 9 + '\n' * 7)

# emoji, ZWJ sequences, flags, keycaps, skin tones
emoji = ['😀', '👨‍👩‍👧‍👦', '🏳️‍🌈', '👍🏽', '🇯🇵🇺🇸🇩🇪', '1️⃣', '❤️', '🧑🏿‍🚀', '👩‍❤️‍💋‍👨',
         '🫠', '🦩', '☺', '✔️', '©️', '🏴󠁧󠁢󠁳󠁣󠁴󠁿']
for e in emoji:
    add(e)
    add('a' + e + 'b')
    add(' ' + e + ' ')
    add(e * 5)
add('Party 🎉🎉 time! I ❤️ it 👍🏽👍🏽 and 👨‍👩‍👧‍👦 came.')

# NFC: decomposed vs composed, exclusions, reordering, Hangul jamo, new marks
nfc = ['e\u0301', 'é', 'A\u030a', '\u212b', '\u2126', '\u0958', '\u1100\u1161\u11a8',
       '한국어', '\u1112\u1161\u11ab\u1100\u116e\u11a8', 'a\u0345\u0301', 'a\u0301\u0345',
       'a\u0316\u0301', 'a\u0301\u0316', '\u0f73', '\u0f77', 'ﬁ', 'Tiê\u0301ng Viê\u0323t',
       'Tiếng Việt', 'a\u1df6\u0316', 'a\u1ac1\u0316', '\U00011935\U00011930',
       '\u0b47\u0b3e', '\u09c7\u09be', 'q\u0307\u0323', 'ǖ', 'u\u0308\u0304', '\u0344',
       '\U0001d160', '\u2adc', 'ḳ́', 'ο\u0313\u0301', 'Å\u0301', '\u0041\u030a\u0301',
       'ﾊﾟ', 'ﾊ\uff9f', 'が', 'か\u3099', '\u30ab\u3099', 'e\u0301\u0301\u0301\u0301x']
for s in nfc:
    add(s)
    add('x' + s + ' ' + s + 'y')

# full-width forms, digits of many scripts, number letters
add('ＡＢＣ ａｂｃ １２３ ！？＃ ｶﾀｶﾅ　全角スペース')
add('12345 3.14159 1,000,000 ３４５ ١٢٣ ۴۵۶ १२३ ১২৩ ๑๒๓ ½ ¾ Ⅻ ² ₃ ⑦ 〇 𝟙𝟚')
add('x1y22z333 42nd 2024-01-01T00:00:00Z 0x1F600 1e-9 -7 +8')

# special tokens, whole and partial
toks = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<tool_call>',
        '</tool_call>', '<tool_response>', '</tool_response>', '<|fim_prefix|>', '<|fim_pad|>',
        '<|vision_start|>', '<|image_pad|>', '<|file_sep|>']
for t in toks:
    add(t)
    add('a' + t + 'b')
    add(' ' + t + ' ')
    add(t + t)
    for k in range(1, len(t)):
        add(t[:k])
        add('x' + t[k:])
add('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n'
    'What is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n')
add('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
add('<<|im_start|>> <|im_start|<|im_end|> <|im_sta <|im_start| <|im_start <|IM_START|>')
add('<think></think><think>x</think >< think>')

# code
add('int main(int argc, char **argv) {\n    printf("%d\\n", argc);\n    return 0;\n}\n')
add('def f(x):\n    """doc"""\n    return [i ** 2 for i in range(x) if i % 2 == 0]\n')
add('const re = /^(?:[a-z]+)$/gi; // comment\nlet s = `${a}-${b}`;\n')
add('SELECT * FROM t WHERE a >= 10 AND b <> \'x\';\n')
add('{"key": [1, 2.5, null, true], "nested": {"a": "b\\u00e9"}}\n')
add('    if (x != NULL && *x == \'\\0\') { goto done; }\r\n')
add('$ ls -la | grep "\\.c$" >> out.txt 2>&1 && echo $?\n')

# misc scripts and oddities
add('İstanbul straße ΣΑΣ σας ǅungla ﬀ ß ẞ Ω Ⅸ ŉ')
add('עברית עם ניקוד: שָׁלוֹם. العربية: السَّلامُ عَلَيْكُمْ ‏RTL‎ mark')
add('हिन्दी का एक वाक्य। தமிழ் மொழி. ไทยภาษา ລາວ ខ្មែរ မြန်မာ ᠮᠣᠩᠭᠣᠯ ᏣᎳᎩ ⵜⴰⵎⴰⵣⵉⵖⵜ')
add('𝓗𝓮𝓵𝓵𝓸 𝕎𝕠𝕣𝕝𝕕 🄰🄱 ⓐⓑ ℌℑ')
add('\u0000\u0001\u0007\u001b[31mred\u001b[0m\u007f\u0080\u009f')
add('')
add('a')
add(' ')
add("'")
add('\U0010fffd\U000e0001\U000f0000 \ufffd\ufffe')

print(json.dumps(cases, ensure_ascii=False))
