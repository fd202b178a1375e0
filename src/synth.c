/* synth.c: the demo's synthetic language and tasks (see synth.h). */
#define _GNU_SOURCE
#include "synth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm.h"
#include "rng.h"

/* ---- strings ---- */

void fm_sbuf_add(fm_sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2 + 64;
        b->s = fm_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

void fm_sbuf_addf(fm_sbuf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) k = 0;
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = (b->n + (size_t)k + 1) * 2 + 64;
        b->s = fm_xrealloc(b->s, b->cap);
    }
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap2);
    va_end(ap2);
    b->n += (size_t)k;
}

void fm_sbuf_free(fm_sbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

void fm_synth_example_free(fm_synth_example *e) {
    fm_sbuf_free(&e->a);
    fm_sbuf_free(&e->b);
}

const char *const fm_synth_task_names[FM_SYNTH_NTASKS] = {"CoLA", "SST-2", "MRPC", "STS-B",
                                                          "QQP",  "MNLI",  "QNLI", "RTE"};

/* ---- the lexicon: each word with its synonym (or NULL) ---- */

typedef struct {
    const char *w, *syn;
} word;

#define N(a) ((int)(sizeof(a) / sizeof(a[0])))

static const word subjects[] = {
    {"dog", "hound"}, {"teacher", "instructor"}, {"farmer", NULL}, {"child", "kid"}, {"king", "monarch"}, {"pilot", NULL},
};
static const word objects[] = {
    {"book", "novel"}, {"house", "home"}, {"car", "automobile"}, {"ball", NULL}, {"boat", "ship"}, {"cake", NULL},
};
/* base forms; the third person adds "s" */
static const word verbs[] = {
    {"see", "notice"},  {"find", "discover"}, {"like", "enjoy"}, {"build", "construct"}, {"buy", "purchase"},
    {"sell", "trade"},  {"hold", "grip"},     {"visit", "tour"}, {"want", "desire"},      {"paint", "color"},
};
static const word adjectives[] = {
    {"small", "little"}, {"old", "ancient"}, {"big", "large"}, {"quiet", "silent"},
    {"new", "fresh"},    {"red", NULL},      {"green", NULL},  {"tall", NULL},
};
static const char *const positive[] = {"good",      "great",     "wonderful", "lovely",     "brilliant",
                                       "pleasant",  "excellent", "beautiful", "delightful", "charming"};
static const char *const negative[] = {"bad",    "terrible", "awful",    "horrible", "ugly",
                                       "boring", "dreadful", "nasty",    "poor",     "dull"};
static const char *const pos_react[] = {"smiles", "laughs", "cheers"};
static const char *const neg_react[] = {"frowns", "cries", "complains"};
static const word adverbs[] = {
    {"quickly", "rapidly"}, {"slowly", "gradually"}, {"carefully", "cautiously"},
    {"quietly", "softly"},  {"often", "frequently"}, {"rarely", "seldom"},
};
static const char *const places[][2] = {{"in", "park"},   {"near", "lake"},    {"at", "market"}, {"by", "sea"},
                                        {"at", "school"}, {"near", "station"}, {"on", "hill"},   {"in", "village"}};
static const char *const times[] = {"yesterday", "today", "tonight", "later"};
static const char *const dets[] = {"the", "this", "that", "my", "our", "their"};
static const char *const function_words[] = {"is",    "does", "not",      "and",  "thinks", "what", "where",
                                             "who",   "when", "how",      "which", "thing", "person", "place",
                                             "time",  "way",  "has",      "so",   "everyone", "says", "it",
                                             "was",   "because", "then"};

/* ---- the generator ---- */

typedef struct {
    uint64_t seed, step;
    uint32_t stream;
    uint64_t i;
} rng;

static int pick(rng *r, int n) { return (int)fm_rng_below(r->seed, FM_RNG_DATA, r->step, r->stream, r->i++, (uint32_t)n); }
static int coin(rng *r, double p) { return fm_rng_uniform(r->seed, FM_RNG_DATA, r->step, r->stream, r->i++) < p; }
/* an index in [0, n) other than avoid */
static int pick_other(rng *r, int n, int avoid) {
    int k = pick(r, n - 1);
    return k >= avoid ? k + 1 : k;
}

enum { SY_SUBJ = 1, SY_SADJ = 2, SY_VERB = 4, SY_OADJ = 8, SY_OBJ = 16, SY_ADV = 32, SY_ALL = 63 };

/* A simple transitive sentence; -1 marks an absent part. */
typedef struct {
    int sdet, sadj, subj, verb, odet, oadj, obj, adv, place, time;
    unsigned syn; /* SY_*: use the synonym */
    int neg;      /* "does not VERB" */
    int front;    /* the time (or else the place) opens the sentence */
} sent;

static const char *wd(const word *t, int i, int syn) { return syn && t[i].syn ? t[i].syn : t[i].w; }

/* Words of s, each a pointer to static text or to the verb buffer. */
typedef struct {
    const char *w[40];
    int n;
    int pos_sdet, pos_subj, pos_verb, pos_obj;
    char verb3[32];
} words;

static void push(words *ws, const char *w) { ws->w[ws->n++] = w; }

static void render_words(const sent *s, words *ws) {
    ws->n = 0;
    int place_front = s->front && s->time < 0 && s->place >= 0;
    if (s->front && s->time >= 0) {
        push(ws, times[s->time]);
        push(ws, ",");
    }
    if (place_front) {
        push(ws, places[s->place][0]);
        push(ws, "the");
        push(ws, places[s->place][1]);
        push(ws, ",");
    }
    ws->pos_sdet = ws->n;
    push(ws, dets[s->sdet]);
    if (s->sadj >= 0) push(ws, wd(adjectives, s->sadj, s->syn & SY_SADJ));
    ws->pos_subj = ws->n;
    push(ws, wd(subjects, s->subj, s->syn & SY_SUBJ));
    const char *v = wd(verbs, s->verb, s->syn & SY_VERB);
    if (s->neg) {
        push(ws, "does");
        push(ws, "not");
        ws->pos_verb = ws->n;
        push(ws, v);
    } else {
        snprintf(ws->verb3, sizeof ws->verb3, "%ss", v);
        ws->pos_verb = ws->n;
        push(ws, ws->verb3);
    }
    push(ws, dets[s->odet]);
    if (s->oadj >= 0) push(ws, wd(adjectives, s->oadj, s->syn & SY_OADJ));
    ws->pos_obj = ws->n;
    push(ws, wd(objects, s->obj, s->syn & SY_OBJ));
    if (s->adv >= 0) push(ws, wd(adverbs, s->adv, s->syn & SY_ADV));
    if (s->place >= 0 && !place_front) {
        push(ws, places[s->place][0]);
        push(ws, "the");
        push(ws, places[s->place][1]);
    }
    if (s->time >= 0 && !s->front) push(ws, times[s->time]);
    push(ws, ".");
}

static void join(fm_sbuf *b, const words *ws) {
    for (int i = 0; i < ws->n; i++) {
        if (i) fm_sbuf_add(b, " ");
        fm_sbuf_add(b, ws->w[i]);
    }
}

static void render(fm_sbuf *b, const sent *s) {
    words ws;
    render_words(s, &ws);
    join(b, &ws);
}

/* s restated vaguely: of its five content words (subject adjective,
 * subject, verb, object adjective, object) k, a uniform k-subset, stay and
 * the others give way to "person", "has", "thing" or no adjective; the
 * adverb, place and time are left out; s is not negated. */
static void vague(rng *r, fm_sbuf *b, const sent *s, int k) {
    int keep[5] = {0, 0, 0, 0, 0};
    for (int placed = 0; placed < k;) {
        int j = pick(r, 5);
        if (!keep[j]) keep[j] = 1, placed++;
    }
    fm_sbuf_addf(b, "%s ", dets[pick(r, N(dets))]);
    if (keep[0] && s->sadj >= 0) fm_sbuf_addf(b, "%s ", adjectives[s->sadj].w);
    fm_sbuf_addf(b, "%s ", keep[1] ? subjects[s->subj].w : "person");
    if (keep[2]) fm_sbuf_addf(b, "%ss ", verbs[s->verb].w);
    else fm_sbuf_add(b, "has ");
    fm_sbuf_addf(b, "%s ", dets[pick(r, N(dets))]);
    if (keep[3] && s->oadj >= 0) fm_sbuf_addf(b, "%s ", adjectives[s->oadj].w);
    fm_sbuf_addf(b, "%s .", keep[4] ? objects[s->obj].w : "thing");
}

static unsigned rand_syn(rng *r, double p) {
    unsigned m = 0;
    for (int k = 0; k < 6; k++)
        if (coin(r, p)) m |= 1u << k;
    return m;
}

/* A random sentence; the probabilities of the optional parts. */
static void rand_sent(rng *r, sent *s, double p_adj, double p_adv, double p_place, double p_time, double p_syn) {
    s->sdet = pick(r, N(dets));
    s->sadj = coin(r, p_adj) ? pick(r, N(adjectives)) : -1;
    s->subj = pick(r, N(subjects));
    s->verb = pick(r, N(verbs));
    s->odet = pick(r, N(dets));
    s->oadj = coin(r, p_adj) ? pick(r, N(adjectives)) : -1;
    s->obj = pick(r, N(objects));
    s->adv = coin(r, p_adv) ? pick(r, N(adverbs)) : -1;
    s->place = coin(r, p_place) ? pick(r, N(places)) : -1;
    s->time = coin(r, p_time) ? pick(r, N(times)) : -1;
    s->syn = rand_syn(r, p_syn);
    s->neg = 0;
    s->front = coin(r, 0.25);
}

/* A sentence about a sentiment adjective; returns its polarity (1 positive). */
static int sentiment(fm_sbuf *b, rng *r, int negate) {
    int pol = coin(r, 0.5);
    const char *adj = pol ? positive[pick(r, N(positive))] : negative[pick(r, N(negative))];
    const char *sd = dets[pick(r, N(dets))], *od = dets[pick(r, N(dets))];
    const char *subj = wd(subjects, pick(r, N(subjects)), coin(r, 0.3));
    const char *obj = wd(objects, pick(r, N(objects)), coin(r, 0.3));
    int na = coin(r, 0.4) ? pick(r, N(adjectives)) : -1;
    switch (pick(r, 3)) {
    case 0:
        fm_sbuf_addf(b, "%s %s thinks %s ", sd, subj, od);
        if (na >= 0) fm_sbuf_addf(b, "%s ", adjectives[na].w);
        fm_sbuf_addf(b, "%s is %s%s .", obj, negate ? "not " : "", adj);
        break;
    case 1:
        fm_sbuf_addf(b, "%s %s %s %s ", sd, subj, negate ? "does not find" : "finds", od);
        fm_sbuf_addf(b, "%s %s", obj, adj);
        if (coin(r, 0.5)) fm_sbuf_addf(b, " %s the %s", places[pick(r, N(places))][0], places[pick(r, N(places))][1]);
        fm_sbuf_add(b, " .");
        break;
    default:
        fm_sbuf_addf(b, "%s %s says %s %s %s %s .", sd, subj, od, obj, negate ? "is not" : "is", adj);
        break;
    }
    return pol;
}

/* The question forms: what (the object), who (the subject), and the three
 * that ask for an optional part: where (a place), when (a time), how (an
 * adverb of manner). */
enum { Q_WHAT, Q_WHO, Q_WHERE, Q_WHEN, Q_HOW, Q_FORMS };

/* A question about s in form `form`, worded plainly (alt 0) or not. */
static void question(fm_sbuf *b, const sent *s, int form, int alt) {
    static const char *const wh[Q_FORMS][2] = {{"what", "which thing"},      {"who", "which person"},
                                               {"where", "in which place"}, {"when", "at what time"},
                                               {"how", "in what way"}};
    const char *sd = dets[s->sdet], *od = dets[s->odet], *q = wh[form][alt != 0];
    const char *subj = wd(subjects, s->subj, s->syn & SY_SUBJ), *obj = wd(objects, s->obj, s->syn & SY_OBJ);
    const char *v = wd(verbs, s->verb, s->syn & SY_VERB);
    switch (form) {
    case Q_WHAT: fm_sbuf_addf(b, "%s does %s %s %s ?", q, sd, subj, v); break;
    case Q_WHO: fm_sbuf_addf(b, "%s %ss %s %s ?", q, v, od, obj); break;
    default: fm_sbuf_addf(b, "%s does %s %s %s %s %s ?", q, sd, subj, v, od, obj);
    }
}

/* Give s the part a question of form `form` asks for (on 1) or take it away (0). */
static void set_answer(rng *r, sent *s, int form, int on) {
    if (form == Q_WHERE) s->place = on ? pick(r, N(places)) : -1;
    if (form == Q_WHEN) s->time = on ? pick(r, N(times)) : -1;
    if (form == Q_HOW) s->adv = on ? pick(r, N(adverbs)) : -1;
}

void fm_synth_corpus_line(fm_sbuf *out, uint64_t seed, uint64_t index) {
    out->n = 0;
    fm_sbuf_add(out, "");
    if (index % 8 == 7) return; /* document break */
    rng r = {seed, index, 1000, 0};
    int kind = pick(&r, 10);
    sent s;
    if (kind < 4) {
        rand_sent(&r, &s, 0.4, 0.3, 0.4, 0.3, 0.3);
        render(out, &s);
        if (coin(&r, 0.4)) { /* and a vaguer restatement of it */
            fm_sbuf_add(out, " so ");
            vague(&r, out, &s, pick(&r, 6));
        }
    } else if (kind < 6) {
        /* sentiment with its consequence: polarity is learnable from context */
        int neg = coin(&r, 0.15);
        int pol = sentiment(out, &r, neg) ^ neg;
        fm_sbuf_addf(out, " so everyone %s .",
                     pol ? pos_react[pick(&r, N(pos_react))] : neg_react[pick(&r, N(neg_react))]);
        /* "so everyone smiles ." has a plural-ish subject: keep the third person */
    } else if (kind < 7) {
        /* a question and its answer: the nouns repeat */
        rand_sent(&r, &s, 0.3, 0.2, 0.3, 0.2, 0.0);
        s.front = 0;
        int form = pick(&r, Q_FORMS);
        set_answer(&r, &s, form, 1);
        question(out, &s, form, coin(&r, 0.3));
        fm_sbuf_add(out, " ");
        render(out, &s);
    } else if (kind < 8) {
        rand_sent(&r, &s, 0.3, 0.3, 0.3, 0.2, 0.3);
        s.neg = 1;
        render(out, &s);
    } else {
        /* a sentence and its rewording side by side: the nouns repeat and
         * synonyms share contexts */
        rand_sent(&r, &s, 0.4, 0.3, 0.4, 0.3, 0.0);
        render(out, &s);
        fm_sbuf_add(out, " that is , ");
        s.syn = rand_syn(&r, 0.4);
        s.front = !s.front;
        render(out, &s);
    }
}

/* ---- the tasks ---- */

/* CoLA: 1 grammatical, 0 a word-order violation. */
static void make_cola(fm_synth_example *e, rng *r) {
    sent s;
    rand_sent(r, &s, 0.4, 0.3, 0.3, 0.2, 0.3);
    words ws;
    render_words(&s, &ws);
    e->label = coin(r, 0.6);
    if (!e->label) {
        const char *tmp;
        switch (pick(r, 4)) {
        case 0: /* the noun before its determiner */
            tmp = ws.w[ws.pos_sdet];
            ws.w[ws.pos_sdet] = ws.w[ws.pos_subj];
            ws.w[ws.pos_subj] = tmp;
            break;
        case 1: { /* the verb at the end */
            tmp = ws.w[ws.pos_verb];
            for (int i = ws.pos_verb; i < ws.n - 2; i++) ws.w[i] = ws.w[i + 1];
            ws.w[ws.n - 2] = tmp;
            break;
        }
        case 2: /* the object's determiner after its noun */
            tmp = ws.w[ws.pos_obj - (s.oadj >= 0 ? 2 : 1)];
            ws.w[ws.pos_obj - (s.oadj >= 0 ? 2 : 1)] = ws.w[ws.pos_obj];
            ws.w[ws.pos_obj] = tmp;
            break;
        default: { /* subject and verb swapped */
            tmp = ws.w[ws.pos_subj];
            ws.w[ws.pos_subj] = ws.w[ws.pos_verb];
            ws.w[ws.pos_verb] = tmp;
            break;
        }
        }
    }
    join(&e->a, &ws);
}

static void make_sst2(fm_synth_example *e, rng *r) {
    int neg = coin(r, 0.2);
    e->label = sentiment(&e->a, r, neg) ^ neg;
}

/* MRPC: the second sentence rewords the first (synonyms, the time or place
 * moved); a paraphrase (1) keeps its polarity, the other (0) turns it
 * around: exactly one of the two says "does not". */
static void make_mrpc(fm_synth_example *e, rng *r) {
    sent s;
    rand_sent(r, &s, 0.3, 0.2, 0.3, 0.2, 0.0);
    s.neg = coin(r, 0.4);
    render(&e->a, &s);
    e->label = coin(r, 0.5);
    sent t = s;
    t.syn = rand_syn(r, 0.5) & ~(unsigned)(SY_SUBJ | SY_OBJ);
    if (coin(r, 0.5)) t.front = !t.front;
    if (!e->label) t.neg = !s.neg;
    render(&e->b, &t);
}

/* STS-B: the second sentence restates the first vaguely, keeping k of its
 * five content words (two adjectives, subject, verb, object), k uniform in
 * 0..5, the others replaced by "person", "has", "thing" or dropped; the
 * score is k. */
static void make_stsb(fm_synth_example *e, rng *r) {
    sent s;
    rand_sent(r, &s, 1.0, 0.0, 0.0, 0.0, 0.0);
    s.front = 0;
    render(&e->a, &s);
    int k = pick(r, 6);
    vague(r, &e->b, &s, k);
    e->score = k;
    e->label = -1;
}

/* QQP: two questions about one sentence, reworded; duplicates (1) ask in the
 * same form (what, who, where, when, how), the others (0) in different ones. */
static void make_qqp(fm_synth_example *e, rng *r) {
    sent s;
    rand_sent(r, &s, 0, 0, 0, 0, 0);
    int form = pick(r, Q_FORMS), alt = coin(r, 0.3);
    question(&e->a, &s, form, alt);
    e->label = coin(r, 0.5);
    sent t = s;
    t.syn = rand_syn(r, 0.5) & SY_VERB;
    t.sdet = pick(r, N(dets));
    t.odet = pick(r, N(dets));
    int f2 = e->label ? form : pick_other(r, Q_FORMS, form);
    question(&e->b, &t, f2, coin(r, 0.3));
}
/* MNLI-style pair; label 0 contradiction, 1 entailment, 2 neutral. */
static void nli_pair(fm_synth_example *e, rng *r, int label, double p_front) {
    sent s;
    rand_sent(r, &s, 0.4, 0.4, 0.4, 0.2, 0.0);
    s.front = coin(r, p_front);
    if (label == 2 && s.place >= 0 && s.adv >= 0 && s.oadj >= 0) s.place = -1;
    render(&e->a, &s);
    sent h = s;
    h.syn = rand_syn(r, 0.3) & ~(unsigned)(SY_SUBJ | SY_OBJ);
    h.front = 0;
    /* drop optional parts */
    if (coin(r, 0.5)) h.sadj = -1;
    if (coin(r, 0.5)) h.oadj = -1;
    if (coin(r, 0.5)) h.adv = -1;
    if (coin(r, 0.5)) h.place = -1;
    if (coin(r, 0.6)) h.time = -1;
    if (label == 0) h.neg = 1;
    if (label == 2) {
        /* add what the premise does not say */
        if (s.place < 0) h.place = pick(r, N(places));
        else if (s.adv < 0) h.adv = pick(r, N(adverbs));
        else h.oadj = pick(r, N(adjectives));
    }
    render(&e->b, &h);
    e->label = label;
}

/* QNLI: a where, when or how question and a sentence about the same
 * subject and object that holds the answer (entailment) or not
 * (not_entailment: it has no place, time or adverb of the kind asked). */
static void make_qnli(fm_synth_example *e, rng *r) {
    sent s;
    rand_sent(r, &s, 0.2, 0.5, 0.5, 0.5, 0.0);
    int form = Q_WHERE + pick(r, 3);
    sent q = s;
    q.syn = rand_syn(r, 0.3) & SY_VERB;
    question(&e->a, &q, form, coin(r, 0.3));
    e->label = coin(r, 0.5) ? 0 : 1; /* 0 entailment */
    set_answer(r, &s, form, e->label == 0);
    render(&e->b, &s);
}

/* RTE: the hypothesis restates part of the premise (entailment), or negates
 * it or adds what the premise does not say (not_entailment). */
static void make_rte(fm_synth_example *e, rng *r) {
    int ent = coin(r, 0.5);
    nli_pair(e, r, ent ? 1 : coin(r, 0.5) ? 0 : 2, 0.2);
    e->label = ent ? 0 : 1;
}

void fm_synth_example_make(fm_synth_example *e, uint64_t seed, int task, int split, uint64_t index) {
    memset(e, 0, sizeof *e);
    fm_sbuf_add(&e->a, "");
    e->score = 0;
    rng r = {seed, index, (uint32_t)(task * 8 + split), 0};
    switch (task) {
    case 0: make_cola(e, &r); break;
    case 1: make_sst2(e, &r); break;
    case 2: make_mrpc(e, &r); break;
    case 3: make_stsb(e, &r); break;
    case 4: make_qqp(e, &r); break;
    case 5: nli_pair(e, &r, pick(&r, 3), split >= 3 ? 0.7 : 0.2); break;
    case 6: make_qnli(e, &r); break;
    default: make_rte(e, &r);
    }
}

/* ---- vocabulary ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void fm_synth_vocab(fm_sbuf *out) {
    out->n = 0;
    fm_sbuf_add(out, "[PAD]\n");
    for (int i = 0; i < 99; i++) fm_sbuf_addf(out, "[unused%d]\n", i);
    fm_sbuf_add(out, "[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    const char *ws[512];
    int n = 0;
    static const char *const punct[] = {".", ",", "?", "!", "'", "-"};
    for (int i = 0; i < N(punct); i++) ws[n++] = punct[i];
#define ADDW(t)                                                \
    for (int i = 0; i < N(t); i++) {                           \
        ws[n++] = t[i].w;                                      \
        if (t[i].syn) ws[n++] = t[i].syn;                      \
    }
    ADDW(subjects)
    ADDW(objects)
    ADDW(adjectives)
    ADDW(adverbs)
#undef ADDW
    for (int i = 0; i < N(verbs); i++) {
        ws[n++] = verbs[i].w;
        ws[n++] = verbs[i].syn;
    }
    for (int i = 0; i < N(positive); i++) ws[n++] = positive[i];
    for (int i = 0; i < N(negative); i++) ws[n++] = negative[i];
    for (int i = 0; i < N(pos_react); i++) ws[n++] = pos_react[i];
    for (int i = 0; i < N(neg_react); i++) ws[n++] = neg_react[i];
    for (int i = 0; i < N(places); i++) {
        ws[n++] = places[i][0];
        ws[n++] = places[i][1];
    }
    for (int i = 0; i < N(times); i++) ws[n++] = times[i];
    for (int i = 0; i < N(dets); i++) ws[n++] = dets[i];
    for (int i = 0; i < N(function_words); i++) ws[n++] = function_words[i];
    /* sorted, duplicates (shared prepositions) once; punctuation sorts first */
    qsort(ws + N(punct), (size_t)(n - N(punct)), sizeof ws[0], cmp_str);
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(ws[i], ws[i - 1])) fm_sbuf_addf(out, "%s\n", ws[i]);
    fm_sbuf_add(out, "##s\n");
    for (char c = 'a'; c <= 'z'; c++) {
        /* single letters that are not already words */
        char w[2] = {c, 0};
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= !strcmp(ws[i], w);
        if (!dup) fm_sbuf_addf(out, "%c\n", c);
    }
    for (char c = 'a'; c <= 'z'; c++)
        if (c != 's') fm_sbuf_addf(out, "##%c\n", c);
}
