//! Models split over several GGUF files (`name-00001-of-00003.gguf`), opened as one.
//!
//! Each shard is a complete GGUF file holding a subset of the tensors; the model's metadata
//! lives in the first (gguf-py and `llama-gguf-split` both do this). The shards are checked
//! against their `split.*` keys: numbering, count, and the total tensor count.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::reader::{GgufFile, MetadataEntry, TensorInfo};
use crate::error::{Error, Result};

/// A model in one GGUF file or in several shards.
#[derive(Debug)]
pub struct GgufModel {
    shards: Vec<GgufFile>,
}

/// A tensor of a model: the shard it is in and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRef {
    pub shard: usize,
    pub index: usize,
}

/// If `path` names a shard (`PREFIX-NNNNN-of-MMMMM.gguf`), its prefix, number and count.
pub fn parse_split_name(path: &Path) -> Option<(String, u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    if no.len() != 5 || count.len() != 5 {
        return None;
    }
    let no: u32 = no.parse().ok()?;
    let count: u32 = count.parse().ok()?;
    (no >= 1 && no <= count).then(|| (prefix.to_string(), no, count))
}

/// The path of shard `no` (1-based) of `count`, beside `like`.
pub fn split_path(like: &Path, prefix: &str, no: u32, count: u32) -> PathBuf {
    like.with_file_name(format!("{prefix}-{no:05}-of-{count:05}.gguf"))
}

impl GgufModel {
    /// Opens a model. A file whose `split.count` is above 1 opens every shard of the model,
    /// found by its name (`PREFIX-NNNNN-of-MMMMM.gguf`), as llama.cpp finds them.
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let count = match file.header().get("split.count") {
            Some(kv) => kv.as_integer()?,
            None => 1,
        };
        if count <= 1 {
            return Ok(GgufModel { shards: vec![file] });
        }
        let Some((prefix, no, named_count)) = parse_split_name(path) else {
            return Err(Error::Split(format!(
                "{} says it is one of {count} shards, but its name is not of the form NAME-00001-of-0000N.gguf",
                path.display()
            )));
        };
        if named_count as i128 != count {
            return Err(Error::Split(format!(
                "{} is named as one of {named_count} shards, but has split.count={count}",
                path.display()
            )));
        }
        let mut file = Some(file);
        let mut shards = Vec::with_capacity(named_count as usize);
        for n in 1..=named_count {
            if n == no {
                shards.extend(file.take());
                continue;
            }
            let p = split_path(path, &prefix, n, named_count);
            if !p.exists() {
                return Err(Error::Split(format!(
                    "shard {n} of {named_count} is missing: {}",
                    p.display()
                )));
            }
            shards.push(GgufFile::open(&p)?);
        }
        let model = GgufModel { shards };
        model.check_shards(named_count)?;
        Ok(model)
    }

    fn check_shards(&self, count: u32) -> Result<()> {
        for (i, shard) in self.shards.iter().enumerate() {
            let h = shard.header();
            let no = h.require("split.no").and_then(|kv| kv.as_integer());
            let cnt = h.require("split.count").and_then(|kv| kv.as_integer());
            match (no, cnt) {
                (Ok(no), Ok(cnt)) if no == i as i128 && cnt == count as i128 => {}
                (Ok(no), Ok(cnt)) => {
                    return Err(Error::Split(format!(
                        "{} has split.no={no}, split.count={cnt}; expected {i} and {count}",
                        shard.path().display()
                    )))
                }
                (Err(e), _) | (_, Err(e)) => {
                    return Err(Error::Split(format!("{}: {e}", shard.path().display())))
                }
            }
        }
        let first = self.shards[0].header();
        let total: usize = self.shards.iter().map(|s| s.header().tensors.len()).sum();
        if let Some(kv) = first.get("split.tensors.count") {
            let declared = kv.as_integer()?;
            if declared != total as i128 {
                return Err(Error::Split(format!(
                    "split.tensors.count is {declared}, but the shards hold {total} tensors"
                )));
            }
        }
        let mut names = HashSet::new();
        for shard in &self.shards {
            for t in &shard.header().tensors {
                if !names.insert(t.name.as_str()) {
                    return Err(Error::Split(format!(
                        "tensor '{}' appears in more than one shard",
                        t.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The shard files, in order.
    pub fn shards(&self) -> &[GgufFile] {
        &self.shards
    }

    /// The model's metadata (the first shard's).
    pub fn metadata(&self) -> &[MetadataEntry] {
        &self.shards[0].header().metadata
    }

    /// The entry for `key` in the model's metadata.
    pub fn get(&self, key: &str) -> Option<&MetadataEntry> {
        self.shards[0].header().get(key)
    }

    /// Every tensor of the model, in file order, with where it lives.
    pub fn tensors(&self) -> impl Iterator<Item = (TensorRef, &TensorInfo)> {
        self.shards.iter().enumerate().flat_map(|(shard, f)| {
            f.header()
                .tensors
                .iter()
                .enumerate()
                .map(move |(index, t)| (TensorRef { shard, index }, t))
        })
    }

    /// The tensor called `name`.
    pub fn find(&self, name: &str) -> Option<(TensorRef, &TensorInfo)> {
        self.tensors().find(|(_, t)| t.name == name)
    }

    /// The bytes of a tensor.
    pub fn tensor_data(&self, r: TensorRef) -> &[u8] {
        self.shards[r.shard].tensor_data(r.index)
    }

    /// Total size of the shard files in bytes.
    pub fn file_size(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes().len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(
            parse_split_name(Path::new("/m/llama-00002-of-00003.gguf")),
            Some(("llama".into(), 2, 3))
        );
        assert_eq!(parse_split_name(Path::new("model.gguf")), None);
        assert_eq!(parse_split_name(Path::new("a-00004-of-00003.gguf")), None);
        assert_eq!(parse_split_name(Path::new("a-0001-of-00003.gguf")), None);
        assert_eq!(
            split_path(Path::new("/m/x-00001-of-00002.gguf"), "x", 2, 2),
            PathBuf::from("/m/x-00002-of-00002.gguf")
        );
    }
}
