#!/usr/bin/env python3
"""Dump a GGUF imatrix (llama-imatrix's default output) as JSON with gguf-py.

    imatrix_dump.py IMATRIX.gguf OUT.json

{"datasets": [...], "chunk_count": N, "chunk_size": N,
 "entries": {"<weight name>": {"in_sum2": [...], "counts": [...], "ne0": int, "n_mat": int}}}

in_sum2 is expert-major (expert e is elements e*ne0 .. (e+1)*ne0), counts has one value per
expert. The values are the raw float32 numbers of the file; Python's repr of a float32
widened to double round-trips exactly.
"""
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader


def field(reader, key, required=True):
    f = reader.get_field(key)
    if f is None:
        if required:
            sys.exit(f"imatrix_dump: missing metadata key {key}")
        return None
    return f.contents()


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1:3]
    reader = GGUFReader(src, "r")
    gtype = field(reader, "general.type", required=False)
    if gtype != "imatrix":
        sys.exit(f"imatrix_dump: {src}: general.type is {gtype!r}, not 'imatrix'")

    sums, counts = {}, {}
    for t in reader.tensors:
        for suffix, dest in ((".in_sum2", sums), (".counts", counts)):
            if t.name.endswith(suffix):
                if t.tensor_type != GGMLQuantizationType.F32:
                    sys.exit(f"imatrix_dump: {t.name} is {t.tensor_type.name}, expected F32")
                dest[t.name[: -len(suffix)]] = t
                break
        # other tensors (unknown suffixes) are ignored, as llama.cpp does

    if set(sums) != set(counts):
        sys.exit(f"imatrix_dump: unpaired entries: {sorted(set(sums) ^ set(counts))}")

    entries = {}
    for name in sorted(sums):
        s, c = sums[name], counts[name]
        ne0 = int(s.shape[0])
        n_mat = int(s.shape[1]) if len(s.shape) > 1 else 1
        if int(np.prod(c.shape)) != n_mat:
            sys.exit(f"imatrix_dump: {name}: counts has {int(np.prod(c.shape))} values, expected {n_mat}")
        sv = np.ascontiguousarray(s.data, dtype=np.float32).reshape(-1)   # (n_mat, ne0) in C order
        cv = np.ascontiguousarray(c.data, dtype=np.float32).reshape(-1)
        entries[name] = {
            "in_sum2": [float(x) for x in sv],
            "counts": [float(x) for x in cv],
            "ne0": ne0,
            "n_mat": n_mat,
        }

    doc = {
        "datasets": list(field(reader, "imatrix.datasets")),
        "chunk_count": int(field(reader, "imatrix.chunk_count")),
        "chunk_size": int(field(reader, "imatrix.chunk_size")),
        "entries": entries,
    }
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")
    os.replace(out + ".tmp", out)
    print(f"imatrix_dump: {len(entries)} entries -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
