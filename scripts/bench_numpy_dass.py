#!/usr/bin/env python3
"""DaSS at 50% unstructured in plain NumPy: the baseline a Python user would write.

    ~/.cache/dass-gguf/venv/bin/python scripts/bench_numpy_dass.py IN.gguf IMATRIX.gguf OUT.gguf

Used by scripts/bench.sh as the "NumPy" row. It follows docs/method.md for the
default scope (ffn_gate, ffn_up, ffn_down of every block; everything else copied):

  * v_W[c] = in_sum2[c] / counts (counts == 0 counts as 1), from the GGUF imatrix;
  * ffn_gate / ffn_up, rows = the n_ff intermediate channels: score |W[r][c]| * v_down[r]**0.25,
    and per input column c the floor(n_ff * 0.5) lowest scores are zeroed (stable argsort down
    the column, so among equal scores the lower row goes first);
  * ffn_down: Wanda, score |W[r][c]| * sqrt(v_down[c]), per row the floor(n_ff * 0.5) lowest.

Scores are float32, computed from the float32 value of each weight; pruned tensors keep their
type (F16/BF16/F32 zeros are exact; other types are refused). The model is read with gguf-py's
GGUFReader (memory-mapped) and written with gguf-py's GGUFWriter: every metadata key is copied
with its type, tensors in the same order. GGUFWriter keeps every tensor it is given until it
writes the file, so the pruned copies of all FFN tensors are held in memory at once (on top of
the float32 score and int64 argsort temporaries of the tensor being pruned): memory grows with
the model, which is why bench.sh skips this script for large inputs.
"""
from __future__ import annotations

import re
import sys
import time

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType, GGUFWriter

SPARSITY = 0.5
ALPHA = 0.5
FFN = re.compile(r"^blk\.(\d+)\.ffn_(gate|up|down)\.weight$")


def load_imatrix(path: str) -> dict[str, np.ndarray]:
    """Mean squares per weight name: in_sum2 / counts (one matrix per entry: dense models)."""
    r = GGUFReader(path)
    sums, counts = {}, {}
    for t in r.tensors:
        if t.name.endswith(".in_sum2"):
            sums[t.name[: -len(".in_sum2")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
        elif t.name.endswith(".counts"):
            counts[t.name[: -len(".counts")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
    v = {}
    for name, s in sums.items():
        c = counts[name][0]
        v[name] = s / (c if c != 0 else np.float32(1.0))
    return v


def prune(w: np.ndarray, scores: np.ndarray, axis: int) -> np.ndarray:
    """A copy of w with the floor(g * SPARSITY) lowest scores of every group along axis zeroed."""
    k = int(w.shape[axis] * SPARSITY)
    order = np.argsort(scores, axis=axis, kind="stable")
    out = np.array(w, copy=True)
    np.put_along_axis(out, np.take(order, np.arange(k), axis=axis), 0, axis=axis)
    return out


def copy_metadata(r: GGUFReader, w: GGUFWriter) -> None:
    for field in r.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # the header fields, and the key GGUFWriter writes itself
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    src, imatrix, dst = sys.argv[1:]
    start = time.time()
    v = load_imatrix(imatrix)
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    copy_metadata(r, w)

    pruned = zeroed = 0
    for t in r.tensors:
        data = t.data  # memory-mapped, numpy shape (rows, n_in)
        m = FFN.match(t.name)
        if m is None:
            if t.tensor_type in (QT.F32, QT.F16):
                w.add_tensor(t.name, data)
            else:  # byte rows of a quantized or BF16 tensor: copied as they are
                w.add_tensor(t.name, data, raw_shape=data.shape, raw_dtype=t.tensor_type)
            continue
        if t.tensor_type not in (QT.F32, QT.F16):
            raise SystemExit(f"{t.name}: {t.tensor_type.name} is not handled by this script")
        weights = np.asarray(data, dtype=np.float32)
        v_down = v[f"blk.{m.group(1)}.ffn_down.weight"]
        if m.group(2) == "down":
            # Wanda: one factor per input column, groups are rows.
            scores = np.abs(weights) * np.sqrt(v_down)[None, :]
            out = prune(data, scores, axis=1)
        else:
            # DaSS: one factor per row (intermediate channel), groups are input columns.
            scores = np.abs(weights) * (v_down ** np.float32(ALPHA / 2))[:, None]
            out = prune(data, scores, axis=0)
        del weights, scores
        w.add_tensor(t.name, out)
        pruned += 1
        groups, group_len = (out.shape[0], out.shape[1]) if m.group(2) == "down" else \
            (out.shape[1], out.shape[0])
        zeroed += groups * int(group_len * SPARSITY)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{dst}: DaSS 50% over {pruned} tensors, {zeroed} weights zeroed, "
          f"{time.time() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
