//! Writes a synthetic llama-architecture F16 GGUF with 7B shapes, and a matching GGUF imatrix,
//! for benchmarks at the size that matters (the real 7B files are not in the cache).
//!
//!     cargo run --release --example synth_model -- OUTDIR [--blocks 32] [--n-embd 4096]
//!         [--n-ff 14336] [--vocab 2048] [--seed 1]
//!
//! Writes `OUTDIR/model.f16.gguf` (Llama-2-7B / Mistral-7B shapes by default: n_embd 4096,
//! n_ff 14336, 32 blocks, 32 heads and 8 kv heads, so attn_k / attn_v are [4096, 1024]; about
//! 14 GB) and `OUTDIR/imatrix.gguf`. The weights are random: the model's output is noise, but
//! llama.cpp loads and runs it (it has a small SentencePiece-style vocabulary with byte
//! fallback tokens), and every tensor has the size, type and value statistics of a real one.
//!
//! The model is streamed through the library's [`GgufWriter`], one chunk at a time: memory stays
//! at a few chunk buffers whatever the model size. Generation runs on the rayon pool while a
//! second thread writes the previous chunk. Values come from a small counter-based generator
//! seeded per (seed, tensor, block of 65536 values), so the output is the same for any number
//! of threads.
//!
//! Values:
//! * matmul weights and embeddings: a bell-shaped variable (sum of three uniforms, rescaled to
//!   unit variance) times 0.02; one value in 4096 is an outlier, 4 to 12 times larger;
//! * norms (F32): 1 + 0.05 × the same variable;
//! * imatrix mean squares: log-normal (μ = −2, σ = 1) per input channel, with 4 channels per
//!   entry 100× larger; entries that share an input (q/k/v, gate/up) share their statistics,
//!   as in a real llama-imatrix file. Tensors are written as llama-imatrix writes them: sorted
//!   by name, `W.in_sum2` with ne [n_in] and `W.counts` with ne [1] (ggml drops the trailing
//!   dimension of 1 of [n_in, 1] and [1, 1]).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use dass_gguf::ggml_type::GgmlType;
use dass_gguf::gguf::{GgufLayout, GgufWriter, MetadataEntry, TensorSpec, Value, ValueType};

#[derive(Parser)]
#[command(about = "Write a synthetic llama F16 GGUF (7B shapes) and a matching GGUF imatrix")]
struct Args {
    /// Directory for model.f16.gguf and imatrix.gguf (created if missing).
    outdir: PathBuf,
    /// Number of transformer blocks.
    #[arg(long, default_value_t = 32)]
    blocks: u32,
    /// Hidden size.
    #[arg(long, default_value_t = 4096)]
    n_embd: u64,
    /// Feed-forward (intermediate) size.
    #[arg(long, default_value_t = 14336)]
    n_ff: u64,
    /// Vocabulary size (at least 512: specials, 256 byte tokens and pieces).
    #[arg(long, default_value_t = 2048)]
    vocab: u64,
    /// Attention heads (head dim = n_embd / heads).
    #[arg(long, default_value_t = 32)]
    heads: u64,
    /// Key/value heads (grouped-query attention).
    #[arg(long, default_value_t = 8)]
    kv_heads: u64,
    /// Seed of every random value.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

/// Values per independently seeded block (also the unit of parallel work).
const SUB: usize = 1 << 16;
/// Values per buffer handed to the writer thread (a multiple of SUB): 32 MiB of F16.
const CHUNK: usize = 256 * SUB;

const IMATRIX_CHUNKS: u32 = 100;
const IMATRIX_CHUNK_SIZE: u32 = 512;

// ---------------------------------------------------------------------------------------------
// Random numbers

/// SplitMix64's finaliser: a good 64-bit mixing function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// wyrand: one 64-bit add and one 128-bit multiply per output.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64, block: u64) -> Rng {
        Rng(mix(mix(seed ^ 0x5eed_0000_0000_0000)
            ^ mix(stream.wrapping_add(0x9e37_79b9_7f4a_7c15))
            ^ block))
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller; for the few thousand imatrix values only).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// One value of unit variance from one 64-bit draw: the sum of three 16-bit uniforms
/// (Irwin-Hall, bell-shaped, |z| ≤ 3), and, when the top 16 bits fall below 16 (p = 1/4096),
/// an outlier 4 to 12 times larger (the scale comes from the low bits of that same draw).
#[inline(always)]
fn bell(r: u64) -> f32 {
    // Sum of three U(0, 65536): mean 98304, variance 3 * 65536² / 12.
    const MEAN: f32 = 98_304.0;
    const INV_STD: f32 = 1.0 / 32_768.0;
    let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff);
    let z = (s as f32 - MEAN) * INV_STD;
    if (r >> 48) < 16 {
        z * (4.0 + (r & 7) as f32)
    } else {
        z
    }
}

// ---------------------------------------------------------------------------------------------
// Model description

#[derive(Clone, Copy)]
enum Fill {
    /// `std × bell`, written as F16.
    Weight { std: f32 },
    /// `1 + 0.05 × bell`, written as F32.
    Norm,
}

struct Tensor {
    name: String,
    dims: Vec<u64>,
    fill: Fill,
}

impl Tensor {
    fn weight(name: String, n_in: u64, n_out: u64) -> Tensor {
        Tensor {
            name,
            dims: vec![n_in, n_out],
            fill: Fill::Weight { std: 0.02 },
        }
    }

    fn norm(name: String, n: u64) -> Tensor {
        Tensor {
            name,
            dims: vec![n],
            fill: Fill::Norm,
        }
    }

    fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    fn ty(&self) -> GgmlType {
        match self.fill {
            Fill::Weight { .. } => GgmlType::F16,
            Fill::Norm => GgmlType::F32,
        }
    }
}

fn tensors(a: &Args) -> Vec<Tensor> {
    let head_dim = a.n_embd / a.heads;
    let n_embd_kv = head_dim * a.kv_heads;
    let mut out = vec![Tensor::weight(
        "token_embd.weight".into(),
        a.n_embd,
        a.vocab,
    )];
    for b in 0..a.blocks {
        let p = |s: &str| format!("blk.{b}.{s}.weight");
        out.push(Tensor::norm(p("attn_norm"), a.n_embd));
        out.push(Tensor::weight(p("attn_q"), a.n_embd, a.n_embd));
        out.push(Tensor::weight(p("attn_k"), a.n_embd, n_embd_kv));
        out.push(Tensor::weight(p("attn_v"), a.n_embd, n_embd_kv));
        out.push(Tensor::weight(p("attn_output"), a.n_embd, a.n_embd));
        out.push(Tensor::norm(p("ffn_norm"), a.n_embd));
        out.push(Tensor::weight(p("ffn_gate"), a.n_embd, a.n_ff));
        out.push(Tensor::weight(p("ffn_up"), a.n_embd, a.n_ff));
        out.push(Tensor::weight(p("ffn_down"), a.n_ff, a.n_embd));
    }
    out.push(Tensor::norm("output_norm.weight".into(), a.n_embd));
    out.push(Tensor::weight("output.weight".into(), a.n_embd, a.vocab));
    out
}

fn kv(key: &str, value: Value) -> Result<MetadataEntry> {
    Ok(MetadataEntry::new(key, &value)?)
}

fn string_array(items: &[String]) -> Value {
    Value::Array(
        ValueType::String,
        items.iter().map(|s| Value::string(s)).collect(),
    )
}

/// A SentencePiece-style ("llama") vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte-fallback
/// tokens `<0x00>`..`<0xFF>` (so any text tokenizes), then `▁`, single printable ASCII
/// characters with and without the `▁` word prefix, then letter pairs and triples, until
/// `n` tokens. Scores fall with the index (higher-scored merges first), as in a real model.
fn vocabulary(n: usize) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    const NORMAL: i32 = 1;
    const UNKNOWN: i32 = 2;
    const CONTROL: i32 = 3;
    const BYTE: i32 = 6;
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![UNKNOWN, CONTROL, CONTROL];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(BYTE);
    }
    let mut pieces: Vec<String> = vec!["\u{2581}".into()];
    for c in (0x21u8..0x7f).map(char::from) {
        pieces.push(format!("\u{2581}{c}"));
        pieces.push(c.to_string());
    }
    let letters: Vec<char> = ('a'..='z').collect();
    'pairs: for &x in &letters {
        for &y in &letters {
            if pieces.len() >= n {
                break 'pairs;
            }
            pieces.push(format!("\u{2581}{x}{y}"));
            pieces.push(format!("{x}{y}"));
        }
    }
    'triples: for &x in &letters {
        for &y in &letters {
            for &z in &letters {
                if pieces.len() >= n {
                    break 'triples;
                }
                pieces.push(format!("\u{2581}{x}{y}{z}"));
            }
        }
    }
    let first_piece = tokens.len();
    for p in pieces.into_iter().take(n - first_piece) {
        tokens.push(p);
        types.push(NORMAL);
    }
    let scores = (0..tokens.len())
        .map(|i| {
            if i < first_piece {
                0.0
            } else {
                -((i - first_piece) as f32)
            }
        })
        .collect();
    (tokens, scores, types)
}

fn model_metadata(a: &Args) -> Result<Vec<MetadataEntry>> {
    let (tokens, scores, types) = vocabulary(a.vocab as usize);
    let u32_of = |v: u64| -> Result<Value> { Ok(Value::U32(u32::try_from(v)?)) };
    Ok(vec![
        kv("general.architecture", Value::string("llama"))?,
        kv("general.type", Value::string("model"))?,
        kv("general.name", Value::string("synthetic-7b"))?,
        kv("general.file_type", Value::U32(1))?, // MOSTLY_F16
        kv("general.quantization_version", Value::U32(2))?,
        kv("llama.vocab_size", u32_of(a.vocab)?)?,
        kv("llama.context_length", Value::U32(4096))?,
        kv("llama.embedding_length", u32_of(a.n_embd)?)?,
        kv("llama.block_count", Value::U32(a.blocks))?,
        kv("llama.feed_forward_length", u32_of(a.n_ff)?)?,
        kv("llama.rope.dimension_count", u32_of(a.n_embd / a.heads)?)?,
        kv("llama.attention.head_count", u32_of(a.heads)?)?,
        kv("llama.attention.head_count_kv", u32_of(a.kv_heads)?)?,
        kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))?,
        kv("llama.rope.freq_base", Value::F32(10000.0))?,
        kv("tokenizer.ggml.model", Value::string("llama"))?,
        kv("tokenizer.ggml.pre", Value::string("default"))?,
        kv("tokenizer.ggml.tokens", string_array(&tokens))?,
        kv(
            "tokenizer.ggml.scores",
            Value::Array(ValueType::F32, scores.into_iter().map(Value::F32).collect()),
        )?,
        kv(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
        )?,
        kv("tokenizer.ggml.bos_token_id", Value::U32(1))?,
        kv("tokenizer.ggml.eos_token_id", Value::U32(2))?,
        kv("tokenizer.ggml.unknown_token_id", Value::U32(0))?,
        kv("tokenizer.ggml.add_bos_token", Value::Bool(true))?,
        kv("tokenizer.ggml.add_eos_token", Value::Bool(false))?,
    ])
}

// ---------------------------------------------------------------------------------------------
// Writing

enum Msg {
    /// F16 values of the current tensor (the buffer is sent back for reuse once written).
    Weights(Vec<f16>),
    /// Raw bytes of the current tensor.
    Bytes(Vec<u8>),
    /// The current tensor is complete.
    End,
}

/// Fills `out` with values `first..first + out.len()` of tensor `stream`.
fn fill_f16(seed: u64, stream: u64, std: f32, first: usize, out: &mut [f16]) {
    out.par_chunks_mut(SUB).enumerate().for_each(|(i, dst)| {
        let block = (first / SUB + i) as u64;
        let mut rng = Rng::new(seed, stream, block);
        let mut tmp = [0f32; 4096];
        for part in dst.chunks_mut(tmp.len()) {
            let vals = &mut tmp[..part.len()];
            for v in vals.iter_mut() {
                *v = std * bell(rng.next());
            }
            part.convert_from_f32_slice(vals);
        }
    });
}

fn norm_bytes(seed: u64, stream: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed, stream, 0);
    let vals: Vec<f32> = (0..n).map(|_| 1.0 + 0.05 * bell(rng.next())).collect();
    bytemuck::cast_slice(&vals).to_vec()
}

fn write_model(a: &Args, path: &Path) -> Result<u64> {
    let list = tensors(a);
    let specs = list
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty(),
        })
        .collect();
    let layout = GgufLayout::new(model_metadata(a)?, specs)?;
    let total = layout.total_len();
    let mut writer = GgufWriter::create(path, layout, &[], a.force)
        .with_context(|| format!("creating {}", path.display()))?;

    // Two buffers circulate: one is filled here while the writer thread writes the other, and
    // the writer sends each buffer back once written. (The `recycle` sender moves into the
    // writer thread, so if that thread stops, `spare.recv()` fails instead of blocking.)
    let (to_writer, from_main) = mpsc::sync_channel::<Msg>(1);
    let (recycle, spare) = mpsc::channel::<Vec<f16>>();
    for _ in 0..2 {
        let _ = recycle.send(Vec::with_capacity(CHUNK));
    }
    let n_tensors = list.len();
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handle = scope.spawn(move || -> Result<()> {
            for msg in from_main {
                match msg {
                    Msg::Weights(buf) => {
                        writer.write_tensor_bytes(bytemuck::cast_slice(&buf))?;
                        let _ = recycle.send(buf);
                    }
                    Msg::Bytes(bytes) => writer.write_tensor_bytes(&bytes)?,
                    Msg::End => writer.finish_tensor()?,
                }
            }
            writer.commit()?;
            Ok(())
        });
        let produced = (|| -> Result<()> {
            for (idx, t) in list.iter().enumerate() {
                let stream = idx as u64;
                let n = t.n_elements() as usize;
                match t.fill {
                    Fill::Norm => send(&to_writer, Msg::Bytes(norm_bytes(a.seed, stream, n)))?,
                    Fill::Weight { std } => {
                        let mut first = 0;
                        while first < n {
                            let len = CHUNK.min(n - first);
                            let mut buf = spare.recv().unwrap_or_default();
                            buf.resize(len, f16::ZERO);
                            fill_f16(a.seed, stream, std, first, &mut buf);
                            send(&to_writer, Msg::Weights(buf))?;
                            first += len;
                        }
                    }
                }
                send(&to_writer, Msg::End)?;
                if (idx + 1) % 45 == 0 || idx + 1 == n_tensors {
                    eprintln!(
                        "  {}/{} tensors, {:.1} s",
                        idx + 1,
                        n_tensors,
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(())
        })();
        drop(to_writer);
        let written = handle
            .join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))?;
        // A writer error explains a send failure, so report it first.
        written?;
        produced
    })?;
    Ok(total)
}

fn send(to_writer: &mpsc::SyncSender<Msg>, msg: Msg) -> Result<()> {
    to_writer
        .send(msg)
        .map_err(|_| anyhow::anyhow!("the writer thread stopped"))
}

// ---------------------------------------------------------------------------------------------
// Imatrix

/// Heavy-tailed mean squares for `n` input channels: log-normal, 4 channels 100× larger.
fn mean_squares(seed: u64, stream: u64, n: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed, stream, 0);
    let mut v: Vec<f32> = (0..n).map(|_| (-2.0 + rng.normal()).exp() as f32).collect();
    for _ in 0..4 {
        let i = (rng.next() % n as u64) as usize;
        v[i] *= 100.0;
    }
    v
}

fn write_imatrix(a: &Args, path: &Path) -> Result<()> {
    const BASE: u64 = 1 << 32; // imatrix streams, apart from the model's tensor streams
    let count = (IMATRIX_CHUNKS * IMATRIX_CHUNK_SIZE) as f32; // tokens seen by every entry
    let mut entries: Vec<(String, Vec<f32>)> = Vec::new();
    for b in 0..a.blocks {
        let s = BASE + u64::from(b) * 8;
        let hidden = mean_squares(a.seed, s, a.n_embd as usize);
        let attn_out = mean_squares(a.seed, s + 1, a.n_embd as usize);
        let ffn_in = mean_squares(a.seed, s + 2, a.n_embd as usize);
        let inter = mean_squares(a.seed, s + 3, a.n_ff as usize);
        for (w, v) in [
            ("attn_q", &hidden),
            ("attn_k", &hidden),
            ("attn_v", &hidden),
            ("attn_output", &attn_out),
            ("ffn_gate", &ffn_in),
            ("ffn_up", &ffn_in),
            ("ffn_down", &inter),
        ] {
            let sums = v.iter().map(|m| m * count).collect();
            entries.push((format!("blk.{b}.{w}.weight"), sums));
        }
    }
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    let mut specs = Vec::new();
    for (name, sums) in &entries {
        specs.push(TensorSpec {
            name: format!("{name}.in_sum2"),
            dims: vec![sums.len() as u64],
            ty: GgmlType::F32,
        });
        specs.push(TensorSpec {
            name: format!("{name}.counts"),
            dims: vec![1],
            ty: GgmlType::F32,
        });
    }
    let metadata = vec![
        kv("general.type", Value::string("imatrix"))?,
        kv(
            "imatrix.datasets",
            string_array(&["synthetic (synth_model example)".to_string()]),
        )?,
        kv("imatrix.chunk_count", Value::U32(IMATRIX_CHUNKS))?,
        kv("imatrix.chunk_size", Value::U32(IMATRIX_CHUNK_SIZE))?,
    ];
    let layout = GgufLayout::new(metadata, specs)?;
    let mut w = GgufWriter::create(path, layout, &[], a.force)
        .with_context(|| format!("creating {}", path.display()))?;
    for (_, sums) in &entries {
        w.write_tensor(bytemuck::cast_slice(sums))?;
        w.write_tensor(bytemuck::cast_slice(&[count]))?;
    }
    w.commit()?;
    Ok(())
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.vocab < 512 {
        bail!("--vocab must be at least 512");
    }
    if a.heads == 0 || a.kv_heads == 0 || a.n_embd % a.heads != 0 || a.heads % a.kv_heads != 0 {
        bail!("n_embd must be a multiple of --heads, and --heads a multiple of --kv-heads");
    }
    std::fs::create_dir_all(&a.outdir)
        .with_context(|| format!("creating {}", a.outdir.display()))?;
    let model = a.outdir.join("model.f16.gguf");
    let imatrix = a.outdir.join("imatrix.gguf");
    for p in [&model, &imatrix] {
        if p.exists() && !a.force {
            bail!("{} exists (use --force to replace it)", p.display());
        }
    }
    let start = Instant::now();
    write_imatrix(&a, &imatrix)?;
    eprintln!("wrote {}", imatrix.display());
    let bytes = write_model(&a, &model)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({:.2} GB) in {:.1} s ({:.0} MB/s)",
        model.display(),
        bytes as f64 / 1e9,
        secs,
        bytes as f64 / 1e6 / secs
    );
    Ok(())
}
