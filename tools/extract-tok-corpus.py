#!/usr/bin/python3
"""extract-tok-corpus.py - builds the multilingual part of the tokenizer test
corpus (tests/data/tok-corpus/locale/) from the gettext catalogs installed
on a Debian machine (/usr/share/locale/*/LC_MESSAGES/*.mo): the translated
strings (msgstr) of every locale, up to LIMIT bytes per locale, taken
round-robin over the catalogs so each locale mixes sources. Deterministic for
a given set of installed packages; the output is committed, so tests do not
depend on what is installed.

usage: tools/extract-tok-corpus.py OUTDIR [LIMIT]
"""
import glob
import os
import struct
import sys


def mo_strings(path):
    data = open(path, 'rb').read()
    if len(data) < 28:
        return []
    magic = struct.unpack('<I', data[:4])[0]
    end = '<' if magic == 0x950412de else '>' if magic == 0xde120495 else None
    if end is None:
        return []
    _, _, n, _, toff = struct.unpack(end + '5I', data[:20])
    if toff + 8 * n > len(data):
        return []
    out = []
    charset = 'utf-8'
    for i in range(n):
        ln, off = struct.unpack(end + 'II', data[toff + 8 * i:toff + 8 * i + 8])
        raw = data[off:off + ln]
        if i == 0 and b'charset=' in raw:  # the header entry (msgid "")
            charset = raw.split(b'charset=')[1].split(b'\n')[0].strip().decode() or 'utf-8'
            continue
        for part in raw.split(b'\0'):
            try:
                s = part.decode(charset)
            except (LookupError, UnicodeDecodeError):
                continue
            if s.strip():
                out.append(s)
    return out


def main():
    outdir = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 6000
    os.makedirs(outdir, exist_ok=True)
    for locdir in sorted(glob.glob('/usr/share/locale/*/LC_MESSAGES')):
        loc = locdir.split('/')[-2]
        lists = [mo_strings(p) for p in sorted(glob.glob(locdir + '/*.mo'))]
        lists = [l for l in lists if l]
        if not lists:
            continue
        seen, text, size, k = set(), [], 0, 0
        while size < limit and any(lists):
            lst = lists[k % len(lists)]
            k += 1
            if not lst:
                continue
            s = lst.pop(0)
            if s in seen:
                continue
            seen.add(s)
            text.append(s)
            size += len(s.encode())
        with open(os.path.join(outdir, loc + '.txt'), 'w', encoding='utf-8', newline='') as f:
            f.write('\n'.join(text) + '\n')


main()
