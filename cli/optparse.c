/* optparse.c: getopt and --help from an option table (see optparse.h). */
#include "optparse.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"

#define FM_OPT_VAL0 1000

int fm_optparse(const char *cmd, const fm_opt *table, int n, void *obj, int argc, char **argv, fm_optparse_out *out) {
    struct option *lo = fm_xcalloc((size_t)n + 2, sizeof *lo);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!table[i].name) continue;
        lo[k].name = table[i].name;
        lo[k].has_arg = table[i].arg ? required_argument : no_argument;
        lo[k].val = FM_OPT_VAL0 + i;
        k++;
    }
    lo[k].name = "help";
    lo[k].val = 'h';
    out->help = 0;
    optind = 0;
    opterr = 0;
    int rc = FM_OK;
    for (int ch; rc == FM_OK && (ch = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
        if (ch == 'h') {
            out->help = 1;
            break;
        }
        if (ch < FM_OPT_VAL0 || ch >= FM_OPT_VAL0 + n) {
            rc = fm_fail("%s: unknown or incomplete option '%s' (see finemask %s --help)", cmd, argv[optind - 1], cmd);
            break;
        }
        const int i = ch - FM_OPT_VAL0;
        const fm_opt *r = &table[i];
        if (out->given) out->given[i] = 1;
        if (out->value) out->value[i] = optarg;
        if (r->kind == FM_OPT_NOFLAG && !r->arg) {
            *(int *)fm_opt_ptr(r, obj) = 0;
        } else if (r->kind == FM_OPT_FLAG) {
            *(int *)fm_opt_ptr(r, obj) = 1;
        } else {
            char label[96];
            snprintf(label, sizeof label, "--%s", r->name);
            rc = fm_opt_parse(r, obj, label, optarg);
        }
    }
    out->next = optind;
    free(lo);
    return rc;
}

/* A default as the help shows it: the shorter of %g and the shortest exact
 * exponent form, the exponent without leading zeros (2e-5, 0.1, 32). */
static void number_text(double v, char *buf, size_t cap) {
    char t[64];
    snprintf(t, sizeof t, "%g", v);
    if (v != 0 && fabs(v) < 1e-3) {
        char e[64];
        for (int p = 0; p < 17; p++) {
            snprintf(e, sizeof e, "%.*e", p, v);
            if (strtod(e, NULL) == v) break;
        }
        char *x = strchr(e, 'e');
        if (x && x[1] == '-') {
            char *d = x + 2;
            while (d[0] == '0' && d[1]) memmove(d, d + 1, strlen(d));
        }
        if (strlen(e) < strlen(t)) snprintf(t, sizeof t, "%s", e);
    }
    snprintf(buf, cap, "%s", t);
}

void fm_optparse_usage(FILE *f, const fm_opt *table, int n, unsigned group, int width) {
    for (int i = 0; i < n; i++) {
        const fm_opt *r = &table[i];
        if (!r->name || (r->flags & (FM_OPT_G_MASK | FM_OPT_G_RESUME)) != group) continue;
        char left[128];
        int w = snprintf(left, sizeof left, "--%s", r->name);
        if (r->kind == FM_OPT_ENUM)
            for (int e = 0; e < r->nnames && w > 0 && (size_t)w < sizeof left; e++)
                w += snprintf(left + w, sizeof left - (size_t)w, "%c%s", e ? '|' : ' ', r->names[e]);
        else if (r->arg && w > 0 && (size_t)w < sizeof left)
            snprintf(left + w, sizeof left - (size_t)w, " %s", r->arg);
        char def[96] = "";
        if (!(r->flags & FM_OPT_NODEF)) {
            char num[64];
            switch (r->kind) {
            case FM_OPT_ENUM: snprintf(def, sizeof def, " (default: %s)", r->names[(int)r->def]); break;
            case FM_OPT_F64:
            case FM_OPT_INT:
            case FM_OPT_I64:
            case FM_OPT_U64:
                number_text(r->def, num, sizeof num);
                snprintf(def, sizeof def, " (%s)", num);
                break;
            case FM_OPT_STR:
                if (r->def_str) snprintf(def, sizeof def, " (%s)", r->def_str);
                break;
            default: break;
            }
        }
        /* the help text line by line, the default after the last */
        const char *h = r->help;
        int first = 1;
        if ((int)strlen(left) > width) {
            fprintf(f, "  %s\n", left);
            first = 0;
        }
        for (;;) {
            const char *nl = strchr(h, '\n');
            int len = nl ? (int)(nl - h) : (int)strlen(h);
            fprintf(f, "  %-*s %.*s%s\n", width, first ? left : "", len, h, nl ? "" : def);
            first = 0;
            if (!nl) break;
            h = nl + 1;
        }
    }
}

int fm_optparse_required(const char *cmd, const fm_opt *table, int n, const void *obj) {
    int missing = 0, nreq = 0;
    for (int i = 0; i < n; i++) {
        const fm_opt *r = &table[i];
        if (!(r->flags & FM_OPT_REQUIRED)) continue;
        nreq++;
        if (r->kind == FM_OPT_LIST) missing |= *(const int *)((const char *)obj + r->count_offset) == 0;
        else missing |= *(const char *const *)fm_opt_cptr(r, obj) == NULL;
    }
    if (!missing) return FM_OK;
    char list[256] = "";
    size_t k = 0;
    for (int i = 0, j = 0; i < n && k < sizeof list; i++) {
        if (!(table[i].flags & FM_OPT_REQUIRED)) continue;
        const char *sep = j == 0 ? "" : j == nreq - 1 ? " and " : ", ";
        int w = snprintf(list + k, sizeof list - k, "%s--%s", sep, table[i].name);
        if (w < 0) break;
        k += (size_t)w;
        j++;
    }
    return fm_fail("%s: %s are required (see finemask %s --help)", cmd, list, cmd);
}
