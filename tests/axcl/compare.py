#!/usr/bin/python3
"""compare.py REF.json OURS.json [TOL] [KEY_SUFFIX] - checks a teacher-forced
run of ours against the reference: every step's log-probability of the
reference token within TOL (default 0.05: bf16 activations vs float64),
and our argmax equal to the reference token wherever the reference's
top-2 margin exceeds 2*TOL. Prints what it compared; exit 1 on mismatch."""
import json, sys

ref = json.load(open(sys.argv[1]))
ours = json.load(open(sys.argv[2]))
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
sfx = sys.argv[4] if len(sys.argv) > 4 else ""
rt, rl, rm = ref["tokens"], ref["lp"], ref["margin"]
ot, ol = ours["tokens" + sfx], ours["lp" + sfx]
bad, worst, checked = 0, 0.0, 0
if len(ot) != len(rt):
    print(f"length differs: ours {len(ot)} ref {len(rt)}")
    sys.exit(1)
for i in range(len(rt)):
    d = abs(ol[i] - rl[i])
    worst = max(worst, d)
    if d > tol:
        print(f"step {i}: lp ours {ol[i]:.5f} ref {rl[i]:.5f} (token {rt[i]})")
        bad += 1
    if rm[i] > 2 * tol:
        checked += 1
        if ot[i] != rt[i]:
            print(f"step {i}: argmax ours {ot[i]} ref {rt[i]} (margin {rm[i]:.4f})")
            bad += 1
print(f"{len(rt)} steps, {checked} argmax checks, max |dlp| {worst:.4f} (tol {tol}), {bad} mismatches")
sys.exit(1 if bad else 0)
