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

int fm_cmd_tokenize(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"vocab", required_argument, NULL, 'V'},
        {"max-seq-length", required_argument, NULL, 'L'}, {"cased", no_argument, NULL, 'c'},
        {"tokens", no_argument, NULL, 't'},       {"help", no_argument, NULL, 'h'},
        {"tokenizer", required_argument, NULL, 'T'}, {"uncased", no_argument, NULL, 'u'},
        {"reference", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    const char *model = NULL, *vocab_path = NULL, *json_path = NULL;
    int max_len = 0, print_tokens = 0, lowercase = -1;
    fm_tokenizer_opts opts = fm_tokenizer_default_opts();
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'V': vocab_path = optarg; break;
        case 'L':
            if (parse_int("--max-seq-length", optarg, 2, &max_len) != FM_OK) return fm_cli_fail();
            break;
        case 'T': json_path = optarg; break;
        case 'c': lowercase = 0; break;
        case 'u': lowercase = 1; break;
        case 'r':
            if (!strcmp(optarg, "hf"))
                opts.reference = FM_TOK_HF;
            else if (!strcmp(optarg, "python"))
                opts.reference = FM_TOK_PYTHON;
            else {
                fm_fail("tokenize: --reference expects hf or python, found '%s'", optarg);
                return fm_cli_fail();
            }
            break;
        case 't': print_tokens = 1; break;
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
    if (!!model + !!vocab_path + !!json_path != 1) {
        fm_fail("tokenize: give one of --model DIR, --tokenizer FILE or --vocab FILE");
        return fm_cli_fail();
    }
    fm_tokenizer tok;
    int rc;
    if (model) {
        rc = fm_tokenizer_load_dir(&tok, model, &opts, lowercase, NULL);
    } else if (json_path) {
        rc = fm_tokenizer_json_load(&tok, json_path, &opts);
        if (rc == FM_OK && lowercase >= 0) {
            tok.opts.do_lower_case = lowercase;
            if (!lowercase) tok.opts.strip_accents = 0;
        }
    } else {
        if (lowercase >= 0) opts.do_lower_case = lowercase;
        rc = fm_tokenizer_load(&tok, vocab_path, &opts);
    }
    if (rc != FM_OK) return fm_cli_fail();

    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    fm_ids a = {0}, b = {0};
    fm_encoding enc = {0};
    size_t enc_cap = 0;
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
        char *tab = memchr(line, '\t', (size_t)n);
        if (tab && memchr(tab + 1, '\t', (size_t)(line + n - tab - 1))) {
            fm_fail("stdin:%zu: expected one text or two tab-separated texts, found more tabs", lineno);
            status = fm_cli_fail();
            break;
        }
        size_t na = tab ? (size_t)(tab - line) : (size_t)n;
        a.n = b.n = 0;
        if (fm_tokenize(&tok, line, na, &a) != FM_OK) {
            fm_fail_prefix("stdin:%zu: %s", lineno, tab ? "first text: " : "");
            status = fm_cli_fail();
            break;
        }
        if (tab && fm_tokenize(&tok, tab + 1, (size_t)(line + n - tab - 1), &b) != FM_OK) {
            fm_fail_prefix("stdin:%zu: second text: ", lineno);
            status = fm_cli_fail();
            break;
        }
        size_t need = a.n + b.n + 3;
        if (need > enc_cap) {
            enc_cap = need * 2;
            enc.input_ids = fm_xrealloc(enc.input_ids, enc_cap * sizeof(int32_t));
            enc.token_type_ids = fm_xrealloc(enc.token_type_ids, enc_cap * sizeof(int32_t));
            enc.attention_mask = fm_xrealloc(enc.attention_mask, enc_cap * sizeof(int32_t));
        }
        if (fm_encode_ids(&tok, &a, tab ? &b : NULL, max_len, 0, &enc) != FM_OK) {
            fm_fail_prefix("stdin:%zu: ", lineno);
            status = fm_cli_fail();
            break;
        }
        for (int i = 0; i < enc.len; i++) {
            if (i) putchar(' ');
            if (print_tokens)
                fputs(fm_vocab_token(&tok.vocab, enc.input_ids[i]), stdout);
            else
                printf("%d", (int)enc.input_ids[i]);
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
    fm_ids_free(&a);
    fm_ids_free(&b);
    free(enc.input_ids);
    free(enc.token_type_ids);
    free(enc.attention_mask);
    fm_tokenizer_free(&tok);
    return status;
}
