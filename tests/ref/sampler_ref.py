#!/usr/bin/python3
"""sampler_ref.py - independent reference for the engine's sampler.

Prints test cases (random logits, token history, sampling parameters) and,
for each, the candidate set the documented semantics leave and their
probabilities, plus raw-logit logprobs. Written from the documentation of
Hugging Face transformers' logits processors (RepetitionPenaltyLogitsProcessor,
TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
MinPLogitsWarper, applied in that order) and OpenAI's description of
presence/frequency penalties:
  mu[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty
over generated tokens only. numpy only; no project code is used.

Cases whose outcome would hinge on a rounding-sized margin (a cumulative
probability or a min_p ratio within 1e-5 of its threshold) are skipped, so
float32 vs float64 arithmetic cannot flip a decision.

Output, one block per case:
  case N V temperature top_k top_p min_p repetition presence frequency gen_start
  logits v0 v1 ... (float32, %.9g round-trips)
  hist id ...
  keep n id prob id prob ...
  logprobs chosen_id chosen_lp n id lp ...
"""
import sys
import numpy as np

MARGIN = 1e-5


def penalize(logits, hist, gen_start, rep, pres, freq):
    x = logits.astype(np.float64).copy()
    if rep != 1.0 and len(hist):
        ids = np.unique(np.array(hist))
        s = x[ids]
        x[ids] = np.where(s < 0, s * rep, s / rep)
    gen = hist[gen_start:]
    if len(gen) and (pres != 0.0 or freq != 0.0):
        ids, counts = np.unique(np.array(gen), return_counts=True)
        x[ids] -= counts * freq + (counts > 0) * pres
    return x


def softmax(v):
    e = np.exp(v - np.max(v))
    return e / e.sum()


def warp(x, temp, top_k, top_p, min_p):
    """Returns (kept ids, their probabilities) or None if borderline."""
    if temp == 0:
        i = int(np.argmax(x))
        return [i], [1.0]
    s = x / temp
    keep = np.ones(len(s), bool)
    if top_k > 0:
        kth = np.sort(s)[::-1][min(top_k, len(s)) - 1]
        keep &= s >= kth
    if 0 <= top_p < 1:
        idx = np.where(keep)[0]
        p = softmax(s[idx])
        order = np.argsort(-p, kind="stable")
        before = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
        if np.any(np.abs(before[1:] - top_p) < MARGIN):  # the first is always kept
            return None
        drop = before >= top_p
        drop[0] = False
        keep[idx[order[drop]]] = False
    if min_p > 0:
        idx = np.where(keep)[0]
        p = softmax(s[idx])
        ratio = p / p.max()
        if np.any(np.abs(np.log(ratio) - np.log(min_p)) < MARGIN):
            return None
        keep[idx[ratio < min_p]] = False
    idx = np.where(keep)[0]
    return list(idx), list(softmax(s[idx]))


def logprobs(logits, chosen, n):
    x = logits.astype(np.float64)
    lse = np.max(x) + np.log(np.sum(np.exp(x - np.max(x))))
    lp = x - lse
    order = np.argsort(-lp, kind="stable")[:n]
    return lp[chosen], [(int(i), lp[i]) for i in order]


def main():
    rng = np.random.default_rng(20240611)
    params = [
        # V, temperature, top_k, top_p, min_p, rep, presence, frequency, scale
        (50, 0.0, 0, 1.0, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 0.0, 0, 1.0, 0.0, 1.3, 0.5, 0.2, 3.0),
        (50, 1.0, 0, 1.0, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 0.7, 20, 0.8, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 0.6, 20, 0.95, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 1.0, 5, 1.0, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 1.0, 1, 1.0, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 1.3, 0, 0.5, 0.0, 1.0, 0.0, 0.0, 2.0),
        (50, 1.0, 0, 1.0, 0.1, 1.0, 0.0, 0.0, 2.0),
        (50, 0.8, 10, 0.9, 0.05, 1.1, 0.0, 0.0, 2.0),
        (50, 1.0, 0, 1.0, 0.0, 1.5, 0.0, 0.0, 3.0),
        (50, 1.0, 0, 0.9, 0.0, 1.0, 1.5, 0.0, 3.0),
        (50, 1.0, 0, 0.9, 0.0, 1.0, 0.0, 0.7, 3.0),
        (50, 0.5, 30, 0.7, 0.2, 1.2, 0.3, 0.3, 3.0),
        (50, 1.0, 0, 0.0, 0.0, 1.0, 0.0, 0.0, 3.0),
        (50, 0.7, 10, 0.0, 0.0, 1.0, 0.0, 0.0, 3.0),
        (5000, 1.0, 0, 0.9, 0.0, 1.0, 0.0, 0.0, 0.5),
        (5000, 1.0, 0, 0.99, 0.0, 1.05, 0.2, 0.1, 0.3),
        (5000, 0.9, 100, 0.9, 0.0, 1.0, 0.0, 0.0, 1.0),
        (5000, 1.0, 0, 1.0, 0.02, 1.0, 0.0, 0.0, 1.0),
    ]
    n = 0
    for rep_round in range(3):
        for (V, t, k, tp, mp, rp, pp, fp, scale) in params:
            while True:
                logits = (rng.standard_normal(V) * scale).astype(np.float32)
                n_hist = int(rng.integers(0, 40))
                hist = [int(h) for h in rng.integers(0, min(V, 60), n_hist)]
                gen_start = int(rng.integers(0, n_hist + 1))
                x = penalize(logits, hist, gen_start, rp, pp, fp)
                r = warp(x, t, k, tp, mp)
                if r is not None:
                    break
            ids, probs = r
            print("case %d %d %.9g %d %.9g %.9g %.9g %.9g %.9g %d"
                  % (n, V, t, k, tp, mp, rp, pp, fp, gen_start))
            print("logits " + " ".join("%.9g" % v for v in logits))
            print("hist " + " ".join(str(h) for h in hist))
            print("keep %d " % len(ids) + " ".join("%d %.12g" % (i, p) for i, p in zip(ids, probs)))
            chosen = int(ids[0])
            clp, top = logprobs(logits, chosen, 5)
            print("logprobs %d %.12g %d " % (chosen, clp, len(top))
                  + " ".join("%d %.12g" % (i, v) for i, v in top))
            n += 1
    print("end %d" % n)


if __name__ == "__main__":
    sys.exit(main())
