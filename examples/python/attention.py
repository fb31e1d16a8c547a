#!/usr/bin/env python3
"""Calls the attention kernel of an einc-built library from Python and compares with numpy.

    target/release/einc build examples/attention.ein -o out/
    python3 examples/python/attention.py out/libattention.so
"""
import sys

import numpy as np

import einc


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "out/libattention.so"
    lib = einc.load(path)
    print(f"{path}: kernels {', '.join(lib.kernels)}")
    print(lib.attention.signature)

    rng = np.random.default_rng(0)
    T, D, K = 8, 6, 4
    X = rng.standard_normal((T, D)).astype(np.float32)
    WQ, WK, WV = ((rng.standard_normal((D, K)) / np.sqrt(D)).astype(np.float32)
                  for _ in range(3))

    O = lib.attention(X, WQ, WK, WV)

    # numpy, in float64: O = softmax(X WQ (X WK)^T / sqrt(K)) X WV
    Q, Kx, V = (X.astype(np.float64) @ W for W in (WQ, WK, WV))
    S = Q @ Kx.T / np.sqrt(K)
    P = np.exp(S - S.max(axis=1, keepdims=True))
    want = (P / P.sum(axis=1, keepdims=True)) @ V
    err = float(np.abs(O - want).max())
    print(f"O[0] = {O[0]}; max |O - numpy| = {err:.2e}")

    # A transposed view of X works as it is: its strides are passed along.
    Xt = np.ascontiguousarray(X.T)
    assert np.array_equal(lib.attention(Xt.T, WQ, WK, WV), O)

    try:
        lib.attention(X, WQ[:-1], WK, WV)
    except einc.EincError as e:
        print(f"wrong shape: {e}")
    return 0 if err <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
