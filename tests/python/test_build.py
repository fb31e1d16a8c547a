#!/usr/bin/env python3
"""Tests a library built by `einc build examples/attention.ein` through examples/python/einc.py.

Results are compared with numpy references written out here (attention and its gradient by
hand, in float64) to 1e-5; every ABI misuse (argument count, rank, extent, dtype, null
pointer, aliasing output) must return the code docs/abi.md gives and leave the outputs
untouched.

Usage: test_build.py LIB (e.g. out/libattention.so). Prints one line per test and
"N passed, M failed" last; exits non-zero on any failure.
"""
import inspect
import os
import pydoc
import sys
import threading
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


def expect_error(call, code, outputs, detail):
    """Runs `call`, which must raise EincError with `code` and the library's explanation
    `detail`, and checks `outputs` unchanged."""
    before = [o.copy() for o in outputs]
    try:
        call()
    except einc.EincError as e:
        assert e.code == code, f"status {e.code}, expected {code}"
        assert e.detail == detail, f"detail {e.detail!r}, expected {detail!r}"
        assert str(e) == f"einc kernel `{e.kernel}` failed with {e.status} ({code}): {detail}", \
            str(e)
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
        expect_error(lambda: att(X[0], WQ, WK, WV, out=(O,)), BAD_RANK, [O],
                     "input `X` has rank 1, but the kernel declares f32[T, D]")
        # wrong extent: WK has D + 1 rows while X bound D
        WKbig = np.zeros((D + 1, K), dtype=np.float32)
        expect_error(lambda: att(X, WQ, WKbig, WV, out=(O,)), BAD_SHAPE, [O],
                     f"input `WK` axis 0 has extent {D + 1}, but dim `D` is {D}, as bound by "
                     f"input `X` axis 1")
        # wrong output extent
        O2 = np.full((T + 1, K), 3.0, dtype=np.float32)
        expect_error(lambda: att(*ok, out=(O2,)), BAD_SHAPE, [O2],
                     f"output `O` axis 0 has extent {T + 1}, but dim `T` is {T}, as bound by "
                     f"input `X` axis 0")
        # wrong dtype (input and output), a non-native byte order, a dtype the ABI lacks
        expect_error(lambda: att(X.astype(np.float64), WQ, WK, WV, out=(O,)), BAD_DTYPE, [O],
                     "input `X` has dtype f64, but the kernel declares f32[T, D]")
        O64 = np.full((T, K), 3.0)
        expect_error(lambda: att(*ok, out=(O64,)), BAD_DTYPE, [O64],
                     "output `O` has dtype f64, but the kernel declares f32[T, K]")
        expect_error(lambda: att(X, WQ.astype(">f4"), WK, WV, out=(O,)), BAD_DTYPE, [O],
                     "input `WQ` has dtype code 0, but the kernel declares f32[D, K]")
        expect_error(lambda: att(X, WQ, WK.astype(np.float16), WV), BAD_DTYPE, [],
                     "input `WK` has dtype code 0, but the kernel declares f32[D, K]")
        # aliasing: the output is a view of an input, then overlaps another output
        Xc = X.copy()
        expect_error(lambda: att(Xc, WQ, WK, WV, out=(Xc[:, :K],)), ALIASING, [Xc],
                     "output `O` overlaps input `X` in memory")
        # argument count (through the raw entry point and through the wrapper)
        expect_error(lambda: att(X, WQ, WK, out=(O,)), BAD_ARG_COUNT, [O],
                     "kernel `attention` takes 5 arguments (inputs X, WQ, WK, WV; output O), "
                     "but nargs is 4")
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
            want = ("input `WQ` has a null data pointer but has elements" if field == "data"
                    else "input `WQ` has a null shape or strides pointer")
            assert att.last_error() == want, att.last_error()
        # a null output data pointer
        tensors = [d for d, _ in (einc.descriptor(a) for a in ok + [O])]
        tensors[4].data = None
        assert att.call_descriptors(tensors) == NULL_POINTER
        # a null args array
        entry = att.kernel._entry
        assert entry(None, 5) == BAD_ARG_COUNT
        assert att.last_error() == "kernel `attention` was called with a null args array"
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

    def lists_and_documents_its_kernels():
        assert lib.kernels == ["attention", "attention_grad"]
        assert {"attention", "attention_grad"} <= set(dir(lib))
        sig = ("attention(X: f32[T, D], WQ: f32[D, K], WK: f32[D, K], WV: f32[D, K]) "
               "-> (O: f32[T, K])")
        assert att.signature == sig, att.signature
        assert att.__name__ == "attention" and att.__doc__.startswith(sig + "\n")
        assert str(inspect.signature(att)) == (
            "(X: f32[T, D], WQ: f32[D, K], WK: f32[D, K], WV: f32[D, K], *, out=None) "
            "-> (O: f32[T, K])"), str(inspect.signature(att))
        text = pydoc.render_doc(att, renderer=pydoc.plaintext)
        assert sig in text and "Dims: T, D, K." in text, text
        assert lib.attention_grad.signature == (
            "attention_grad(X: f32[T, D], WQ: f32[D, K], WK: f32[D, K], WV: f32[D, K], "
            "dO: f32[T, K]) -> (dWQ: f32[D, K], dWK: f32[D, K], dWV: f32[D, K])")

    def inputs_by_name():
        X, WQ, WK, WV = inputs(4, 3, 2, 11)
        want = att(X, WQ, WK, WV)
        assert np.array_equal(att(X, WQ, WV=WV, WK=WK), want)
        assert np.array_equal(att(X=X, WQ=WQ, WK=WK, WV=WV), want)
        for call, message in [(lambda: att(X, WQ, WK, WX=WV), "has no input 'WX'"),
                              (lambda: att(X, WQ, WK), None),
                              (lambda: att(X, WQ, WK, WV, X=X), "got input 'X' twice"),
                              (lambda: att(X, WQ, WK=WK), "is missing input 'WV'")]:
            try:
                call()
            except TypeError as e:
                assert message and message in str(e), str(e)
            except einc.EincError as e:
                assert message is None and e.code == BAD_ARG_COUNT, str(e)
            else:
                raise AssertionError("no error")

    def layouts_change_between_calls():
        # The loader copies a layout only when it differs from the previous call's: every
        # alternation of shapes, strides and out= must still give numpy's results.
        rng = np.random.default_rng(12)
        cases = []
        for T, D, K in [(3, 2, 2), (5, 4, 3), (3, 2, 2), (1, 1, 1), (5, 4, 3)]:
            X, WQ, WK, WV = inputs(T, D, K, int(rng.integers(100)))
            cases.append((X, WQ, WK, WV))
            cases.append((np.asfortranarray(X), WQ[::-1][::-1], WK, WV))
        for _ in range(2):
            for args in cases:
                close(att(*args), attention_ref(*args))
                O = np.zeros((args[0].shape[0] * 2, args[1].shape[1]), np.float32)[::2]
                assert att(*args, out=O) is O
                close(O, attention_ref(*args))

    def threads_call_at_once():
        # Each thread has its own descriptor buffer: concurrent calls of different shapes.
        errors = []

        def worker(seed):
            try:
                for n in range(30):
                    args = inputs(2 + (seed + n) % 5, 3, 2, seed * 100 + n)
                    close(att(*args), attention_ref(*args))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

    def an_unallocatable_output_says_how_large_it_is():
        X, WQ, WK, WV = inputs(1, 4, 3, 13)
        huge = np.broadcast_to(X, (1 << 40, 4))     # stride 0: no memory behind it
        try:
            att(huge, WQ, WK, WV)
        except MemoryError as e:
            assert str(e) == ("kernel `attention`: cannot allocate output `O` "
                              "(f32[1099511627776, 3]): 13194139533312 bytes"), str(e)
        else:
            raise AssertionError("no MemoryError")

    s.run("ABI version and signature description", version_and_info)
    s.run("attention matches numpy to 1e-5", matches_numpy)
    s.run("out= writes into the caller's array", writes_into_out)
    s.run("non-contiguous, Fortran, reversed and broadcast views", non_contiguous_views)
    s.run("attention_grad returns a tuple matching numpy", several_outputs)
    s.run("ABI misuse returns the documented codes, outputs untouched", misuse)
    s.run("empty extents", empty_extents)
    s.run("lib.kernels, dir(lib), docstrings and help() show the signatures",
          lists_and_documents_its_kernels)
    s.run("inputs by name", inputs_by_name)
    s.run("shapes, strides and out= change between calls", layouts_change_between_calls)
    s.run("threads call one kernel at once", threads_call_at_once)
    s.run("an output too large to allocate names its size", an_unallocatable_output_says_how_large_it_is)
    print(f"{s.passed} passed, {s.failed} failed")
    return 0 if s.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
