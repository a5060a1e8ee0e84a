"""Compares learner states written by `ssl-daemon bench distributed` (safetensors).

    compare_states.py A B [--atol X] [--identical] [--expect-differ NAME_PREFIX] [--ignore PREFIX]...

Prints the largest absolute difference of every tensor and exits 1 when one exceeds --atol
(or, with --identical, when any byte differs; with --expect-differ, when the tensors whose names
start with NAME_PREFIX are all within --atol: a negative control that must fail)."""
import argparse
import sys

import numpy as np
from safetensors.numpy import load_file

parser = argparse.ArgumentParser()
parser.add_argument("a")
parser.add_argument("b")
parser.add_argument("--atol", type=float, default=1e-4)
parser.add_argument("--identical", action="store_true")
parser.add_argument("--expect-differ", default=None)
parser.add_argument("--ignore", action="append", default=[], help="leave out tensors whose names start with this")
args = parser.parse_args()
a, b = load_file(args.a), load_file(args.b)
for state in (a, b):
    for name in [n for n in state if any(n.startswith(p) for p in args.ignore)]:
        del state[name]
if sorted(a) != sorted(b):
    sys.exit("different tensors: %s" % sorted(set(a) ^ set(b)))
worst, worst_name, bad = 0.0, "", []
differ = {}
for name in sorted(a):
    x, y = a[name], b[name]
    if x.shape != y.shape or x.dtype != y.dtype:
        sys.exit("%s: %s %s vs %s %s" % (name, x.shape, x.dtype, y.shape, y.dtype))
    if args.identical:
        if x.tobytes() != y.tobytes():
            bad.append(name)
        continue
    d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
    differ[name] = d
    if d > worst:
        worst, worst_name = d, name
    if d > args.atol:
        bad.append("%s (%.3g)" % (name, d))
if args.identical:
    print("identical" if not bad else "differ: %s" % bad[:5])
    sys.exit(1 if bad else 0)
print("max abs difference %.3g in %s over %d tensors" % (worst, worst_name, len(a)))
if args.expect_differ is not None:
    chosen = [d for n, d in differ.items() if n.startswith(args.expect_differ)]
    far = [d for d in chosen if d > args.atol]
    print("%s: %d of %d tensors beyond %g" % (args.expect_differ, len(far), len(chosen), args.atol))
    sys.exit(0 if far else 1)
if bad:
    print("beyond %g: %s" % (args.atol, bad[:10]))
    sys.exit(1)
