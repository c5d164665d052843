//! Refitting the weights that stay with the second moments of their inputs (docs/method.md
//! "Refitting with second moments"; the statistics file is docs/stats.md's, read by
//! [`crate::stats`]). f64 throughout; dense linear algebra with faer, parallel with rayon.
//!
//! - [`moment`]: `H = C / count`, damped as SparseGPT damps it.
//! - [`channels`]: removed feed-forward channels: the least-squares refit of `ffn_down`'s kept
//!   columns, and the greedy least-squares choice of the channels (`--channel-score lsq`).
//! - [`sparsegpt`]: the SparseGPT update of the weights a fixed mask keeps.

pub mod channels;
pub mod moment;
pub mod sparsegpt;

#[cfg(test)]
mod tests;

pub use channels::{choose_lsq, refit_kept, LsqChoice};
pub use moment::Damped;
pub use sparsegpt::{update, Factor};

/// SparseGPT's default `percdamp`: `λ = 0.01 × mean(diag(H))`.
pub const DEFAULT_DAMP: f64 = 0.01;

/// What the user chose about refitting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefitOptions {
    /// The damping `λ = damp × mean(diag(H))` (`--damp`).
    pub damp: f64,
    /// Whether the weights that stay are refitted when statistics are given (`--no-refit`
    /// turns it off: the statistics file then serves as an imatrix and for
    /// `--channel-score lsq` only).
    pub refit: bool,
}

impl Default for RefitOptions {
    fn default() -> Self {
        RefitOptions {
            damp: DEFAULT_DAMP,
            refit: true,
        }
    }
}

/// The names `dass.refit.method` is made of.
pub const LEAST_SQUARES: &str = "least-squares";
pub const SPARSEGPT: &str = "sparsegpt";

/// What happens to one tensor's weights after they are cut or masked.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRefit {
    /// The statistics entry whose `in_outer` is the tensor's input second moment (the
    /// tensor's own, or `ffn_gate`'s for `ffn_up`, `attn_q`'s for `attn_k` and `attn_v`).
    pub matrix: String,
    /// `ffn_down` of a block whose channels were removed: its kept columns are refitted by
    /// least squares ([`refit_kept`]).
    pub channels: bool,
    /// The tensor is pruned: the weights its mask keeps get the SparseGPT update
    /// ([`update`]), with the second moment of the (kept) input.
    pub masked: bool,
    /// `--damp`.
    pub damp: f64,
}

/// Every value as f32, rounded to nearest even (the f64 → f32 conversion).
pub fn to_f32(values: &[f64], out: &mut Vec<f32>) {
    out.clear();
    out.extend(values.iter().map(|&x| x as f32));
}
