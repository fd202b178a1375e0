/* optparse.h: a command's getopt options and --help, generated from an
 * option table (src/opts.h). */
#ifndef FM_OPTPARSE_H
#define FM_OPTPARSE_H

#include <stdio.h>

#include "opts.h"

typedef struct {
    unsigned char *given; /* given[i]: row i was on the command line (n entries, caller's) */
    const char **value;   /* value[i]: the text given to row i (n entries, caller's; NULL: not wanted) */
    int help;             /* --help was given: nothing else was parsed */
    int next;             /* the first argument that is not an option */
} fm_optparse_out;

/* Parse argv (argv[0] the command `cmd`) against table[0..n) into obj: each
 * value checked as fm_opt_parse does, --name for a NOFLAG row sets it to 0
 * and for a FLAG row to 1 (a FLAG row with an ARG also keeps the text in
 * value[i]); a LIST row appends to the array its field points to (room for
 * argc entries, the caller's). FM_ERR with the message recorded (an unknown
 * option, a bad value). */
int fm_optparse(const char *cmd, const fm_opt *table, int n, void *obj, int argc, char **argv, fm_optparse_out *out);

/* The --help lines of the rows of table[0..n) whose group flags
 * (FM_OPT_G_MASK, FM_OPT_G_RESUME) equal `group`: "--name ARG", the help text
 * (continuation lines indented), and the default from the table (unless
 * FM_OPT_NODEF). `width` is the column where the help text starts, less 3. */
void fm_optparse_usage(FILE *f, const fm_opt *table, int n, unsigned group, int width);

/* "CMD: --a, --b and --c are required (see finemask CMD --help)" when a
 * FM_OPT_REQUIRED row of obj is unset (NULL, or an empty LIST): FM_ERR. */
int fm_optparse_required(const char *cmd, const fm_opt *table, int n, const void *obj);

#endif
