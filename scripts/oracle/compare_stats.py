#!/usr/bin/env python3
"""Checks a statistics file of `dass-gguf calibrate` (docs/stats.md) against an imatrix that
llama-imatrix wrote on the same model, text and chunks, with gguf-py and NumPy only.

    compare_stats.py REFERENCE.imatrix.gguf STATS.gguf [EXPORTED.imatrix.gguf] [--rtol 1e-4]

- every entry of the reference is in the statistics file, with the same length and token
  count, and its mean squares in_sum2 / counts agree element by element:
  |ours - ref| <= rtol * |ref| (printed: the largest relative difference of all);
- every in_outer is n x n, symmetric, its diagonal is in_sum2 (to 1e-6 relative), and
  in_sum[c]^2 <= counts * in_sum2[c] (Cauchy-Schwarz) up to rounding;
- the exported imatrix, when given, is general.type "imatrix" with exactly the statistics
  file's in_sum2 and counts, and its imatrix.chunk_count / chunk_size those of the stats.
Exit status 1 with the reasons when anything differs.
"""
import sys

import numpy as np
from gguf import GGUFReader


def field(reader, key):
    f = reader.get_field(key)
    if f is None:
        return None
    return f.contents()


def tensors(path):
    r = GGUFReader(path, "r")
    return r, {t.name: t for t in r.tensors}


def main() -> int:
    args = [a for a in sys.argv[1:]]
    rtol = 1e-4
    if "--rtol" in args:
        i = args.index("--rtol")
        rtol = float(args[i + 1])
        del args[i : i + 2]
    if len(args) not in (2, 3):
        sys.exit(__doc__)
    ref_r, ref = tensors(args[0])
    st_r, st = tensors(args[1])
    problems = []
    if field(st_r, "general.type") != "dass-stats":
        problems.append(f"general.type of the stats is {field(st_r, 'general.type')!r}")

    worst = (0.0, None)
    n_entries = 0
    for name, t in ref.items():
        if not name.endswith(".in_sum2"):
            continue
        w = name[: -len(".in_sum2")]
        n_entries += 1
        if name not in st:
            problems.append(f"{w}: missing from the statistics file")
            continue
        a = np.asarray(t.data, dtype=np.float64).reshape(-1)
        b = np.asarray(st[name].data, dtype=np.float64).reshape(-1)
        ca = float(np.asarray(ref[w + ".counts"].data).reshape(-1)[0])
        cb = float(np.asarray(st[w + ".counts"].data).reshape(-1)[0])
        if a.shape != b.shape:
            problems.append(f"{w}: {b.size} values, llama-imatrix has {a.size}")
            continue
        if ca != cb:
            problems.append(f"{w}: {cb} tokens, llama-imatrix counted {ca}")
            continue
        va, vb = a / ca, b / cb
        diff = np.abs(va - vb)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(va != 0, diff / np.abs(va), np.where(diff == 0, 0.0, np.inf))
        i = int(np.argmax(rel))
        if rel[i] > worst[0]:
            worst = (float(rel[i]), f"{w}[{i}]: {vb[i]!r} vs {va[i]!r}")
        if rel[i] > rtol:
            problems.append(f"{w}[{i}]: mean square {vb[i]!r}, llama-imatrix {va[i]!r}")
    if n_entries == 0:
        problems.append("the reference holds no in_sum2 entry")

    n_outer = 0
    for name, t in st.items():
        if not name.endswith(".in_outer"):
            continue
        n_outer += 1
        w = name[: -len(".in_outer")]
        s2 = np.asarray(st[w + ".in_sum2"].data, dtype=np.float64).reshape(-1)
        s1 = np.asarray(st[w + ".in_sum"].data, dtype=np.float64).reshape(-1)
        count = float(np.asarray(st[w + ".counts"].data).reshape(-1)[0])
        n = s2.size
        m = np.asarray(t.data, dtype=np.float64).reshape(n, n)
        if not np.array_equal(m, m.T):
            problems.append(f"{w}: in_outer is not symmetric")
        d = np.diag(m)
        if np.max(np.abs(d - s2) / np.maximum(np.abs(s2), 1e-30)) > 1e-6:
            problems.append(f"{w}: the diagonal of in_outer is not in_sum2")
        if np.any(s1 * s1 > count * s2 * (1 + 1e-5) + 1e-30):
            problems.append(f"{w}: in_sum^2 > counts * in_sum2")
    if n_outer == 0:
        problems.append("the statistics file holds no in_outer")

    if len(args) == 3:
        ex_r, ex = tensors(args[2])
        if field(ex_r, "general.type") != "imatrix":
            problems.append("the exported imatrix is not general.type imatrix")
        for key in ("chunk_count", "chunk_size"):
            if field(ex_r, f"imatrix.{key}") != field(st_r, f"dass.stats.{key}"):
                problems.append(f"imatrix.{key} differs from dass.stats.{key}")
        want = {k for k in st if k.endswith(".in_sum2") or k.endswith(".counts")}
        if set(ex) != want:
            problems.append("the exported imatrix does not hold exactly in_sum2 and counts")
        for k in want & set(ex):
            if not np.array_equal(np.asarray(ex[k].data), np.asarray(st[k].data)):
                problems.append(f"{k}: exported value differs from the statistics file")

    print(f"{n_entries} entries, {n_outer} matrices; largest relative difference {worst[0]:.3g}"
          f" ({worst[1]})")
    for p in problems[:20]:
        print("DIFFERS:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
