/* cmd_tokenize.c: `finemask tokenize`: lines of text on stdin to BERT input
 * ids on stdout, one output line per input line. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fileio.h"
#include "fm.h"
#include "tokenizer.h"
#include "tokjson.h"
#include "vocab.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: finemask tokenize --model DIR | --tokenizer FILE | --vocab FILE [options]\n"
            "\n"
            "Reads lines of UTF-8 text on standard input and prints, for each, the\n"
            "BERT input ids space-separated on one line: [CLS] text [SEP], or for a\n"
            "line holding two texts separated by a tab, [CLS] a [SEP] b [SEP].\n"
            "Tokenization is BERT's WordPiece, id for id HuggingFace's tokenizers\n"
            "(the pipeline of a BERT tokenizer.json).\n"
            "\n"
            "options:\n"
            "  --model DIR           model directory: its tokenizer.json, or else its vocab.txt\n"
            "                        with the flags of its tokenizer_config.json when present\n"
            "  --tokenizer FILE      a tokenizer.json (instead of --model)\n"
            "  --vocab FILE          a vocab.txt (instead of --model), uncased unless --cased\n"
            "  --max-seq-length N    truncate longest-first to N ids, [CLS]/[SEP] included\n"
            "                        (default: no truncation)\n"
            "  --cased               keep case and accents, whatever the files say\n"
            "  --uncased             lower-case (and strip accents unless the files say not to)\n"
            "  --reference hf|python hf (default): HuggingFace's tokenizers; python: HuggingFace's\n"
            "                        Python BertTokenizer (Google's tokenization.py and NFC), which\n"
            "                        drops unassigned code points and spaces every CJK ideograph\n"
            "  --tokens              print the word pieces instead of their ids\n"
            "  -h, --help            this help\n");
}

static int parse_int(const char *opt, const char *s, int min, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > INT_MAX)
        return fm_fail("tokenize: %s expects an integer >= %d, found '%s'", opt, min, s);
    *out = (int)v;
    return FM_OK;
}

/* tokenize's command line. */
typedef struct {
    const char *model, *vocab_path, *json_path;
    int max_len, print_tokens, lowercase; /* lowercase: -1 as the files say */
    fm_tokenizer_opts opts;
} tok_cli;

/* The command line into o, checked. Returns -1 to go on, else the exit status. */
static int tok_parse(int argc, char **argv, tok_cli *o) {
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"vocab", required_argument, NULL, 'V'},
        {"max-seq-length", required_argument, NULL, 'L'}, {"cased", no_argument, NULL, 'c'},
        {"tokens", no_argument, NULL, 't'},       {"help", no_argument, NULL, 'h'},
        {"tokenizer", required_argument, NULL, 'T'}, {"uncased", no_argument, NULL, 'u'},
        {"reference", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    *o = (tok_cli){.lowercase = -1, .opts = fm_tokenizer_default_opts()};
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'V': o->vocab_path = optarg; break;
        case 'L':
            if (parse_int("--max-seq-length", optarg, 2, &o->max_len) != FM_OK) return fm_cli_fail();
            break;
        case 'T': o->json_path = optarg; break;
        case 'c': o->lowercase = 0; break;
        case 'u': o->lowercase = 1; break;
        case 'r':
            if (!strcmp(optarg, "hf"))
                o->opts.reference = FM_TOK_HF;
            else if (!strcmp(optarg, "python"))
                o->opts.reference = FM_TOK_PYTHON;
            else {
                fm_fail("tokenize: --reference expects hf or python, found '%s'", optarg);
                return fm_cli_fail();
            }
            break;
        case 't': o->print_tokens = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            fm_fail("tokenize: unknown or incomplete option '%s' (see finemask tokenize --help)", argv[optind - 1]);
            return fm_cli_fail();
        }
    }
    if (optind < argc) {
        fm_fail("tokenize: unexpected argument '%s' (texts come on standard input)", argv[optind]);
        return fm_cli_fail();
    }
    if (!!o->model + !!o->vocab_path + !!o->json_path != 1) {
        fm_fail("tokenize: give one of --model DIR, --tokenizer FILE or --vocab FILE");
        return fm_cli_fail();
    }
    return -1;
}

/* The tokenizer o names: a model directory, a tokenizer.json or a vocab.txt,
 * with --cased or --uncased over what the files say. */
static int tok_load(fm_tokenizer *tok, tok_cli *o) {
    int rc;
    if (o->model) {
        rc = fm_tokenizer_load_dir(tok, o->model, &o->opts, o->lowercase, NULL);
    } else if (o->json_path) {
        rc = fm_tokenizer_json_load(tok, o->json_path, &o->opts);
        if (rc == FM_OK && o->lowercase >= 0) {
            tok->opts.do_lower_case = o->lowercase;
            if (!o->lowercase) tok->opts.strip_accents = 0;
        }
    } else {
        if (o->lowercase >= 0) o->opts.do_lower_case = o->lowercase;
        rc = fm_tokenizer_load(tok, o->vocab_path, &o->opts);
    }
    return rc;
}

/* The buffers of the line loop: the texts' word-piece ids and the encoding. */
typedef struct {
    fm_ids a, b;
    fm_encoding enc;
    size_t enc_cap;
} tok_bufs;

/* Line lineno (n bytes, its newline removed) encoded into t->enc: one text,
 * or two separated by a tab. FM_ERR with the error naming the line. */
static int tok_encode_line(const fm_tokenizer *tok, const tok_cli *o, const char *line, size_t n, size_t lineno,
                           tok_bufs *t) {
    const char *tab = memchr(line, '\t', n);
    if (tab && memchr(tab + 1, '\t', (size_t)(line + n - tab - 1)))
        return fm_fail("stdin:%zu: expected one text or two tab-separated texts, found more tabs", lineno);
    size_t na = tab ? (size_t)(tab - line) : n;
    t->a.n = t->b.n = 0;
    if (fm_tokenize(tok, line, na, &t->a) != FM_OK) {
        fm_fail_prefix("stdin:%zu: %s", lineno, tab ? "first text: " : "");
        return FM_ERR;
    }
    if (tab && fm_tokenize(tok, tab + 1, (size_t)(line + n - tab - 1), &t->b) != FM_OK) {
        fm_fail_prefix("stdin:%zu: second text: ", lineno);
        return FM_ERR;
    }
    size_t need = t->a.n + t->b.n + 3;
    if (need > t->enc_cap) {
        t->enc_cap = need * 2;
        t->enc.input_ids = fm_xrealloc(t->enc.input_ids, t->enc_cap * sizeof(int32_t));
        t->enc.token_type_ids = fm_xrealloc(t->enc.token_type_ids, t->enc_cap * sizeof(int32_t));
        t->enc.attention_mask = fm_xrealloc(t->enc.attention_mask, t->enc_cap * sizeof(int32_t));
    }
    if (fm_encode_ids(tok, &t->a, tab ? &t->b : NULL, o->max_len, 0, &t->enc) != FM_OK) {
        fm_fail_prefix("stdin:%zu: ", lineno);
        return FM_ERR;
    }
    return FM_OK;
}

/* Every line of standard input, encoded, to standard output: its ids (or
 * word pieces) on one line. Returns the exit status. */
static int tok_lines(const fm_tokenizer *tok, const tok_cli *o) {
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    tok_bufs t = {0};
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
        if (tok_encode_line(tok, o, line, (size_t)n, lineno, &t) != FM_OK) {
            status = fm_cli_fail();
            break;
        }
        for (int i = 0; i < t.enc.len; i++) {
            if (i) putchar(' ');
            if (o->print_tokens)
                fputs(fm_vocab_token(&tok->vocab, t.enc.input_ids[i]), stdout);
            else
                printf("%d", (int)t.enc.input_ids[i]);
        }
        putchar('\n');
    }
    if (status == 0 && ferror(stdin)) {
        fm_fail("stdin: read error: %s", strerror(errno));
        status = fm_cli_fail();
    }
    if (fflush(stdout) != 0 && status == 0) {
        fm_fail("stdout: write error: %s", strerror(errno));
        status = fm_cli_fail();
    }
    free(line);
    fm_ids_free(&t.a);
    fm_ids_free(&t.b);
    free(t.enc.input_ids);
    free(t.enc.token_type_ids);
    free(t.enc.attention_mask);
    return status;
}

int fm_cmd_tokenize(int argc, char **argv) {
    tok_cli o;
    int status = tok_parse(argc, argv, &o);
    if (status >= 0) return status;
    fm_tokenizer tok;
    if (tok_load(&tok, &o) != FM_OK) return fm_cli_fail();
    status = tok_lines(&tok, &o);
    fm_tokenizer_free(&tok);
    return status;
}
