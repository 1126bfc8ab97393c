/* sampler.c - penalties, temperature, top_k/top_p/min_p and the draw, over
 * one row of logits; logprobs from the raw row. Semantics are described in
 * sampler.h. Hot path: called once per generated token, allocates nothing. */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/mem.h"

#define SMALL_K 64 /* top_k up to this uses the one-pass selection */

struct cand {
    float v;    /* temperature-scaled logit */
    int32_t id;
};

struct sampler {
    int n_vocab;
    struct cand *c;   /* [n_vocab] candidates */
    int32_t *ids;     /* [n_vocab] output ids */
    float *probs;     /* [n_vocab] output probabilities */
    int32_t *count;   /* [n_vocab] generated-token counts, kept all-zero between calls */
    uint8_t *seen;    /* [n_vocab] repetition marks, kept all-zero between calls */
};

/* ---- PRNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sampler_rng_seed(struct sampler_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sampler_rng_next(struct sampler_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double sampler_rng_uniform(struct sampler_rng *r)
{
    return (double)(sampler_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t sampler_random_seed(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v)
        return v;
    /* No entropy source: a clock is still a different seed per request. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
    return splitmix64(&x);
}

/* ---- create/free ----------------------------------------------------------- */

enum ax_err sampler_create(int n_vocab, struct sampler **out, char *err)
{
    *out = NULL;
    if (n_vocab <= 0)
        return ax_fail(err, AX_EINVAL, "sampler: vocabulary size %d is not positive", n_vocab);
    struct sampler *s = ax_calloc(1, sizeof *s);
    if (!s)
        return ax_fail(err, AX_ENOMEM, "sampler: out of memory");
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    s->c = ax_mallocarray(n, sizeof *s->c);
    s->ids = ax_mallocarray(n, sizeof *s->ids);
    s->probs = ax_mallocarray(n, sizeof *s->probs);
    s->count = ax_calloc(n, sizeof *s->count);
    s->seen = ax_calloc(n, 1);
    if (!s->c || !s->ids || !s->probs || !s->count || !s->seen) {
        sampler_free(s);
        return ax_fail(err, AX_ENOMEM, "sampler: out of memory for %d-entry scratch", n_vocab);
    }
    *out = s;
    return AX_OK;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    ax_free(s->c);
    ax_free(s->ids);
    ax_free(s->probs);
    ax_free(s->count);
    ax_free(s->seen);
    ax_free(s);
}

/* ---- penalties ------------------------------------------------------------ */

void sampler_penalize(struct sampler *s, float *logits, const struct sampler_params *p,
                      const int32_t *hist, int n_hist, int gen_start)
{
    float rp = p->repetition_penalty;
    if (rp > 0.0f && rp != 1.0f) {
        for (int i = 0; i < n_hist; i++) {
            int32_t id = hist[i];
            if (s->seen[id])
                continue;
            s->seen[id] = 1;
            float *l = &logits[id];
            *l = *l < 0.0f ? *l * rp : *l / rp;
        }
        for (int i = 0; i < n_hist; i++)
            s->seen[hist[i]] = 0;
    }
    if (p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f)
        return;
    for (int i = gen_start; i < n_hist; i++)
        s->count[hist[i]]++;
    for (int i = gen_start; i < n_hist; i++) {
        int32_t id = hist[i];
        int32_t c = s->count[id];
        if (!c)
            continue; /* already applied for an earlier occurrence */
        logits[id] -= (float)c * p->frequency_penalty + p->presence_penalty;
        s->count[id] = 0;
    }
}

/* ---- selection helpers ---------------------------------------------------- */

/* Total order: larger value first, then lower id, so results never depend
 * on the order candidates arrive in. */
static int before(const struct cand *a, const struct cand *b)
{
    return a->v > b->v || (a->v == b->v && a->id < b->id);
}

static int cmp_cand(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

static void swap_cand(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Partially orders c[0..n) so that c[0..k) are the k first in `before`
 * order (unsorted among themselves). Quickselect, median of three. */
static void select_top(struct cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (before(&c[mid], &c[lo]))
            swap_cand(&c[mid], &c[lo]);
        if (before(&c[hi], &c[lo]))
            swap_cand(&c[hi], &c[lo]);
        if (before(&c[hi], &c[mid]))
            swap_cand(&c[hi], &c[mid]);
        struct cand piv = c[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (before(&c[i], &piv))
                i++;
            while (before(&piv, &c[j]))
                j--;
            if (i <= j) {
                swap_cand(&c[i], &c[j]);
                i++;
                j--;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            return;
    }
}

/* ---- filters -------------------------------------------------------------- */

static int argmax(const float *logits, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

/* top_k: keeps every candidate >= the k-th largest value (ties kept). */
static int apply_top_k(struct cand *c, int n, int k)
{
    if (k <= 0 || k >= n)
        return n;
    select_top(c, n, k);
    float thr = c[0].v;
    for (int i = 1; i < k; i++)
        if (c[i].v < thr)
            thr = c[i].v;
    int m = k;
    for (int i = k; i < n; i++)
        if (c[i].v >= thr)
            swap_cand(&c[m++], &c[i]);
    return m;
}

/* Small top_k straight from the raw logits (a positive temperature keeps
 * their order): one pass keeps the k best in a small sorted array - most
 * logits fail the first comparison - and a second gathers every logit >=
 * the k-th, ties included as HF keeps them. Returns the candidate count. */
static int gather_top_k(struct sampler *s, const float *logits, int k, float temp)
{
    struct cand best[SMALL_K];
    int have = 0;
    for (int i = 0; i < s->n_vocab; i++) {
        struct cand x = {logits[i], i};
        if (!(x.v > -INFINITY) || (have == k && !before(&x, &best[k - 1])))
            continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && before(&x, &best[j - 1])) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = x;
    }
    if (have == 0)
        return 0;
    float thr = best[have - 1].v;
    int n = 0;
    for (int i = 0; i < s->n_vocab; i++)
        if (logits[i] >= thr)
            s->c[n++] = (struct cand){logits[i] / temp, i};
    return n;
}

/* Buckets of (vmax - v) for top_p: BUCKETS_PER_UNIT per logit unit, the
 * last bucket taking everything further down. */
#define N_BUCKETS 256
#define BUCKETS_PER_UNIT 8.0f

static int bucket_of(float v, float vmax)
{
    float d = (vmax - v) * BUCKETS_PER_UNIT;
    return d < (float)(N_BUCKETS - 1) ? (int)d : N_BUCKETS - 1;
}

/* The last histogram bucket needed to hold top_p of the mass z, plus one
 * of slack against rounding in the sums. */
static int last_bucket(const double *mass, double z, float top_p)
{
    int last = 0;
    for (double cum = 0.0; last < N_BUCKETS - 1; last++) {
        cum += mass[last];
        if (cum >= top_p * z)
            break;
    }
    return last < N_BUCKETS - 1 ? last + 1 : last;
}

/* Sorts c[0..m) (a superset of the nucleus) and keeps the most probable
 * while the mass before them is < top_p; z is the mass of all candidates. */
static int nucleus(struct cand *c, int m, double z, float top_p, float vmax)
{
    qsort(c, (size_t)m, sizeof *c, cmp_cand);
    double cum = 0.0;
    for (int i = 0; i < m; i++) {
        if (cum >= top_p)
            return i > 0 ? i : 1;
        cum += exp((double)c[i].v - vmax) / z;
    }
    return m;
}

/* top_p over candidates: only those in the top buckets that hold top_p of
 * the mass are sorted (a histogram pass finds them), not all of them. */
static int apply_top_p(struct cand *c, int n, float top_p, float vmax)
{
    double mass[N_BUCKETS] = {0}, z = 0.0;
    for (int i = 0; i < n; i++) {
        double p = expf(c[i].v - vmax);
        mass[bucket_of(c[i].v, vmax)] += p;
        z += p;
    }
    int last = last_bucket(mass, z, top_p), m = 0;
    for (int i = 0; i < n; i++)
        if (bucket_of(c[i].v, vmax) <= last)
            swap_cand(&c[m++], &c[i]);
    return nucleus(c, m, z, top_p, vmax);
}

/* top_p straight from the raw logits (no top_k before it): the histogram
 * pass reads the logits and only the nucleus' buckets become candidates,
 * so the whole vocabulary is never copied or sorted. */
static int gather_top_p(struct sampler *s, const float *logits, float top_p, float temp)
{
    float lmax = -INFINITY;
    for (int i = 0; i < s->n_vocab; i++)
        if (logits[i] > lmax)
            lmax = logits[i];
    if (!(lmax > -INFINITY))
        return 0;
    float vmax = lmax / temp;
    double mass[N_BUCKETS] = {0}, z = 0.0;
    for (int i = 0; i < s->n_vocab; i++) {
        if (!(logits[i] > -INFINITY))
            continue;
        float v = logits[i] / temp;
        double p = expf(v - vmax);
        mass[bucket_of(v, vmax)] += p;
        z += p;
    }
    /* Buckets 0..last are v > vmax - (last + 1) / BUCKETS_PER_UNIT; test
     * the raw logit against that bound, lowered a little so rounding can
     * only add candidates (a superset of the nucleus is all it needs). */
    int last = last_bucket(mass, z, top_p), m = 0;
    float thr = (vmax - ((float)last + 1.05f) / BUCKETS_PER_UNIT) * temp;
    for (int i = 0; i < s->n_vocab; i++)
        if (logits[i] >= thr)
            s->c[m++] = (struct cand){logits[i] / temp, i};
    return nucleus(s->c, m, z, top_p, vmax);
}

/* min_p: p_i >= min_p * p_max  <=>  v_i >= vmax + log(min_p). */
static int apply_min_p(struct cand *c, int n, float min_p, float vmax)
{
    double thr = (double)vmax + log((double)min_p);
    int m = 0;
    for (int i = 0; i < n; i++)
        if ((double)c[i].v >= thr)
            swap_cand(&c[m++], &c[i]);
    return m > 0 ? m : 1; /* the max always passes; guard against NaN */
}

static float max_v(const struct cand *c, int n)
{
    float m = c[0].v;
    for (int i = 1; i < n; i++)
        if (c[i].v > m)
            m = c[i].v;
    return m;
}

int sampler_filter(struct sampler *s, const float *logits, const struct sampler_params *p,
                   const int32_t **ids, const float **probs)
{
    *ids = s->ids;
    *probs = s->probs;
    if (!(p->temperature > 0.0f)) {
        s->ids[0] = argmax(logits, s->n_vocab);
        s->probs[0] = 1.0f;
        return 1;
    }
    /* Masked (-inf) and NaN logits never become candidates. */
    int n = 0, top_p = p->top_p >= 0.0f && p->top_p < 1.0f; /* 0: the top token only (HF) */
    if (p->top_k > 0 && p->top_k <= SMALL_K) {
        n = gather_top_k(s, logits, p->top_k, p->temperature);
    } else if (p->top_k <= 0 && top_p) {
        n = gather_top_p(s, logits, p->top_p, p->temperature);
        top_p = 0; /* done */
    } else {
        for (int i = 0; i < s->n_vocab; i++)
            if (logits[i] > -INFINITY)
                s->c[n++] = (struct cand){logits[i] / p->temperature, i};
        n = n ? apply_top_k(s->c, n, p->top_k) : 0;
    }
    if (n == 0) {
        s->ids[0] = argmax(logits, s->n_vocab);
        s->probs[0] = 1.0f;
        return 1;
    }
    float vmax = max_v(s->c, n);
    if (top_p)
        n = apply_top_p(s->c, n, p->top_p, vmax);
    if (p->min_p > 0.0f && p->min_p <= 1.0f)
        n = apply_min_p(s->c, n, p->min_p, vmax);
    double z = 0.0;
    for (int i = 0; i < n; i++) {
        s->ids[i] = s->c[i].id;
        s->probs[i] = expf(s->c[i].v - vmax);
        z += s->probs[i];
    }
    float inv = (float)(1.0 / z);
    for (int i = 0; i < n; i++)
        s->probs[i] *= inv;
    return n;
}

int32_t sampler_sample(struct sampler *s, const float *logits, const struct sampler_params *p,
                       struct sampler_rng *rng)
{
    const int32_t *ids;
    const float *pr;
    int n = sampler_filter(s, logits, p, &ids, &pr);
    if (n == 1)
        return ids[0];
    double u = sampler_rng_uniform(rng), cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += pr[i];
        if (u < cum)
            return ids[i];
    }
    return ids[n - 1]; /* rounding left u just above the total */
}

/* ---- logprobs ------------------------------------------------------------- */

float sampler_logprobs(const struct sampler *s, const float *logits, int32_t chosen, int n_top,
                       struct eng_top *top)
{
    int n = s->n_vocab;
    float vmax = logits[argmax(logits, n)];
    double z = 0.0;
    for (int i = 0; i < n; i++)
        z += exp((double)logits[i] - vmax);
    double lse = vmax + log(z > 0.0 ? z : 1.0); /* z >= 1: the max adds exp(0) */
    /* Insertion into a small sorted array: most logits fail the first test. */
    int have = 0;
    for (int i = 0; i < n && n_top > 0; i++) {
        float v = logits[i];
        if (have == n_top && !(v > top[have - 1].logprob))
            continue;
        int j = have < n_top ? have++ : have - 1;
        while (j > 0 && v > top[j - 1].logprob) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (struct eng_top){i, v};
    }
    for (int i = 0; i < have; i++)
        top[i].logprob = (float)(top[i].logprob - lse);
    return (float)(logits[chosen] - lse);
}
