// hf_tokenizer.mjs: HuggingFace's own tokenizer (@huggingface/tokenizers, found
// in a node_modules beside or above this file: tests/e2e/tokenizer_hf.sh copies
// it next to the installed package) beside finemask's.
//
//   node hf_tokenizer.mjs tokenizer-json VOCAB_TXT [--cased] > tokenizer.json
//       the tokenizer.json HuggingFace writes for a BERT vocab.txt
//       (BertNormalizer, BertPreTokenizer, WordPiece "##" 100, [CLS]/[SEP]
//       template, the five special tokens as added tokens)
//   node hf_tokenizer.mjs encode TOKENIZER_JSON < LINES > IDS
//       ids of each line ("a" or "a<TAB>b"), space-separated, what
//       `finemask tokenize` prints
//   node hf_tokenizer.mjs random N SEED UNIDATA_C > LINES
//       N lines of seeded random multi-script text (see randomLine)
//   node hf_tokenizer.mjs every-code-point > LINES
//       one line per code point (all but surrogates, tab and newline) that
//       puts it inside a word, beside a capital sigma, alone, and among
//       combining marks
//   node hf_tokenizer.mjs compare LINES IDS_HF IDS_FINEMASK [MAX_SHOWN]
//       count the lines whose ids differ, show the first ones with their
//       code points; exit 1 when any differ
import fs from 'node:fs';

function readLines(file) {
    const text = fs.readFileSync(file, 'utf8');
    const lines = text.split('\n');
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines;
}

// ------------------------------------------------------------ tokenizer.json

function tokenizerJson(vocabPath, cased) {
    const vocab = {};
    readLines(vocabPath).forEach((line, id) => {
        const tok = line.replace(/\r$/, '');
        if (!(tok in vocab)) vocab[tok] = id;
    });
    const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
    const special = (id, type_id) => ({ SpecialToken: { id, type_id } });
    const sequence = (id, type_id) => ({ Sequence: { id, type_id } });
    return {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: specials.map((content) => ({
            id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
        })),
        normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: !cased },
        pre_tokenizer: { type: 'BertPreTokenizer' },
        post_processor: {
            type: 'TemplateProcessing',
            single: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0)],
            pair: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0), sequence('B', 1), special('[SEP]', 1)],
            special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((t) => [t, { id: t, ids: [vocab[t]], tokens: [t] }])),
        },
        decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
        model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    };
}

async function encode(jsonPath) {
    const { Tokenizer } = await import('@huggingface/tokenizers');
    const tok = new Tokenizer(JSON.parse(fs.readFileSync(jsonPath, 'utf8')), {});
    const input = fs.readFileSync(0, 'utf8').split('\n');
    if (input.length && input[input.length - 1] === '') input.pop();
    const out = [];
    for (const line of input) {
        const tab = line.indexOf('\t');
        const a = tab < 0 ? line : line.slice(0, tab), b = tab < 0 ? null : line.slice(tab + 1);
        // The JavaScript API takes an empty second text for none; the random
        // text never has one and GLUE's dev files neither.
        if (b === '') throw new Error(`empty second text: ${JSON.stringify(line)}`);
        out.push(tok.encode(a, { text_pair: b }).ids.join(' '));
    }
    process.stdout.write(out.map((l) => l + '\n').join(''));
}

// ---------------------------------------------------------------- random text

// A seeded generator: a counter stepped by the golden ratio and mixed by the
// MurmurHash3 finalizer (32 bits, enough for test text).
function rng(seed) {
    let s = seed >>> 0;
    const next = () => {
        s = (s + 0x9e3779b9) >>> 0;
        let z = s;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
    };
    const r = { u32: next, below: (n) => Math.floor((next() / 4294967296) * n), chance: (p) => next() / 4294967296 < p };
    r.pick = (a) => a[r.below(a.length)];
    r.range = ([lo, hi]) => lo + r.below(hi - lo + 1);
    return r;
}

const CATEGORIES = ['Lu', 'Ll', 'Lt', 'Lm', 'Lo', 'Mn', 'Mc', 'Me', 'Nd', 'Nl', 'No', 'Pc', 'Pd', 'Ps', 'Pe', 'Pi', 'Pf', 'Po',
    'Sm', 'Sc', 'Sk', 'So', 'Zs', 'Zl', 'Zp', 'Cc', 'Cf', 'Co', 'Cn'];

// Every code point of each general category (surrogates excepted), from
// planes 0-3 and 14-16, where everything but unassigned space lives.
function categoryPools() {
    const pools = Object.fromEntries(CATEGORIES.map((c) => [c, []]));
    const tests = CATEGORIES.map((c) => [c, new RegExp(`^\\p{gc=${c}}$`, 'u')]);
    const scan = (lo, hi) => {
        for (let cp = lo; cp <= hi; cp++) {
            if (cp >= 0xd800 && cp <= 0xdfff) continue;
            const ch = String.fromCodePoint(cp);
            for (const [c, re] of tests) if (re.test(ch)) { pools[c].push(cp); break; }
        }
    };
    scan(0, 0x3ffff);
    scan(0xe0000, 0xe0fff);
    for (const cp of [0xefffe, 0xeffff, 0xf0000, 0xffffd, 0xfffff, 0x100000, 0x10fffd, 0x10ffff]) {
        const ch = String.fromCodePoint(cp);
        for (const [c, re] of tests) if (re.test(ch)) { pools[c].push(cp); break; }
    }
    return pools;
}

// The code points src/unidata.c names: where utf8proc's Unicode and the
// engine's differ, and the Cased / Case_Ignorable ranges.
function unidataPools(file) {
    const text = fs.readFileSync(file, 'utf8');
    const delta = [...text.matchAll(/\{(0x[0-9A-F]+), UTF8PROC_CATEGORY/g)].map((m) => Number(m[1]));
    const ranges = (name) => {
        const body = text.slice(text.indexOf(`fm_unidata_${name}[][2]`));
        return [...body.slice(0, body.indexOf('};')).matchAll(/\{(0x[0-9A-F]+), (0x[0-9A-F]+)\}/g)].map((m) => [Number(m[1]), Number(m[2])]);
    };
    return { delta, cased: ranges('cased'), ignorable: ranges('case_ignorable') };
}

const ch = (cp) => String.fromCodePoint(cp);
const span = (lo, hi, step = 1) => Array.from({ length: Math.floor((hi - lo) / step) + 1 }, (_, i) => lo + i * step);
const HANGUL = span(0xac00, 0xd7a3, 7), THAI = span(0x0e00, 0x0e7f), DEVANAGARI = span(0x0900, 0x097f);
const seqOf = (r, pool, lo, hi) => Array.from({ length: lo + r.below(hi - lo + 1) }, () => ch(r.pick(pool))).join('');

function makeGenerator(seed, unidataFile, vocabWords) {
    const r = rng(seed);
    const cat = categoryPools();
    const uni = unidataPools(unidataFile);
    const cpRange = (...ranges) => () => ch(r.range(r.pick(ranges)));
    const ascii = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'].map((c) => c.codePointAt(0));
    const emojiBase = () => ch(r.range(r.pick([[0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f680, 0x1f6ff], [0x1f900, 0x1f9ff],
        [0x1fa70, 0x1faff], [0x2600, 0x27bf], [0x2b00, 0x2bff]])));
    const emoji = () => {
        const k = r.below(8);
        if (k === 0) return emojiBase() + ch(r.range([0x1f3fb, 0x1f3ff])); // skin tone
        if (k === 1) return Array.from({ length: 2 + r.below(3) }, emojiBase).join('\u200d'); // ZWJ sequence
        if (k === 2) return emojiBase() + '\ufe0f'; // presentation selector
        if (k === 3) return ch(r.range([0x1f1e6, 0x1f1ff])) + ch(r.range([0x1f1e6, 0x1f1ff])); // flag
        if (k === 4) return r.pick('0123456789#*') + '\ufe0f\u20e3'; // keycap
        if (k === 5) return '\u{1f3f4}' + seqOf(r, [0xe0067, 0xe0062, 0xe0065, 0xe006e, 0xe0073, 0xe0063, 0xe0074], 2, 5) + '\u{e007f}'; // tag sequence
        return Array.from({ length: 1 + r.below(5) }, emojiBase).join(''); // a run
    };
    const word = () => {
        let w = r.pick(vocabWords).replace(/^##/, '');
        const k = r.below(4);
        if (k === 0) w = w.toUpperCase();
        else if (k === 1) w = w[0].toUpperCase() + w.slice(1);
        return w;
    };
    const anyCategory = () => ch(r.pick(cat[r.pick(CATEGORIES)]));
    const marks = () => seqOf(r, cat[r.pick(['Mn', 'Mn', 'Mc', 'Me'])], 1, 4);
    const sigma = () => {
        // A capital sigma among cased, case-ignorable and other characters.
        const side = () => {
            const k = r.below(6);
            if (k === 0) return ch(r.range(r.pick(uni.cased)));
            if (k === 1) return ch(r.range(r.pick(uni.ignorable)));
            if (k === 2) return r.pick(['Α', 'λ', 'A', 'z', 'ǅ', 'ª', 'ᵃ', 'Ⓐ', '\u0345', "'", '.', ':', '\u00ad', '\u0301']);
            if (k === 3) return r.pick([' ', '!', '1', '中', '😀', '\u200d']);
            return '';
        };
        return Array.from({ length: 1 + r.below(3) }, side).join('') + 'Σ' + Array.from({ length: r.below(3) }, side).join('');
    };
    const pieces = [
        [6, word],
        [2, () => seqOf(r, ascii, 1, 8)],
        [2, () => r.pick([...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'])],
        [2, () => r.pick(['[CLS]', '[SEP]', '[MASK]', '[PAD]', '[UNK]', '[cls]', '[Sep]', '[CLS', 'SEP]', '[[SEP]]'])],
        [4, anyCategory],
        [2, () => seqOf(r, cat.Cn, 1, 3)], // unassigned, noncharacters included
        [2, cpRange([0xe000, 0xf8ff], [0xf0000, 0xffffd], [0x100000, 0x10fffd])], // private use
        [2, cpRange([0x00, 0x08], [0x0b, 0x1f], [0x7f, 0x9f])], // C0 and C1 controls (not tab or newline)
        [2, () => seqOf(r, cat.Cf, 1, 3)], // format characters
        [2, () => r.pick(['\u00a0', '\u1680', '\u2000', '\u2007', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\u180e', '\u0085', '\ufeff', '\u200b', '\r', '\v', '\f'])],
        [4, emoji],
        [3, () => r.pick(['a', 'e', 'o', 'A', 'ı', 'ά', 'я', 'ß']) + marks()],
        [2, () => seqOf(r, HANGUL, 1, 4)], // Hangul syllables
        [1, cpRange([0x1100, 0x11ff], [0x3130, 0x318f], [0xa960, 0xa97f], [0xd7b0, 0xd7ff])], // Hangul jamo
        [2, () => seqOf(r, THAI, 1, 6)], // Thai
        [2, () => seqOf(r, DEVANAGARI, 1, 6)], // Devanagari
        [3, cpRange([0x4e00, 0x9fff], [0x3400, 0x4dbf], [0xf900, 0xfaff], [0x2f800, 0x2fa1f], [0x20000, 0x2a6df], [0x2a700, 0x2ee5f], [0x30000, 0x323af], [0x2e80, 0x2fdf], [0x3000, 0x30ff])], // CJK
        [2, cpRange([0xfb00, 0xfb06], [0xfb13, 0xfb17], [0x132, 0x133], [0x152, 0x153], [0x1c4, 0x1cc], [0xfb1d, 0xfb4f], [0xfe70, 0xfefc], [0xff00, 0xffef])], // ligatures, presentation forms, fullwidth
        [2, sigma],
        [1, () => r.pick(['İstanbul', 'ΟΔΟΣ', 'ΣΊΣΥΦΟΣ', 'Straße', 'ǅemal', 'ﬁnancial', 'naïve', 'Ǆ', 'ẞ'])],
        [3, () => ch(r.pick(uni.delta)) + (r.chance(0.5) ? marks() : '')],
        [1, () => (r.chance(0.5) ? 'a' : 'ä').repeat(95 + r.below(10)) + (r.chance(0.5) ? '😀' : '')], // around 100 code points
        [1, () => r.pick(vocabWords).replace(/^##/, '').repeat(20 + r.below(20))], // over-long, made of vocabulary pieces
        [1, cpRange([0x0000, 0x10ffff])], // anything
    ];
    const total = pieces.reduce((s, [w]) => s + w, 0);
    const piece = () => {
        let k = r.below(total);
        for (const [w, f] of pieces) {
            if (k < w) return f();
            k -= w;
        }
        throw new Error('unreachable');
    };
    const isSurrogateFree = (s) => !/[\ud800-\udfff]/u.test(s);
    const text = () => {
        let s = '';
        const n = r.below(14);
        for (let i = 0; i < n; i++) s += (r.chance(0.6) ? ' ' : '') + piece();
        return s.replace(/[\t\n]/g, ' ');
    };
    return () => {
        let a;
        do a = text(); while (!isSurrogateFree(a));
        if (!r.chance(0.3)) return a;
        let b;
        do b = text(); while (b === '' || !isSurrogateFree(b));
        return a + '\t' + b;
    };
}

function random(n, seed, unidataFile, vocabPath) {
    const vocabWords = readLines(vocabPath).filter((w) => !/^\[.*\]$/.test(w));
    const next = makeGenerator(seed, unidataFile, vocabWords);
    const out = [];
    for (let i = 0; i < n; i++) out.push(next());
    process.stdout.write(out.map((l) => l + '\n').join(''));
}

function everyCodePoint() {
    const out = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
        if ((cp >= 0xd800 && cp <= 0xdfff) || cp === 9 || cp === 10) continue;
        const c = String.fromCodePoint(cp);
        out.push(`x${c}\u03a3${c} ${c} e\u0301${c}\u0327`);
    }
    process.stdout.write(out.map((l) => l + '\n').join(''));
}

// --------------------------------------------------------------- comparison

function compare(linesFile, hfFile, fmFile, maxShown = 8) {
    const lines = readLines(linesFile), hf = readLines(hfFile), fm = readLines(fmFile);
    if (hf.length !== lines.length || fm.length !== lines.length) {
        console.log(`line counts differ: ${lines.length} inputs, ${hf.length} from HuggingFace, ${fm.length} from finemask`);
        return 1;
    }
    let bad = 0;
    for (let i = 0; i < lines.length; i++) {
        if (hf[i] === fm[i]) continue;
        if (++bad > maxShown) continue;
        const cps = [...lines[i]].map((c) => 'U+' + c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')).join(' ');
        console.log(`line ${i + 1}: ${JSON.stringify(lines[i])}\n  code points: ${cps}\n  HuggingFace: ${hf[i]}\n  finemask:    ${fm[i]}`);
    }
    console.log(`${bad} of ${lines.length} lines differ`);
    return bad ? 1 : 0;
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'tokenizer-json' && args.length >= 1) {
    process.stdout.write(JSON.stringify(tokenizerJson(args[0], args[1] === '--cased')) + '\n');
} else if (cmd === 'encode' && args.length === 1) {
    await encode(args[0]);
} else if (cmd === 'random' && args.length === 4) {
    random(Number(args[0]), Number(args[1]), args[2], args[3]);
} else if (cmd === 'every-code-point' && args.length === 0) {
    everyCodePoint();
} else if (cmd === 'compare' && args.length >= 3) {
    process.exitCode = compare(args[0], args[1], args[2], args[3] ? Number(args[3]) : 8);
} else {
    process.stderr.write('usage: node hf_tokenizer.mjs tokenizer-json VOCAB [--cased] | encode TOKENIZER_JSON | random N SEED UNIDATA_C VOCAB | every-code-point | compare LINES HF FINEMASK [N]\n');
    process.exitCode = 2;
}
