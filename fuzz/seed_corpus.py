#!/usr/bin/env python3
"""(Re)writes the committed seed corpus of every fuzz target under fuzz/corpus/.

Seeds come from the repository and the conformance corpus beside it: examples/*.ein and the
differential regressions (source), the filetests split at `// -----` (tensor_ir, loop_ir), the
einsum conformance cases encoded in the einsum target's byte format (einsum), arrays written
by numpy in every supported dtype, order and header version (npy), and fixed random decision
strings (programs). File names are the SHA-1 of the content, as libFuzzer names its units.

Usage: python3 fuzz/seed_corpus.py   (numpy is needed for the npy seeds; run from anywhere)
"""
import glob
import hashlib
import io
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared")


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def filetest_cases(path):
    text = open(path, encoding="utf-8").read()
    for case in text.split("// -----"):
        yield case.split("// EXPECT:")[0]


def main():
    for p in sorted(glob.glob(os.path.join(ROOT, "examples", "*.ein"))
                    + glob.glob(os.path.join(ROOT, "tests", "differential", "*.ein"))):
        put("source", open(p, encoding="utf-8").read())
    for ext, target in (("tir", "tensor_ir"), ("lir", "loop_ir")):
        for p in sorted(glob.glob(os.path.join(ROOT, "tests", "filetests", "**", "*." + ext),
                                  recursive=True)):
            for case in filetest_cases(p):
                if case.strip():
                    put(target, case)
    dtypes = ["float32", "float64", "int32", "int64"]
    for p in sorted(glob.glob(os.path.join(SHARED, "conformance", "*.jsonl"))):
        for line in open(p, encoding="utf-8"):
            e = json.loads(line)
            ops = e["shapes"][:6]
            kinds = e.get("operand_dtypes") or [e["dtype"]] * len(ops)
            b = bytearray([len(ops)])
            for shape, dt in zip(ops, kinds):
                b.append(dtypes.index(dt) if dt in dtypes else 0)
                b.append(min(len(shape), 5))
                b.extend(min(x, 5) for x in shape[:5])
            b.extend(e["subscripts"].encode("utf-8"))
            put("einsum", bytes(b))
    try:
        import numpy as np
    except ImportError:
        print("numpy missing: npy seeds not written")
    else:
        rng = np.random.default_rng(0)
        for dt in ["<f4", ">f4", "<f8", ">f8", "<i4", ">i4", "<i8", ">i8"]:
            for shape in [(), (0,), (3,), (2, 3), (2, 1, 3)]:
                for order in "CF":
                    a = np.asarray(rng.uniform(-9, 9, size=shape)).astype(dt)
                    if order == "F":
                        a = np.asfortranarray(a)
                    for version in [(1, 0), (2, 0)]:
                        buf = io.BytesIO()
                        np.lib.format.write_array(buf, a, version=version)
                        put("npy", buf.getvalue())
    r = random.Random(13)
    for _ in range(64):
        put("programs", bytes(r.randrange(256) for _ in range(r.choice([16, 64, 256, 1024]))))


if __name__ == "__main__":
    main()
