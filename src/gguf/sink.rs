//! The byte sink under [`GgufWriter`](super::GgufWriter): appends to the temporary output file
//! from a background thread, with direct I/O where the filesystem allows it.
//!
//! Why not a `BufWriter`: the output is fsynced before it is renamed into place. With buffered
//! writes every byte is first copied into the page cache (a third of the CPU time of a 7B run)
//! and nearly all of it reaches the disk only at that final fsync, after the computation is
//! over. Here the caller fills large page-aligned buffers and a second thread writes full ones
//! with `O_DIRECT`, so the disk works while the kernels still run and the fsync has almost
//! nothing left to do. Where `O_DIRECT` is refused (tmpfs, some network filesystems, non-Linux)
//! the same thread writes through the page cache instead: only the speed differs, never the
//! bytes.
//!
//! Direct I/O needs the buffer address, the length and the file offset aligned to the logical
//! block size; every write here is a whole buffer at a multiple of the buffer size, except the
//! tail at the very end, which is written after direct I/O is switched off again.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Alignment of buffers, lengths and offsets for direct I/O (a multiple of every common logical
/// block size).
const DIRECT_ALIGN: usize = 4096;
/// Size of one buffer. Two are in flight at most (one being filled, one being written).
pub(crate) const BUFFER_BYTES: usize = 8 << 20;

/// A heap buffer whose usable part starts at a `DIRECT_ALIGN`-aligned address.
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(capacity: usize) -> Self {
        let storage = vec![0u8; capacity + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuf {
            storage,
            start,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.storage.len() - DIRECT_ALIGN
    }

    fn filled(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// Copies as much of `bytes` as fits; returns how much that was.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.capacity() - self.len);
        let at = self.start + self.len;
        self.storage[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }
}

/// Appends bytes to a file through a background writer thread.
pub(crate) struct Sink {
    /// The buffer being filled.
    current: AlignedBuf,
    /// Full buffers to the writer thread.
    to_writer: Option<SyncSender<AlignedBuf>>,
    /// Emptied buffers back from it.
    returned: Receiver<AlignedBuf>,
    writer: Option<JoinHandle<io::Result<File>>>,
    /// The file handle kept here for the tail and the fsync (shares the offset with the
    /// writer thread's clone).
    file: File,
    direct: bool,
}

impl Sink {
    /// Starts a sink on `file` (positioned at offset 0). `try_direct` asks for direct I/O; it is
    /// used only when the filesystem accepts it.
    pub(crate) fn new(file: &File, try_direct: bool) -> io::Result<Self> {
        let file = file.try_clone()?;
        let direct = try_direct && set_direct(&file, true).is_ok();
        let for_writer = file.try_clone()?;
        let (to_writer, full) = sync_channel::<AlignedBuf>(1);
        let (give_back, returned) = sync_channel::<AlignedBuf>(2);
        give_back
            .send(AlignedBuf::new(BUFFER_BYTES))
            .expect("the receiver is alive");
        let writer = std::thread::Builder::new()
            .name("dass-gguf-io".into())
            .spawn(move || write_loop(for_writer, full, give_back))?;
        Ok(Sink {
            current: AlignedBuf::new(BUFFER_BYTES),
            to_writer: Some(to_writer),
            returned,
            writer: Some(writer),
            file,
            direct,
        })
    }

    /// Whether full buffers are written with direct I/O.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Hands the full current buffer to the writer thread and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        let empty = match self.returned.recv() {
            Ok(b) => b,
            Err(_) => return Err(self.writer_error()),
        };
        let full = std::mem::replace(&mut self.current, empty);
        self.current.len = 0;
        let sent = self.to_writer.as_ref().map(|tx| tx.send(full).is_ok());
        if sent != Some(true) {
            return Err(self.writer_error());
        }
        Ok(())
    }

    /// The error that stopped the writer thread.
    fn writer_error(&mut self) -> io::Error {
        self.to_writer = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("the output writer thread panicked"),
            _ => io::Error::other("the output writer thread stopped"),
        }
    }

    /// Writes everything still buffered, waits for the writer thread
    /// and writes the unaligned tail (not fsynced yet).
    pub(crate) fn finish(mut self) -> io::Result<()> {
        // Whole aligned blocks of the last buffer go the direct way; the tail after them is
        // written through the page cache.
        let aligned = self.current.len / DIRECT_ALIGN * DIRECT_ALIGN;
        let tail = self.current.filled()[aligned..].to_vec();
        self.current.len = aligned;
        if aligned > 0 {
            self.hand_over()?;
        }
        self.to_writer = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Ok(_))) => {}
            Some(Ok(Err(e))) => return Err(e),
            _ => return Err(io::Error::other("the output writer thread panicked")),
        }
        if self.direct {
            set_direct(&self.file, false)?;
        }
        self.file.write_all(&tail)
    }
}

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self.current.push(bytes);
            bytes = &bytes[n..];
            if self.current.len == self.current.capacity() {
                self.hand_over()?;
            }
        }
        Ok(())
    }

    /// Buffers are written when full or at [`Sink::finish`]; flushing early would break the
    /// alignment direct I/O needs.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink {
    /// Stops the writer thread before the temporary file can be removed under it.
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: writes each full buffer and gives it back, until the channel closes or a
/// write fails.
fn write_loop(
    mut file: File,
    full: Receiver<AlignedBuf>,
    give_back: SyncSender<AlignedBuf>,
) -> io::Result<File> {
    for buf in full {
        file.write_all(buf.filled())?;
        if give_back.send(buf).is_err() {
            break;
        }
    }
    Ok(file)
}

/// Turns `O_DIRECT` on or off for an open file.
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a file descriptor this process owns (kept open by `file` for the call);
    // F_GETFL and F_SETFL read and set status flags only, touching no memory of ours.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    if on {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "direct I/O is used on Linux only",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pattern(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Writes `pieces` through a sink and returns what the file holds.
    fn through_sink(dir: &std::path::Path, pieces: &[Vec<u8>], direct: bool) -> (Vec<u8>, bool) {
        let mut file = tempfile::tempfile_in(dir).unwrap();
        let mut sink = Sink::new(&file, direct).unwrap();
        let used_direct = sink.is_direct();
        for p in pieces {
            sink.write_all(p).unwrap();
        }
        sink.finish().unwrap();
        let mut back = Vec::new();
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut back).unwrap();
        (back, used_direct)
    }

    fn sizes_to_check() -> Vec<Vec<usize>> {
        vec![
            vec![],
            vec![1],
            vec![DIRECT_ALIGN],
            vec![BUFFER_BYTES],
            vec![BUFFER_BYTES + 1],
            vec![3, BUFFER_BYTES - 3, DIRECT_ALIGN + 7],
            vec![BUFFER_BYTES * 2 + DIRECT_ALIGN, 0, 13],
            vec![5_000_001, 5_000_003, 9_999_991],
        ]
    }

    #[test]
    fn every_byte_arrives_in_order_direct_or_not() {
        // The temporary directory is usually on a disk filesystem, where direct I/O is
        // accepted; the buffered path is forced with `try_direct = false`.
        let dir = tempfile::tempdir().unwrap();
        for direct in [true, false] {
            for (k, sizes) in sizes_to_check().into_iter().enumerate() {
                let pieces: Vec<Vec<u8>> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| pattern(n, (k * 10 + i) as u32))
                    .collect();
                let want: Vec<u8> = pieces.concat();
                let (got, used) = through_sink(dir.path(), &pieces, direct);
                assert!(!used || direct);
                if k == 0 {
                    eprintln!("direct I/O asked {direct}, used {used}");
                }
                assert_eq!(got.len(), want.len(), "sizes {sizes:?}, direct {direct}");
                assert!(
                    got == want,
                    "bytes differ: sizes {sizes:?}, direct {direct}"
                );
            }
        }
    }

    #[test]
    fn a_failed_write_is_reported_not_lost() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let mut sink = Sink::new(&full, false).unwrap();
        let data = pattern(3 * BUFFER_BYTES, 7);
        let written = sink.write_all(&data);
        let finished = if written.is_ok() {
            sink.finish()
        } else {
            written
        };
        let err = finished.expect_err("writes to /dev/full must fail");
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
    }
}
