#!/usr/bin/env python3
"""Make the small test files in fixtures/ with tools nobody in this project wrote.

Run it with the venv that scripts/python-env.sh creates (gguf==0.19.0, numpy, safetensors):

    scripts/python-env.sh
    ~/.cache/dass-gguf/venv/bin/python scripts/make_fixtures.py [OUTDIR]

OUTDIR defaults to fixtures/ beside this script's directory. The output is deterministic (fixed
numpy seed, no timestamps): running the script again rewrites identical files, so the committed
fixtures can be checked with `git diff --exit-code fixtures/`. tests/fixtures.rs reads them.

GGUF files are written by gguf-py's GGUFWriter (add_* methods, so value types are gguf-py's own)
and every one is read back with gguf-py's GGUFReader into `<stem>.expected.json`: each metadata
key in file order with its GGUF type id, array element type and value, and each tensor's name,
ggml type, ne (ne[0] first), offset inside the data section and byte size. FLOAT32 and FLOAT64
values (scalars and array items) are given as their IEEE-754 bit patterns (integers), so the
Rust test compares them exactly without trusting a JSON float parser.

Files:

  tiny-llama.gguf       arch "llama" with realistic llama/tokenizer keys, plus one `test.*` key of
                        every metadata value type: u8 i8 u16 i16 u32 i32 f32 bool string u64 i64
                        f64, an empty string, non-ASCII strings, and arrays of i32, f32, strings
                        (with an empty and non-ASCII items), bools, u8, u64, f64 and an empty
                        array. Tensors: F32 1-D norms; F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1
                        weights (quantized with gguf.quants.quantize), 2-D, a 1-D Q5_1 and a 3-D
                        Q4_0 expert tensor. Every non-F32 tensor T is followed by `T.ref`, an F32
                        tensor of the same shape holding gguf.quants.dequantize(T), to compare
                        bit for bit. `blk.0.ffn_down.weight` (F16) has exactly 25% exact zeros
                        (for `inspect --zeros`); `token_embd.weight` (F16) and
                        `blk.0.ffn_up.weight` (BF16) contain -0, subnormals, +-inf and quiet NaNs.
  kquants.gguf          Q2_K Q3_K Q4_K Q5_K Q6_K TQ1_0 TQ2_0 IQ4_NL IQ4_XS MXFP4 tensors of random
                        raw bytes (a few blocks each) whose f16 scale fields were overwritten with
                        finite values, including a zero and a negative one (MXFP4 has an E8M0
                        exponent instead: random, plus 0, 1 and 127), each followed by `T.ref`.
                        Raw bytes go in as uint8 arrays of numpy shape (rows, bytes per row) with
                        raw_dtype=X; gguf-py turns the byte shape back into the element shape.
  aligned64.gguf        general.alignment = 64 (u32) and tensors of odd byte sizes (F32, F16, Q8_0,
                        I8, I16, I32, I64, F64), so that padding after every tensor and before the
                        data section matters.
  split-0000N-of-00002.gguf
                        one small llama model written by GGUFWriter(split_max_tensors=3):
                        model keys and split.no/split.count (u16), split.tensors.count (i32) in
                        shard 1, only the split keys in shard 2.
  imatrix.gguf          llama-imatrix's GGUF layout (no architecture key; general.type "imatrix",
                        imatrix.datasets array[string], imatrix.chunk_count u32,
                        imatrix.chunk_size u32; per weight W, sorted by name, `W.in_sum2` (raw sums
                        of squares, F32 ne [n_in, n_mat]) then `W.counts` (F32 ne [1, n_mat])).
                        blk.0.ffn_down.weight (n_in 64) is stored 2-D [64, 1] and [1, 1];
                        blk.0.ffn_gate.weight (n_in 32) 1-D [32] and [1], as ggml's writer does
                        (it drops trailing 1-dims); blk.0.ffn_down_exps.weight has n_mat 4 with
                        expert 1 never routed (count 0, sums 0).
  imatrix.dat           the dense entries in llama.cpp's legacy format (save_imatrix_legacy:
                        i32 n_entries; per entry sorted by name i32 name length, name, i32 ncall,
                        i32 nval, f32 values = mean square * ncall; trailer i32 chunk count, i32
                        dataset length, dataset bytes).
  imatrix-notrailer.dat the same without the trailer (files from before the trailer existed).
  imatrix.expected.json normalised mean squares per entry and file, computed in numpy float32 as
                        formats.md section 4 says (GGUF: in_sum2 / counts, a count of 0 taken as 1;
                        .dat: values / ncall), as bit patterns (`mean_sq_bits`) and as numbers,
                        plus counts, ncall, datasets, chunk count and chunk size; and under
                        "gguf_header" the GGUFReader view of imatrix.gguf.
  tiny.safetensors      safetensors.numpy.save_file with F32 and F16 tensors and __metadata__
                        (BF16 cannot be made with numpy).
  tiny.expected.json    its header as written: metadata, and tensors (name, dtype, shape) in data
                        order.
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import safetensors.numpy
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

SEED = 20240611


class Writer(GGUFWriter):
    """GGUFWriter that can also write an empty array.

    gguf-py refuses empty arrays ("Invalid GGUF metadata array. Empty array") although ggml writes
    and reads them (gguf_set_arr_data with n = 0). Only that case is handled here: element type,
    then a count of 0. Everything else is gguf-py's own encoding.
    """

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):  # type: ignore[override]
        if vtype == VT.ARRAY and len(val) == 0:
            if sub_type is None:
                raise ValueError("an empty array needs an explicit element type")
            out = self._pack("I", vtype) if add_vtype else b""
            return out + self._pack("I", sub_type) + self._pack("Q", 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def write(writer: GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ---------------------------------------------------------------------------------------------
# What gguf-py's reader sees, as JSON


def f32_bits(v) -> int:
    return int(np.asarray(v, dtype=np.float32).reshape(()).view(np.uint32))


def f64_bits(v) -> int:
    return int(np.asarray(v, dtype=np.float64).reshape(()).view(np.uint64))


def scalar_json(part: np.ndarray, vtype: VT):
    if vtype == VT.FLOAT32:
        return f32_bits(part[0])
    if vtype == VT.FLOAT64:
        return f64_bits(part[0])
    if vtype == VT.BOOL:
        return bool(part[0])
    if vtype == VT.STRING:
        return bytes(part).decode("utf-8")
    return int(part[0])


def field_json(field) -> dict:
    """One metadata key as GGUFReader decoded it. parts = [key len, key, type, value parts...]."""
    vtype = VT(int(field.parts[2][0]))
    out: dict = {"key": field.name, "type": int(vtype), "type_name": vtype.name}
    if vtype == VT.ARRAY:
        # The element type and count are parts 3 and 4; for an empty array `types` has no
        # element type, so read it from the file's bytes rather than from `types`.
        elem = VT(int(field.parts[3][0]))
        count = int(field.parts[4][0])
        items = [scalar_json(field.parts[i], elem) for i in field.data]
        assert len(items) == count, field.name
        out.update(elem_type=int(elem), elem_type_name=elem.name, value=items)
    else:
        out["value"] = scalar_json(field.parts[-1], vtype)
    return out


def reader_json(path: Path) -> dict:
    r = GGUFReader(path)
    metadata = [field_json(f) for name, f in r.fields.items() if not name.startswith("GGUF.")]
    tensors = []
    for t in r.tensors:
        # tensor info parts: name len, name, n_dims, dims, type, offset
        n_dims = int(t.field.parts[2][0])
        tensors.append({
            "name": t.name,
            "type": int(t.tensor_type),
            "type_name": t.tensor_type.name,
            "ne": [int(d) for d in t.field.parts[3]],
            "n_dims": n_dims,
            "offset": int(t.field.parts[5][0]),
            "n_bytes": int(t.n_bytes),
            "n_elements": int(t.n_elements),
        })
        assert t.data_offset == r.data_offset + tensors[-1]["offset"]
    return {
        "file": path.name,
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "file_size": path.stat().st_size,
        "metadata": metadata,
        "tensors": tensors,
    }


def dump_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_expected(path: Path) -> None:
    dump_json(reader_json(path), path.with_name(path.name.removesuffix(".gguf") + ".expected.json"))


# ---------------------------------------------------------------------------------------------
# Tensors


def add_with_ref(w: GGUFWriter, name: str, values: np.ndarray, qtype: QT) -> None:
    """Adds `name` quantized to qtype, then `name.ref`: gguf-py's dequantization of those bytes."""
    if qtype == QT.F16:
        data = values.astype(np.float16)
        w.add_tensor(name, data)
        ref = dequantize(data.view(np.uint8), QT.F16)
    else:
        data = quantize(values.astype(np.float32), qtype)
        w.add_tensor(name, data, raw_dtype=qtype)
        ref = dequantize(data, qtype)
    assert ref.dtype == np.float32 and ref.shape == values.shape, (name, ref.shape)
    w.add_tensor(name + ".ref", np.ascontiguousarray(ref))


def weights(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 0.5) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def make_tiny_llama(out: Path, rng: np.random.Generator) -> None:
    n_vocab, n_embd, n_ff, n_head, n_head_kv, n_expert = 32, 64, 96, 4, 2, 2
    w = Writer(out / "tiny-llama.gguf", "llama")

    # Model keys, through the same add_* calls convert_hf_to_gguf.py uses.
    w.add_name("tiny-llama-fixture")
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    w.add_file_type(7)  # MOSTLY_Q8_0
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(n_vocab - 6)] + ["▁the", "é", "日本"]
    w.add_token_list(tokens)
    w.add_token_scores([float(-i) / 4 for i in range(n_vocab)])
    w.add_token_types([2, 3, 3] + [1] * (n_vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_quantization_version(2)

    # One custom key of every value type.
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 65000)
    w.add_int16("test.i16", -32000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 3.14159)
    w.add_float32("test.f32_neg_zero", -0.0)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "hello, gguf")
    # add_string skips empty strings, so this one goes through add_key_value.
    w.add_key_value("test.string_empty", "", VT.STRING)
    w.add_string("test.string_unicode", "héllo wörld — 日本語 🦙")
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -(2**63))
    w.add_float64("test.f64", -1.2345678901234567e300)
    w.add_array("test.array_i32", [1, -2, 3, 2**31 - 1, -(2**31)])
    w.add_array("test.array_f32", [0.5, -1.25, 3.0e-5, 1e30])
    w.add_array("test.array_string", ["a", "", "ünïcødé", "日本", "last"])
    w.add_array("test.array_bool", [True, False, True])
    w.add_key_value("test.array_u8", [0, 1, 127, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("test.array_u64", [0, 2**64 - 1], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("test.array_f64", [0.1, -2.5e-300], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_key_value("test.array_empty", [], VT.ARRAY, sub_type=VT.INT32)

    # token_embd: F16 with special values; numpy shape (rows, ne0) -> ne [ne0, rows].
    emb = weights(rng, (n_vocab, n_embd))
    emb[0, :8] = [-0.0, 0.0, 6.0e-8, -6.0e-8, np.inf, -np.inf, np.nan, -np.nan]
    emb[1, 0] = 65504.0  # largest finite f16
    add_with_ref(w, "token_embd.weight", emb, QT.F16)
    w.add_tensor("blk.0.attn_norm.weight", (1.0 + weights(rng, (n_embd,), 0.1)))
    add_with_ref(w, "blk.0.attn_q.weight", weights(rng, (n_embd, n_embd)), QT.Q8_0)
    add_with_ref(w, "blk.0.attn_k.weight", weights(rng, (n_head_kv * 16, n_embd)), QT.Q4_0)
    add_with_ref(w, "blk.0.attn_v.weight", weights(rng, (n_head_kv * 16, n_embd)), QT.Q4_1)
    add_with_ref(w, "blk.0.attn_output.weight", weights(rng, (n_embd, n_embd)), QT.Q5_0)
    w.add_tensor("blk.0.ffn_norm.weight", (1.0 + weights(rng, (n_embd,), 0.1)))
    add_with_ref(w, "blk.0.ffn_gate.weight", weights(rng, (n_ff, n_embd)), QT.Q5_1)
    up = weights(rng, (n_ff, n_embd))
    up[0, :6] = [-0.0, np.inf, -np.inf, np.nan, 1e-40, -3.0e38]
    add_with_ref(w, "blk.0.ffn_up.weight", up, QT.BF16)

    # ffn_down: F16 with exactly 25% exact zeros (+0 and -0), none elsewhere.
    down = rng.uniform(0.05, 1.0, (n_embd, n_ff)).astype(np.float32)
    down *= np.where(rng.random(down.shape) < 0.5, -1.0, 1.0).astype(np.float32)
    flat = down.reshape(-1)
    zero_at = rng.permutation(flat.size)[: flat.size // 4]
    flat[zero_at] = 0.0
    flat[zero_at[::2]] = -0.0
    assert np.count_nonzero(down.astype(np.float16) == 0) * 4 == down.size
    add_with_ref(w, "blk.0.ffn_down.weight", down, QT.F16)

    add_with_ref(w, "blk.0.ffn_up_exps.weight", weights(rng, (n_expert, 32, n_embd)), QT.Q4_0)
    add_with_ref(w, "blk.0.test_vec.weight", weights(rng, (n_embd,)), QT.Q5_1)
    w.add_tensor("output_norm.weight", (1.0 + weights(rng, (n_embd,), 0.1)))
    add_with_ref(w, "output.weight", weights(rng, (n_vocab, n_embd)), QT.Q8_0)
    write(w)
    write_expected(out / "tiny-llama.gguf")


# Byte offsets of the ggml_half fields in each block (ggml-common.h block structs).
HALF_FIELDS = {
    QT.Q2_K: [80, 82],   # scales[16] qs[64] d dmin
    QT.Q3_K: [108],      # hmask[32] qs[64] scales[12] d
    QT.Q4_K: [0, 2],     # d dmin scales[12] qs[128]
    QT.Q5_K: [0, 2],     # d dmin scales[12] qh[32] qs[128]
    QT.Q6_K: [208],      # ql[128] qh[64] scales[16] d
    QT.TQ1_0: [52],      # qs[48] qh[4] d
    QT.TQ2_0: [64],      # qs[64] d
    QT.IQ4_NL: [0],      # d qs[16]
    QT.IQ4_XS: [0],      # d scales_h scales_l[4] qs[128]
    QT.MXFP4: [],        # e (E8M0) qs[16]
}


def make_kquants(out: Path, rng: np.random.Generator) -> None:
    w = Writer(out / "kquants.gguf", "llama")
    w.add_name("kquants-fixture")
    w.add_quantization_version(2)
    for qtype, halves in HALF_FIELDS.items():
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        rows, blocks_per_row = (2, 2) if block_size == 256 else (2, 4)
        raw = rng.integers(0, 256, (rows * blocks_per_row, type_size), dtype=np.uint8)
        n_blocks = raw.shape[0]
        for off in halves:
            scales = (rng.uniform(0.001, 0.5, n_blocks) * rng.choice([-1.0, 1.0], n_blocks)).astype(np.float16)
            scales[0] = 0.0              # a zero scale
            scales[1] = -abs(scales[1])  # a negative one
            raw[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
        if qtype == QT.MXFP4:
            e = rng.integers(110, 135, n_blocks, dtype=np.uint8)
            e[:3] = [0, 1, 127]  # the two subnormal encodings and 1.0
            raw[:, 0] = e
        data = raw.reshape(rows, blocks_per_row * type_size)
        try:
            ref = dequantize(data, qtype)
        except NotImplementedError:
            print(f"skipping {qtype.name}: gguf-py cannot dequantize it", file=sys.stderr)
            continue
        name = f"blk.0.{qtype.name.lower()}.weight"
        w.add_tensor(name, data, raw_dtype=qtype)
        assert ref.shape == (rows, blocks_per_row * block_size)
        w.add_tensor(name + ".ref", np.ascontiguousarray(ref.astype(np.float32)))
    write(w)
    write_expected(out / "kquants.gguf")


def make_aligned64(out: Path, rng: np.random.Generator) -> None:
    w = Writer(out / "aligned64.gguf", "llama")
    w.add_custom_alignment(64)
    w.add_name("aligned64-fixture")
    w.add_string("test.note", "odd tensor sizes, alignment 64")
    w.add_tensor("odd.f32", weights(rng, (3,)))                                  # 12 bytes
    w.add_tensor("odd.f16", weights(rng, (5,)).astype(np.float16))               # 10 bytes
    w.add_tensor("odd.q8_0", quantize(weights(rng, (32,)), QT.Q8_0), raw_dtype=QT.Q8_0)  # 34
    w.add_tensor("odd.i8", rng.integers(-128, 128, (13,), dtype=np.int8))       # 13 bytes
    w.add_tensor("odd.i16", rng.integers(-(2**15), 2**15, (3, 7), dtype=np.int16))  # 42 bytes
    w.add_tensor("odd.i32", rng.integers(-(2**31), 2**31, (7,), dtype=np.int32))    # 28 bytes
    w.add_tensor("odd.i64", rng.integers(-(2**63), 2**63 - 1, (5,), dtype=np.int64))  # 40 bytes
    w.add_tensor("odd.f64", rng.standard_normal((9,)))                           # 72 bytes
    w.add_tensor("odd.f32_2d", weights(rng, (3, 5)))                             # 60 bytes
    write(w)
    write_expected(out / "aligned64.gguf")


def make_split(out: Path, rng: np.random.Generator) -> None:
    n_embd, n_ff = 32, 64
    w = Writer(out / "split.gguf", "llama", split_max_tensors=3)
    w.add_name("split-fixture")
    w.add_context_length(64)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(1)  # MOSTLY_F16
    w.add_tensor("token_embd.weight", weights(rng, (16, n_embd)).astype(np.float16))
    w.add_tensor("blk.0.attn_norm.weight", 1.0 + weights(rng, (n_embd,), 0.1))
    w.add_tensor("blk.0.ffn_gate.weight", weights(rng, (n_ff, n_embd)).astype(np.float16))
    w.add_tensor("blk.0.ffn_up.weight", weights(rng, (n_ff, n_embd)).astype(np.float16))
    w.add_tensor("blk.0.ffn_down.weight", weights(rng, (n_embd, n_ff)).astype(np.float16))
    write(w)
    for no in (1, 2):
        path = out / f"split-{no:05d}-of-00002.gguf"
        assert path.exists(), f"gguf-py did not write {path.name}"
        write_expected(path)


# ---------------------------------------------------------------------------------------------
# imatrix

DATASET = "data/calibration-wiki.txt"
CHUNK_COUNT = 10
CHUNK_SIZE = 512


def make_imatrix(out: Path, rng: np.random.Generator) -> None:
    tokens = CHUNK_COUNT * CHUNK_SIZE
    # name -> (n_in, counts per expert); sorted by name as llama-imatrix writes them
    entries = {
        "blk.0.ffn_down.weight": (64, [tokens]),
        "blk.0.ffn_down_exps.weight": (16, [1900, 0, 1210, 1986]),
        "blk.0.ffn_gate.weight": (32, [tokens]),
    }
    assert list(entries) == sorted(entries)
    sums = {}
    for name, (n_in, counts) in entries.items():
        mean_sq = rng.gamma(2.0, 0.05, (len(counts), n_in)).astype(np.float32)
        in_sum2 = (mean_sq * np.asarray(counts, dtype=np.float32)[:, None]).astype(np.float32)
        sums[name] = (in_sum2, np.asarray(counts, dtype=np.float32).reshape(len(counts), 1))

    # GGUF. An empty arch means GGUFWriter writes no general.architecture, like llama-imatrix.
    w = Writer(out / "imatrix.gguf", "")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", [DATASET])
    w.add_uint32("imatrix.chunk_count", CHUNK_COUNT)
    w.add_uint32("imatrix.chunk_size", CHUNK_SIZE)
    for name, (in_sum2, counts) in sums.items():
        if name == "blk.0.ffn_gate.weight":
            # ggml's gguf writer drops trailing 1-dims: ne [n_in] and [1].
            w.add_tensor(name + ".in_sum2", in_sum2.reshape(-1))
            w.add_tensor(name + ".counts", counts.reshape(-1))
        else:
            # numpy (n_mat, n_in) -> ne [n_in, n_mat]; (n_mat, 1) -> ne [1, n_mat]
            w.add_tensor(name + ".in_sum2", in_sum2)
            w.add_tensor(name + ".counts", counts)
    write(w)

    expected: dict = {"gguf": {}, "dat": {}}
    for name, (in_sum2, counts) in sums.items():
        divisor = np.where(counts == 0, np.float32(1), counts).astype(np.float32)
        mean_sq = (in_sum2 / divisor).astype(np.float32)
        expected["gguf"][name] = {
            "n_mat": int(in_sum2.shape[0]),
            "len_per_matrix": int(in_sum2.shape[1]),
            "counts": [float(c) for c in counts.reshape(-1)],
            "mean_sq_bits": [f32_bits(v) for v in mean_sq.reshape(-1)],
            "mean_sq": [float(v) for v in mean_sq.reshape(-1)],
        }

    # Legacy .dat, dense entries only, as save_imatrix_legacy writes them.
    dense = [n for n, (_, c) in sums.items() if c.size == 1]
    body = bytearray(struct.pack("<i", len(dense)))
    for name in dense:
        in_sum2, counts = sums[name]
        ncall = int(np.ceil(counts.max() / CHUNK_SIZE))
        values = ((in_sum2 / counts) * np.float32(ncall)).astype(np.float32).reshape(-1)
        encoded = name.encode()
        body += struct.pack("<i", len(encoded)) + encoded
        body += struct.pack("<ii", ncall, values.size) + values.astype("<f4").tobytes()
        mean_sq = (values / np.float32(ncall)).astype(np.float32)
        expected["dat"][name] = {
            "n_mat": 1,
            "len_per_matrix": int(values.size),
            "ncall": ncall,
            "mean_sq_bits": [f32_bits(v) for v in mean_sq],
            "mean_sq": [float(v) for v in mean_sq],
        }
    (out / "imatrix-notrailer.dat").write_bytes(bytes(body))
    encoded = DATASET.encode()
    trailer = struct.pack("<ii", CHUNK_COUNT, len(encoded)) + encoded
    (out / "imatrix.dat").write_bytes(bytes(body) + trailer)

    expected.update(datasets=[DATASET], chunk_count=CHUNK_COUNT, chunk_size=CHUNK_SIZE)
    expected["gguf_header"] = reader_json(out / "imatrix.gguf")
    dump_json(expected, out / "imatrix.expected.json")


# ---------------------------------------------------------------------------------------------
# safetensors


def make_safetensors(out: Path, rng: np.random.Generator) -> None:
    path = out / "tiny.safetensors"
    tensors = {
        "model.embed_tokens.weight": weights(rng, (16, 8)).astype(np.float16),
        "model.layers.0.mlp.down_proj.weight": weights(rng, (8, 24)),
        "model.layers.0.mlp.gate_proj.weight": weights(rng, (24, 8)).astype(np.float16),
        "model.norm.weight": 1.0 + weights(rng, (8,), 0.1),
    }
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "pt", "source": "make_fixtures.py"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    dump_json({
        "metadata": meta,
        "tensors": [{"name": k, "dtype": header[k]["dtype"], "shape": header[k]["shape"]} for k in order],
    }, out / "tiny.expected.json")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "fixtures"
    out.mkdir(parents=True, exist_ok=True)
    # One generator per file, so changing one file does not change the others.
    make_tiny_llama(out, np.random.default_rng(SEED))
    make_kquants(out, np.random.default_rng(SEED + 1))
    make_aligned64(out, np.random.default_rng(SEED + 2))
    make_split(out, np.random.default_rng(SEED + 3))
    make_imatrix(out, np.random.default_rng(SEED + 4))
    make_safetensors(out, np.random.default_rng(SEED + 5))
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote fixtures to {out} ({total} bytes in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
