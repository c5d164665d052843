//! Memory-mapped safetensors checkpoints: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`.
//!
//! Headers are parsed and validated by the `safetensors` crate (offsets contiguous, sizes
//! matching shapes, the file exactly as long as the header says). Tensor data is handed out as
//! byte slices of the map, which need not be aligned for their element type: values are read
//! with `from_le_bytes`, never by casting the slice.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mapped::MappedInput;

/// The index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The usual file of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// The element types this tool reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StDtype {
    F32,
    F16,
    BF16,
}

impl StDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StDtype::F32 => 4,
            StDtype::F16 | StDtype::BF16 => 2,
        }
    }

    /// The name safetensors and PyTorch use.
    pub fn name(self) -> &'static str {
        match self {
            StDtype::F32 => "F32",
            StDtype::F16 => "F16",
            StDtype::BF16 => "BF16",
        }
    }
}

/// One tensor of the checkpoint.
#[derive(Debug, Clone)]
pub struct StTensor {
    pub name: String,
    pub dtype: StDtype,
    /// Shape as PyTorch gives it (outermost first).
    pub shape: Vec<usize>,
    shard: usize,
    bytes: Range<usize>,
}

impl StTensor {
    /// Which shard (in [`Safetensors::paths`] order) holds the tensor.
    pub fn shard_index(&self) -> usize {
        self.shard
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Where the tensor's data lies in its shard file.
    pub fn byte_range(&self) -> Range<usize> {
        self.bytes.clone()
    }
}

struct Shard {
    path: PathBuf,
    map: MappedInput,
}

/// The tensors of a checkpoint: shards in the order their names sort, tensors in the order of
/// their data within each shard.
pub struct Safetensors {
    shards: Vec<Shard>,
    tensors: Vec<StTensor>,
    by_name: HashMap<String, usize>,
}

impl Safetensors {
    /// Opens the checkpoint in `dir`: the index and its shards when the index exists, else the
    /// single file.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_index(&index);
        }
        // Without an index, llama.cpp's converter takes every model*.safetensors, sorted.
        let listing = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        let mut parts = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("model") && name.ends_with(".safetensors") {
                parts.push(name);
            }
        }
        parts.sort();
        if parts.is_empty() {
            return Err(Error::Safetensors(format!(
                "{}: no {INDEX_FILE} and no model*.safetensors file",
                dir.display()
            )));
        }
        let paths: Vec<PathBuf> = parts.iter().map(|p| dir.join(p)).collect();
        Self::open_files(&paths, None)
    }

    /// Opens a sharded checkpoint from its index file.
    pub fn open_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| Error::io("reading", index, e))?;
        let listed = parse_index(index, &text)?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut files: Vec<&String> = listed.values().collect();
        files.sort();
        files.dedup();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        for p in &paths {
            if !p.is_file() {
                return Err(Error::Safetensors(format!(
                    "shard {} listed in {} is missing",
                    p.display(),
                    index.display()
                )));
            }
        }
        Self::open_files(&paths, Some((index, &listed)))
    }

    /// Opens `paths` as the shards of one checkpoint; with an index, checks that each tensor is
    /// in the shard the index names and that every listed tensor exists.
    fn open_files(
        paths: &[PathBuf],
        index: Option<(&Path, &BTreeMap<String, String>)>,
    ) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut tensors = Vec::new();
        let mut by_name = HashMap::new();
        for (k, path) in paths.iter().enumerate() {
            let map = MappedInput::open(path)?;
            read_header(path, &map, k, |t| {
                let name = &t.name;
                if let Some((index_path, listed)) = index {
                    let file_name = path.file_name().map(|n| n.to_string_lossy());
                    match listed.get(name) {
                        Some(f) if Some(f.as_str()) == file_name.as_deref() => {}
                        Some(f) => {
                            return Err(Error::Safetensors(format!(
                                "tensor '{name}' is in {} but {} puts it in {f}",
                                path.display(),
                                index_path.display()
                            )))
                        }
                        None => {
                            return Err(Error::Safetensors(format!(
                                "tensor '{name}' in {} is not listed in {}",
                                path.display(),
                                index_path.display()
                            )))
                        }
                    }
                }
                if by_name.insert(name.clone(), tensors.len()).is_some() {
                    return Err(Error::Safetensors(format!(
                        "tensor '{name}' appears in more than one shard (again in {})",
                        path.display()
                    )));
                }
                tensors.push(t);
                Ok(())
            })?;
            shards.push(Shard {
                path: path.clone(),
                map,
            });
        }
        if let Some((index_path, listed)) = index {
            if let Some(missing) = listed.keys().find(|n| !by_name.contains_key(*n)) {
                return Err(Error::Safetensors(format!(
                    "tensor '{missing}' is listed in {} but not in its shard {}",
                    index_path.display(),
                    listed[missing]
                )));
            }
        }
        Ok(Safetensors {
            shards,
            tensors,
            by_name,
        })
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[StTensor] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&StTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw little-endian bytes of `t`.
    pub fn data(&self, t: &StTensor) -> &[u8] {
        &self.shards[t.shard].map[t.bytes.clone()]
    }

    /// The shard files.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|s| s.path.as_path())
    }
}

/// Parses the text of a `model.safetensors.index.json` (`index` only names it in errors): the
/// shard file of every tensor in `weight_map`, each a plain file name (no directory part).
pub fn parse_index(index: &Path, text: &str) -> Result<BTreeMap<String, String>> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Safetensors(format!("{}: {e}", index.display())))?;
    let weight_map = json
        .get("weight_map")
        .and_then(|w| w.as_object())
        .ok_or_else(|| {
            Error::Safetensors(format!("{}: no \"weight_map\" object", index.display()))
        })?;
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for (tensor, file) in weight_map {
        let file = file.as_str().ok_or_else(|| {
            Error::Safetensors(format!(
                "{}: the shard of '{tensor}' is not a string",
                index.display()
            ))
        })?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(Error::Safetensors(format!(
                "{}: shard name '{file}' of '{tensor}' is not a plain file name",
                index.display()
            )));
        }
        listed.insert(tensor.clone(), file.to_string());
    }
    Ok(listed)
}

/// Parses a whole safetensors file held in `bytes` (`path` only names it in errors) as the
/// checkpoint reader does: the tensors in the order of their data, each with the byte range of
/// its data in `bytes`. The ranges are contiguous, follow the header and end at the end of
/// `bytes`, and each is as long as its shape and dtype say.
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<Vec<StTensor>> {
    let mut tensors = Vec::new();
    read_header(path, bytes, 0, |t| {
        tensors.push(t);
        Ok(())
    })?;
    Ok(tensors)
}

/// Reads the header of shard `shard` (the file `path`, mapped as `bytes`) and hands `each` its
/// tensors in data order; a dtype other than F32, F16 and BF16 is an error at that tensor.
fn read_header(
    path: &Path,
    bytes: &[u8],
    shard: usize,
    mut each: impl FnMut(StTensor) -> Result<()>,
) -> Result<()> {
    let (header_len, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::Safetensors(format!("{}: {e}", path.display())))?;
    let data_start = 8 + header_len;
    let infos = meta.tensors();
    for name in meta.offset_keys() {
        let info = infos[&name];
        let dtype = match info.dtype {
            safetensors::Dtype::F32 => StDtype::F32,
            safetensors::Dtype::F16 => StDtype::F16,
            safetensors::Dtype::BF16 => StDtype::BF16,
            other => {
                return Err(Error::Safetensors(format!(
                    "{}: tensor '{name}' has dtype {other:?}; only F32, F16 and BF16 are read",
                    path.display()
                )))
            }
        };
        let (s, e) = info.data_offsets;
        each(StTensor {
            name,
            dtype,
            shape: info.shape.clone(),
            shard,
            bytes: data_start + s..data_start + e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file with the given (name, dtype, shape, bytes) entries, data in order.
    fn file_bytes(entries: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut at = 0usize;
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in entries {
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [at, at + bytes.len()]}),
            );
            at += bytes.len();
            data.extend_from_slice(bytes);
        }
        let mut h = serde_json::to_vec(&header).unwrap();
        // An odd header length puts every tensor at an odd offset: data need not be aligned.
        if h.len() % 2 == 0 {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn single_file_tensors_come_back_in_data_order_at_odd_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = file_bytes(&[
            ("b", "F16", vec![2], vec![0, 60, 0, 64]),
            ("a", "F32", vec![1, 1], 1.5f32.to_le_bytes().to_vec()),
        ]);
        std::fs::write(dir.path().join(SINGLE_FILE), bytes).unwrap();
        let st = Safetensors::open_dir(dir.path()).unwrap();
        let names: Vec<&str> = st.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let a = st.get("a").unwrap();
        assert_eq!(a.dtype, StDtype::F32);
        assert_eq!(st.data(a), 1.5f32.to_le_bytes());
        assert_eq!(st.data(st.get("b").unwrap()), [0, 60, 0, 64]);
    }

    #[test]
    fn unsupported_dtype_names_tensor_and_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = file_bytes(&[("w", "I64", vec![1], vec![0; 8])]);
        std::fs::write(dir.path().join(SINGLE_FILE), bytes).unwrap();
        let err = Safetensors::open_dir(dir.path()).err().unwrap().to_string();
        assert!(err.contains("'w'") && err.contains("I64"), "{err}");
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = file_bytes(&[("w", "F32", vec![2], vec![0; 8])]);
        bytes.pop();
        std::fs::write(dir.path().join(SINGLE_FILE), bytes).unwrap();
        let err = Safetensors::open_dir(dir.path()).err().unwrap().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }

    #[test]
    fn parse_header_gives_the_ranges_open_dir_reads() {
        let bytes = file_bytes(&[
            ("b", "F16", vec![2], vec![0, 60, 0, 64]),
            ("a", "BF16", vec![1, 0], vec![]),
            ("c", "F32", vec![1], 1.5f32.to_le_bytes().to_vec()),
        ]);
        let tensors = parse_header(Path::new("x.safetensors"), &bytes).unwrap();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(tensors[2].byte_range().end, bytes.len());
        assert_eq!(&bytes[tensors[2].byte_range()], 1.5f32.to_le_bytes());
        assert!(tensors[1].byte_range().is_empty());
        let e = parse_header(Path::new("x.safetensors"), &bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.safetensors"), "{e}");
    }

    #[test]
    fn parse_index_lists_plain_shard_names() {
        let index = Path::new("model.safetensors.index.json");
        let listed = parse_index(index, r#"{"weight_map": {"w": "a.safetensors"}}"#).unwrap();
        assert_eq!(listed["w"], "a.safetensors");
        for (text, want) in [
            (r#"{"weight_map": {"w": "..\\a"}}"#, "plain file name"),
            (r#"{"weight_map": {"w": 3}}"#, "not a string"),
            (r#"{"weight_map": []}"#, "weight_map"),
            ("{", "model.safetensors.index.json"),
        ] {
            let e = parse_index(index, text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    fn write_sharded(dir: &Path, index: serde_json::Value) {
        std::fs::write(
            dir.join("model-00001-of-00002.safetensors"),
            file_bytes(&[("x", "BF16", vec![1], vec![0x80, 0x3f])]),
        )
        .unwrap();
        std::fs::write(
            dir.join("model-00002-of-00002.safetensors"),
            file_bytes(&[
                ("y", "F16", vec![1], vec![0, 60]),
                ("w", "F32", vec![1], vec![0; 4]),
            ]),
        )
        .unwrap();
        std::fs::write(dir.join(INDEX_FILE), index.to_string()).unwrap();
    }

    #[test]
    fn sharded_checkpoints_follow_the_index() {
        let dir = tempfile::tempdir().unwrap();
        write_sharded(
            dir.path(),
            serde_json::json!({"metadata": {}, "weight_map": {
                "y": "model-00002-of-00002.safetensors", "x": "model-00001-of-00002.safetensors",
                "w": "model-00002-of-00002.safetensors"}}),
        );
        let st = Safetensors::open_dir(dir.path()).unwrap();
        let names: Vec<&str> = st.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x", "y", "w"]);
        assert_eq!(st.paths().count(), 2);
    }

    #[test]
    fn sharded_checkpoint_errors_name_what_is_wrong() {
        let cases = [
            (
                serde_json::json!({"weight_map": {"x": "model-00001-of-00002.safetensors",
                    "y": "model-00003-of-00003.safetensors"}}),
                "missing",
            ),
            (
                serde_json::json!({"weight_map": {"x": "model-00002-of-00002.safetensors",
                    "y": "model-00001-of-00002.safetensors", "w": "model-00002-of-00002.safetensors"}}),
                "puts it in",
            ),
            (
                serde_json::json!({"weight_map": {"x": "model-00001-of-00002.safetensors",
                    "y": "model-00002-of-00002.safetensors"}}),
                "'w' in",
            ),
            (
                serde_json::json!({"weight_map": {"x": "model-00001-of-00002.safetensors",
                    "y": "model-00002-of-00002.safetensors", "w": "model-00002-of-00002.safetensors",
                    "z": "model-00002-of-00002.safetensors"}}),
                "'z' is listed",
            ),
            (
                serde_json::json!({"weight_map": {"x": "../model-00001-of-00002.safetensors"}}),
                "plain file name",
            ),
            (serde_json::json!({"metadata": {}}), "weight_map"),
        ];
        for (index, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            write_sharded(dir.path(), index.clone());
            let err = match Safetensors::open_dir(dir.path()) {
                Ok(_) => panic!("{index}: accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{index}: {err}");
        }
    }
}
