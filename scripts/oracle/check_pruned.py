#!/usr/bin/env python3
"""Check a pruned GGUF against its source with gguf-py, independently of dass-gguf's reader.

    check_pruned.py SOURCE.gguf PRUNED.gguf REPORT.json

REPORT.json is dass-gguf's `--report`. For every tensor:
- not pruned: the bytes, type and shape equal the source's;
- pruned: the shape is the source's, every value is either exactly 0 or equal to the source
  value (converted to the output type when the type changed), and the zeros of each
  comparison group (rows, columns, the whole matrix or N:M blocks, as the report says) reach its quota.
Also checks the dass.* metadata keys and their GGUF types. Prints a JSON summary; exits 1
on the first failure with a message naming the tensor.
"""
import json
import math
import sys

import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader, GGUFValueType as V
from gguf.quants import dequantize


def fail(msg):
    print(f"check_pruned: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def values(t):
    return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)


def to_type(x, ty):
    if ty == T.F32:
        return x
    if ty == T.F16:
        return x.astype(np.float16).astype(np.float32)
    if ty == T.BF16:
        b = x.view(np.uint32)
        # round to nearest even, as ggml and half do (no NaN here: inputs are checked finite)
        r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
        return r.astype(np.uint32).view(np.float32)
    fail(f"unexpected output type {ty}")


def group_quota_ok(zero, grouping, pattern, sparsity, name):
    """zero: bool array (rows, cols) of one matrix."""
    rows, cols = zero.shape
    if ":" in grouping.split()[0]:
        n, m = (int(v) for v in grouping.split()[0].split(":"))
        if "columns" in grouping:  # groups of m consecutive rows in each column
            g = zero.reshape(rows // m, m, cols).sum(axis=1)
        else:
            g = zero.reshape(rows, cols // m, m).sum(axis=2)
        if (g < n).any():
            fail(f"{name}: an N:M group has {int(g.min())} zeros, fewer than {n}")
        return
    if grouping == "row":
        counts, size = zero.sum(axis=1), cols
    elif grouping == "column":
        counts, size = zero.sum(axis=0), rows
    elif grouping == "matrix":
        counts, size = np.array([zero.sum()]), rows * cols
    else:
        fail(f"{name}: unknown grouping {grouping!r}")
    quota = math.floor(size * sparsity)
    if (counts < quota).any():
        fail(f"{name}: a group has {int(counts.min())} zeros, fewer than its quota {quota}")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, out = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
    report = json.load(open(sys.argv[3]))
    pruned = {t["name"]: t for t in report["tensors"]}
    sparsity = report["options"]["sparsity"]
    pattern = report["options"]["pattern"]

    want_keys = {"dass.version": V.STRING, "dass.method": V.STRING, "dass.pattern": V.STRING,
                 "dass.sparsity": V.FLOAT32, "dass.scope": V.STRING,
                 "dass.sparsity_achieved": V.FLOAT32, "dass.pruned_tensors": V.UINT32}
    for k, ty in want_keys.items():
        f = out.get_field(k)
        if f is None or f.types[0] != ty:
            fail(f"metadata key {k} missing or not {ty.name}")
    if out.get_field("dass.method").contents() != report["options"]["method"]:
        fail("dass.method disagrees with the report")

    src_t = {t.name: t for t in src.tensors}
    out_names = [t.name for t in out.tensors]
    if out_names != [t.name for t in src.tensors]:
        fail("tensor names or order differ from the source")
    checked = zeros_total = 0
    for t in out.tensors:
        s = src_t[t.name]
        if list(t.shape) != list(s.shape):
            fail(f"{t.name}: shape {list(t.shape)} != source {list(s.shape)}")
        if t.name not in pruned:
            if t.tensor_type != s.tensor_type or t.data.tobytes() != s.data.tobytes():
                fail(f"{t.name}: not pruned but its bytes changed")
            continue
        p = pruned[t.name]
        if t.tensor_type.name != p["out_type"]:
            fail(f"{t.name}: type {t.tensor_type.name}, report says {p['out_type']}")
        a = to_type(values(s), t.tensor_type)
        b = values(t)
        zero = b == 0
        changed = (a != b) & ~zero
        if changed.any():
            fail(f"{t.name}: {int(changed.sum())} weights changed to a non-zero value")
        newly = int((zero & (a != 0)).sum())
        zeros_total += int(zero.sum())
        ne = [int(d) for d in t.shape]
        cols = ne[0]
        mats = p["matrices"]
        rows = int(np.prod(ne[1:])) // mats
        for k, mat in enumerate(zero.reshape(mats, rows, cols)):
            group_quota_ok(mat, p["grouping"], pattern, sparsity, f"{t.name}[{k}]")
        if int(zero.sum()) < p["zeroed"]:
            fail(f"{t.name}: {int(zero.sum())} zeros, report says {p['zeroed']} were zeroed")
        checked += 1
    if checked != len(pruned):
        fail(f"report lists {len(pruned)} pruned tensors, found {checked}")
    print(json.dumps({"pruned_tensors_checked": checked, "zeros": zeros_total,
                      "tensors": len(out_names)}))


if __name__ == "__main__":
    main()
