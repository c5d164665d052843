//! The type weights are written in (`--outtype`): the one vocabulary for pruned tensors of a
//! GGUF input and for every converted weight of a checkpoint.

use crate::ggml_type::GgmlType;

/// The output type the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutType {
    /// GGUF input: float tensors keep their type and quantized ones become F16. Checkpoint:
    /// the type of the checkpoint's first F16 or BF16 matrix (convert_hf_to_gguf.py's `auto`).
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl OutType {
    /// The float type asked for, or `None` for `Auto`.
    pub fn fixed(self) -> Option<GgmlType> {
        match self {
            OutType::Auto => None,
            OutType::F32 => Some(GgmlType::F32),
            OutType::F16 => Some(GgmlType::F16),
            OutType::Bf16 => Some(GgmlType::BF16),
        }
    }

    /// The type a pruned tensor of type `input` is written in: a plain float type is kept
    /// under `Auto` (its zeros are exact and every other weight keeps its bits), a quantized
    /// one becomes F16 (the next step is `llama-quantize`, which wants a float source).
    pub fn for_pruned(self, input: GgmlType) -> GgmlType {
        match self.fixed() {
            Some(t) => t,
            None if !input.is_quantized() => input,
            None => GgmlType::F16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_tensor_types() {
        assert_eq!(OutType::Auto.for_pruned(GgmlType::BF16), GgmlType::BF16);
        assert_eq!(OutType::Auto.for_pruned(GgmlType::F32), GgmlType::F32);
        assert_eq!(OutType::Auto.for_pruned(GgmlType::Q4_K), GgmlType::F16);
        assert_eq!(OutType::F32.for_pruned(GgmlType::F16), GgmlType::F32);
        assert_eq!(OutType::Bf16.for_pruned(GgmlType::Q8_0), GgmlType::BF16);
    }
}
