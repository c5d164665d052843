//! Input files, memory-mapped read-only and watched: a fault while reading one (the file was
//! truncated underneath) ends the run with an error naming it ([`crate::fault`]).

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::fault::{self, Watch};

/// A mapped input file.
pub struct MappedInput {
    /// Declared before the map, so the address range is forgotten before it is unmapped.
    _watch: Watch,
    map: Mmap,
}

impl MappedInput {
    /// Opens and maps `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        // SAFETY: the map is read-only and private to this process. Another process truncating
        // the file while it is read makes the access fault; that fault is turned into an error
        // naming the file by the watch (see crate::fault), instead of a silent crash.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("mapping", path, e))?;
        Ok(MappedInput {
            _watch: fault::watch(&map, path),
            map,
        })
    }
}

impl MappedInput {
    /// Asks the kernel to read ahead sequentially (a hint; failures are ignored).
    pub fn advise_sequential(&self) {
        let _ = self.map.advise(memmap2::Advice::Sequential);
    }
}

impl Deref for MappedInput {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl std::fmt::Debug for MappedInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedInput({} bytes)", self.map.len())
    }
}
