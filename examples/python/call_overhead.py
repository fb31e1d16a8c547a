#!/usr/bin/env python3
"""Measures what a call through einc.py costs on a tiny kernel, beside numpy.einsum.

    python3 examples/python/call_overhead.py target/release/einc

Builds `y[i] = a[i] * b[i]` into a temporary directory, then times (best of 7 runs of 20000
calls, in one process, so that the numbers are comparable with each other): numpy.einsum on
the same 4-element arrays, the loader allocating its output, and the loader writing into
`out=`. On a loaded machine every number grows; compare them with each other, not with
numbers taken elsewhere.
"""
import os
import subprocess
import sys
import tempfile
import timeit

import numpy as np

import einc

KERNEL = """dims N
kernel mul(a: f32[N], b: f32[N]) -> (y: f32[N]) {
    y[i] = a[i] * b[i]
}
"""


def main():
    einc_bin = sys.argv[1] if len(sys.argv) > 1 else "target/release/einc"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "mul.ein")
        with open(src, "w") as f:
            f.write(KERNEL)
        subprocess.run([einc_bin, "build", src, "-o", tmp + "/"], check=True)
        lib = einc.load(os.path.join(tmp, "libmul.so"))
        a = np.arange(4, dtype=np.float32)
        b = np.full(4, 2.0, dtype=np.float32)
        y = np.empty(4, dtype=np.float32)
        mul = lib.mul
        assert np.array_equal(mul(a, b), a * b)
        cases = [("numpy.einsum('i,i->i', a, b)", lambda: np.einsum("i,i->i", a, b)),
                 ("lib.mul(a, b)", lambda: mul(a, b)),
                 ("lib.mul(a, b, out=y)", lambda: mul(a, b, out=y))]
        n = 20000
        for name, f in cases:
            best = min(timeit.repeat(f, number=n, repeat=7)) / n
            print(f"{best * 1e6:8.2f} us  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
