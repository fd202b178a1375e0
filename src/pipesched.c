/* pipesched.c: pipeline schedules as op lists (see pipesched.h). */
#include "pipesched.h"

#include <assert.h>

int fm_pipe_sched_sets(fm_pipe_schedule sch, int S, int s, int M) {
    assert(S >= 1 && s >= 0 && s < S && M >= 1);
    if (sch == FM_PIPE_GPIPE) return M;
    return S - s < M ? S - s : M;
}

void fm_pipe_sched_ops(fm_pipe_schedule sch, int S, int s, int M, fm_pipe_op *ops) {
    assert(S >= 1 && s >= 0 && s < S && M >= 1);
    int n = 0;
    if (sch == FM_PIPE_GPIPE) {
        for (int k = 0; k < M; k++) ops[n++] = (fm_pipe_op){.backward = 0, .k = k};
        for (int k = M - 1; k >= 0; k--) ops[n++] = (fm_pipe_op){.backward = 1, .k = k};
    } else {
        const int w = S - s - 1 < M ? S - s - 1 : M;
        int f = 0, b = 0;
        while (f < w) ops[n++] = (fm_pipe_op){.backward = 0, .k = f++};
        while (f < M) {
            ops[n++] = (fm_pipe_op){.backward = 0, .k = f++};
            ops[n++] = (fm_pipe_op){.backward = 1, .k = b++};
        }
        while (b < M) ops[n++] = (fm_pipe_op){.backward = 1, .k = b++};
    }
    assert(n == 2 * M);
    for (int i = 0; i < n; i++) {
        fm_pipe_op *o = &ops[i];
        if (!o->backward) {
            o->recv = s > 0 ? -1 : 0;
            o->send = s < S - 1 ? +1 : 0;
        } else {
            o->recv = s < S - 1 ? +1 : 0;
            o->send = s > 0 ? -1 : 0;
        }
    }
    for (int i = 0; i + 1 < n; i++) ops[i].send_later = ops[i].send != 0 && ops[i + 1].recv == ops[i].send;
}
