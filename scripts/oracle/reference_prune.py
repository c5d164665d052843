#!/usr/bin/env python3
"""A plain numpy implementation of docs/method.md: which weights dass-gguf must zero.

    reference_prune.py SOURCE.gguf IMATRIX.gguf OUT_EXPECTED_DIR --method dass|wanda|magnitude|ria|hybrid
                       [--sparsity S | --pattern N:M] [--alpha A] [--scope ffn|all]
                       [--include REGEX]... [--exclude REGEX]... [--pow libm|exact]
    reference_prune.py --jobs FILE

IMATRIX.gguf may be `-` (no statistics; magnitude only). --jobs runs every non-empty line of
FILE as one such argument list (shell-quoted), so a test can check many configurations with one
Python start; it stops at the first failing job.

Nothing here comes from dass-gguf: the model and imatrix are read with gguf-py's GGUFReader,
weights are converted with gguf.quants.dequantize, and the rules are method.md's, written for
clarity, not speed:

- Candidates: `blk.N.ffn_gate/ffn_up/ffn_down.weight`, their `_exps` (3-D, one matrix per
  expert, each with its own imatrix slice) and `_shexp` (ordinary GLU) variants; with
  --scope all also `blk.N.attn_q/attn_k/attn_v/attn_qkv/attn_output.weight`. Then --include
  (any must match, re.search) and --exclude (none may match). Everything else is copied.
- Statistics: v[k][c] = in_sum2[k][c] / counts[k] in float32, a count of 0 taken as 1.
- Scores, float32, from the float32 value of each weight:
  * magnitude: |W|;
  * Wanda (all tensors under wanda; ffn_down and attention under dass): |W[r][c]| * sqrt(v_W[c]),
    v_W being the tensor's own entry;
  * DaSS on gate/up: |W[r][c]| * f[r] with f = v_down ** (alpha/2), v_down being the entry of
    `blk.N.ffn_down{,_exps,_shexp}.weight` of the same block and variant. phi3's fused ffn_up
    (rows 0..n_ff gate, n_ff..2n_ff up) is two matrices that both use v_down.
  * RIA (every tensor under ria): (|W| / S_col[c] + |W| / S_row[r]) * v_W[c] ** (alpha/2), the
    sums of |W| over a column and a row taken in float64 in index order (cumsum) and rounded
    to float32, a term over a zero sum being 0. phi3's fused ffn_up is two matrices.
  * hybrid on gate/up: (|W[r][c]| * sqrt(v_W[c])) * v_down[r] ** (alpha/2); on every other
    tensor Wanda. phi3's fused ffn_up is two matrices sharing both vectors.
- Groups: DaSS gate/up compete per input column (the n_ff weights of column c), or per block of
  M consecutive rows of a column under N:M; RIA (unstructured) and hybrid gate/up compete over
  the whole matrix; everything else per output row, or per block of M consecutive columns. A
  group of g loses floor(g * s) (g * s in float64), or N of every M. The hybrid has no N:M form
  on gate/up (refused).
- Order: np.argsort(kind="stable") of the scores of the group, so equal scores go lower index
  first; the first k positions are zeroed.
- Errors (exit 2, message on stderr): non-finite weights or statistics, a missing or mis-sized
  imatrix entry, N:M on a dimension that is not a multiple of M, DaSS on an FFN without a gate.

The DaSS factor v ** (alpha/2) is the one place where float32 arithmetic is not correctly
rounded on both sides: dass-gguf calls the C library's powf (Rust's f32::powf), which glibc
computes to within 1 ulp but not always correctly rounded, and numpy's float32 power either calls
the same powf or, for an exponent of 0.5, sqrt. A last-bit difference in a factor can flip a
mask bit where two scores are within one ulp. So by default (--pow libm) the factor is computed
the way dass-gguf computes it: the platform's powf through ctypes, element by element. The
manifest also records, per DaSS tensor, how many factors differ from the correctly rounded
value (float64 power rounded to float32) and how many mask bits those differences would flip
("pow_sensitivity"); --pow exact uses the correctly rounded factors instead. The factors used
are saved so that the Rust test can check they are bit-equal to its own f32::powf.

Output, in OUT_EXPECTED_DIR (created): for each pruned tensor `<name>.mask.npy`, the boolean
zero mask in the tensor's numpy shape (reversed ne; flattened, this is GGUF element order),
`<name>.factor.npy` (float32 [matrices, len]) for DaSS gate/up tensors, and `manifest.json`:
the options and, per tensor in file order, name, type, ne, role, rule, imatrix entry, grouping
("row" or "column"), matrices, rows, cols, zeroed, tie_decided_groups (groups where the
last zeroed and the first kept score are equal, so the tie rule decides), the file names, and
pow_sensitivity.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import re
import shlex
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

FFN_KINDS = {
    "ffn_gate": ("gate", ""), "ffn_up": ("up", ""), "ffn_down": ("down", ""),
    "ffn_gate_exps": ("gate", "_exps"), "ffn_up_exps": ("up", "_exps"),
    "ffn_down_exps": ("down", "_exps"),
    "ffn_gate_shexp": ("gate", "_shexp"), "ffn_up_shexp": ("up", "_shexp"),
    "ffn_down_shexp": ("down", "_shexp"),
}
ATTN_KINDS = {"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output"}
NAME = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")


class Refused(Exception):
    """The configuration is impossible; method.md says to refuse it."""


# ---------------------------------------------------------------------------------------------
# Inputs


def field_str(reader: GGUFReader, key: str) -> str | None:
    f = reader.get_field(key)
    return None if f is None else f.contents()


def load_imatrix(path: str) -> dict[str, np.ndarray]:
    """Entry name -> float32 array [n_mat, n_in] of mean squares."""
    r = GGUFReader(path)
    if field_str(r, "general.type") != "imatrix":
        raise Refused(f"{path} is not a GGUF imatrix (general.type is not 'imatrix')")
    tensors = {t.name: t for t in r.tensors}
    out = {}
    for name, t in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        entry = name[: -len(".in_sum2")]
        c = tensors[entry + ".counts"]
        n_in = int(t.shape[0])
        sums = np.asarray(t.data, dtype=np.float32).reshape(-1, n_in)
        counts = np.asarray(c.data, dtype=np.float32).reshape(-1)
        assert counts.size == sums.shape[0], entry
        divisor = np.where(counts == 0, np.float32(1), counts).astype(np.float32)
        out[entry] = (sums / divisor[:, None]).astype(np.float32)
    return out


def weights(t) -> np.ndarray:
    """The tensor as float32 [matrices, rows, cols] (cols = ne[0], rows = ne[1], matrices = ne[2])."""
    ne = [int(d) for d in t.shape] + [1, 1, 1]
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    return w.reshape(ne[2] * ne[3], ne[1], ne[0])


# ---------------------------------------------------------------------------------------------
# The DaSS factor


def libm_powf():
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    powf = ctypes.CDLL(name).powf
    powf.restype = ctypes.c_float
    powf.argtypes = [ctypes.c_float, ctypes.c_float]
    return powf


POWF = libm_powf()


def pow_libm(v: np.ndarray, e: float) -> np.ndarray:
    if POWF is None:
        raise Refused("--pow libm: the C library's powf cannot be loaded; use --pow exact")
    e32 = float(np.float32(e))
    return np.array([POWF(float(x), e32) for x in v.reshape(-1)], dtype=np.float32).reshape(v.shape)


def pow_exact(v: np.ndarray, e: float) -> np.ndarray:
    """The correctly rounded float32 power (float64 power, then one rounding)."""
    return np.power(v.astype(np.float64), float(np.float32(e))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Selection


# Groups in which the k-th and (k+1)-th lowest scores are equal, so that the tie rule, not the
# scores, decides which weights go (counted for the manifest: it shows the fixtures exercise it).
TIE_DECIDED = [0]


def zero_lowest(scores: np.ndarray, k: int) -> np.ndarray:
    """Mask of the k lowest scores of one group; equal scores go lower index first."""
    mask = np.zeros(scores.size, dtype=bool)
    order = np.argsort(scores, kind="stable")
    mask[order[:k]] = True
    if 0 < k < scores.size and scores[order[k - 1]] == scores[order[k]]:
        TIE_DECIDED[0] += 1
    return mask


def mask_rows(scores: np.ndarray, sparsity: float | None, nm: tuple[int, int] | None) -> np.ndarray:
    """Groups inside each row of a [rows, cols] score matrix."""
    rows, cols = scores.shape
    mask = np.zeros_like(scores, dtype=bool)
    for r in range(rows):
        if nm is None:
            mask[r] = zero_lowest(scores[r], math.floor(cols * sparsity))
        else:
            n, m = nm
            for start in range(0, cols, m):
                mask[r, start:start + m] = zero_lowest(scores[r, start:start + m], n)
    return mask


def mask_columns(scores: np.ndarray, sparsity, nm) -> np.ndarray:
    """Groups inside each column: the row rule on the transpose."""
    return np.ascontiguousarray(mask_rows(np.ascontiguousarray(scores.T), sparsity, nm).T)


def mask_matrix(scores: np.ndarray, sparsity, nm) -> np.ndarray:
    """The whole matrix is one group (unstructured only), in row-major order."""
    assert nm is None
    return zero_lowest(scores.reshape(-1), math.floor(scores.size * sparsity)).reshape(scores.shape)


def abs_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """Sum of a float32 array along an axis in float64, in index order, rounded to float32."""
    return np.take(np.cumsum(a.astype(np.float64), axis=axis), -1, axis=axis).astype(np.float32)


def ria_scores(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """RIA's scores of one float32 matrix [rows, cols] with column factors g."""
    a = np.abs(w)
    s_col = abs_sum(a, 0)[None, :]
    s_row = abs_sum(a, 1)[:, None]
    t_col = np.divide(a, s_col, out=np.zeros_like(a), where=np.broadcast_to(s_col != 0, a.shape))
    t_row = np.divide(a, s_row, out=np.zeros_like(a), where=np.broadcast_to(s_row != 0, a.shape))
    return (t_col + t_row) * g[None, :]


# ---------------------------------------------------------------------------------------------
# One configuration


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="reference_prune.py", description=__doc__.split("\n")[0])
    p.add_argument("source")
    p.add_argument("imatrix")
    p.add_argument("out_dir")
    p.add_argument("--method", required=True, choices=["dass", "wanda", "magnitude", "ria", "hybrid"])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sparsity", type=float)
    g.add_argument("--pattern")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--scope", choices=["ffn", "all"], default="ffn")
    p.add_argument("--include", action="append", default=[])
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--pow", choices=["libm", "exact"], default="libm")
    a = p.parse_args(argv)
    a.nm = None
    if a.pattern is not None:
        n, m = (int(x) for x in a.pattern.split(":"))
        if not 0 < n < m:
            raise Refused(f"pattern {a.pattern}: need 0 < N < M")
        a.nm = (n, m)
        a.sparsity_used = None
    else:
        a.sparsity_used = 0.5 if a.sparsity is None else a.sparsity
        if not 0.0 <= a.sparsity_used < 1.0:
            raise Refused(f"sparsity {a.sparsity_used} is outside [0, 1)")
    return a


def run(argv: list[str]) -> dict:
    a = parse_args(argv)
    src = GGUFReader(a.source)
    arch = field_str(src, "general.architecture")
    stats = None if a.imatrix == "-" else load_imatrix(a.imatrix)
    if a.method != "magnitude" and stats is None:
        raise Refused(f"--method {a.method} needs an imatrix")
    names = {t.name for t in src.tensors}
    out_dir = Path(a.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def entry(name: str, n_mat: int, length: int) -> np.ndarray:
        """The statistics of `name` as [n_mat, length], checked."""
        if name not in stats:
            raise Refused(f"imatrix has no entry '{name}'")
        v = stats[name]
        if v.shape[0] == 1 and n_mat > 1 and v.size == n_mat * length:
            v = v.reshape(n_mat, length)
        if v.shape not in {(n_mat, length), (1, length)}:
            raise Refused(f"imatrix entry '{name}' has shape {v.shape}, need ({n_mat}, {length})")
        if not np.isfinite(v).all() or (v < 0).any():
            raise Refused(f"imatrix entry '{name}' holds non-finite or negative values")
        return np.broadcast_to(v, (n_mat, length))

    manifest = []
    for t in src.tensors:
        m = NAME.match(t.name)
        kind = m.group(2) if m else None
        block = m.group(1) if m else None
        in_scope = kind in FFN_KINDS or (a.scope == "all" and kind in ATTN_KINDS)
        if not in_scope:
            continue
        if a.include and not any(re.search(r, t.name) for r in a.include):
            continue
        if any(re.search(r, t.name) for r in a.exclude):
            continue

        w = weights(t)
        if not np.isfinite(w).all():
            raise Refused(f"tensor '{t.name}' has non-finite weights")
        n_mat, rows, cols = w.shape
        side, variant = FFN_KINDS.get(kind, ("attn", ""))
        fused = arch == "phi3" and kind == "ffn_up"
        role = "ffn_gate_up_fused" if fused else kind
        factor_file = None
        sensitivity = None

        glu = a.method in ("dass", "hybrid")
        if glu and side == "up" and not fused and f"blk.{block}.ffn_gate{variant}.weight" not in names:
            raise Refused(f"'{t.name}' has no gate: {a.method} is undefined for a non-GLU feed-forward ({arch})")
        if a.method == "hybrid" and side in ("gate", "up") and a.nm is not None:
            raise Refused(f"'{t.name}': the hybrid has no N:M form")

        e = float(np.float32(a.alpha) / np.float32(2))  # alpha / 2 in float32, as dass-gguf
        factor_entry = None

        def power(v):
            """v ** e as dass-gguf computes it (see --pow), remembering the alternative."""
            nonlocal factor_file, sensitivity
            v = np.ascontiguousarray(v)
            exact = pow_exact(v, e)
            libm = pow_libm(v, e) if POWF is not None or a.pow == "libm" else None
            f, alt_f = (libm, exact) if a.pow == "libm" else (exact, libm)
            factor_file = t.name + ".factor.npy"
            np.save(out_dir / factor_file, np.ascontiguousarray(f, dtype=np.float32))
            if alt_f is not None:
                sensitivity = {"factor_diffs": int((libm.view(np.uint32) != exact.view(np.uint32)).sum())}
            return f, alt_f

        def split_fused(w):
            if w.shape[1] % 2:
                raise Refused(f"'{t.name}': fused gate+up with an odd number of rows")
            return w.reshape(2 * w.shape[0], w.shape[1] // 2, w.shape[2])

        alt_scores = None
        glu_input = side in ("gate", "up")
        if fused and (a.method == "ria" or (glu_input and a.method in ("dass", "hybrid"))):
            # Two matrices, gate rows then up rows, sharing every statistics vector.
            w = split_fused(w)
            n_mat, rows = w.shape[0], w.shape[1]

        def vec(name, length):
            """The statistics of `name` per matrix; the fused halves share one vector."""
            if fused:
                return np.broadcast_to(entry(name, 1, length), (n_mat, length))
            return entry(name, n_mat, length)

        if a.method == "magnitude":
            rule, used_entry, grouping = "magnitude", None, "row"
            scores = np.abs(w)
        elif a.method == "dass" and glu_input:
            rule, grouping = "dass", "column"
            used_entry = f"blk.{block}.ffn_down{variant}.weight"
            f, alt_f = power(vec(used_entry, rows))
            scores = np.abs(w) * f[:, :, None]
            if alt_f is not None:
                alt_scores = np.abs(w) * alt_f[:, :, None]
        elif a.method == "ria":
            rule, used_entry = "ria", t.name
            grouping = "matrix" if a.nm is None else "row"
            f, alt_f = power(vec(used_entry, cols))
            scores = np.stack([ria_scores(w[k], f[k]) for k in range(n_mat)])
            if alt_f is not None:
                alt_scores = np.stack([ria_scores(w[k], alt_f[k]) for k in range(n_mat)])
        elif a.method == "hybrid" and glu_input:
            rule, used_entry, grouping = "hybrid", t.name, "matrix"
            factor_entry = f"blk.{block}.ffn_down{variant}.weight"
            f, alt_f = power(vec(factor_entry, rows))
            col = np.sqrt(vec(used_entry, cols))
            scores = (np.abs(w) * col[:, None, :]) * f[:, :, None]
            if alt_f is not None:
                alt_scores = (np.abs(w) * col[:, None, :]) * alt_f[:, :, None]
        else:
            rule, used_entry, grouping = "wanda", t.name, "row"
            v = entry(used_entry, n_mat, cols)
            scores = np.abs(w) * np.sqrt(v)[:, None, :]
        assert scores.dtype == np.float32

        group_len = rows if grouping == "column" else cols
        if a.nm is not None and group_len % a.nm[1]:
            raise Refused(f"'{t.name}': {a.pattern} groups run along a dimension of {group_len}, "
                          f"not a multiple of {a.nm[1]}")
        pick = {"column": mask_columns, "row": mask_rows, "matrix": mask_matrix}[grouping]
        TIE_DECIDED[0] = 0
        mask = np.stack([pick(scores[k], a.sparsity_used, a.nm) for k in range(n_mat)])
        tie_decided = TIE_DECIDED[0]
        if sensitivity is not None:
            alt = np.stack([pick(alt_scores[k], a.sparsity_used, a.nm) for k in range(n_mat)])
            sensitivity["mask_diffs"] = int((alt != mask).sum())

        mask = np.ascontiguousarray(mask).reshape(tuple(int(d) for d in reversed(list(t.shape))))
        mask_file = t.name + ".mask.npy"
        np.save(out_dir / mask_file, mask)
        manifest.append({
            "name": t.name, "type": t.tensor_type.name, "ne": [int(d) for d in t.shape],
            "role": role, "rule": rule, "entry": used_entry, "grouping": grouping,
            "matrices": int(n_mat), "rows": int(rows), "cols": int(cols),
            "zeroed": int(mask.sum()), "tie_decided_groups": tie_decided,
            "mask": mask_file, "factor": factor_file, "factor_entry": factor_entry or used_entry,
            "pow_sensitivity": sensitivity,
        })

    doc = {
        "source": a.source, "imatrix": None if a.imatrix == "-" else a.imatrix,
        "options": {"method": a.method, "sparsity": a.sparsity_used, "pattern": a.pattern,
                    "alpha": a.alpha, "scope": a.scope, "include": a.include,
                    "exclude": a.exclude, "pow": a.pow},
        "tensors": manifest,
        "copied": [t.name for t in src.tensors if t.name not in {e["name"] for e in manifest}],
    }
    (out_dir / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main() -> int:
    argv = sys.argv[1:]
    if len(argv) == 2 and argv[0] == "--jobs":
        jobs = [shlex.split(line) for line in Path(argv[1]).read_text().splitlines() if line.strip()]
    else:
        jobs = [argv]
    for job in jobs:
        try:
            doc = run(job)
        except Refused as e:
            print(f"reference_prune: refused: {e} (job: {shlex.join(job)})", file=sys.stderr)
            return 2
        zeroed = sum(t["zeroed"] for t in doc["tensors"])
        print(json.dumps({"out_dir": job[2], "pruned_tensors": len(doc["tensors"]), "zeroed": zeroed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
