//! What each tensor of a model is, as far as pruning cares (docs/method.md "What is pruned, and what never is").
//!
//! Roles come from llama.cpp's tensor names (`blk.N.ffn_gate.weight`, ...), which are the same
//! for every architecture with a GLU feed-forward; phi3's fused `ffn_up` is the one
//! architecture-dependent case. Everything not listed here (embeddings, output head, norms,
//! biases, routers, ...) is never pruned.

use std::fmt;

/// The part a tensor plays in its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// GLU gate projection `[n_embd, n_ff]` (also a shared expert's).
    FfnGate,
    /// GLU up projection `[n_embd, n_ff]` (also a shared expert's).
    FfnUp,
    /// phi3's fused gate+up `[n_embd, 2*n_ff]`: rows `0..n_ff` gate, `n_ff..2*n_ff` up.
    FfnGateUpFused,
    /// Down projection `[n_ff, n_embd]` (also a shared expert's).
    FfnDown,
    /// MoE experts, 3-D `[n_embd, n_ff, n_expert]`.
    FfnGateExps,
    FfnUpExps,
    /// MoE experts, 3-D `[n_ff, n_embd, n_expert]`.
    FfnDownExps,
    AttnQ,
    AttnK,
    AttnV,
    AttnQkv,
    AttnOutput,
    /// A feed-forward tensor this tool does not know how to prune (named in the message).
    UnsupportedFfn(&'static str),
    /// Never pruned.
    Other,
}

impl Role {
    /// True for the feed-forward roles pruned by default.
    pub fn is_ffn(self) -> bool {
        matches!(
            self,
            Role::FfnGate
                | Role::FfnUp
                | Role::FfnGateUpFused
                | Role::FfnDown
                | Role::FfnGateExps
                | Role::FfnUpExps
                | Role::FfnDownExps
                | Role::UnsupportedFfn(_)
        )
    }

    /// True for the attention projections (pruned with `--scope all`).
    pub fn is_attention(self) -> bool {
        matches!(
            self,
            Role::AttnQ | Role::AttnK | Role::AttnV | Role::AttnQkv | Role::AttnOutput
        )
    }

    /// True for the roles whose rows are intermediate channels of a GLU (DaSS gate/up side).
    pub fn is_glu_input_side(self) -> bool {
        matches!(
            self,
            Role::FfnGate
                | Role::FfnUp
                | Role::FfnGateUpFused
                | Role::FfnGateExps
                | Role::FfnUpExps
        )
    }

    /// True for MoE expert tensors (one matrix per expert).
    pub fn is_experts(self) -> bool {
        matches!(
            self,
            Role::FfnGateExps | Role::FfnUpExps | Role::FfnDownExps
        )
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::FfnGate => "ffn_gate",
            Role::FfnUp => "ffn_up",
            Role::FfnGateUpFused => "ffn_gate_up_fused",
            Role::FfnDown => "ffn_down",
            Role::FfnGateExps => "ffn_gate_exps",
            Role::FfnUpExps => "ffn_up_exps",
            Role::FfnDownExps => "ffn_down_exps",
            Role::AttnQ => "attn_q",
            Role::AttnK => "attn_k",
            Role::AttnV => "attn_v",
            Role::AttnQkv => "attn_qkv",
            Role::AttnOutput => "attn_output",
            Role::UnsupportedFfn(_) => "unsupported_ffn",
            Role::Other => "other",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's role, with the block it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRole {
    pub role: Role,
    /// The block number for `blk.N.*` tensors.
    pub block: Option<u32>,
    /// `""` for the dense FFN, `"_shexp"` for a shared expert, `"_exps"` for MoE experts:
    /// the down projection whose statistics DaSS uses is `blk.N.ffn_down{suffix}.weight`.
    pub variant: &'static str,
}

impl TensorRole {
    /// The imatrix entry (and tensor) name of the down projection paired with this tensor.
    pub fn down_projection(&self) -> Option<String> {
        self.block
            .map(|b| format!("blk.{b}.ffn_down{}.weight", self.variant))
    }
}

/// Classifies tensor `name` of a model of architecture `arch`.
pub fn classify(arch: &str, name: &str) -> TensorRole {
    let other = TensorRole {
        role: Role::Other,
        block: None,
        variant: "",
    };
    let Some(rest) = name.strip_prefix("blk.") else {
        return other;
    };
    let Some((block, rest)) = rest.split_once('.') else {
        return other;
    };
    let Ok(block) = block.parse::<u32>() else {
        return other;
    };
    let Some(kind) = rest.strip_suffix(".weight") else {
        return other; // biases and anything else without `.weight`
    };
    let (role, variant) = match kind {
        "ffn_gate" => (Role::FfnGate, ""),
        "ffn_up" if arch == "phi3" => (Role::FfnGateUpFused, ""),
        "ffn_up" => (Role::FfnUp, ""),
        "ffn_down" => (Role::FfnDown, ""),
        "ffn_gate_shexp" => (Role::FfnGate, "_shexp"),
        "ffn_up_shexp" => (Role::FfnUp, "_shexp"),
        "ffn_down_shexp" => (Role::FfnDown, "_shexp"),
        "ffn_gate_exps" => (Role::FfnGateExps, "_exps"),
        "ffn_up_exps" => (Role::FfnUpExps, "_exps"),
        "ffn_down_exps" => (Role::FfnDownExps, "_exps"),
        "ffn_gate_up_exps" => (
            Role::UnsupportedFfn("fused gate+up expert tensors (ffn_gate_up_exps)"),
            "_exps",
        ),
        "attn_q" => (Role::AttnQ, ""),
        "attn_k" => (Role::AttnK, ""),
        "attn_v" => (Role::AttnV, ""),
        "attn_qkv" => (Role::AttnQkv, ""),
        "attn_output" => (Role::AttnOutput, ""),
        _ => (Role::Other, ""),
    };
    TensorRole {
        role,
        block: Some(block),
        variant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_glu_names() {
        let r = classify("llama", "blk.3.ffn_gate.weight");
        assert_eq!((r.role, r.block), (Role::FfnGate, Some(3)));
        assert_eq!(
            r.down_projection().as_deref(),
            Some("blk.3.ffn_down.weight")
        );
        assert_eq!(classify("qwen2", "blk.0.ffn_up.weight").role, Role::FfnUp);
        assert_eq!(
            classify("gemma3", "blk.17.ffn_down.weight").role,
            Role::FfnDown
        );
    }

    #[test]
    fn phi3_up_is_fused() {
        assert_eq!(
            classify("phi3", "blk.0.ffn_up.weight").role,
            Role::FfnGateUpFused
        );
        assert_eq!(
            classify("phi3", "blk.0.ffn_down.weight").role,
            Role::FfnDown
        );
    }

    #[test]
    fn experts_and_shared_experts() {
        let e = classify("qwen3moe", "blk.1.ffn_up_exps.weight");
        assert_eq!(e.role, Role::FfnUpExps);
        assert_eq!(
            e.down_projection().as_deref(),
            Some("blk.1.ffn_down_exps.weight")
        );
        let s = classify("qwen2moe", "blk.1.ffn_gate_shexp.weight");
        assert_eq!(s.role, Role::FfnGate);
        assert_eq!(
            s.down_projection().as_deref(),
            Some("blk.1.ffn_down_shexp.weight")
        );
        assert_eq!(
            classify("qwen3moe", "blk.1.ffn_gate_inp.weight").role,
            Role::Other
        );
    }

    #[test]
    fn never_pruned() {
        for n in [
            "token_embd.weight",
            "output.weight",
            "output_norm.weight",
            "blk.0.attn_norm.weight",
            "blk.0.attn_q.bias",
            "blk.0.ffn_norm.weight",
            "blk.x.ffn_up.weight",
        ] {
            assert_eq!(classify("llama", n).role, Role::Other, "{n}");
        }
    }
}
