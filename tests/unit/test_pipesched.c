/* test_pipesched.c: the pipeline schedules (src/pipesched.h), without MPI:
 *   1. the exact 1F1B and GPipe orders for S = 4, M = 6 on every stage;
 *   2. for S = 1..6 and M = 1..10, both schedules: every micro-batch's
 *      forward and backward once each, the forward first, the backwards in
 *      the schedule's order (1F1B: 0, 1, ...; GPipe: M-1, ..., 0); the most
 *      micro-batches alive at once (forward done, backward not) is exactly
 *      fm_pipe_sched_sets (GPipe M; 1F1B min(S-s, M), so at most S), and no
 *      live micro-batch's ring slot (k % sets) is taken by another;
 *   3. the same range: every stage's exchanges run against the others' with
 *      sends that complete only when the neighbour receives them (MPI's
 *      rendezvous, the worst case): no stage waits forever, and each message
 *      reaches the op that expects it (activations of micro-batch k to the
 *      next stage's forward of k, gradients to the previous stage's backward
 *      of k);
 *   4. a schedule with the exchange split into a send and then a receive
 *      (send_later cleared) deadlocks under the same simulation: the check
 *      of 3 can fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipesched.h"
#include "testutil.h"

enum { MAXS = 6, MAXM = 10 };

static void order_string(fm_pipe_schedule sch, int S, int s, int M, char *out) {
    fm_pipe_op ops[2 * MAXM];
    fm_pipe_sched_ops(sch, S, s, M, ops);
    out[0] = 0;
    for (int i = 0; i < 2 * M; i++)
        sprintf(out + strlen(out), "%s%c%d", i ? " " : "", ops[i].backward ? 'B' : 'F', ops[i].k);
}

static void test_orders(void **state) {
    (void)state;
    static const char *const f1b[4] = {
        "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5",
        "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5",
        "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5",
        "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5",
    };
    char got[256];
    for (int s = 0; s < 4; s++) {
        order_string(FM_PIPE_1F1B, 4, s, 6, got);
        assert_string_equal(got, f1b[s]);
        order_string(FM_PIPE_GPIPE, 4, s, 6, got);
        assert_string_equal(got, "F0 F1 F2 F3 F4 F5 B5 B4 B3 B2 B1 B0");
        assert_int_equal(fm_pipe_sched_sets(FM_PIPE_1F1B, 4, s, 6), 4 - s);
        assert_int_equal(fm_pipe_sched_sets(FM_PIPE_GPIPE, 4, s, 6), 6);
    }
    /* fewer micro-batches than stages: the warm-up is every forward */
    order_string(FM_PIPE_1F1B, 4, 0, 2, got);
    assert_string_equal(got, "F0 F1 B0 B1");
    assert_int_equal(fm_pipe_sched_sets(FM_PIPE_1F1B, 4, 0, 2), 2);
    /* the exchanges of a 2-stage 1F1B with 2 micro-batches */
    fm_pipe_op o[4];
    fm_pipe_sched_ops(FM_PIPE_1F1B, 2, 0, 2, o); /* F0 F1 B0 B1 */
    assert_int_equal(o[0].send, 1), assert_int_equal(o[0].send_later, 0);
    assert_int_equal(o[1].send, 1), assert_int_equal(o[1].send_later, 1);
    assert_int_equal(o[2].recv, 1), assert_int_equal(o[2].send, 0);
    fm_pipe_sched_ops(FM_PIPE_1F1B, 2, 1, 2, o); /* F0 B0 F1 B1 */
    assert_int_equal(o[0].recv, -1), assert_int_equal(o[0].send, 0);
    assert_int_equal(o[1].recv, 0), assert_int_equal(o[1].send, -1), assert_int_equal(o[1].send_later, 1);
    assert_int_equal(o[3].send, -1), assert_int_equal(o[3].send_later, 0);
}

static void check_order(fm_pipe_schedule sch, int S, int s, int M) {
    fm_pipe_op ops[2 * MAXM];
    fm_pipe_sched_ops(sch, S, s, M, ops);
    const int sets = fm_pipe_sched_sets(sch, S, s, M);
    int fwd[MAXM] = {0}, bwd[MAXM] = {0}, slot[MAXM * 2], live = 0, most = 0, nb = 0;
    for (int i = 0; i < sets; i++) slot[i] = -1;
    for (int i = 0; i < 2 * M; i++) {
        const int k = ops[i].k;
        assert_true(k >= 0 && k < M);
        if (!ops[i].backward) {
            assert_int_equal(fwd[k], 0);
            fwd[k] = 1;
            assert_int_equal(slot[k % sets], -1); /* the ring slot is free */
            slot[k % sets] = k;
            if (++live > most) most = live;
        } else {
            assert_int_equal(fwd[k], 1);
            assert_int_equal(bwd[k], 0);
            bwd[k] = 1;
            assert_int_equal(k, sch == FM_PIPE_GPIPE ? M - 1 - nb : nb);
            nb++;
            assert_int_equal(slot[k % sets], k);
            slot[k % sets] = -1;
            live--;
        }
    }
    assert_int_equal(live, 0);
    assert_int_equal(most, sets);
    if (sch == FM_PIPE_1F1B) assert_true(sets <= S - s && sets <= S);
}

static void test_each_once(void **state) {
    (void)state;
    for (int S = 1; S <= MAXS; S++)
        for (int M = 1; M <= MAXM; M++)
            for (int s = 0; s < S; s++) {
                check_order(FM_PIPE_GPIPE, S, s, M);
                check_order(FM_PIPE_1F1B, S, s, M);
            }
}

/* One blocking exchange of a stage: an optional send and an optional
 * receive, each with one neighbour (message id: 2k for micro-batch k's
 * activations, 2k+1 for its gradient). */
typedef struct {
    int sdir, sid, sdone;
    int rdir, rid, rdone;
} xchg;

/* The exchanges of stage s, in order, as strat_pipeline.c makes them. */
static int exchanges(const fm_pipe_op *ops, int M, xchg *x) {
    int n = 0, pend_dir = 0, pend_id = 0;
    for (int i = 0; i < 2 * M; i++) {
        const fm_pipe_op *o = &ops[i];
        if (o->recv) {
            assert_true(!pend_dir || pend_dir == o->recv);
            x[n++] = (xchg){.sdir = pend_dir, .sid = pend_id, .rdir = o->recv, .rid = 2 * o->k + o->backward};
            pend_dir = 0;
        } else {
            assert_int_equal(pend_dir, 0);
        }
        if (o->send && o->send_later) {
            pend_dir = o->send;
            pend_id = 2 * o->k + o->backward;
        } else if (o->send) {
            x[n++] = (xchg){.sdir = o->send, .sid = 2 * o->k + o->backward};
        }
    }
    assert_int_equal(pend_dir, 0);
    return n;
}

/* Run every stage's exchanges against its neighbours' with rendezvous
 * sends; 1 when every stage gets through them all. */
static int simulate(int S, int M, fm_pipe_op (*ops)[2 * MAXM]) {
    xchg x[MAXS][4 * MAXM];
    int n[MAXS], at[MAXS];
    for (int s = 0; s < S; s++) {
        n[s] = exchanges(ops[s], M, x[s]);
        at[s] = 0;
    }
    for (int moved = 1; moved;) {
        moved = 0;
        for (int s = 0; s < S; s++) {
            if (at[s] == n[s]) continue;
            xchg *a = &x[s][at[s]];
            const int p = s + a->sdir;
            if (a->sdir && !a->sdone && at[p] < n[p]) {
                xchg *b = &x[p][at[p]];
                if (b->rdir == -a->sdir && !b->rdone) {
                    assert_int_equal(b->rid, a->sid); /* the message the receiver expects */
                    a->sdone = b->rdone = 1;
                    moved = 1;
                }
            }
            if ((!a->sdir || a->sdone) && (!a->rdir || a->rdone)) {
                at[s]++;
                moved = 1;
            }
        }
    }
    for (int s = 0; s < S; s++)
        if (at[s] != n[s]) return 0;
    return 1;
}

static void test_no_deadlock(void **state) {
    (void)state;
    static fm_pipe_op ops[MAXS][2 * MAXM];
    for (int sch = 0; sch < 2; sch++)
        for (int S = 1; S <= MAXS; S++)
            for (int M = 1; M <= MAXM; M++) {
                for (int s = 0; s < S; s++) fm_pipe_sched_ops((fm_pipe_schedule)sch, S, s, M, ops[s]);
                if (!simulate(S, M, ops)) fail_msg("schedule %d, S %d, M %d: the stages wait forever", sch, S, M);
            }
}

static void test_split_exchange_deadlocks(void **state) {
    (void)state;
    static fm_pipe_op ops[MAXS][2 * MAXM];
    for (int s = 0; s < 2; s++) {
        fm_pipe_sched_ops(FM_PIPE_1F1B, 2, s, 4, ops[s]);
        for (int i = 0; i < 8; i++) ops[s][i].send_later = 0;
    }
    assert_int_equal(simulate(2, 4, ops), 0);
    /* GPipe's order needs no exchange: sends then receives get through */
    for (int s = 0; s < 2; s++) {
        fm_pipe_sched_ops(FM_PIPE_GPIPE, 2, s, 4, ops[s]);
        for (int i = 0; i < 8; i++) ops[s][i].send_later = 0;
    }
    assert_int_equal(simulate(2, 4, ops), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_each_once),
        cmocka_unit_test(test_no_deadlock),
        cmocka_unit_test(test_split_exchange_deadlocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
