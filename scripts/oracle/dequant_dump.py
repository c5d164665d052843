#!/usr/bin/env python3
"""Dequantize the tensors of a GGUF file with gguf-py (the reference oracle).

    dequant_dump.py MODEL.gguf OUTDIR [--types Q4_K,Q6_K,...] [--name GLOB ...]

For every selected tensor writes OUTDIR/<tensor name>.f32: its values as little-endian
float32, row-major in GGUF data order (ne[0] varies fastest). OUTDIR/manifest.json lists
[{"name", "type" (ggml type name, e.g. "Q4_K"), "ne" (GGUF dims, ne[0] first), "file"}]
in the order the tensors appear in the file.
"""
import argparse
import fnmatch
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("outdir")
    ap.add_argument("--types", help="comma-separated ggml type names to dump (default: all)")
    ap.add_argument("--name", action="append", default=[],
                    help="only tensors whose name matches this glob (repeatable)")
    args = ap.parse_args()

    types = None
    if args.types:
        types = set()
        for t in args.types.split(","):
            t = t.strip().upper()
            if t not in GGMLQuantizationType.__members__:
                ap.error(f"unknown ggml type {t!r}")
            types.add(t)

    reader = GGUFReader(args.model, "r")
    os.makedirs(args.outdir, exist_ok=True)
    manifest = []
    for t in reader.tensors:
        tname = t.tensor_type.name
        if types is not None and tname not in types:
            continue
        if args.name and not any(fnmatch.fnmatchcase(t.name, g) for g in args.name):
            continue
        ne = [int(d) for d in t.shape]          # GGUF order: ne[0] first
        try:
            values = dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            sys.exit(f"dequant_dump: gguf-py cannot dequantize {t.name} of type {tname}")
        values = np.ascontiguousarray(values, dtype="<f4")
        # gguf-py's arrays are shaped reversed(ne); C order is the GGUF data order.
        if tuple(values.shape) != tuple(reversed(ne)):
            sys.exit(f"dequant_dump: {t.name}: got shape {values.shape}, expected {tuple(reversed(ne))}")
        fname = t.name.replace("/", "_") + ".f32"
        tmp = os.path.join(args.outdir, fname + ".tmp")
        with open(tmp, "wb") as f:
            f.write(values.tobytes(order="C"))
        os.replace(tmp, os.path.join(args.outdir, fname))
        manifest.append({"name": t.name, "type": tname, "ne": ne, "file": fname})

    if not manifest:
        sys.exit("dequant_dump: no tensor matched the selection")
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"dequant_dump: {len(manifest)} tensors -> {args.outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
