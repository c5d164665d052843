//! Writing what `calibrate` collected: the statistics file of docs/stats.md and, on request,
//! a standard imatrix (what `llama-imatrix` writes: `in_sum2` and `counts` per weight, names
//! sorted as it sorts them). Both atomically, never over an input.

use std::path::Path;

use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::gguf::{GgufLayout, GgufWriter, MetadataEntry, TensorSpec};
use crate::hf::kv::KvList;
use crate::imatrix_cut::standard_header;
use crate::second_moment::InputMoments;

/// The version of docs/stats.md this writes.
pub const STATS_VERSION: u32 = 1;

/// What the file says about how the statistics were made.
#[derive(Debug, Clone)]
pub struct StatsHeader {
    pub chunk_count: u32,
    pub chunk_size: u32,
    /// The calibration text files, as given.
    pub datasets: Vec<String>,
    /// The model file's name.
    pub model: String,
}

/// One tensor of the output and how to make its bytes.
struct Planned<'a> {
    spec: TensorSpec,
    data: Data<'a>,
}

enum Data<'a> {
    Sum2(&'a InputMoments),
    Counts(&'a InputMoments),
    Sum(&'a InputMoments),
    Outer(&'a InputMoments),
}

impl Data<'_> {
    fn bytes(&self) -> Vec<u8> {
        let f32s: Vec<f32> = match self {
            Data::Sum2(m) => m.sum2().iter().map(|&v| v as f32).collect(),
            Data::Sum(m) => m.sum().iter().map(|&v| v as f32).collect(),
            Data::Counts(m) => vec![m.count() as f32],
            Data::Outer(m) => m.outer_f32().unwrap_or_default(),
        };
        bytemuck::cast_slice(&f32s).to_vec()
    }
}

fn f32_tensor(name: String, dims: &[u64]) -> TensorSpec {
    TensorSpec {
        name,
        dims: dims.to_vec(),
        ty: GgmlType::F32,
    }
}

/// A weight's `in_sum2` and `counts`, as an imatrix stores them.
fn imatrix_pair<'a>(name: &str, m: &'a InputMoments) -> [Planned<'a>; 2] {
    [
        Planned {
            spec: f32_tensor(format!("{name}.in_sum2"), &[m.width() as u64, 1]),
            data: Data::Sum2(m),
        },
        Planned {
            spec: f32_tensor(format!("{name}.counts"), &[1, 1]),
            data: Data::Counts(m),
        },
    ]
}

fn write(
    target: &Path,
    inputs: &[&Path],
    metadata: Vec<MetadataEntry>,
    tensors: Vec<Planned<'_>>,
    overwrite: bool,
) -> Result<()> {
    let specs = tensors.iter().map(|t| t.spec.clone()).collect();
    let layout = GgufLayout::new(metadata, specs)?;
    let mut w = GgufWriter::create(target, layout, inputs, overwrite)?;
    for t in &tensors {
        w.write_tensor(&t.data.bytes())?;
    }
    w.commit()
}

/// Writes the statistics file (docs/stats.md) with `entries` in their order.
pub fn write_stats(
    target: &Path,
    inputs: &[&Path],
    header: &StatsHeader,
    entries: &[(String, InputMoments)],
    overwrite: bool,
) -> Result<()> {
    let mut kv = KvList::new();
    kv.add_str("general.type", "dass-stats");
    kv.add_u32("dass.stats.version", STATS_VERSION);
    kv.add_u32("dass.stats.chunk_count", header.chunk_count);
    kv.add_u32("dass.stats.chunk_size", header.chunk_size);
    kv.add_str_array("dass.stats.datasets", &header.datasets);
    kv.add_str("dass.stats.model", &header.model);
    let mut tensors = Vec::new();
    for (name, m) in entries {
        let n = m.width() as u64;
        tensors.extend(imatrix_pair(name, m));
        tensors.push(Planned {
            spec: f32_tensor(format!("{name}.in_sum"), &[n, 1]),
            data: Data::Sum(m),
        });
        if m.has_outer() {
            tensors.push(Planned {
                spec: f32_tensor(format!("{name}.in_outer"), &[n, n]),
                data: Data::Outer(m),
            });
        }
    }
    write(target, inputs, kv.into_entries()?, tensors, overwrite)
}

/// Writes `in_sum2` and `counts` of `entries` as a standard GGUF imatrix.
pub fn write_imatrix(
    target: &Path,
    inputs: &[&Path],
    header: &StatsHeader,
    entries: &[(String, InputMoments)],
    overwrite: bool,
) -> Result<()> {
    let metadata = standard_header(&header.datasets, header.chunk_count, header.chunk_size)?;
    let mut sorted: Vec<&(String, InputMoments)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let tensors = sorted
        .into_iter()
        .flat_map(|(name, m)| imatrix_pair(name, m))
        .collect();
    write(target, inputs, metadata, tensors, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imatrix::Imatrix;

    fn entries() -> Vec<(String, InputMoments)> {
        let mut down = InputMoments::new(3, true);
        down.add_rows(&[1.0, 2.0, 0.0, 3.0, -1.0, 0.5]).unwrap();
        let mut up = InputMoments::new(2, false);
        up.add_rows(&[0.25, 4.0]).unwrap();
        vec![
            ("blk.0.ffn_up.weight".to_string(), up),
            ("blk.0.ffn_down.weight".to_string(), down),
        ]
    }

    fn header() -> StatsHeader {
        StatsHeader {
            chunk_count: 2,
            chunk_size: 512,
            datasets: vec!["calib.txt".into()],
            model: "m.gguf".into(),
        }
    }

    #[test]
    fn the_exported_imatrix_reads_back_as_the_mean_squares() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.imatrix.gguf");
        write_imatrix(&p, &[], &header(), &entries(), false).unwrap();
        let im = Imatrix::open(&p).unwrap();
        let down = im.get("blk.0.ffn_down.weight").unwrap();
        assert_eq!(down.mean_sq, vec![5.0, 2.5, 0.125]);
        assert_eq!(down.counts, Some(vec![2.0]));
        let up = im.get("blk.0.ffn_up.weight").unwrap();
        assert_eq!(up.mean_sq, vec![0.0625, 16.0]);
    }

    #[test]
    fn the_stats_file_is_never_written_over_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.gguf");
        std::fs::write(&p, b"model").unwrap();
        assert!(write_stats(&p, &[&p], &header(), &entries(), true).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"model");
    }
}
