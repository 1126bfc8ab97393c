/* sampler.h - turns one row of logits into one token id.
 *
 * Order (as Hugging Face transformers applies its processors and warpers):
 *   repetition_penalty (HF: over prompt + generated tokens, each distinct
 *   id once: positive logits divided, negative multiplied), then
 *   frequency/presence penalties (OpenAI: over generated tokens only,
 *   logit -= count * frequency + (count > 0) * presence), then temperature
 *   (0 = argmax, exactly, ties to the lowest id), top_k (ties with the k-th
 *   value are kept, as HF does), top_p (keep the most probable tokens while
 *   the mass before them is < top_p; 0 keeps only the top one), min_p (keep p >= min_p * p_max), and a
 *   draw from the renormalised survivors with the request's own PRNG.
 *
 * Logprobs are reported from the raw logits (log-softmax before penalties,
 * temperature or filtering), as vLLM reports them by default.
 *
 * Nothing here allocates after sampler_create: every vocab-sized scratch
 * array is sized once. Not thread-safe: one sampler per engine thread. */
#ifndef AX_ENGINE_SAMPLER_H
#define AX_ENGINE_SAMPLER_H

#include <stdint.h>

#include "engine/engine.h"
#include "util/err.h"

/* xoshiro256** seeded through splitmix64: same seed, same stream. */
struct sampler_rng {
    uint64_t s[4];
};

void sampler_rng_seed(struct sampler_rng *r, uint64_t seed);
uint64_t sampler_rng_next(struct sampler_rng *r);
double sampler_rng_uniform(struct sampler_rng *r); /* [0, 1), 53 bits */
/* A seed from the OS (getrandom), for requests without one. */
uint64_t sampler_random_seed(void);

struct sampler;

enum ax_err sampler_create(int n_vocab, struct sampler **out, char *err);
void sampler_free(struct sampler *s);

/* Applies the penalties of p in place to logits[0..n_vocab). hist holds
 * the prompt and generated ids (all in range); hist[gen_start..n_hist) are
 * the generated ones. */
void sampler_penalize(struct sampler *s, float *logits, const struct sampler_params *p,
                      const int32_t *hist, int n_hist, int gen_start);

/* Temperature and filters over (already penalised) logits. Returns the
 * number of surviving candidates (>= 1); *ids and *probs (borrowed until
 * the next call on s) hold them with probabilities summing to 1, in no
 * particular order unless a sort was needed. */
int sampler_filter(struct sampler *s, const float *logits, const struct sampler_params *p,
                   const int32_t **ids, const float **probs);

/* sampler_filter, then one draw from rng. */
int32_t sampler_sample(struct sampler *s, const float *logits, const struct sampler_params *p,
                       struct sampler_rng *rng);

/* Log-softmax of raw logits: returns the logprob of chosen and fills
 * top[0..n_top) with the n_top most likely ids (descending; ties to the
 * lower id). n_top <= ENG_MAX_TOP. */
float sampler_logprobs(const struct sampler *s, const float *logits, int32_t chosen, int n_top,
                       struct eng_top *top);

#endif
