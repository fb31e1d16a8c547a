#!/usr/bin/env python3
"""einc against numpy, opt_einsum and jax, side by side in one process.

    python benches/compare.py                       # every case, 1 thread
    python benches/compare.py --threads 1,2         # one column per thread count
    python benches/compare.py --cases matmul        # cases whose name contains "matmul"
    python benches/compare.py --list                # the cases and what they compare
    python benches/compare.py --clock thread        # thread CPU time (a loaded machine)
    python benches/compare.py --json r.json --markdown r.md --plot r.png

Each case is built once into a shared library with `einc build` (the einc binary is found at
target/release/einc, or given with --einc) and called through the Python loader
examples/python/einc.py, exactly as a user calls it: outputs allocated per call. The peers are
numpy (`einsum` default, `einsum(optimize=True)`, `@` or a hand-written numpy program where
that is the natural spelling), opt_einsum and jax.jit when they are installed.

This machine is shared and noisy, so absolute times drift; what counts are ratios measured side
by side. Every function of a case is timed in interleaved rounds (einc, peer 1, peer 2, ...,
einc, peer 1, ...); a round's time is the best of a few calls, and the reported time is the
median over rounds. The ratio `einc/x` is the median over rounds of einc's speed divided by
x's speed in the same round, so > 1 means einc is faster.

Thread counts are enforced with CPU affinity: each count runs in a fresh process pinned to
that many cores, with OPENBLAS/OMP/MKL threads, XLA's intra-op threads and EINC_NUM_THREADS
set to match before numpy or jax is imported. With more than one thread, every timed round
starts after a pause of SETTLE_SECONDS: OpenBLAS's idle threads spin (yielding) for about 0.1 s
after each call, and without the pause they took the pinned cores from the function timed
next (einc's 2-thread matmul read 1.1x its 1-thread speed; docs/performance.md). Each run
reports how long the process's threads waited for a core while einc was timed (Linux's
per-thread run-queue time, /proc/self/task/*/schedstat, summed over the threads, so it can
exceed 100%), as a share of the timed wall time: above a few per cent, other processes took
the cores and a multi-thread column measures them too. Rounds in which a function's threads
waited more than ROUND_WAIT_LIMIT of the round are left out of its time and of the ratios
that involve it, when at least MIN_CLEAN_ROUNDS remain (the report says how many were kept).
`--wait-quiet SECONDS`
waits (up to that long) before each thread count until the other processes leave the cores
idle. docs/threads.md, "Measuring", says how to run this on a shared machine.

Every einc result is checked against numpy before it is timed; a mismatch fails the case.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The timer of every measured call: wall time, or (`--clock thread`) the calling thread's CPU
# time, which other processes' load does not inflate.
CLOCK = time.perf_counter


# --------------------------------------------------------------------------------------------
# Machine facts (for the rooflines)

def cpu_facts():
    """The CPU model, its SIMD features and a clock (GHz) for the rooflines."""
    flags, model, vendor, mhz = set(), "unknown", "", 0.0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "flags" and not flags:
                    flags = set(value.split())
                elif key == "model name" and model == "unknown":
                    model = value
                elif key == "vendor_id" and not vendor:
                    vendor = value
                elif key == "cpu MHz" and not mhz:
                    mhz = float(value)
    except (OSError, ValueError):
        pass
    avx512 = "avx512f" in flags
    isa = "AVX-512" if avx512 else "AVX2 + FMA" if "fma" in flags else "SSE"
    if vendor == "AuthenticAMD":
        # The project's AMD hosts: Zen 4 (AVX-512, ~3.7 GHz under load) or Zen 3 (~2.95 GHz);
        # see shared/docs/DESIGN.md. /proc/cpuinfo's MHz is the nominal clock inside a VM.
        # Zen 4 runs a zmm FMA as two 256-bit halves: its peak is the 256-bit one.
        host, ghz, widest = ("Zen 4", 3.7, 256) if avx512 else ("Zen 3", 2.95, 256)
    else:
        # Other hosts (an Intel Xeon with full-width AVX-512 FMAs, say): the nominal clock,
        # which turbo may exceed, so the rooflines are indicative only.
        host, ghz, widest = vendor or "unknown", round(mhz / 1000, 2) or 2.6, \
            512 if avx512 else 256
    return {
        "model": model,
        "avx2": "avx2" in flags,
        "fma": "fma" in flags,
        "avx512f": avx512,
        "ghz": ghz,
        "widest_fma": widest,
        "host": f"{host} ({isa})",
    }


def peaks(ghz, dtype, widest):
    """Per-core peaks in GFLOP/s of two FMA pipes, by vector width up to `widest` bits."""
    bytes_per = 4 if dtype == "f32" else 8
    return [(bits, 2 * 2 * (bits // 8 // bytes_per) * ghz)
            for bits in (128, 256, 512) if bits <= widest]


# --------------------------------------------------------------------------------------------
# Cases

class Case:
    """One benchmark: an einc kernel (from .ein source), inputs, and peers computing the same.

    `make_inputs(rng)` returns the input arrays; `reference(*inputs)` the expected outputs
    (numpy); `peers` maps a peer name to a callable factory `(np, inputs) -> fn()`;
    `flops` is the useful FLOP count of one call (for GFLOP/s)."""

    def __init__(self, name, source, kernel, make_inputs, reference, peers, flops, dtype="f32",
                 note="", rtol=1e-4, tags=()):
        self.name, self.source, self.kernel = name, source, kernel
        self.make_inputs, self.reference, self.peers = make_inputs, reference, peers
        self.flops, self.dtype, self.note, self.rtol = flops, dtype, note, rtol
        self.tags = set(tags)


def einsum_source(subscripts, shapes, dtype, out_shape):
    """A .ein file with one kernel `k` computing numpy's einsum for fixed shapes."""
    names = [f"A{i}" for i in range(len(shapes))]
    params = ", ".join(f"{n}: {dtype}[{', '.join(map(str, s))}]" for n, s in zip(names, shapes))
    out = f"{dtype}[{', '.join(map(str, out_shape))}]" if out_shape else dtype
    return (f"kernel k({params}) -> (out: {out}) {{\n"
            f"    out = einsum(\"{subscripts}\", {', '.join(names)})\n}}\n")


def einsum_case(np, name, subscripts, shapes, dtype="f32", extra_peers=None, flops=None,
                tags=(), note="", rtol=None, naive_peer=True):
    """An einsum case. `naive_peer=False` leaves out numpy's default einsum, which does not
    plan a path and would take minutes on large networks."""
    npdt = np.float32 if dtype == "f32" else np.float64
    inputs_shapes = [tuple(s) for s in shapes]

    def make_inputs(rng):
        return [rng.standard_normal(s).astype(npdt) for s in inputs_shapes]

    def reference(*xs):
        return np.einsum(subscripts, *[x.astype(np.float64) for x in xs],
                         optimize=True).astype(npdt)

    out_shape = np.einsum(subscripts, *[np.zeros(s, dtype=np.float32)
                                        for s in inputs_shapes], optimize=True).shape
    if flops is None:
        import_ok, oe = optional("opt_einsum")
        if import_ok:
            flops = float(oe.contract_path(subscripts, *inputs_shapes, shapes=True)[1].opt_cost)
        else:
            flops = 0.0
    peers = {}
    if naive_peer:
        peers["np.einsum"] = lambda np, xs: (lambda: np.einsum(subscripts, *xs))
    peers["np.einsum(opt)"] = lambda np, xs: (lambda: np.einsum(subscripts, *xs,
                                                                optimize=True))
    peers.update(extra_peers or {})
    peers["opt_einsum"] = opt_einsum_peer(subscripts)
    peers["jax.jit"] = jax_einsum_peer(subscripts)
    return Case(name, einsum_source(subscripts, inputs_shapes, dtype, out_shape), "k",
                make_inputs, reference, peers, flops, dtype, note,
                rtol if rtol is not None else (1e-3 if dtype == "f32" else 1e-9), tags)


def optional(module):
    try:
        return True, __import__(module)
    except ImportError:
        return False, None


def opt_einsum_peer(subscripts):
    ok, oe = optional("opt_einsum")
    if not ok:
        return None

    def factory(np, xs):
        expr = oe.contract_expression(subscripts, *[x.shape for x in xs])
        return lambda: expr(*xs)
    return factory


# Peers that compute on threads of their own (XLA's), which `--clock thread` cannot time.
OTHER_THREADS_PEERS = {"jax.jit"}


def jax_peer(build):
    """A jax.jit peer: `build(jnp)` returns the function to jit."""
    ok, _ = optional("jax")
    if not ok:
        return None

    def factory(np, xs):
        import jax
        import jax.numpy as jnp
        # Without x64, jax silently computes an f64 case in f32 (twice as fast, and wrong).
        jax.config.update("jax_enable_x64", True)
        f = jax.jit(build(jnp))
        dev = [jax.device_put(x) for x in xs]
        jax.block_until_ready(f(*dev))
        return lambda: jax.block_until_ready(f(*dev))
    return factory


def jax_einsum_peer(subscripts):
    return jax_peer(lambda jnp: (lambda *xs: jnp.einsum(subscripts, *xs)))


def matmul_peer():
    return {"np @": lambda np, xs: (lambda: xs[0] @ xs[1])}


def attention_numpy(np, X, WQ, WK, WV):
    """Attention forward by hand: three @, a stable softmax, one @."""
    Q, Kx, V = X @ WQ, X @ WK, X @ WV
    S = (Q @ Kx.T) * (1.0 / np.sqrt(np.float32(WQ.shape[1])))
    S -= S.max(axis=1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=1, keepdims=True)
    return P @ V


def attention_grad_numpy(np, X, WQ, WK, WV, dO):
    """Forward and backward by hand (the chapter's Exercise 8): dWQ, dWK, dWV."""
    scale = 1.0 / np.sqrt(np.float32(WQ.shape[1]))
    Q, Kx, V = X @ WQ, X @ WK, X @ WV
    S = (Q @ Kx.T) * scale
    S -= S.max(axis=1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=1, keepdims=True)
    dV = P.T @ dO
    dP = dO @ V.T
    dS = P * (dP - (P * dP).sum(axis=1, keepdims=True))
    dQ = (dS @ Kx) * scale
    dK = (dS.T @ Q) * scale
    return X.T @ dQ, X.T @ dK, X.T @ dV


def attention_jax(jnp, grad):
    import jax

    def forward(X, WQ, WK, WV):
        Q, Kx, V = X @ WQ, X @ WK, X @ WV
        S = (Q @ Kx.T) / jnp.sqrt(jnp.float32(WQ.shape[1]))
        return jax.nn.softmax(S, axis=1) @ V
    if not grad:
        return forward

    def fwd_bwd(X, WQ, WK, WV, dO):
        _, vjp = jax.vjp(lambda a, b, c: forward(X, a, b, c), WQ, WK, WV)
        return vjp(dO)
    return fwd_bwd


def attention_cases(np, T, D, K, tags):
    src = (ROOT / "examples" / "attention.ein").read_text()
    fwd_flops = 2.0 * (3 * T * D * K + 2 * T * T * K)
    # Backward: dV, dP, dQ, dK (4 T²K-ish) and three X^T products, plus the forward.
    bwd_flops = fwd_flops + 2.0 * (4 * T * T * K + 3 * T * D * K)

    def make_fwd(rng):
        return [(rng.standard_normal(s) * sc).astype(np.float32)
                for s, sc in (((T, D), 1.0), ((D, K), D ** -0.5), ((D, K), D ** -0.5),
                              ((D, K), D ** -0.5))]

    def make_bwd(rng):
        return make_fwd(rng) + [rng.standard_normal((T, K)).astype(np.float32)]

    def ref_fwd(*xs):
        return attention_numpy(np, *[x.astype(np.float64) for x in xs]).astype(np.float32)

    def ref_bwd(*xs):
        return tuple(r.astype(np.float32) for r in
                     attention_grad_numpy(np, *[x.astype(np.float64) for x in xs]))

    size = f"T={T} D={D} K={K}"
    return [
        Case(f"attention fwd {size}", src, "attention", make_fwd, ref_fwd,
             {"numpy": lambda np, xs: (lambda: attention_numpy(np, *xs)),
              "jax.jit": jax_peer(lambda jnp: attention_jax(jnp, False))},
             fwd_flops, tags=tags, rtol=2e-3),
        Case(f"attention fwd+bwd {size}", src, "attention_grad", make_bwd, ref_bwd,
             {"numpy": lambda np, xs: (lambda: attention_grad_numpy(np, *xs)),
              "jax.jit": jax_peer(lambda jnp: attention_jax(jnp, True))},
             bwd_flops, tags=tags, rtol=5e-3),
    ]


def softmax_case(np, rows, cols):
    src = (f"kernel softmax_rows(S: f32[{rows}, {cols}]) -> (P: f32[{rows}, {cols}]) {{\n"
           f"    P[i, j] = softmax[j](S[i, j])\n}}\n")

    def numpy_softmax(S):
        E = np.exp(S - S.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    return Case(f"row softmax {rows}x{cols}", src, "softmax_rows",
                lambda rng: [rng.standard_normal((rows, cols)).astype(np.float32)],
                lambda S: numpy_softmax(S.astype(np.float64)).astype(np.float32),
                {"numpy": lambda np, xs: (lambda: numpy_softmax(xs[0])),
                 "jax.jit": jax_peer(lambda jnp: (lambda S: __import__("jax").nn.softmax(
                     S, axis=1)))},
                5.0 * rows * cols, tags=("threads",), rtol=1e-5)


def mps_subscripts(sites, letters):
    """<psi|psi> for an open MPS of `sites` sites: 2*sites operands. Physical indices are
    shared between the ket and the bra; bond indices are separate."""
    it = iter(letters)
    phys = [next(it) for _ in range(sites)]
    ket = [next(it) for _ in range(sites - 1)]
    bra = [next(it) for _ in range(sites - 1)]

    def chain(bonds):
        terms = []
        for s in range(sites):
            left = bonds[s - 1] if s > 0 else ""
            right = bonds[s] if s < sites - 1 else ""
            terms.append(left + phys[s] + right)
        return terms
    return ",".join(chain(ket) + chain(bra)) + "->"


def mps_shapes(sites, phys, bond):
    one = [(phys, bond)] + [(bond, phys, bond)] * (sites - 2) + [(bond, phys)]
    return one + one


def all_cases(np):
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    cases = []
    for n in (256, 512, 1024, 2048):
        cases.append(einsum_case(np, f"matmul {n}^3 f32", "ij,jk->ik", [(n, n), (n, n)],
                                 extra_peers=matmul_peer(), flops=2.0 * n ** 3,
                                 tags=("issue9", "issue11")))
    cases.append(einsum_case(np, "matmul 1024^3 f64", "ij,jk->ik", [(1024, 1024)] * 2, "f64",
                             extra_peers=matmul_peer(), flops=2.0 * 1024 ** 3,
                             tags=("issue9", "issue11")))
    cases.append(einsum_case(np, "matmul 1536x1024x1024 f32", "ij,jk->ik",
                             [(1536, 1024), (1024, 1024)], extra_peers=matmul_peer(),
                             flops=2.0 * 1536 * 1024 * 1024, tags=("threads",)))
    for b in (64, 128):
        cases.append(einsum_case(np, f"bik,bkj->bij {b}x64^3", "bik,bkj->bij",
                                 [(b, 64, 64), (b, 64, 64)], extra_peers=matmul_peer(),
                                 flops=2.0 * b * 64 ** 3,
                                 tags=("issue9", "issue11") if b == 64 else ("threads",)))
    cases.append(einsum_case(
        np, "bhid,bhjd->bhij (4,8,256,256,64)", "bhid,bhjd->bhij",
        [(4, 8, 256, 64), (4, 8, 256, 64)],
        extra_peers={"np Q@K^T": lambda np, xs: (lambda: xs[0] @ xs[1].swapaxes(-1, -2))},
        flops=2.0 * 4 * 8 * 256 * 256 * 64, tags=("issue9", "issue11")))
    cases.append(einsum_case(np, "iij,jk->ik (256,256,128/128,256)", "iij,jk->ik",
                             [(256, 256, 128), (128, 256)], flops=2.0 * 256 * 128 * 256,
                             tags=("issue9", "issue11")))
    cases.append(einsum_case(np, "tucker abc,ia,jb,kc->ijk 16^3->64^3", "abc,ia,jb,kc->ijk",
                             [(16, 16, 16), (64, 16), (64, 16), (64, 16)],
                             tags=("issue8", "issue9", "issue11"), naive_peer=False))
    cases.append(einsum_case(np, "mps <psi|psi> 8 sites bond 32 (16 operands)",
                             mps_subscripts(8, letters), mps_shapes(8, 2, 32),
                             tags=("issue8", "issue9", "issue11"), naive_peer=False))
    cases.append(einsum_case(np, "chain ij,jk,kl->il (1000x10,10x1000,1000x10)", "ij,jk,kl->il",
                             [(1000, 10), (10, 1000), (1000, 10)], tags=("issue8", "issue9")))
    cases.append(einsum_case(np, "small ij,j->i 16^2", "ij,j->i", [(16, 16), (16,)],
                             tags=("issue9", "small")))
    cases.append(einsum_case(np, "small ii-> 64^2", "ii->", [(64, 64)], flops=64.0,
                             tags=("issue9", "small")))
    cases.append(einsum_case(np, "loader overhead i,i->i (4)", "i,i->i", [(4,), (4,)],
                             flops=4.0, tags=("issue9", "small")))
    cases += attention_cases(np, 512, 256, 64, ("issue9", "issue12"))
    cases += attention_cases(np, 1024, 256, 64, ("threads",))
    for t in (512, 1024, 2048, 4096):
        cases += attention_cases(np, t, 64, 64, ("issue12",))
    cases.append(softmax_case(np, 2048, 1024))
    return cases


# --------------------------------------------------------------------------------------------
# Building and loading einc kernels

def build_library(einc, source, build_dir):
    """Builds `source` with `einc build` (cached by content and einc binary) and returns the
    library path."""
    key = hashlib.sha256(source.encode() + Path(einc).read_bytes()).hexdigest()[:16]
    out = build_dir / key
    lib = out / "libbench.so"
    if not lib.exists():
        out.mkdir(parents=True, exist_ok=True)
        src = out / "bench.ein"
        src.write_text(source)
        start = time.perf_counter()
        proc = subprocess.run([str(einc), "build", str(src), "-o", str(lib)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"einc build failed:\n{proc.stderr}")
        (out / "build_seconds").write_text(f"{time.perf_counter() - start}\n")
    return lib


# --------------------------------------------------------------------------------------------
# Timing

def calibrate(fn, target=0.02):
    """How many calls take about `target` seconds (at least 1)."""
    n = 1
    while True:
        start = CLOCK()
        for _ in range(n):
            fn()
        elapsed = CLOCK() - start
        if elapsed >= target or n >= 1 << 20:
            return max(1, int(n * target / max(elapsed, 1e-9)))
        n *= 4


# With more than one thread: the pause before each timed round (see the module doc).
SETTLE_SECONDS = 0.2
# A round in which the threads waited for a core longer than this share of it (summed over
# threads) is disturbed; disturbed rounds are left out when MIN_CLEAN_ROUNDS others remain.
ROUND_WAIT_LIMIT = 0.05
MIN_CLEAN_ROUNDS = 3


def run_queue_wait():
    """Seconds this process's threads have spent ready to run but waiting for a core (the
    second field of /proc/self/task/*/schedstat), or None where Linux does not count it."""
    total = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return total * 1e-9


def busy_cores(seconds=1.0):
    """How many cores' worth of CPU time the machine used over `seconds` (/proc/stat), or None
    where it cannot be read."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle, iowait
        return sum(fields[:8]) - idle, os.sysconf("SC_CLK_TCK")
    try:
        (busy0, hz), start = sample(), time.monotonic()
        time.sleep(seconds)
        (busy1, _), end = sample(), time.monotonic()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / hz / (end - start)


def wait_quiet(limit, threshold=0.25):
    """Waits, up to `limit` seconds, until the machine is idle (other processes use less than
    `threshold` of a core); returns the last busy measurement (None: not measured)."""
    deadline = time.monotonic() + limit
    while True:
        busy = busy_cores()
        if busy is None or busy < threshold or time.monotonic() >= deadline:
            return busy
        print(f"waiting for a quiet machine: other processes use {busy:.2f} cores",
              file=sys.stderr, flush=True)


def time_round(fn, n, reps=3):
    """Best of `reps` batches of `n` calls: seconds per call (one batch when a batch is
    already slow)."""
    best = float("inf")
    for rep in range(reps):
        if rep and best * n > 0.5:
            break
        start = CLOCK()
        for _ in range(n):
            fn()
        best = min(best, (CLOCK() - start) / n)
    return best


def peak_rss_growth(fn):
    """Peak resident memory growth (bytes) during one call, from VmHWM after resetting it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _vm_kib("VmRSS")
        fn()
        return max(0, _vm_kib("VmHWM") - base) * 1024
    except OSError:
        return None


def _vm_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def close(np, got, want, rtol):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    if len(got) != len(want):
        return False, "output count differs"
    for g, w in zip(got, want):
        if g.shape != w.shape:
            return False, f"shape {g.shape} != {w.shape}"
        scale = max(float(np.max(np.abs(w))) if w.size else 0.0, 1e-30)
        err = float(np.max(np.abs(g.astype(np.float64) - w))) / scale if w.size else 0.0
        if not err <= rtol:
            return False, f"max error {err:.3g} (relative to max |x|) > {rtol:g}"
    return True, ""


def undisturbed(values, clean):
    """The values of the rounds marked clean when there are at least MIN_CLEAN_ROUNDS of
    them, else all values."""
    kept = [v for v, c in zip(values, clean) if c]
    return kept if len(kept) >= MIN_CLEAN_ROUNDS else values


def run_case(np, einc_mod, case, args, build_dir):
    rng = np.random.default_rng(0)
    inputs = case.make_inputs(rng)
    lib = einc_mod.load(build_library(args.einc, case.source, build_dir))
    kernel = lib.kernel(case.kernel).function
    einc_fn = lambda: kernel(*inputs)  # noqa: E731
    ok, why = close(np, einc_fn(), case.reference(*inputs), case.rtol)
    result = {"case": case.name, "flops": case.flops, "dtype": case.dtype, "ok": ok,
              "error": why, "times": {}, "ratios": {}}
    if not ok:
        return result
    fns = {"einc": einc_fn}
    for peer, factory in case.peers.items():
        if factory is None:
            continue
        if CLOCK is time.thread_time and peer in OTHER_THREADS_PEERS:
            # Its work runs on threads the calling thread's clock does not see.
            result.setdefault("peer_errors", {})[peer] = "not timed under --clock thread"
            continue
        try:
            fns[peer] = factory(np, inputs)
            fns[peer]()
        except Exception as e:  # a peer that cannot run this case is reported, not fatal
            result.setdefault("peer_errors", {})[peer] = f"{type(e).__name__}: {e}"
            fns.pop(peer, None)
    counts = {name: calibrate(fn, args.target) for name, fn in fns.items()}
    rounds = {name: [] for name in fns}
    # Per round: the seconds the threads waited for a core, and the round's wall time.
    waits = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            if args.child_threads > 1:
                time.sleep(SETTLE_SECONDS)
            before, start = run_queue_wait(), time.perf_counter()
            rounds[name].append(time_round(fn, counts[name]))
            after, wall = run_queue_wait(), time.perf_counter() - start
            waited = after - before if before is not None and after is not None else 0.0
            waits[name].append((waited, wall))
    clean = {name: [w <= ROUND_WAIT_LIMIT * t for w, t in ws] for name, ws in waits.items()}
    for name, ts in rounds.items():
        result["times"][name] = statistics.median(undisturbed(ts, clean[name]))
    if run_queue_wait() is not None:
        result["waited"] = {name: sum(w for w, _ in ws) / max(sum(t for _, t in ws), 1e-9)
                            for name, ws in waits.items()}
        result["clean_rounds"] = {name: sum(c) for name, c in clean.items()}
    for name in fns:
        if name != "einc":
            both = [a and b for a, b in zip(clean["einc"], clean[name])]
            pairs = list(zip(rounds["einc"], rounds[name]))
            result["ratios"][name] = statistics.median(
                p / e for e, p in undisturbed(pairs, both))
    if args.memory:
        result["peak_rss_growth"] = {name: peak_rss_growth(fn) for name, fn in fns.items()}
    return result


# --------------------------------------------------------------------------------------------
# Reporting

def fmt_gflops(flops, seconds):
    if not flops:
        return ""
    g = flops / seconds / 1e9
    return f"{g:.1f}" if g >= 10 else f"{g:.2g}"


def fmt_time(s):
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


# The share of the timed time einc's threads may wait for a core before the report says so.
WAITED_NOTE = 0.02


def report_text(results, threads):
    lines = [f"--- {threads} thread(s)"]
    for r in results:
        if not r["ok"]:
            lines.append(f"{r['case']}: FAILED: {r['error']}")
            continue
        e = r["times"]["einc"]
        parts = [f"einc {fmt_time(e)} ({fmt_gflops(r['flops'], e) or '-'} GFLOP/s)"]
        for name, ratio in r["ratios"].items():
            parts.append(f"{name} {fmt_time(r['times'][name])} [einc/x {ratio:.2f}]")
        lines.append(f"{r['case']}: " + "; ".join(parts))
        if r.get("waited", {}).get("einc", 0.0) > WAITED_NOTE:
            kept = r["clean_rounds"]["einc"]
            kept = (f"{kept} undisturbed rounds kept" if kept >= MIN_CLEAN_ROUNDS
                    else "too few undisturbed rounds: all kept")
            lines.append(f"    (the threads waited for a core {100 * r['waited']['einc']:.0f}% "
                         f"of einc's timed time, summed: other processes took the cores; "
                         f"{kept})")
        if "peak_rss_growth" in r:
            mem = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in r["peak_rss_growth"].items()
                            if v is not None)
            lines.append(f"    peak memory growth per call: {mem}")
        for peer, err in r.get("peer_errors", {}).items():
            lines.append(f"    ({peer} could not run: {err})")
    return "\n".join(lines)


def report_markdown(all_results, facts):
    out = [f"Machine: {facts['model']} ({facts['host']}); {platform.python_implementation()} "
           f"{platform.python_version()}; date {time.strftime('%Y-%m-%d')}.", ""]
    for threads, results in all_results.items():
        out.append(f"**{threads} thread(s).** Times are medians; `einc/x` > 1 means einc is "
                   "faster than x.")
        out.append("")
        out.append("| case | einc | GFLOP/s | peers (time, einc/x) | einc waited for a core |")
        out.append("| --- | --- | --- | --- | --- |")
        for r in results:
            if not r["ok"]:
                out.append(f"| {r['case']} | FAILED | | {r['error']} | |")
                continue
            e = r["times"]["einc"]
            gf = fmt_gflops(r["flops"], e)
            peers = "; ".join(f"{n} {fmt_time(r['times'][n])} ({x:.2f}x)"
                              for n, x in r["ratios"].items())
            waited = r.get("waited", {}).get("einc")
            waited = "" if waited is None else f"{100 * waited:.1f}%"
            out.append(f"| {r['case']} | {fmt_time(e)} | {gf} | {peers} | {waited} |")
        out.append("")
    return "\n".join(out)


def plot(all_results, facts, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for threads, results in all_results.items():
        rows = [r for r in results if r["ok"] and r["flops"] and r["flops"] > 1e6]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(11, 0.45 * len(rows) + 2))
        names = [r["case"] for r in rows]
        peers = sorted({p for r in rows for p in r["times"] if p != "einc"})
        series = ["einc"] + peers
        height = 0.8 / len(series)
        for k, name in enumerate(series):
            ys = [i + k * height for i in range(len(rows))]
            xs = [r["flops"] / r["times"][name] / 1e9 if name in r["times"] else 0
                  for r in rows]
            ax.barh(ys, xs, height=height, label=name)
        for bits, peak in peaks(facts["ghz"], "f32", facts["widest_fma"]):
            value, label = peak * threads, f"{bits}-bit FMA peak (f32)"
            ax.axvline(value, linestyle="--", color="gray")
            ax.text(value, -0.9, f" {label}", fontsize=8, color="gray")
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("GFLOP/s (useful FLOPs; higher is better)")
        ax.set_title(f"einc vs peers, {threads} thread(s), {facts['host']}, "
                     f"{time.strftime('%Y-%m-%d')}")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        out = Path(path)
        if len(all_results) > 1:
            out = out.with_name(f"{out.stem}-{threads}t{out.suffix}")
        fig.savefig(out, dpi=110)
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# Driver

def child(args):
    """Runs the selected cases with the current process's thread settings; prints JSON."""
    global CLOCK
    if args.clock == "thread":
        CLOCK = time.thread_time
    import numpy as np
    sys.path.insert(0, str(ROOT / "examples" / "python"))
    import einc as einc_mod
    build_dir = Path(args.build_dir)
    results = []
    for case in selected(np, args):
        try:
            results.append(run_case(np, einc_mod, case, args, build_dir))
        except Exception as e:
            results.append({"case": case.name, "ok": False, "error": f"{type(e).__name__}: {e}",
                            "flops": case.flops, "dtype": case.dtype, "times": {},
                            "ratios": {}})
        print(report_text(results[-1:], args.child_threads), file=sys.stderr, flush=True)
    json.dump(results, sys.stdout)


def selected(np, args):
    cases = all_cases(np)
    if args.cases:
        cases = [c for c in cases if any(p in c.name for p in args.cases)]
    if args.tags:
        cases = [c for c in cases if c.tags & set(args.tags)]
    return cases


def thread_env(threads):
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "EINC_NUM_THREADS"):
        env[var] = str(threads)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen="
                        f"{'true' if threads > 1 else 'false'} "
                        f"intra_op_parallelism_threads={threads}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--einc", default=str(ROOT / "target" / "release" / "einc"),
                        help="the einc binary (default: target/release/einc)")
    parser.add_argument("--cases", nargs="*", help="run cases whose name contains one of these")
    parser.add_argument("--tags", nargs="*",
                        help="run cases with one of these tags (issue8, issue9, issue11, "
                             "issue12, threads, small)")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--clock", choices=["wall", "thread"], default="wall",
                        help="wall time, or the calling thread's CPU time (for a loaded "
                             "machine; 1 thread only: jax.jit, which computes on XLA's "
                             "threads, is left out)")
    parser.add_argument("--target", type=float, default=0.02,
                        help="seconds per timed batch (calibrated per function)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure peak resident memory growth per call")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each thread count, wait up to this long for the other "
                             "processes to leave the cores idle")
    parser.add_argument("--build-dir", default=str(ROOT / "target" / "bench-libs"))
    parser.add_argument("--json", help="write all results as JSON here")
    parser.add_argument("--markdown", help="write a markdown table here")
    parser.add_argument("--plot", help="write a GFLOP/s plot (PNG) here")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_threads:
        return child(args)
    if args.list:
        import numpy as np
        for c in selected(np, args):
            peers = ", ".join(p for p, f in c.peers.items() if f is not None)
            print(f"{c.name}  [{', '.join(sorted(c.tags))}]  vs {peers}")
        return 0
    if not Path(args.einc).exists():
        sys.exit(f"no einc binary at {args.einc}: run `cargo build --release` or pass --einc")

    facts = cpu_facts()
    print(f"{facts['model']}: {facts['host']}; rooflines at {facts['ghz']} GHz", file=sys.stderr)
    cpus = sorted(os.sched_getaffinity(0))
    all_results = {}
    for threads in (int(t) for t in args.threads.split(",")):
        if threads > len(cpus):
            sys.exit(f"{threads} threads asked for, but this process may use {len(cpus)} cores")
        cmd = [sys.executable, __file__, "--child-threads", str(threads)] + [
            a for a in sys.argv[1:]]
        if args.wait_quiet > 0:
            busy = wait_quiet(args.wait_quiet)
            if busy is not None:
                print(f"{threads} thread(s): other processes used {busy:.2f} cores just before",
                      file=sys.stderr, flush=True)
        proc = subprocess.run(["taskset", "-c", ",".join(map(str, cpus[:threads]))] + cmd,
                              env=thread_env(threads), stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(f"the {threads}-thread run failed (exit {proc.returncode})")
        all_results[threads] = json.loads(proc.stdout)
    for threads, results in all_results.items():
        print(report_text(results, threads))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": facts, "date": time.strftime(
            "%Y-%m-%d"), "results": {str(k): v for k, v in all_results.items()}}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(report_markdown(all_results, facts))
    if args.plot:
        plot(all_results, facts, args.plot)
    failed = [r["case"] for rs in all_results.values() for r in rs if not r["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
