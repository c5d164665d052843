#!/usr/bin/env python3
"""A plain numpy implementation of docs/method.md "Removing channels": which feed-forward
channels dass-gguf keeps, and what the output must then hold.

    reference_channels.py MODEL.gguf IMATRIX.gguf|- --score energy|activation|dass|weight|random
                          (--width W | --global-target T --multiple M)
                          [--alpha A] [--seed N] [--kept-json FILE]
                          [--check OUT.gguf] [--check-imatrix CUT_IMATRIX]

Nothing here comes from dass-gguf: the model and imatrix are read with gguf-py's GGUFReader,
weights are converted with gguf.quants.dequantize, and the scores follow method.md, with the
f64 sums taken in the order method.md fixes (so ties and near-ties fall the same way):

- v[i] = in_sum2[i] / counts in float32 (a count of 0 taken as 1), then float64;
- column sums over the rows of ffn_down: rows in groups of 64, each group summed row by row,
  the group sums added in order; row sums over the columns of gate/up: column by column;
- energy: colsum(W_down^2) * v_down; activation: v_down; weight: colsum(W_down^2), then +=
  rowsum(W_gate^2), then += rowsum(W_up^2); dass: (0 + rowsum(|W_gate| * sqrt(v_in)))
  + rowsum(|W_up| * sqrt(v_in)), times v_down ** (alpha / 2); random: SplitMix64 of
  seed ^ (block << 32 | i), top 53 bits / 2**53. phi3's fused ffn_up adds its gate rows, then
  its up rows, to the same channels.
- The width highest scores are kept: np.argsort(kind="stable") ascending, the first n_ff - W
  positions go (the lower index first among equal scores).
- --global-target T (per-layer widths, written as deci): each block's scores are divided by the
  block's median score (the lower middle one); each block's sorted scores (highest first) are
  cut into units of M; every block keeps its first unit; of the other units, the
  round(T * blocks / M) - blocks with the highest sums are kept (equal sums: the earlier block,
  then the earlier unit). Then each block keeps its width highest (raw) scores as above.

--kept-json writes {"n_ff": .., "width": .., "blocks": {"0": [kept...], ...}}. --check OUT
verifies the converted model: every cut tensor holds exactly the dense tensor's kept rows or
columns (bit for bit for float types; a quantized tensor cut by columns as the float16 of its
dequantized values), every other tensor is byte-identical, and {arch}.feed_forward_length is the
width. --check-imatrix verifies the cut imatrix (GGUF): ffn_down entries cut to the kept
channels, everything else equal. Exit 1 with a message on the first difference.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as QT
from gguf.quants import dequantize

NAME = re.compile(r"^blk\.(\d+)\.(ffn_gate|ffn_up|ffn_down)\.(weight|bias)$")
FLOAT_TYPES = {QT.F32, QT.F16, QT.BF16}
M64 = (1 << 64) - 1


def fail(msg: str) -> None:
    print(f"reference_channels: {msg}", file=sys.stderr)
    sys.exit(1)


def mean_squares(path: str) -> dict[str, np.ndarray]:
    r = GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    out = {}
    for name, t in tensors.items():
        if name.endswith(".in_sum2"):
            entry = name[: -len(".in_sum2")]
            counts = np.asarray(tensors[entry + ".counts"].data, dtype=np.float32).reshape(-1)
            sums = np.asarray(t.data, dtype=np.float32).reshape(counts.size, -1)
            div = np.where(counts == 0, np.float32(1), counts).astype(np.float32)
            out[entry] = (sums / div[:, None]).astype(np.float32)[0].astype(np.float64)
    return out


def matrix(t) -> np.ndarray:
    """float32 [rows, cols] (cols = ne[0])."""
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    return w.reshape(-1, int(t.shape[0]))


def column_sums(w: np.ndarray, f) -> np.ndarray:
    sq = f(w.astype(np.float64))
    rows, cols = sq.shape
    groups = -(-rows // 64)
    pad = np.zeros((groups * 64, cols))
    pad[:rows] = sq
    acc = np.zeros((groups, cols))
    for k in range(64):
        acc += pad[k::64]
    total = np.zeros(cols)
    for g in range(groups):
        total += acc[g]
    return total


def row_sums(w: np.ndarray, f, weight=None) -> np.ndarray:
    x = f(w.astype(np.float64))
    acc = np.zeros(x.shape[0])
    for c in range(x.shape[1]):
        acc += x[:, c] * weight[c] if weight is not None else x[:, c]
    return acc


def splitmix(seed: int, b: int, i: int) -> float:
    z = (seed ^ ((b << 32) | i)) & M64
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("imatrix")
    ap.add_argument("--score", required=True)
    ap.add_argument("--width", type=int)
    ap.add_argument("--global-target", type=float)
    ap.add_argument("--multiple", type=int, default=256)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kept-json")
    ap.add_argument("--check")
    ap.add_argument("--check-imatrix")
    a = ap.parse_args()

    r = GGUFReader(a.model)
    arch = r.get_field("general.architecture").contents()
    fused = arch == "phi3"
    tensors = {t.name: t for t in r.tensors}
    stats = mean_squares(a.imatrix) if a.imatrix != "-" else {}
    blocks = sorted({int(m.group(1)) for n in tensors if (m := NAME.match(n))})
    alpha = float(np.float32(a.alpha))
    kept_by_block: dict[int, np.ndarray] = {}
    scores: dict[int, np.ndarray] = {}
    n_ff = None
    for b in blocks:
        p = f"blk.{b}."
        down = matrix(tensors[p + "ffn_down.weight"])
        n_ff = down.shape[1]
        up = matrix(tensors[p + "ffn_up.weight"])
        gate = None if fused else matrix(tensors[p + "ffn_gate.weight"])
        gate_up = [up] if fused else [gate, up]

        def add_rows(s, f, weight=None):
            for m in gate_up:
                sums = row_sums(m, f, weight)
                for k, v in enumerate(sums):
                    s[k % n_ff if fused else k] += v

        if a.score == "activation":
            s = stats[p + "ffn_down.weight"].copy()
        elif a.score == "energy":
            s = column_sums(down, np.square) * stats[p + "ffn_down.weight"]
        elif a.score == "weight":
            s = column_sums(down, np.square)
            add_rows(s, np.square)
        elif a.score == "dass":
            entry = p + ("ffn_up.weight" if fused else "ffn_gate.weight")
            sqrt_in = np.sqrt(stats[entry])
            s = np.zeros(n_ff)
            add_rows(s, np.abs, sqrt_in)
            s = s * np.power(stats[p + "ffn_down.weight"], alpha / 2.0)
        elif a.score == "random":
            s = np.array([splitmix(a.seed, b, i) for i in range(n_ff)])
        else:
            fail(f"unknown score {a.score}")
        scores[b] = s
    widths = {b: a.width for b in blocks}
    if a.global_target is not None:
        widths = global_widths(scores, blocks, a.global_target, a.multiple)
    for b in blocks:
        s, w = scores[b], widths[b]
        order = np.argsort(s, kind="stable")
        kept_by_block[b] = np.sort(order[n_ff - w:]) if w < n_ff else np.arange(n_ff)

    if a.kept_json:
        with open(a.kept_json, "w") as f:
            json.dump({"n_ff": n_ff, "widths": [widths[b] for b in blocks],
                       "blocks": {str(b): k.tolist() for b, k in kept_by_block.items()}}, f)

    if a.check:
        check_model(a.check, r, tensors, kept_by_block, n_ff, fused, arch,
                    [widths[b] for b in blocks], a.global_target is not None)
    if a.check_imatrix:
        check_imatrix(a.imatrix, a.check_imatrix, kept_by_block)
    print(json.dumps({"blocks": len(blocks), "n_ff": n_ff, "widths": [widths[b] for b in blocks],
                      "checked": bool(a.check)}))


def global_widths(scores, blocks, target, m):
    units = []
    widths = {}
    for b in blocks:
        s = scores[b]
        sorted_ = np.sort(s)
        median = sorted_[(len(s) - 1) // 2]
        rel = s / median if median > 0 else s
        desc = np.sort(rel)[::-1]
        n_units = -(-len(s) // m)
        for u in range(1, n_units):
            total = 0.0
            for x in desc[u * m:min((u + 1) * m, len(s))]:
                total += x
            units.append((-total, b, u))
        widths[b] = min(m, len(s))
    total_units = int(np.floor(target * len(blocks) / m + 0.5))
    extra = max(0, total_units - len(blocks))
    for _, b, u in sorted(units)[:extra]:
        widths[b] += min((u + 1) * m, len(scores[b])) - u * m
    return widths


def expected_cut(t, kept: np.ndarray, axis: str) -> tuple[bytes, int]:
    """The bytes the cut tensor must hold and its type."""
    ty = t.tensor_type
    cols = int(t.shape[0])
    if axis == "rows":
        b = np.asarray(t.data).tobytes()
        row_bytes = len(b) // (int(t.n_elements) // cols)
        return b"".join(b[r * row_bytes:(r + 1) * row_bytes] for r in kept), ty
    if ty in FLOAT_TYPES:
        raw = np.frombuffer(np.asarray(t.data).tobytes(), dtype=np.uint8)
        size = {QT.F32: 4, QT.F16: 2, QT.BF16: 2}[ty]
        rows = raw.reshape(-1, cols, size)
        return rows[:, kept, :].tobytes(), ty
    w = matrix(t)
    return w[:, kept].astype(np.float16).tobytes(), QT.F16


def check_model(out_path, r, tensors, kept_by_block, n_ff, fused, arch, widths, per_layer) -> None:
    o = GGUFReader(out_path)
    got = {t.name: t for t in o.tensors}
    if list(got) != list(tensors):
        fail("the output's tensors are not the input's, in the input's order")
    out_arch = o.get_field("general.architecture").contents()
    if out_arch != ("deci" if per_layer else arch):
        fail(f"general.architecture is {out_arch}")
    ffl = o.get_field(f"{out_arch}.feed_forward_length").contents()
    want = widths if per_layer else widths[0]
    if ffl != want:
        fail(f"{out_arch}.feed_forward_length is {ffl}, expected {want}")
    if per_layer:
        for key in ["attention.head_count", "attention.head_count_kv", "block_count",
                    "embedding_length", "context_length"]:
            src = r.get_field(f"{arch}.{key}").contents()
            dst = o.get_field(f"deci.{key}").contents()
            if key.startswith("attention.head_count"):
                src = [src] * len(widths)
            if src != dst:
                fail(f"deci.{key} is {dst}, expected {src}")
    for name, t in tensors.items():
        m = NAME.match(name)
        g = got[name]
        if m is None:
            if np.asarray(g.data).tobytes() != np.asarray(t.data).tobytes() or g.tensor_type != t.tensor_type:
                fail(f"{name}: not copied byte for byte")
            continue
        b, kind, what = int(m.group(1)), m.group(2), m.group(3)
        kept = kept_by_block[b]
        if kind == "ffn_down" and what == "bias":
            axis, k = None, None
        elif kind == "ffn_down":
            axis, k = "cols", kept
        elif what == "bias":
            axis, k = "cols", kept
        elif kind == "ffn_up" and fused:
            axis, k = "rows", np.concatenate([kept, kept + n_ff])
        else:
            axis, k = "rows", kept
        if axis is None:
            if np.asarray(g.data).tobytes() != np.asarray(t.data).tobytes():
                fail(f"{name}: not copied byte for byte")
            continue
        want, ty = expected_cut(t, k, axis)
        if g.tensor_type != ty:
            fail(f"{name}: type {g.tensor_type.name}, expected {ty.name}")
        if np.asarray(g.data).tobytes() != want:
            fail(f"{name}: the kept {axis} differ from the dense model's")


def check_imatrix(src, cut, kept_by_block) -> None:
    a = {t.name: t for t in GGUFReader(src).tensors}
    c = {t.name: t for t in GGUFReader(cut).tensors}
    if list(a) != list(c):
        fail("the cut imatrix does not hold the input's entries in order")
    for name, t in a.items():
        m = re.match(r"^blk\.(\d+)\.ffn_down\.weight\.(in_sum2|in_sum)$", name)
        want = np.asarray(t.data, dtype=np.float32)
        if m:
            want = want.reshape(-1, int(t.shape[0]))[:, kept_by_block[int(m.group(1))]]
        if np.asarray(c[name].data, dtype=np.float32).tobytes() != want.tobytes():
            fail(f"imatrix {name}: not the input's values at the kept channels")


if __name__ == "__main__":
    main()
