//! Carrying out a [`Plan`]: check the weights, then stream every tensor into the output,
//! copied byte for byte, cut, refitted or pruned, one tensor (one expert) at a time. The rules
//! and the factors were settled by the plan; this module dequantizes, runs the kernels (and the
//! refits of [`crate::refit`], with the statistics file's matrices) and encodes.
//!
//! Memory stays near one pruned matrix held as f32 plus its mask and encoded output (about
//! 9 bytes per weight of the largest matrix), whatever the model size; a refitted matrix adds
//! itself as f64 and a few `n_in × n_in` f64 matrices (its input's second moment and factor).
//! Work inside a tensor is parallel (dequantization, scoring, selection, encoding, refits);
//! tensors go out in file order.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::channels::Cut;
use crate::dequant::dequantize;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::{GgufLayout, GgufWriter, TensorInfo};
use crate::kernels::{select_zeros, Axis, Scale};
use crate::plan::{Action, Plan, PruneStep};
use crate::refit::Factor;
use crate::rules::Groups;
use crate::scores;
use crate::source::{Piece, Source};
use crate::stats::Stats;

mod cut;
mod refit;
use cut::cut_tensor_into;
use refit::{check_refitted, refit_columns, update_masked, Factors};

/// Receives progress: which tensor is being worked on, and input bytes done.
pub trait Progress: Sync {
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    fn tensor(&self, _name: &str) {}
    fn advance(&self, _bytes: u64) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The outcome of a conversion (what was pruned is the plan's, checked weight for weight).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub pruned: usize,
    pub copied: usize,
    pub seconds: f64,
    pub output_bytes: u64,
}

/// Elements handled per parallel work item when dequantizing or encoding.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// Runs the plan and writes `output` atomically. `stats` is the statistics file the plan's
/// refits read. `inputs` are every file the conversion reads (model shards, imatrix,
/// statistics); the writer refuses an output that is one of them, or that exists unless
/// `overwrite`.
pub fn execute(
    model: &Source,
    plan: &Plan,
    stats: Option<&Stats>,
    output: &Path,
    inputs: &[&Path],
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let start = Instant::now();
    if plan.refit.is_some() && stats.is_none() {
        return Err(Error::Plan(
            "internal error: the plan refits weights but no statistics file was given".into(),
        ));
    }
    check_weights_finite(model, plan, progress)?;

    let specs = plan.tensors.iter().map(|t| t.output_spec()).collect();
    let layout = GgufLayout::new(plan.metadata.clone(), specs)?;
    let output_bytes = layout.total_len();
    let writer = GgufWriter::create(output, layout, inputs, overwrite)?;

    let total: u64 = plan.tensors.iter().map(|t| t.info.n_bytes).sum();
    progress.phase("writing", total);
    // Writing runs on its own thread so the next tensor is computed while this one is
    // written; buffers travel back to be reused, so at most a few are ever alive.
    let (pruned, copied) = std::thread::scope(|scope| -> Result<_> {
        let (to_writer, pieces) = mpsc::sync_channel::<ToWriter>(2);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        let write_thread = scope.spawn(move || write_pieces(writer, pieces, recycle));
        let produced = produce(model, plan, stats, progress, &to_writer, &recycled);
        if produced.is_ok() {
            // Only a complete run asks for the rename; otherwise the temp file is dropped.
            let _ = to_writer.send(ToWriter::Commit);
        }
        drop(to_writer);
        let written = write_thread
            .join()
            .unwrap_or_else(|_| Err(Error::WriterState("the writer thread panicked".into())));
        // A writer error (say, a full disk) is the root cause when both failed.
        written?;
        produced
    })?;
    Ok(Outcome {
        pruned,
        copied,
        seconds: start.elapsed().as_secs_f64(),
        output_bytes,
    })
}

/// What the compute side hands to the writer thread.
enum ToWriter<'a> {
    /// The next bytes of the current tensor: mapped from a GGUF input, or made (a pruned
    /// matrix, a piece of a checkpoint tensor), in which case the buffer is sent back for reuse.
    Bytes(Piece<'a>),
    /// The current tensor is complete.
    EndTensor,
    /// Everything was produced: rename the file into place.
    Commit,
}

fn write_pieces(
    mut writer: GgufWriter,
    pieces: mpsc::Receiver<ToWriter<'_>>,
    recycle: mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    for piece in pieces {
        match piece {
            ToWriter::Bytes(Piece::Mapped(bytes)) => writer.write_tensor_bytes(bytes)?,
            ToWriter::Bytes(Piece::Made(buf)) => {
                writer.write_tensor_bytes(&buf)?;
                let _ = recycle.send(buf);
            }
            ToWriter::EndTensor => writer.finish_tensor()?,
            ToWriter::Commit => return writer.commit(),
        }
    }
    // The producer stopped early (it reports why); dropping the writer deletes the temp file.
    Ok(())
}

/// Walks the plan in file order, sending copied bytes and pruned matrices to the writer.
fn produce<'a>(
    model: &'a Source,
    plan: &Plan,
    stats: Option<&Stats>,
    progress: &dyn Progress,
    to_writer: &mpsc::SyncSender<ToWriter<'a>>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) -> Result<(usize, usize)> {
    // A send fails only when the writer thread has stopped on an error of its own.
    let send = |piece: ToWriter<'a>| {
        to_writer
            .send(piece)
            .map_err(|_| Error::WriterState("the writer stopped".into()))
    };
    let mut pruned = 0;
    let mut copied = 0;
    let mut buffers = Buffers::default();
    let mut factors = Factors::new(stats);
    // Prunes one tensor matrix by matrix, each matrix sent as soon as it is done.
    let prune_and_send = |name: &str,
                          info: &TensorInfo,
                          data: &[u8],
                          step: &PruneStep,
                          update: Option<&Factor>,
                          buffers: &mut Buffers|
     -> Result<()> {
        let zeroed = prune_tensor(name, info, data, step, update, buffers, |out| {
            send(ToWriter::Bytes(Piece::Made(out)))?;
            Ok(recycled.try_recv().unwrap_or_default())
        })?;
        send(ToWriter::EndTensor)?;
        if zeroed != step.zeroed {
            return Err(Error::Tensor {
                tensor: name.to_string(),
                message: format!(
                    "internal error: planned to zero {} weights, zeroed {zeroed}",
                    step.zeroed
                ),
            });
        }
        Ok(())
    };
    for t in &plan.tensors {
        progress.tensor(&t.info.name);
        let name = &t.info.name;
        // SparseGPT's factor of the tensor's (kept) input, when its kept weights are refitted.
        let kept_inputs = match &t.cut {
            Some((Cut::Columns(kept), _)) => Some(kept.as_slice()),
            _ => None,
        };
        let factor = |factors: &mut Factors<'_>| -> Result<Option<Arc<Factor>>> {
            match t.refit.as_ref().filter(|r| r.masked) {
                Some(r) => factors.get(name, r, kept_inputs).map(Some),
                None => Ok(None),
            }
        };
        match (&t.cut, &t.action) {
            (Some((cut, cut_info)), action) => {
                let data = model.tensor_data(t.source)?;
                // Reuse a buffer the writer has finished with: at most a few are ever alive.
                let buffer = recycled.try_recv().unwrap_or_default();
                let refit_columns_of = t.refit.as_ref().filter(|r| r.channels);
                let (cut_bytes, cut_info) = match (refit_columns_of, cut, stats) {
                    (Some(r), Cut::Columns(kept), Some(stats)) => {
                        let values = refit_columns(&t.info, &data, kept, stats, r)?;
                        match action {
                            Action::Copy => {
                                check_refitted(&values, cut_info.ty, name)?;
                                let mut out = buffer;
                                encode(cut_info.ty, &values, &mut out)?;
                                (out, cut_info.clone())
                            }
                            // Pruning reads the refitted weights as F32.
                            Action::Prune(_) => {
                                let mut out = buffer;
                                encode(GgmlType::F32, &values, &mut out)?;
                                let mut info = cut_info.clone();
                                info.ty = GgmlType::F32;
                                info.n_bytes = out.len() as u64;
                                (out, info)
                            }
                        }
                    }
                    _ => (
                        cut_tensor_into(&t.info, &data, cut, cut_info, buffer)?,
                        cut_info.clone(),
                    ),
                };
                match action {
                    Action::Copy => {
                        send(ToWriter::Bytes(Piece::Made(cut_bytes)))?;
                        send(ToWriter::EndTensor)?;
                        copied += 1;
                    }
                    Action::Prune(step) => {
                        let f = factor(&mut factors)?;
                        prune_and_send(
                            name,
                            &cut_info,
                            &cut_bytes,
                            step,
                            f.as_deref(),
                            &mut buffers,
                        )?;
                        pruned += 1;
                    }
                }
                progress.advance(data.len() as u64);
            }
            (None, Action::Copy) => {
                model.tensor_pieces(
                    t.source,
                    8 << 20,
                    || recycled.try_recv().unwrap_or_default(),
                    |piece| {
                        let n = piece.bytes().len() as u64;
                        send(ToWriter::Bytes(piece))?;
                        progress.advance(n);
                        Ok(())
                    },
                )?;
                send(ToWriter::EndTensor)?;
                copied += 1;
            }
            (None, Action::Prune(step)) => {
                let data = model.tensor_data(t.source)?;
                let f = factor(&mut factors)?;
                prune_and_send(name, &t.info, &data, step, f.as_deref(), &mut buffers)?;
                progress.advance(data.len() as u64);
                pruned += 1;
            }
        }
    }
    Ok((pruned, copied))
}

/// NaN or infinite weights in a tensor to be pruned (or re-encoded after a cut) are an error,
/// found before the output is created. Copied tensors are not looked at: their bytes pass
/// through unchanged.
fn check_weights_finite(model: &Source, plan: &Plan, progress: &dyn Progress) -> Result<()> {
    let todo: Vec<_> = plan
        .tensors
        .iter()
        .filter(|t| t.reencoded_as().is_some())
        .collect();
    progress.phase(
        "checking weights",
        todo.iter().map(|t| t.info.n_bytes).sum(),
    );
    for t in todo {
        progress.tensor(&t.info.name);
        let data = model.tensor_data(t.source)?;
        let data = &data[..];
        let ty = t.info.ty;
        // Converting to F16 must not turn a large finite weight into infinity.
        let limit = match t.reencoded_as() {
            Some(GgmlType::F16) if ty != GgmlType::F16 => F16_ROUNDS_TO_INF,
            _ => f32::INFINITY,
        };
        let per_chunk = elements_in(ty, chunk_bytes(ty));
        let bad = data
            .par_chunks(chunk_bytes(ty))
            .enumerate()
            .map_init(
                Vec::new,
                |buf: &mut Vec<f32>, (k, chunk)| -> Result<Option<u64>> {
                    if !limit.is_finite() {
                        if let Some(found) = first_non_finite_raw(ty, chunk) {
                            return Ok(found.map(|i| (k * per_chunk + i) as u64));
                        }
                    }
                    let n = elements_in(ty, chunk.len());
                    buf.resize(n, 0.0);
                    dequantize(ty, chunk, buf).map_err(|e| dequant_error(&t.info, e))?;
                    Ok(buf
                        .iter()
                        .position(|x| !x.is_finite() || x.abs() >= limit)
                        .map(|i| (k * per_chunk + i) as u64))
                },
            )
            .try_reduce(|| None, |a, b| Ok(a.or(b)))?;
        progress.advance(data.len() as u64);
        if let Some(i) = bad {
            let (row, col) = (i / t.info.row_len(), i % t.info.row_len());
            let message = if limit.is_finite() {
                format!(
                    "weight at row {row}, column {col} is NaN, infinite or too large for F16 \
                     (|w| >= {limit}); refusing to prune (use --outtype f32 or bf16 for large weights)"
                )
            } else {
                format!("weight at row {row}, column {col} is not finite (NaN or infinite); refusing to prune")
            };
            return Err(Error::Tensor {
                tensor: t.info.name.clone(),
                message,
            });
        }
    }
    Ok(())
}

/// For the plain float types, the index of the first NaN or infinity found from the exponent
/// bits alone (`Some(None)`: all finite), without converting; `None` for other types.
fn first_non_finite_raw(ty: GgmlType, data: &[u8]) -> Option<Option<usize>> {
    // Counting has no early exit, so it vectorises; the position is looked for only when
    // there is something to find (which ends the run anyway).
    fn scan<const N: usize>(data: &[u8], bad: impl Fn([u8; N]) -> bool) -> Option<usize> {
        let word = |b: &[u8]| -> [u8; N] { b.try_into().unwrap_or([0; N]) };
        let count = data.chunks_exact(N).filter(|b| bad(word(b))).count();
        (count > 0)
            .then(|| data.chunks_exact(N).position(|b| bad(word(b))))
            .flatten()
    }
    Some(match ty {
        GgmlType::F32 => scan(data, |b: [u8; 4]| {
            u32::from_le_bytes(b) & 0x7F80_0000 == 0x7F80_0000
        }),
        GgmlType::F16 => scan(data, |b: [u8; 2]| u16::from_le_bytes(b) & 0x7C00 == 0x7C00),
        GgmlType::BF16 => scan(data, |b: [u8; 2]| u16::from_le_bytes(b) & 0x7F80 == 0x7F80),
        _ => return None,
    })
}

/// The smallest magnitude that rounds to infinity in F16 (half-way between 65504 and 65536).
const F16_ROUNDS_TO_INF: f32 = 65520.0;

fn chunk_bytes(ty: GgmlType) -> usize {
    let blocks = (CHUNK_ELEMENTS as u64 / ty.block_size()).max(1);
    (blocks * ty.type_size()) as usize
}

fn elements_in(ty: GgmlType, bytes: usize) -> usize {
    (bytes as u64 / ty.type_size() * ty.block_size()) as usize
}

fn dequant_error(info: &TensorInfo, e: crate::dequant::DequantError) -> Error {
    Error::Tensor {
        tensor: info.name.clone(),
        message: e.to_string(),
    }
}

/// Scratch buffers reused from one tensor to the next.
#[derive(Default)]
struct Buffers {
    weights: Vec<f32>,
    /// Scores computed as a matrix (RIA, the hybrid); empty for the other rules.
    scores: Vec<f32>,
    zero: Vec<bool>,
    out: Vec<u8>,
}

/// Dequantizes, scores, selects and encodes one tensor, matrix by matrix, handing each
/// matrix's output buffer to `emit` as soon as it is done (an expert at a time for MoE);
/// `emit` gives back a buffer to fill next. With `update`, the weights the mask keeps get
/// SparseGPT's update before they are encoded. Returns the number of weights zeroed.
#[allow(clippy::too_many_arguments)]
fn prune_tensor(
    name: &str,
    info: &TensorInfo,
    data: &[u8],
    step: &PruneStep,
    update: Option<&Factor>,
    buf: &mut Buffers,
    mut emit: impl FnMut(Vec<u8>) -> Result<Vec<u8>>,
) -> Result<u64> {
    let rule = &step.rule;
    let n = rule.rows * rule.cols;
    let in_bytes = elements_bytes(info.ty, n);
    let out_bytes = elements_bytes(step.out_type, n);
    let mut zeroed = 0;
    buf.weights.resize(n, 0.0);
    buf.zero.resize(n, false);
    for k in 0..rule.matrices {
        buf.out.resize(out_bytes, 0);
        let src = &data[k * in_bytes..(k + 1) * in_bytes];
        dequantize_parallel(info, src, &mut buf.weights)?;
        // Rules of the form |w| * factor are scored inside the kernels; the others first.
        let (scores, scale) = if rule.score.is_scaled_magnitude() {
            (&buf.weights, rule.scale(k))
        } else {
            let factors = rule.row_and_column(k);
            scores::fill(
                rule.score,
                &buf.weights,
                rule.rows,
                rule.cols,
                factors,
                &mut buf.scores,
            );
            (&buf.scores, Scale::None)
        };
        let (rows, cols, axis) = match rule.groups {
            Groups::Along(axis) => (rule.rows, rule.cols, axis),
            Groups::Matrix => (1, n, Axis::Row),
        };
        zeroed += select_zeros(scores, rows, cols, scale, axis, step.pattern, &mut buf.zero);
        if let Some(f) = update {
            update_masked(&mut buf.weights, &buf.zero, f);
            check_refitted(&buf.weights, step.out_type, name)?;
            encode_zeroed(step.out_type, &mut buf.weights, &buf.zero, &mut buf.out)?;
        } else if step.out_type == info.ty {
            zero_in_place(info.ty, src, &buf.zero, &mut buf.out);
        } else {
            encode_zeroed(step.out_type, &mut buf.weights, &buf.zero, &mut buf.out)?;
        }
        buf.out = emit(std::mem::take(&mut buf.out))?;
    }
    Ok(zeroed)
}

fn elements_bytes(ty: GgmlType, n: usize) -> usize {
    (n as u64 / ty.block_size() * ty.type_size()) as usize
}

/// Dequantizes `src` (whole blocks of `info`'s type) into `dst`, in parallel chunks.
pub(crate) fn dequantize_parallel(info: &TensorInfo, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let ty = info.ty;
    let cb = chunk_bytes(ty);
    let ce = elements_in(ty, cb);
    dst.par_chunks_mut(ce)
        .zip(src.par_chunks(cb))
        .try_for_each(|(d, s)| dequantize(ty, s, d).map_err(|e| dequant_error(info, e)))
}

/// Copies a float tensor's bytes and zeroes the selected elements: every other weight keeps its
/// exact bits. Branch-free (a mask per element) so it vectorises at any sparsity.
fn zero_in_place(ty: GgmlType, src: &[u8], zero: &[bool], dst: &mut [u8]) {
    let size = ty.type_size() as usize;
    dst.par_chunks_mut(CHUNK_ELEMENTS * size)
        .zip(src.par_chunks(CHUNK_ELEMENTS * size))
        .zip(zero.par_chunks(CHUNK_ELEMENTS))
        .for_each(|((d, s), z)| match size {
            2 => {
                for ((o, i), z) in d.chunks_exact_mut(2).zip(s.chunks_exact(2)).zip(z) {
                    let keep = u16::from(!*z).wrapping_neg();
                    let v = u16::from_le_bytes([i[0], i[1]]) & keep;
                    o.copy_from_slice(&v.to_le_bytes());
                }
            }
            _ => {
                for ((o, i), z) in d.chunks_exact_mut(4).zip(s.chunks_exact(4)).zip(z) {
                    let keep = u32::from(!*z).wrapping_neg();
                    let v = u32::from_le_bytes([i[0], i[1], i[2], i[3]]) & keep;
                    o.copy_from_slice(&v.to_le_bytes());
                }
            }
        });
}

/// Encodes f32 values as `ty` (F32, F16 or BF16, rounded to nearest even) into `dst`, resized.
fn encode(ty: GgmlType, values: &[f32], dst: &mut Vec<u8>) -> Result<()> {
    dst.resize(values.len() * ty.type_size() as usize, 0);
    let mut w = values.to_vec();
    encode_zeroed(ty, &mut w, &vec![false; values.len()], dst)
}

/// Zeroes the selected weights of an f32 buffer and encodes it as `ty` (F32, F16 or BF16).
fn encode_zeroed(ty: GgmlType, weights: &mut [f32], zero: &[bool], dst: &mut [u8]) -> Result<()> {
    if !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(Error::Plan(format!("cannot write pruned tensors as {ty}")));
    }
    let size = ty.type_size() as usize;
    weights
        .par_chunks_mut(CHUNK_ELEMENTS)
        .zip(zero.par_chunks(CHUNK_ELEMENTS))
        .zip(dst.par_chunks_mut(CHUNK_ELEMENTS * size))
        .for_each(|((w, z), d)| {
            for (x, z) in w.iter_mut().zip(z) {
                // Branch-free: +0.0 where selected, the weight elsewhere.
                *x = f32::from_bits(x.to_bits() & u32::from(!*z).wrapping_neg());
            }
            // Convert through a small stack buffer: `dst` has no 2-byte alignment guarantee.
            const STEP: usize = 1024;
            match ty {
                GgmlType::F32 => {
                    for (x, o) in w.iter().zip(d.chunks_exact_mut(4)) {
                        o.copy_from_slice(&x.to_le_bytes());
                    }
                }
                GgmlType::F16 => {
                    let mut h = [f16::ZERO; STEP];
                    for (w, d) in w.chunks(STEP).zip(d.chunks_mut(2 * STEP)) {
                        let h = &mut h[..w.len()];
                        h.convert_from_f32_slice(w);
                        for (x, o) in h.iter().zip(d.chunks_exact_mut(2)) {
                            o.copy_from_slice(&x.to_bits().to_le_bytes());
                        }
                    }
                }
                GgmlType::BF16 => {
                    let mut h = [bf16::ZERO; STEP];
                    for (w, d) in w.chunks(STEP).zip(d.chunks_mut(2 * STEP)) {
                        let h = &mut h[..w.len()];
                        h.convert_from_f32_slice(w);
                        for (x, o) in h.iter().zip(d.chunks_exact_mut(2)) {
                            o.copy_from_slice(&x.to_bits().to_le_bytes());
                        }
                    }
                }
                _ => {} // refused above
            }
        });
    Ok(())
}
