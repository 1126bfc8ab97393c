#!/usr/bin/python3
"""compare_gen.py CPU.json AXCL.json [TOL] - compares two `axserve generate
--temperature 0 --top K` outputs (CPU backend vs axcl backend on the
emulator). Tokens must match step by step and the chosen token's
log-probability must agree within TOL (default 0.1: the emulator rounds
activations to bf16 like the device, the CPU backend does not). At the
first differing token the CPU's top-2 margin must be within 2*TOL (a
near-tie that bf16 may flip); the sequences are compared up to there.
Prints what it compared; exit 1 on a real mismatch."""
import json, sys

cpu = json.load(open(sys.argv[1]))
ax = json.load(open(sys.argv[2]))
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
worst, n = 0.0, 0
for i, (a, b) in enumerate(zip(cpu["tokens"], ax["tokens"])):
    ctop, atop = cpu["top"][i], ax["top"][i]
    if a != b:
        margin = ctop[0][1] - ctop[1][1]
        if margin <= 2 * tol:
            print(f"near-tie at step {i} (cpu margin {margin:.4f}); compared {n} steps, "
                  f"max |dlp| {worst:.4f}")
            sys.exit(0 if n >= 4 else 1)
        print(f"step {i}: cpu {a} axcl {b}, cpu margin {margin:.4f} > {2 * tol}")
        sys.exit(1)
    d = abs(ctop[0][1] - atop[0][1])
    worst = max(worst, d)
    if d > tol:
        print(f"step {i}: token {a} logprob cpu {ctop[0][1]:.5f} axcl {atop[0][1]:.5f}")
        sys.exit(1)
    n += 1
if len(cpu["tokens"]) != len(ax["tokens"]):
    print(f"lengths differ: cpu {len(cpu['tokens'])} axcl {len(ax['tokens'])}")
    sys.exit(1)
print(f"{n} steps identical, max |dlogprob| {worst:.4f} (tol {tol})")
