//! What `calibrate` keeps while llama.cpp runs the model: per weight multiplied inside a block
//! (`blk.*`), the moments of its input (docs/stats.md), and which of those inputs keep the
//! whole second-moment matrix.
//!
//! The evaluation callback hands every matrix multiplication's activation rows here; nothing
//! in this module knows about llama.cpp, so it is tested on its own.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gguf::TensorInfo;
use crate::second_moment::InputMoments;

/// The inputs whose whole `Σ x xᵀ` is kept, chosen from the model's tensor names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OuterPlan {
    /// Weight name and input width, in the model's tensor order.
    pub weights: Vec<(String, usize)>,
}

impl OuterPlan {
    /// Per block: `ffn_down`; the block input under `ffn_gate` (or `ffn_up` when there is no
    /// gate); with `attention`, `attn_q` (or the fused `attn_qkv`) and `attn_output`.
    /// Mixtures of experts are refused, naming the first expert tensor.
    pub fn for_model(tensors: &[TensorInfo], attention: bool) -> Result<Self> {
        if let Some(t) = tensors.iter().find(|t| t.name.contains("_exps")) {
            return Err(Error::Calibrate(format!(
                "mixtures of experts are not collected (an expert sees only its own tokens): \
                 tensor {}",
                t.name
            )));
        }
        let has = |name: &str| tensors.iter().any(|t| t.name == name);
        let keeps = |t: &TensorInfo| match block_role(&t.name) {
            Some((_, "ffn_down" | "ffn_gate")) => true,
            Some((block, "ffn_up")) => !has(&format!("blk.{block}.ffn_gate.weight")),
            Some((_, "attn_q" | "attn_qkv" | "attn_output")) => attention,
            _ => false,
        };
        let weights = tensors
            .iter()
            .filter(|t| keeps(t))
            .map(|t| {
                (
                    t.name.clone(),
                    t.dims.first().copied().unwrap_or(0) as usize,
                )
            })
            .collect();
        Ok(OuterPlan { weights })
    }

    /// Bytes the matrices take while collecting (f64).
    pub fn bytes(&self) -> u64 {
        self.weights
            .iter()
            .map(|(_, n)| InputMoments::bytes(*n, true))
            .sum()
    }

    fn contains(&self, weight: &str) -> bool {
        self.weights.iter().any(|(w, _)| w == weight)
    }
}

/// `blk.N.ROLE.weight` → (`N`, `ROLE`).
fn block_role(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (block, role) = rest.split_once('.')?;
    block
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then_some((block, role))
}

/// The moments of every weight's input seen so far.
#[derive(Debug, Default)]
pub struct Collector {
    plan: OuterPlan,
    index: HashMap<String, usize>,
    entries: Vec<(String, InputMoments)>,
}

impl Collector {
    pub fn new(plan: OuterPlan) -> Self {
        Collector {
            plan,
            index: HashMap::new(),
            entries: Vec::new(),
        }
    }

    /// Whether a multiplication with `weight` is collected: the weights inside blocks, as
    /// `llama-imatrix` collects them.
    pub fn wants(weight: &str) -> bool {
        weight.starts_with("blk.")
    }

    /// Adds `rows` (row-major, `n` values per token) to `weight`'s input moments.
    pub fn add(&mut self, weight: &str, n: usize, rows: &[f32]) -> Result<()> {
        let i = match self.index.get(weight) {
            Some(&i) => i,
            None => {
                let with_outer = self.plan.contains(weight);
                self.entries
                    .push((weight.to_string(), InputMoments::new(n, with_outer)));
                self.index
                    .insert(weight.to_string(), self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        let moments = &mut self.entries[i].1;
        if moments.width() != n {
            return Err(Error::Calibrate(format!(
                "the input of {weight} was {} wide and is now {n}",
                moments.width()
            )));
        }
        moments
            .add_rows(rows)
            .map_err(|e| Error::Calibrate(format!("the input of {weight}: {e}")))
    }

    /// Every weight's moments, in the order of `model_order` (the model's tensors); weights
    /// never multiplied are absent. Planned matrices that never arrived are an error: the
    /// graph did not multiply them as expected.
    pub fn finish(self, model_order: &[TensorInfo]) -> Result<Vec<(String, InputMoments)>> {
        for (w, _) in &self.plan.weights {
            if !self.index.contains_key(w) {
                return Err(Error::Calibrate(format!(
                    "llama.cpp never multiplied {w} with a batch of 16 or more tokens: \
                     its second moments cannot be collected"
                )));
            }
        }
        let mut slots: Vec<Option<(String, InputMoments)>> =
            self.entries.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(slots.len());
        for t in model_order {
            if let Some(&i) = self.index.get(&t.name) {
                if let Some(e) = slots[i].take() {
                    out.push(e);
                }
            }
        }
        // Weights the graph multiplied that are not tensors of the file (none in practice).
        out.extend(slots.into_iter().flatten());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml_type::GgmlType;

    fn info(name: &str, dims: &[u64]) -> TensorInfo {
        TensorInfo {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty: GgmlType::F32,
            offset: 0,
            n_bytes: 0,
        }
    }

    fn llama_block(b: usize) -> Vec<TensorInfo> {
        vec![
            info(&format!("blk.{b}.attn_norm.weight"), &[8]),
            info(&format!("blk.{b}.attn_q.weight"), &[8, 8]),
            info(&format!("blk.{b}.attn_k.weight"), &[8, 4]),
            info(&format!("blk.{b}.attn_output.weight"), &[8, 8]),
            info(&format!("blk.{b}.ffn_gate.weight"), &[8, 24]),
            info(&format!("blk.{b}.ffn_up.weight"), &[8, 24]),
            info(&format!("blk.{b}.ffn_down.weight"), &[24, 8]),
        ]
    }

    #[test]
    fn the_plan_keeps_down_and_the_block_input_once() {
        let mut t = vec![info("token_embd.weight", &[8, 100])];
        t.extend(llama_block(0));
        t.extend(llama_block(1));
        let p = OuterPlan::for_model(&t, false).unwrap();
        let names: Vec<&str> = p.weights.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(
            names,
            [
                "blk.0.ffn_gate.weight",
                "blk.0.ffn_down.weight",
                "blk.1.ffn_gate.weight",
                "blk.1.ffn_down.weight"
            ]
        );
        assert_eq!(p.weights[1].1, 24);
        assert_eq!(p.bytes(), 2 * (16 * 8 + 8 * 64) + 2 * (16 * 24 + 8 * 576));
        let with_attn = OuterPlan::for_model(&t, true).unwrap();
        assert_eq!(with_attn.weights.len(), 8);
        assert!(with_attn.contains("blk.1.attn_output.weight"));
        assert!(!with_attn.contains("blk.1.attn_k.weight"));
    }

    #[test]
    fn a_fused_up_without_gate_keeps_its_own_input() {
        let t = vec![
            info("blk.0.ffn_up.weight", &[8, 48]),
            info("blk.0.ffn_down.weight", &[24, 8]),
        ];
        let p = OuterPlan::for_model(&t, false).unwrap();
        assert!(p.contains("blk.0.ffn_up.weight"));
    }

    #[test]
    fn experts_are_refused_by_name() {
        let t = vec![info("blk.0.ffn_gate_exps.weight", &[8, 24, 4])];
        let e = OuterPlan::for_model(&t, false).unwrap_err().to_string();
        assert!(e.contains("blk.0.ffn_gate_exps.weight"), "{e}");
    }

    #[test]
    fn the_collector_sums_per_weight_and_orders_like_the_model() {
        let t = llama_block(0);
        let plan = OuterPlan::for_model(&t, false).unwrap();
        let mut c = Collector::new(plan);
        assert!(Collector::wants("blk.0.ffn_up.weight"));
        assert!(!Collector::wants("output.weight"));
        c.add("blk.0.ffn_down.weight", 24, &[1.0; 48]).unwrap();
        c.add("blk.0.ffn_up.weight", 8, &[2.0; 16]).unwrap();
        c.add("blk.0.ffn_gate.weight", 8, &[2.0; 16]).unwrap();
        c.add("blk.0.ffn_down.weight", 24, &[1.0; 24]).unwrap();
        let e = c.add("blk.0.ffn_down.weight", 12, &[1.0; 12]).unwrap_err();
        assert!(e.to_string().contains("was 24 wide"), "{e}");
        let e = c.add("blk.0.ffn_up.weight", 8, &[f32::NAN; 8]).unwrap_err();
        assert!(e.to_string().contains("blk.0.ffn_up.weight"), "{e}");
        let out = c.finish(&t).unwrap();
        let names: Vec<&str> = out.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(
            names,
            [
                "blk.0.ffn_gate.weight",
                "blk.0.ffn_up.weight",
                "blk.0.ffn_down.weight"
            ]
        );
        assert_eq!(out[2].1.count(), 3);
        assert!(out[2].1.has_outer() && out[0].1.has_outer() && !out[1].1.has_outer());
        assert_eq!(out[1].1.sum2()[0], 8.0);
    }

    #[test]
    fn a_planned_matrix_that_never_arrives_is_an_error() {
        let t = llama_block(0);
        let c = Collector::new(OuterPlan::for_model(&t, false).unwrap());
        let e = c.finish(&t).unwrap_err().to_string();
        assert!(e.contains("blk.0.ffn_gate.weight"), "{e}");
    }
}
