#!/usr/bin/env python3
"""Tests a library built by `einc build examples/attention.ein` through examples/python/einc.py.

Results are compared with numpy references written out here (attention and its gradient by
hand, in float64) to 1e-5; every ABI misuse (argument count, rank, extent, dtype, null
pointer, aliasing output) must return the code docs/abi.md gives and leave the outputs
untouched.

Usage: test_build.py LIB (e.g. out/libattention.so). Prints one line per test and
"N passed, M failed" last; exits non-zero on any failure.
"""
import ctypes
import os
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "python"))
import einc  # noqa: E402

TOL = 1e-5
# Status codes from docs/abi.md, spelled out independently of einc.py.
BAD_ARG_COUNT, BAD_DTYPE, BAD_RANK, BAD_SHAPE, NULL_POINTER, ALIASING = 1, 2, 3, 4, 5, 6


def attention_ref(X, WQ, WK, WV):
    X, WQ, WK, WV = (a.astype(np.float64) for a in (X, WQ, WK, WV))
    Q, K, V = X @ WQ, X @ WK, X @ WV
    S = Q @ K.T / np.sqrt(WQ.shape[1])
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    return P @ V


def attention_grad_ref(X, WQ, WK, WV, dO):
    X, WQ, WK, WV, dO = (a.astype(np.float64) for a in (X, WQ, WK, WV, dO))
    scale = 1.0 / np.sqrt(WQ.shape[1])
    Q, K, V = X @ WQ, X @ WK, X @ WV
    S = Q @ K.T * scale
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    dV = P.T @ dO
    dP = dO @ V.T
    dS = P * (dP - (dP * P).sum(axis=1, keepdims=True))
    dQ = dS @ K * scale
    dK = dS.T @ Q * scale
    return X.T @ dQ, X.T @ dK, X.T @ dV


def inputs(T, D, K, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, D)).astype(np.float32)
    Ws = [(rng.standard_normal((D, K)) / np.sqrt(D)).astype(np.float32) for _ in range(3)]
    return [X] + Ws


def close(got, want, tol=TOL):
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    assert err <= tol, f"max error {err:.3e} > {tol}"


class Suite:
    def __init__(self, lib):
        self.lib = lib
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            fn()
        except Exception:  # noqa: BLE001 - any exception is a test failure
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(file=sys.stdout)
        else:
            self.passed += 1
            print(f"ok   {name}")


def expect_error(call, code, outputs):
    """Runs `call`, which must raise EincError with `code`, and checks `outputs` unchanged."""
    before = [o.copy() for o in outputs]
    try:
        call()
    except einc.EincError as e:
        assert e.code == code, f"status {e.code}, expected {code}"
        assert e.status in str(e) and f"({code})" in str(e), str(e)
    else:
        raise AssertionError(f"no error; expected status {code}")
    for o, b in zip(outputs, before):
        assert np.array_equal(o, b, equal_nan=True), "an output was written"


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    lib = einc.load(sys.argv[1])
    att = lib.attention
    s = Suite(lib)

    def version_and_info():
        assert lib.abi_version == 1
        assert att.name == "attention" and att.ninputs == 4
        assert att.dim_names == ["T", "D", "K"]
        got = [(a.name, str(a.dtype), a.is_output, a.extents) for a in att.args]
        want = [("X", "float32", False, (-1, -2)), ("WQ", "float32", False, (-2, -3)),
                ("WK", "float32", False, (-2, -3)), ("WV", "float32", False, (-2, -3)),
                ("O", "float32", True, (-1, -3))]
        assert got == want, got
        grad = lib.attention_grad
        assert [a.name for a in grad.outputs] == ["dWQ", "dWK", "dWV"]

    def matches_numpy():
        for (T, D, K), seed in [((4, 3, 2), 1), ((7, 5, 3), 2), ((1, 1, 1), 3), ((16, 8, 8), 4)]:
            args = inputs(T, D, K, seed)
            O = att(*args)
            assert O.dtype == np.float32
            close(O, attention_ref(*args))

    def writes_into_out():
        args = inputs(6, 4, 3, 5)
        O = np.full((6, 3), 7.0, dtype=np.float32)
        got = att(*args, out=(O,))
        assert got is O
        close(O, attention_ref(*args))

    def non_contiguous_views():
        X, WQ, WK, WV = inputs(6, 4, 3, 6)
        big = np.zeros((12, 9), dtype=np.float32)
        big[::2, 1::2] = X                              # a strided slice
        Xs = big[::2, 1::2]
        WQt = np.ascontiguousarray(WQ.T).T              # Fortran order
        WKr = np.ascontiguousarray(WK[::-1])[::-1]      # negative row stride
        WVb = np.broadcast_to(WV[:1], WV.shape)         # stride 0 (broadcast input)
        assert not Xs.flags.c_contiguous and WKr.strides[0] < 0 and WVb.strides[0] == 0
        want = attention_ref(Xs, WQt, WKr, WVb)
        close(att(Xs, WQt, WKr, WVb), want)
        # A strided output: every other row of a larger array; the rest stays as it was.
        outbig = np.full((12, 3), -5.0, dtype=np.float32)
        att(Xs, WQt, WKr, WVb, out=(outbig[::2],))
        close(outbig[::2], want)
        assert np.all(outbig[1::2] == -5.0)

    def several_outputs():
        args = inputs(5, 4, 3, 7)
        dO = np.random.default_rng(8).standard_normal((5, 3)).astype(np.float32)
        got = lib.attention_grad(*args, dO)
        assert isinstance(got, tuple) and len(got) == 3
        for g, w in zip(got, attention_grad_ref(*args, dO)):
            close(g, w)

    def misuse(T=5, D=4, K=3):
        X, WQ, WK, WV = inputs(T, D, K, 9)
        O = np.full((T, K), 3.0, dtype=np.float32)
        ok = [X, WQ, WK, WV]
        # wrong rank
        expect_error(lambda: att(X[0], WQ, WK, WV, out=(O,)), BAD_RANK, [O])
        # wrong extent: WK has D + 1 rows while X bound D
        WKbig = np.zeros((D + 1, K), dtype=np.float32)
        expect_error(lambda: att(X, WQ, WKbig, WV, out=(O,)), BAD_SHAPE, [O])
        # wrong output extent
        O2 = np.full((T + 1, K), 3.0, dtype=np.float32)
        expect_error(lambda: att(*ok, out=(O2,)), BAD_SHAPE, [O2])
        # wrong dtype (input and output)
        expect_error(lambda: att(X.astype(np.float64), WQ, WK, WV, out=(O,)), BAD_DTYPE, [O])
        O64 = np.full((T, K), 3.0)
        expect_error(lambda: att(*ok, out=(O64,)), BAD_DTYPE, [O64])
        # aliasing: the output is a view of an input, then overlaps another output
        Xc = X.copy()
        expect_error(lambda: att(Xc, WQ, WK, WV, out=(Xc[:, :K],)), ALIASING, [Xc])
        # argument count (through the raw entry point and through the wrapper)
        expect_error(lambda: att(X, WQ, WK, out=(O,)), BAD_ARG_COUNT, [O])
        descs = [einc.descriptor(a) for a in ok + [O]]
        assert att.call_descriptors([d for d, _ in descs], nargs=4) == BAD_ARG_COUNT
        # null pointers: data, shape, strides
        for field in ["data", "shape", "strides"]:
            descs = [einc.descriptor(a) for a in ok + [O]]
            tensors = [d for d, _ in descs]
            setattr(tensors[1], field, None)
            before = O.copy()
            code = att.call_descriptors(tensors)
            assert code == NULL_POINTER, f"{field}: status {code}"
            assert np.array_equal(O, before)
        # a null output data pointer
        tensors = [d for d, _ in (einc.descriptor(a) for a in ok + [O])]
        tensors[4].data = None
        assert att.call_descriptors(tensors) == NULL_POINTER
        # a null args array
        entry = att._entry
        assert entry(ctypes.POINTER(einc.Tensor)(), 5) == BAD_ARG_COUNT
        # the outputs survived every refused call
        assert np.all(O == 3.0)
        # unknown kernels are an AttributeError
        try:
            lib.no_such_kernel
        except AttributeError as e:
            assert "no_such_kernel" in str(e)
        else:
            raise AssertionError("no AttributeError")

    def empty_extents():
        X, WQ, WK, WV = inputs(0, 4, 3, 10)
        O = att(X, WQ, WK, WV)
        assert O.shape == (0, 3)

    s.run("ABI version and signature description", version_and_info)
    s.run("attention matches numpy to 1e-5", matches_numpy)
    s.run("out= writes into the caller's array", writes_into_out)
    s.run("non-contiguous, Fortran, reversed and broadcast views", non_contiguous_views)
    s.run("attention_grad returns a tuple matching numpy", several_outputs)
    s.run("ABI misuse returns the documented codes, outputs untouched", misuse)
    s.run("empty extents", empty_extents)
    print(f"{s.passed} passed, {s.failed} failed")
    return 0 if s.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
