// gen_unidata.mjs: write src/unidata.c, the Unicode facts finemask's
// tokenizer needs beyond what the linked utf8proc knows.
//
//   node tests/tools/gen_unidata.mjs build/unidata_dump > src/unidata.c
//   node tests/tools/gen_unidata.mjs build/unidata_dump --check src/unidata.c
//
// HuggingFace's tokenizers for JavaScript (@huggingface/tokenizers) take every
// Unicode fact from the JavaScript engine: \p{...} classes in regular
// expressions, String.prototype.toLowerCase and normalize("NFD"), which in
// Node.js come from its ICU. utf8proc (Debian 12: 2.8.0, Unicode 15.0) is
// older. This script asks both, code point by code point, and keeps what the
// tokenizer can see:
//
//  - delta: each code point whose tokenizer class (removed: Cc Cf Co Cs;
//    space: Zs; punctuation: P*; stripped accent: Mn; anything else), simple
//    or full lower-case mapping, canonical decomposition or canonical
//    combining class differs between utf8proc and the engine, with the
//    engine's values. (The engine has no combining-class query: the class of
//    a code point is found by watching NFD reorder it against marks of every
//    class.)
//  - the Cased and Case_Ignorable properties as code point ranges (utf8proc
//    has neither; toLowerCase needs them for the final-sigma rule).
//
// --check FILE regenerates into memory and exits 1, naming the first
// difference, when FILE is not what this engine and utf8proc give.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const args = process.argv.slice(2);
if (args.length !== 1 && !(args.length === 3 && args[1] === '--check')) {
    process.stderr.write('usage: node gen_unidata.mjs UNIDATA_DUMP [--check src/unidata.c]\n');
    process.exit(2);
}
const dump = execFileSync(args[0], { maxBuffer: 1 << 28, encoding: 'utf8' }).split('\n');
const header = dump.shift();
const u = new Map(); // utf8proc: cp -> {gc, lower, nfd, ccc}
for (const line of dump) {
    if (!line) continue;
    const [cp, gc, lower, nfd, ccc] = line.split(';');
    u.set(parseInt(cp, 16), { gc, lower: lower.split(' ').map((h) => parseInt(h, 16)), nfd: nfd.split(' ').map((h) => parseInt(h, 16)), ccc: +ccc });
}

const CATS = ['Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'Mn', 'Mc', 'Me', 'Nd', 'Nl', 'No', 'Pc', 'Pd', 'Ps', 'Pe', 'Pi', 'Pf', 'Po',
    'Sm', 'Sc', 'Sk', 'So', 'Zs', 'Zl', 'Zp', 'Cc', 'Cf', 'Cs', 'Co', 'Cn'];
const catRe = CATS.map((c) => [c, new RegExp(`^\\p{gc=${c}}$`, 'u')]);
const gcOf = (ch) => catRe.find(([, r]) => r.test(ch))[0];
const tokClass = (gc) => ['Cc', 'Cf', 'Co', 'Cs'].includes(gc) ? 'removed' : gc === 'Zs' ? 'space' : gc[0] === 'P' ? 'punct' : gc === 'Mn' ? 'mn' : 'other';
const cps = (s) => [...s].map((c) => c.codePointAt(0));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// One mark of each combining class utf8proc knows (classes are stable once assigned).
const marks = new Map();
for (const [cp, f] of u) if (f.ccc && f.gc === 'Mn' && same(f.nfd, [cp]) && !marks.has(f.ccc)) marks.set(f.ccc, cp);
const classes = [...marks.keys()].sort((a, b) => a - b);
// The engine's combining class of ch (which NFD leaves alone): the class it
// sorts between. 0 when it never moves (a starter).
function engineCcc(ch) {
    let above = 0, below = 256; // largest class it sorts after, smallest it sorts before
    for (const c of classes) {
        const m = String.fromCodePoint(marks.get(c));
        if (('a' + m + ch).normalize('NFD') === 'a' + ch + m) below = Math.min(below, c);
        if (('a' + ch + m).normalize('NFD') === 'a' + m + ch) above = Math.max(above, c);
    }
    if (above === 0 && below === 256) return 0;
    const inside = classes.filter((c) => c > above && c < below);
    if (inside.length !== 1) throw new Error(`U+${ch.codePointAt(0).toString(16)}: combining class between ${above} and ${below} is not one known class`);
    return inside[0];
}

const cased = /^\p{Cased}$/u, ignorable = /^\p{Case_Ignorable}$/u;
const delta = [], casedRanges = [], ignRanges = [];
const addRange = (list, cp) => {
    const last = list[list.length - 1];
    if (last && last[1] === cp - 1) last[1] = cp; else list.push([cp, cp]);
};
for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const ch = String.fromCodePoint(cp), f = u.get(cp);
    if (cased.test(ch)) addRange(casedRanges, cp);
    if (ignorable.test(ch)) addRange(ignRanges, cp);
    const gc = gcOf(ch), lower = cps(ch.toLowerCase()), nfd = cps(ch.normalize('NFD'));
    let ccc = f.ccc;
    if ((f.gc === 'Cn' && gc !== 'Cn') || gc !== f.gc) ccc = same(nfd, [cp]) ? engineCcc(ch) : f.ccc;
    const e = { cp, gc, ccc, lower: same(lower, f.lower) ? null : lower, nfd: same(nfd, f.nfd) ? null : nfd };
    if (tokClass(gc) !== tokClass(f.gc) || e.lower || e.nfd || ccc !== f.ccc) delta.push(e);
}

// The C source.
const pool = [0];
const seqIndex = (s) => {
    if (!s) return 0;
    const i = pool.length;
    pool.push(s.length, ...s);
    return i;
};
const hex = (n) => '0x' + n.toString(16).toUpperCase();
const lines = [];
const ucVersion = process.versions.unicode;
lines.push('/* unidata.c: GENERATED by tests/tools/gen_unidata.mjs; do not edit.');
lines.push(' *');
lines.push(` * Unicode ${ucVersion} as Node.js ${process.versions.node} (ICU ${process.versions.icu}) sees it,`);
lines.push(` * against ${header.replace(/^# /, '')}: the code points whose tokenizer-visible`);
lines.push(' * facts differ, and the Cased and Case_Ignorable ranges. See unidata.h. */');
lines.push('#include "unidata.h"');
lines.push('');
lines.push('#include <utf8proc.h>');
lines.push('');
lines.push(`const char fm_unidata_unicode_version[] = "${ucVersion}";`);
lines.push('');
const rows = delta.map((e) => `    {${hex(e.cp)}, UTF8PROC_CATEGORY_${e.gc.toUpperCase()}, ${e.ccc}, ${seqIndex(e.lower)}, ${seqIndex(e.nfd)}},`);
lines.push('const fm_unidata_entry fm_unidata_delta[] = {');
lines.push(...rows);
lines.push('};');
lines.push(`const size_t fm_unidata_ndelta = ${delta.length};`);
lines.push('');
lines.push('const int32_t fm_unidata_seq[] = {');
for (let i = 0; i < pool.length; i += 12) lines.push('    ' + pool.slice(i, i + 12).map(hex).join(', ') + ',');
lines.push('};');
lines.push('');
for (const [name, list] of [['cased', casedRanges], ['case_ignorable', ignRanges]]) {
    lines.push(`const int32_t fm_unidata_${name}[][2] = {`);
    for (let i = 0; i < list.length; i += 6) lines.push('    ' + list.slice(i, i + 6).map(([a, b]) => `{${hex(a)}, ${hex(b)}}`).join(', ') + ',');
    lines.push('};');
    lines.push(`const size_t fm_unidata_n${name} = ${list.length};`);
    lines.push('');
}
const text = lines.join('\n');
if (args[1] === '--check') {
    const old = fs.readFileSync(args[2], 'utf8');
    // The first lines name the Node.js and ICU versions; the data must agree.
    const strip = (s) => s.split('\n').filter((l) => !/^ \* (Unicode|against) /.test(l));
    const a = strip(old), b = strip(text);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
        if (a[i] !== b[i]) {
            process.stderr.write(`${args[2]} is out of date for Node.js ${process.versions.node} (Unicode ${ucVersion}): line ${i + 1} is\n  ${a[i]}\nbut this engine gives\n  ${b[i]}\n`);
            process.exit(1);
        }
    }
    process.stderr.write(`${args[2]}: up to date (Unicode ${ucVersion}, ${delta.length} code points differ from utf8proc)\n`);
} else {
    process.stdout.write(text);
}
