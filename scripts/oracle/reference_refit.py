#!/usr/bin/env python3
"""A plain numpy implementation of docs/method.md "Refitting with second moments", to check
what `dass-gguf convert --stats` wrote, tensor by tensor.

    reference_refit.py MODEL.gguf STATS.gguf OUT.gguf [--kept-json FILE] [--blocks 0,15,29]

Nothing here comes from dass-gguf: the files are read with gguf-py's GGUFReader, weights are
converted with gguf.quants.dequantize, and the algebra is numpy's (np.linalg.solve, inv and
cholesky), unblocked, in float64. What was done is read from OUT's metadata (dass.refit.method,
dass.refit.damp, dass.refit.tensors, dass.ffn.score, dass.ffn.kept).

- H of a weight's input: C = in_outer of the weight's own entry, else of the one it shares
  (ffn_up -> ffn_gate, attn_k / attn_v -> attn_q); H = (C + C^T) / 2 / counts; a zero
  diagonal entry set to 1; then damp * mean(diag(H)) added to the diagonal.
- Kept channels: --channel-score lsq (dass.ffn.score) is recomputed here, greedily with the full
  H^-1 downdated step by step: cost of channel j = ||W[:, j]||^2 / Hinv[j][j] (0 for a dead
  channel), the cheapest removed (np.argmin: the lower index on ties), then
  W -= W[:, j] Hinv[j, :] / Hinv[j][j] and Hinv -= Hinv[:, j] Hinv[j, :] / Hinv[j][j]. Any
  other score's kept channels come from --kept-json (reference_channels.py --kept-json).
- ffn_down of a block whose channels were removed (least-squares):
  W' = W_K + W_R H[R,K] H[K,K]^-1, rounded to float32.
- Pruned tensors (sparsegpt): the mask is OUT's zeros; H of the tensor's input (cut to the
  kept channels for a cut ffn_down, damped on its own); U = upper Cholesky factor of H^-1
  (U^T U = H^-1); for each column i in order, for every masked row r:
  err = W[r][i] / U[i][i], W[r][i:] -= err * U[i][i:], W[r][i] = 0; the result rounded to
  float32. Cut gate/up rows are the input's kept rows.
- Compared in OUT's type: F32 within 1e-4 * max|W'| of the expected value; F16 and BF16 within
  one unit in the last place of the expected value rounded to that type. Cut gate/up rows that
  were not refitted must be the input's bit for bit.

--blocks limits the check to some blocks (the unblocked update takes seconds per tensor on a
real model). Exit 1 with a message on the first tensor that differs.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as QT
from gguf.quants import dequantize

NAME = re.compile(r"^blk\.(\d+)\.(\w+)\.weight$")


def fail(msg: str) -> None:
    print(f"reference_refit: {msg}", file=sys.stderr)
    sys.exit(1)


def field(r: GGUFReader, key: str):
    f = r.get_field(key)
    return None if f is None else f.contents()


def matrix(t) -> np.ndarray:
    """float32 [rows, n_in] (n_in = ne[0])."""
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    return w.reshape(-1, int(t.shape[0]))


class Moments:
    def __init__(self, path: str, damp: float) -> None:
        r = GGUFReader(path)
        if field(r, "general.type") != "dass-stats":
            fail(f"{path} is not a statistics file")
        self.t = {t.name: t for t in r.tensors}
        self.damp = damp

    def entry(self, weight: str) -> str:
        cands = [weight]
        b, kind = weight.rsplit(".", 2)[0], weight.split(".")[2]
        if kind.startswith("ffn_up"):
            cands.append(f"{b}.ffn_gate{kind[len('ffn_up'):]}.weight")
        if kind in ("attn_k", "attn_v"):
            cands.append(f"{b}.attn_q.weight")
        for c in cands:
            if c + ".in_outer" in self.t:
                return c
        fail(f"no in_outer for {weight}")

    def damped(self, weight: str, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The damped H of weight's input (restricted to keep) and which inputs were dead."""
        e = self.entry(weight)
        c = np.asarray(self.t[e + ".in_outer"].data, dtype=np.float64)
        n = int(np.sqrt(c.size))
        c = c.reshape(n, n)
        count = float(np.asarray(self.t[e + ".counts"].data, dtype=np.float32).reshape(-1)[0])
        h = (c + c.T) / 2.0 / count
        if keep is not None:
            h = h[np.ix_(keep, keep)]
        h = h.copy()
        d = np.diag(h).copy()
        dead = d == 0.0
        d[dead] = 1.0
        h[np.diag_indices_from(h)] = d
        h[np.diag_indices_from(h)] += self.damp * d.mean()
        return h, dead


def lsq_kept(w: np.ndarray, h: np.ndarray, dead: np.ndarray, width: int) -> np.ndarray:
    w = w.copy()
    hinv = np.linalg.inv(h)
    n = h.shape[0]
    alive = np.ones(n, dtype=bool)
    for _ in range(n - width):
        d = np.diag(hinv)
        cost = np.where(dead, 0.0, (w * w).sum(axis=0) / np.where(d > 0, d, 1.0))
        cost[~alive] = np.inf
        j = int(np.argmin(cost))
        row = hinv[j, :].copy()
        w -= np.outer(w[:, j], row) / row[j]
        hinv -= np.outer(hinv[:, j], row) / row[j]
        alive[j] = False
    return np.flatnonzero(alive)


def ls_refit(w: np.ndarray, h: np.ndarray, kept: np.ndarray) -> np.ndarray:
    n = h.shape[0]
    removed = np.setdiff1d(np.arange(n), kept)
    if removed.size == 0:
        return w[:, kept].copy()
    # W_R H[R,K] H[K,K]^-1 = (H[K,K]^-1 H[K,R] W_R^T)^T   (H symmetric)
    t = np.linalg.solve(h[np.ix_(kept, kept)], h[np.ix_(kept, removed)] @ w[:, removed].T)
    return w[:, kept] + t.T


def sparsegpt(w: np.ndarray, mask: np.ndarray, h: np.ndarray) -> np.ndarray:
    hinv = np.linalg.inv(h)
    u = np.linalg.cholesky(hinv).T  # upper, U^T U = H^-1
    w = w.copy()
    for i in range(w.shape[1]):
        m = mask[:, i]
        if not m.any():
            continue
        err = w[m, i] / u[i, i]
        w[np.ix_(m, np.arange(i, w.shape[1]))] -= np.outer(err, u[i, i:])
        w[m, i] = 0.0
    return w


def to_bf16(x: np.ndarray) -> np.ndarray:
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return (b.astype(np.uint32) << 16).view(np.float32)


def compare(name: str, t, want32: np.ndarray) -> tuple[float, int]:
    """OUT's tensor t against the expected float32 values; returns the worst difference in
    units of the allowance and how many weights differ at all."""
    got = matrix(t).astype(np.float64)
    if got.shape != want32.shape:
        fail(f"{name}: shape {got.shape}, expected {want32.shape}")
    ty = t.tensor_type
    if ty == QT.F32:
        allowed = np.full(want32.shape, 1e-4 * max(float(np.abs(want32).max()), 1e-30))
        want = want32.astype(np.float64)
    elif ty == QT.F16:
        w16 = want32.astype(np.float16)
        allowed = np.spacing(np.abs(w16)).astype(np.float64)
        want = w16.astype(np.float64)
    elif ty == QT.BF16:
        wb = to_bf16(want32)
        bits = wb.view(np.uint32)
        exp = ((bits >> 23) & 0xFF).astype(np.int64)
        allowed = np.ldexp(1.0, np.maximum(exp, 1) - 127 - 7)
        want = wb.astype(np.float64)
    else:
        fail(f"{name}: refitted tensors are written as F32, F16 or BF16, found {ty.name}")
    diff = np.abs(got - want)
    worst = diff / allowed
    k = int(np.argmax(worst))
    if worst.flat[k] > 1.0:
        r, c = divmod(k, want.shape[1])
        fail(
            f"{name} ({ty.name}): at row {r}, column {c} the output holds {got.flat[k]!r}, "
            f"the reference {want.flat[k]!r} (allowed difference {allowed.flat[k]:.3g}); "
            f"{int((worst > 1).sum())} of {worst.size} weights differ"
        )
    return float(worst.max()), int((diff > 0).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("stats")
    ap.add_argument("out")
    ap.add_argument("--kept-json")
    ap.add_argument("--blocks")
    a = ap.parse_args()

    m = GGUFReader(a.model)
    o = GGUFReader(a.out)
    mt = {t.name: t for t in m.tensors}
    ot = {t.name: t for t in o.tensors}
    method = field(o, "dass.refit.method")
    if method is None:
        fail(f"{a.out} records no refit (dass.refit.method)")
    steps = method.split(",")
    damp = float(str(np.float32(field(o, "dass.refit.damp"))))
    refitted = list(field(o, "dass.refit.tensors"))
    moments = Moments(a.stats, damp)
    blocks = None if a.blocks is None else {int(b) for b in a.blocks.split(",")}
    pruned = "sparsegpt" in steps
    channels = field(o, "dass.ffn.kept") is not None

    # Kept channels per block.
    kept: dict[int, np.ndarray] = {}
    if channels:
        score = field(o, "dass.ffn.score")
        widths = list(field(o, "dass.ffn.kept"))
        downs = sorted(
            (int(NAME.match(n).group(1)), n) for n in mt if n.endswith(".ffn_down.weight")
        )
        if score == "lsq":
            for (b, name), width in zip(downs, widths):
                if blocks is None or b in blocks:
                    h, dead = moments.damped(name)
                    w = matrix(mt[name]).astype(np.float64)
                    kept[b] = lsq_kept(w, h, dead, int(width))
        elif a.kept_json:
            with open(a.kept_json) as f:
                kept = {int(b): np.asarray(k) for b, k in json.load(f)["blocks"].items()}
        else:
            fail(f"--channel-score {score}: give the kept channels with --kept-json")

    checked = 0
    worst = 0.0
    differ = 0
    weights = 0
    for name, t in ot.items():
        mm = NAME.match(name)
        if not mm:
            continue
        b, kind = int(mm.group(1)), mm.group(2)
        if blocks is not None and b not in blocks:
            continue
        w = matrix(mt[name]).astype(np.float64)
        cut = channels and kind in ("ffn_gate", "ffn_up", "ffn_down")
        is_refit = name in refitted
        if cut and kind != "ffn_down":
            w = w[kept[b], :]
            if not is_refit:
                # A cut row that was not refitted is the input's row, bit for bit.
                if t.tensor_type != mt[name].tensor_type:
                    fail(f"{name}: type {t.tensor_type.name}, the input's is {mt[name].tensor_type.name}")
                rows = lambda x: np.ascontiguousarray(x.data).view(np.uint8).reshape(int(x.shape[1]), -1)
                if not np.array_equal(rows(t), rows(mt[name])[kept[b]]):
                    fail(f"{name}: the kept rows are not the input's rows {kept[b][:8]}...")
                checked += 1
                continue
        if not is_refit:
            continue
        if cut and kind == "ffn_down":
            h, _ = moments.damped(name)
            w = ls_refit(w, h, kept[b]).astype(np.float32).astype(np.float64)
        if pruned:
            got = matrix(t)
            mask = got == 0.0
            keep = kept[b] if (cut and kind == "ffn_down") else None
            h, _ = moments.damped(name, keep)
            w = sparsegpt(w, mask, h)
        tensor_worst, tensor_differ = compare(name, t, w.astype(np.float32))
        worst = max(worst, tensor_worst)
        differ += tensor_differ
        weights += w.size
        checked += 1
    listed = [n for n in refitted if blocks is None or int(NAME.match(n).group(1)) in blocks]
    if checked == 0 or not listed:
        fail("nothing was checked")
    print(
        f"reference_refit: {checked} tensors agree ({method}, damp {damp}); {differ} of "
        f"{weights} refitted weights differ from the reference at all, by at most {worst:.3g} "
        f"of the allowance"
    )


if __name__ == "__main__":
    main()
