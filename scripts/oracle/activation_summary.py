#!/usr/bin/env python3
"""The per-layer imatrix summary of dass-gguf's reports, computed independently with gguf-py
and NumPy.

    activation_summary.py IMATRIX.gguf OUT.json

For every `blk.N.ROLE.weight` entry: the input mean squares in_sum2 / counts (float32, a count
of 0 taken as 1, per expert), then over the finite values their float64 mean and
np.quantile(..., [0, .1, .25, .5, .75, .9, 1]) (NumPy's default linear method).

{"<weight name>": {"block": N, "role": "ROLE", "columns": n, "mean": x,
                   "quantiles": [min, p10, p25, median, p75, p90, max]}}
"""
import json
import re
import sys

import numpy as np
from gguf import GGUFReader


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    reader = GGUFReader(sys.argv[1], "r")
    tensors = {t.name: t for t in reader.tensors}
    out = {}
    for name, t in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        weight = name[: -len(".in_sum2")]
        m = re.fullmatch(r"blk\.(\d+)\.(.+)\.weight", weight)
        if not m:
            continue
        ne0 = int(t.shape[0])
        sums = np.asarray(t.data, dtype=np.float32).reshape(-1)
        counts = np.asarray(tensors[weight + ".counts"].data, dtype=np.float32).reshape(-1)
        counts = np.where(counts == 0, np.float32(1), counts)
        mean_sq = (sums.reshape(-1, ne0) / counts.reshape(-1, 1)).astype(np.float32).reshape(-1)
        v = mean_sq.astype(np.float64)
        v = v[np.isfinite(v)]
        out[weight] = {
            "block": int(m.group(1)),
            "role": m.group(2),
            "columns": int(mean_sq.size),
            "mean": float(v.sum() / v.size),
            "quantiles": np.quantile(v, [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1]).tolist(),
        }
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
