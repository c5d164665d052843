//! A mapped input that changes underneath becomes a clear error, not a crash.
//!
//! Inputs are memory-mapped. When a file is truncated while mapped, reading a page past its
//! new end raises SIGBUS, which by default kills the process without a word. Every mapping of
//! an input is registered here ([`watch`]) with a message naming its file; once [`install`]ed,
//! the handler looks the faulting address up and, when it lies in a registered mapping,
//! writes that message, removes the temporary output files registered with
//! [`RemoveOnFault`] (an unnamed `O_TMPFILE` output needs nothing: it vanishes with the
//! process) and exits with status 2, as every other error does. A fault anywhere else is left
//! to the default action.
//!
//! The handler may only call async-signal-safe functions (`write`, `unlink`, `_exit`) and read
//! atomics, so messages and paths are prepared as bytes when registered and the registry is a
//! fixed table of atomic slots, never locked or allocated in by the handler.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

/// Slots for mappings and for output paths; more at once are not watched (the fault is then
/// the default crash), which no conversion comes near.
const SLOTS: usize = 256;

struct Slot {
    used: AtomicBool,
    /// A mapping: its address range. An output path: `start` 0, `len` 0.
    start: AtomicUsize,
    len: AtomicUsize,
    /// The bytes to print (a mapping) or the NUL-terminated path to unlink (an output).
    text: AtomicPtr<u8>,
    text_len: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    used: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    text: AtomicPtr::new(std::ptr::null_mut()),
    text_len: AtomicUsize::new(0),
};

static MAPPINGS: [Slot; SLOTS] = [EMPTY; SLOTS];
static OUTPUTS: [Slot; SLOTS] = [EMPTY; SLOTS];

/// Claims a free slot of `table` and fills it; the text is leaked (a few hundred bytes per
/// file opened), so the handler can never read freed memory.
fn claim(table: &'static [Slot; SLOTS], start: usize, len: usize, text: Vec<u8>) -> Option<usize> {
    let text: &'static mut [u8] = Box::leak(text.into_boxed_slice());
    for (i, slot) in table.iter().enumerate() {
        if slot
            .used
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            slot.text.store(text.as_mut_ptr(), Ordering::Release);
            slot.text_len.store(text.len(), Ordering::Release);
            slot.start.store(start, Ordering::Release);
            slot.len.store(len, Ordering::Release);
            return Some(i);
        }
    }
    None
}

fn release(table: &'static [Slot; SLOTS], i: usize) {
    table[i].len.store(0, Ordering::Release);
    table[i].start.store(0, Ordering::Release);
    table[i].text_len.store(0, Ordering::Release);
    table[i].used.store(false, Ordering::Release);
}

/// While alive, a fault in the mapping it was made for is reported as a change of its file.
#[must_use = "the mapping is watched only while the guard lives"]
pub struct Watch(Option<usize>);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            release(&MAPPINGS, i);
        }
    }
}

/// Watches the mapping `bytes` of the file `path`.
pub fn watch(bytes: &[u8], path: &Path) -> Watch {
    let message = format!(
        "error: {}: input changed while being read (the file was truncated \
         during the run); no output was written\n",
        path.display()
    );
    Watch(claim(
        &MAPPINGS,
        bytes.as_ptr() as usize,
        bytes.len(),
        message.into_bytes(),
    ))
}

/// While alive, a fault on a watched input removes the file at its path.
pub struct RemoveOnFault(Option<usize>);

impl RemoveOnFault {
    pub fn new(path: &Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut text = absolute.as_os_str().as_bytes().to_vec();
        text.push(0);
        RemoveOnFault(claim(&OUTPUTS, 0, 0, text))
    }
}

impl Drop for RemoveOnFault {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            release(&OUTPUTS, i);
        }
    }
}

/// Installs the SIGBUS handler (once; later calls do nothing). The binary calls it at start;
/// a library user who maps inputs through this crate may too.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid starting value; the handler has the
        // SA_SIGINFO signature and only does async-signal-safe things.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &MAPPINGS {
        if !slot.used.load(Ordering::Acquire) {
            continue;
        }
        let (start, len) = (
            slot.start.load(Ordering::Acquire),
            slot.len.load(Ordering::Acquire),
        );
        if len == 0 || addr < start || addr - start >= len {
            continue;
        }
        let (text, text_len) = (
            slot.text.load(Ordering::Acquire),
            slot.text_len.load(Ordering::Acquire),
        );
        // SAFETY: text points to a leaked buffer of text_len bytes; write, unlink and _exit
        // are async-signal-safe.
        unsafe {
            libc::write(2, text as *const libc::c_void, text_len);
            for out in &OUTPUTS {
                let path = out.text.load(Ordering::Acquire);
                if out.used.load(Ordering::Acquire) && !path.is_null() {
                    libc::unlink(path as *const libc::c_char);
                }
            }
            libc::_exit(2);
        }
    }
    // Not an input's mapping: the default action (the fault repeats when this returns).
    // SAFETY: restoring the default disposition is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_claimed_and_released() {
        let bytes = vec![0u8; 64];
        let before = MAPPINGS
            .iter()
            .filter(|s| s.used.load(Ordering::Acquire))
            .count();
        let w = watch(&bytes, Path::new("/x/model.gguf"));
        let i = w.0.expect("a free slot");
        assert_eq!(
            MAPPINGS[i].start.load(Ordering::Acquire),
            bytes.as_ptr() as usize
        );
        assert_eq!(MAPPINGS[i].len.load(Ordering::Acquire), 64);
        let text = unsafe {
            std::slice::from_raw_parts(
                MAPPINGS[i].text.load(Ordering::Acquire),
                MAPPINGS[i].text_len.load(Ordering::Acquire),
            )
        };
        let text = std::str::from_utf8(text).unwrap();
        assert!(
            text.starts_with("error: /x/model.gguf: input changed while being read"),
            "{text}"
        );
        drop(w);
        assert!(!MAPPINGS[i].used.load(Ordering::Acquire));
        let after = MAPPINGS
            .iter()
            .filter(|s| s.used.load(Ordering::Acquire))
            .count();
        assert!(after <= before);
        let r = RemoveOnFault::new(Path::new("/tmp/a.partial"));
        let j = r.0.unwrap();
        let path = unsafe {
            std::ffi::CStr::from_ptr(OUTPUTS[j].text.load(Ordering::Acquire) as *const libc::c_char)
        };
        assert_eq!(path.to_str().unwrap(), "/tmp/a.partial");
        drop(r);
        assert!(!OUTPUTS[j].used.load(Ordering::Acquire));
    }
}
