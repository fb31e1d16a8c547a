#!/usr/bin/env python3
"""Runs examples/attention.ein through `einc run` and compares with numpy's softmax attention.

The reference is written directly in numpy, following Exercise 8 of the reference chapter
(`../shared/reference/einstein-summation.txt`): Q = X WQ, K = X WK, V = X WV,
S = Q K^T / sqrt(d_k), alpha = softmax over the key axis, O = alpha V.

Usage: check_attention.py EINC [--tol 1e-5]. Prints one line per case and
"N passed, M failed" last; exits non-zero on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def reference(X, WQ, WK, WV):
    X, WQ, WK, WV = (a.astype(np.float64) for a in (X, WQ, WK, WV))
    Q = np.einsum("id,da->ia", X, WQ)
    K = np.einsum("id,da->ia", X, WK)
    V = np.einsum("id,da->ia", X, WV)
    S = np.einsum("ia,ja->ij", Q, K) / np.sqrt(WQ.shape[1])
    e = np.exp(S - S.max(axis=1, keepdims=True))
    alpha = e / e.sum(axis=1, keepdims=True)
    return np.einsum("ij,ja->ia", alpha, V)


def run_case(einc, example, T, D, K, seed, fortran, tol):
    rng = np.random.default_rng(seed)
    arrays = {
        "X": rng.standard_normal((T, D)).astype(np.float32),
        "WQ": (rng.standard_normal((D, K)) / np.sqrt(D)).astype(np.float32),
        "WK": (rng.standard_normal((D, K)) / np.sqrt(D)).astype(np.float32),
        "WV": (rng.standard_normal((D, K)) / np.sqrt(D)).astype(np.float32),
    }
    with tempfile.TemporaryDirectory() as tmp:
        args = [einc, "run", example, "--kernel", "attention", "--out-dir", tmp]
        for name, a in arrays.items():
            path = os.path.join(tmp, f"in_{name}.npy")
            np.save(path, np.asfortranarray(a) if fortran else a)
            args.append(f"{name}={path}")
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            return f"einc exited {proc.returncode}: {proc.stderr.strip()}"
        got = np.load(os.path.join(tmp, "O.npy"))
    want = reference(**arrays)
    if got.dtype != np.float32:
        return f"dtype {got.dtype}, want float32"
    if got.shape != want.shape:
        return f"shape {got.shape}, want {want.shape}"
    err = np.max(np.abs(got.astype(np.float64) - want)) if want.size else 0.0
    if not err <= tol:
        return f"max abs error {err:.3e} > {tol:.0e}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("einc")
    ap.add_argument("--example", default=os.path.join(os.path.dirname(__file__), "..", "..", "examples", "attention.ein"))
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    cases = [(8, 16, 4, 0, False), (5, 7, 3, 1, True), (1, 3, 2, 2, False), (16, 32, 8, 3, True)]
    passed = failed = 0
    for T, D, K, seed, fortran in cases:
        why = run_case(a.einc, a.example, T, D, K, seed, fortran, a.tol)
        label = f"attention T={T} D={D} K={K} {'fortran' if fortran else 'c'}-order"
        if why is None:
            passed += 1
            print(f"ok   {label}")
        else:
            failed += 1
            print(f"FAIL {label}: {why}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
