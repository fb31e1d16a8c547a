#!/usr/bin/env python3
"""f32 accumulation error of a long reduction: einc against numpy on the same data.

Sums 10^6 float32 values (uniform in [0, 1), then in [-1, 1)) with `einc eval "i->"` (the
JIT at the default level) and with numpy: `np.sum` (pairwise summation in blocks of 8),
`np.einsum("i->", x)`, and a strictly sequential float32 sum (`np.cumsum(x)[-1]`). The exact
sum is `math.fsum` of the values. Prints each error in ulps of the result and fails if einc's
error exceeds the bound of recursive summation in any order, (n-1)u/(1-(n-1)u) * sum|x|
with u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms, section 4.2).

Usage: python3 tests/numpy/check_accumulation.py path/to/einc
See docs/math.md ("Summation order and accumulation error").
"""
import math
import subprocess
import sys
import tempfile

import numpy as np

N = 10**6


def ulps(err, exact):
    return err / (np.finfo(np.float32).eps / 2 * max(abs(exact), 1.0))


def main():
    einc = sys.argv[1] if len(sys.argv) > 1 else "einc"
    rng = np.random.default_rng(2026)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in [
            ("uniform [0, 1)", rng.random(N, dtype=np.float32)),
            ("uniform [-1, 1)", (rng.random(N, dtype=np.float32) * 2 - 1).astype(np.float32)),
        ]:
            np.save(f"{tmp}/x.npy", x)
            r = subprocess.run([einc, "eval", "i->", f"{tmp}/x.npy", "-o", f"{tmp}/s.npy"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"einc eval failed: {r.stderr}")
                return 1
            got = {
                "einc eval (JIT)": float(np.load(f"{tmp}/s.npy")),
                "np.sum (pairwise)": float(np.sum(x)),
                "np.einsum('i->')": float(np.einsum("i->", x)),
                "sequential f32": float(np.cumsum(x, dtype=np.float32)[-1]),
            }
            exact = math.fsum(x.astype(np.float64))
            u = 2.0**-24
            nu = (N - 1) * u
            bound = nu / (1 - nu) * float(np.sum(np.abs(x.astype(np.float64))))
            print(f"{name}: exact sum {exact:.6f}, bound {bound:.3e}")
            for k, v in got.items():
                err = abs(v - exact)
                print(f"  {k:20s} {v:16.6f}  error {err:.3e} = {ulps(err, exact):8.1f} ulp")
            err = abs(got["einc eval (JIT)"] - exact)
            if err > bound:
                print(f"  FAIL: einc's error {err:.3e} exceeds the bound {bound:.3e}")
                failed = True
            same = got["einc eval (JIT)"] == got["sequential f32"]
            print(f"  einc equals the sequential float32 sum: {same}")
    print("1 passed, 0 failed" if not failed else "0 passed, 1 failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
