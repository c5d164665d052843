//! The ggml tensor type table: every type id a GGUF file can name, with its block geometry.
//!
//! Sizes follow ggml's `ggml-common.h` and `ggml.c` type traits. Ids that ggml removed
//! (Q4_2, Q4_3, the repacked Q4_0_x_y and IQ4_NL_x_y variants) are known here so that a file
//! naming them gets an error that says so, instead of "unknown type".

use std::fmt;

/// A ggml tensor type that may appear in a GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
}

/// What a type id means: a usable type, an id ggml has removed, or nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeId {
    Known(GgmlType),
    /// An id ggml once used and has since removed; files naming it cannot be loaded.
    Removed(&'static str),
    Unknown,
}

/// Number of type ids in ggml's enum (`GGML_TYPE_COUNT`).
pub const GGML_TYPE_COUNT: u32 = 43;

use GgmlType::*;

const TABLE: [GgmlType; 35] = [
    F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ2_XXS,
    IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, I8, I16, I32, I64, F64, IQ1_M, BF16,
    TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0, Q2_0,
];

impl GgmlType {
    /// Every usable type, in id order.
    pub fn all() -> &'static [GgmlType] {
        &TABLE
    }

    /// Interprets a type id read from a file.
    pub fn from_id(id: u32) -> TypeId {
        match id {
            0 => TypeId::Known(F32),
            1 => TypeId::Known(F16),
            2 => TypeId::Known(Q4_0),
            3 => TypeId::Known(Q4_1),
            4 => TypeId::Removed("Q4_2"),
            5 => TypeId::Removed("Q4_3"),
            6 => TypeId::Known(Q5_0),
            7 => TypeId::Known(Q5_1),
            8 => TypeId::Known(Q8_0),
            9 => TypeId::Known(Q8_1),
            10 => TypeId::Known(Q2_K),
            11 => TypeId::Known(Q3_K),
            12 => TypeId::Known(Q4_K),
            13 => TypeId::Known(Q5_K),
            14 => TypeId::Known(Q6_K),
            15 => TypeId::Known(Q8_K),
            16 => TypeId::Known(IQ2_XXS),
            17 => TypeId::Known(IQ2_XS),
            18 => TypeId::Known(IQ3_XXS),
            19 => TypeId::Known(IQ1_S),
            20 => TypeId::Known(IQ4_NL),
            21 => TypeId::Known(IQ3_S),
            22 => TypeId::Known(IQ2_S),
            23 => TypeId::Known(IQ4_XS),
            24 => TypeId::Known(I8),
            25 => TypeId::Known(I16),
            26 => TypeId::Known(I32),
            27 => TypeId::Known(I64),
            28 => TypeId::Known(F64),
            29 => TypeId::Known(IQ1_M),
            30 => TypeId::Known(BF16),
            31 => TypeId::Removed("Q4_0_4_4"),
            32 => TypeId::Removed("Q4_0_4_8"),
            33 => TypeId::Removed("Q4_0_8_8"),
            34 => TypeId::Known(TQ1_0),
            35 => TypeId::Known(TQ2_0),
            36 => TypeId::Removed("IQ4_NL_4_4"),
            37 => TypeId::Removed("IQ4_NL_4_8"),
            38 => TypeId::Removed("IQ4_NL_8_8"),
            39 => TypeId::Known(MXFP4),
            40 => TypeId::Known(NVFP4),
            41 => TypeId::Known(Q1_0),
            42 => TypeId::Known(Q2_0),
            _ => TypeId::Unknown,
        }
    }

    /// The id this type has in ggml's enum and in GGUF files.
    pub fn id(self) -> u32 {
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
            NVFP4 => 40,
            Q1_0 => 41,
            Q2_0 => 42,
        }
    }

    /// Elements per block (1 for the plain scalar types).
    pub fn block_size(self) -> u64 {
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            NVFP4 | Q2_0 => 64,
            Q1_0 => 128,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S
            | IQ3_S | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ4_NL => 18,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            IQ1_M => 56,
            TQ1_0 => 54,
            TQ2_0 => 66,
            MXFP4 => 17,
            NVFP4 => 36,
            Q1_0 => 18,
            Q2_0 => 18,
        }
    }

    /// ggml's name for the type, as llama.cpp prints it.
    pub fn name(self) -> &'static str {
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1_M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
            NVFP4 => "NVFP4",
            Q1_0 => "Q1_0",
            Q2_0 => "Q2_0",
        }
    }

    /// Bytes needed for `n_elements` of this type, or `None` when `n_elements` is not a whole
    /// number of blocks or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        if n_elements % self.block_size() != 0 {
            return None;
        }
        (n_elements / self.block_size()).checked_mul(self.type_size())
    }

    /// True for the block-quantized types (anything that is not a plain scalar type).
    pub fn is_quantized(self) -> bool {
        !matches!(self, F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64)
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`, gguf-py's `LlamaFileType`) of a file
    /// whose weights are mostly of this type; `None` for types no file type is named after.
    /// The one table of file types in the crate.
    pub fn llama_ftype(self) -> Option<u32> {
        Some(match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q8_0 => 7,
            Q5_0 => 8,
            Q5_1 => 9,
            Q2_K => 10,
            Q3_K => 12,
            Q4_K => 15,
            Q5_K => 17,
            Q6_K => 18,
            BF16 => 32,
            _ => return None,
        })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_cover_the_enum() {
        let mut known = 0;
        for id in 0..GGML_TYPE_COUNT + 5 {
            match GgmlType::from_id(id) {
                TypeId::Known(t) => {
                    assert_eq!(t.id(), id);
                    known += 1;
                }
                TypeId::Removed(_) => assert!(id < GGML_TYPE_COUNT),
                TypeId::Unknown => assert!(id >= GGML_TYPE_COUNT),
            }
        }
        assert_eq!(known, GgmlType::all().len());
    }

    #[test]
    fn bits_per_weight_match_ggml() {
        // Spot checks against the bpw column of ggml's table.
        let bpw = |t: GgmlType| t.type_size() as f64 * 8.0 / t.block_size() as f64;
        assert_eq!(bpw(Q4_0), 4.5);
        assert_eq!(bpw(Q6_K), 6.5625);
        assert_eq!(bpw(IQ1_M), 1.75);
        assert_eq!(bpw(TQ1_0), 1.6875);
        assert_eq!(bpw(MXFP4), 4.25);
        assert_eq!(bpw(Q1_0), 1.125);
        assert_eq!(bpw(BF16), 16.0);
    }

    #[test]
    fn bytes_for_rejects_partial_blocks() {
        assert_eq!(Q4_K.bytes_for(512), Some(288));
        assert_eq!(Q4_K.bytes_for(100), None);
        assert_eq!(F32.bytes_for(u64::MAX), None);
    }
}
