//! An output file that appears under its name only when it is complete and synced.
//!
//! On Linux the file is created unnamed in the target's directory (`O_TMPFILE`) and linked to
//! its name by [`PendingFile::commit`]; until then it has no name, so a kill at any moment
//! leaves nothing behind (the kernel frees the space when the process dies). Where the
//! filesystem refuses `O_TMPFILE` (and on other systems) it is written under a recognisable
//! temporary name, `.NAME.dass-PID-XXXXXX.partial`, and renamed into place; dropping it deletes
//! that name, but a killed process cannot, so [`leftovers`] finds such files (and the
//! `.dass-sweep-PID-XXXXXX` directories of a killed `sweep`), and [`remove_leftovers`] removes
//! the ones no live process holds.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fault;

/// Setting this environment variable (to anything) makes every output use the named temporary
/// file, as on a filesystem without `O_TMPFILE`: for tests of that path.
pub const NO_TMPFILE_ENV: &str = "DASS_GGUF_NO_TMPFILE";

/// How the pending file exists until it is committed.
enum Pending {
    /// Unnamed (`O_TMPFILE`): nothing to clean up, ever.
    Unnamed,
    /// Under a temporary name, deleted when dropped.
    Named(tempfile::TempPath),
}

/// A file being written for `target`; see the module documentation.
pub struct PendingFile {
    file: File,
    target: PathBuf,
    overwrite: bool,
    pending: Pending,
    /// While the temporary name exists, a fault on a mapped input removes it (see
    /// [`crate::fault`]).
    _cleanup: Option<fault::RemoveOnFault>,
}

/// Fails when `target` is one of `inputs`, or exists and `overwrite` is false: the checks
/// before anything is written to `target`.
pub fn check_target(target: &Path, inputs: &[&Path], overwrite: bool) -> Result<()> {
    crate::gguf::writer::check_not_an_input(target, inputs)?;
    if !overwrite && target.exists() {
        return Err(Error::io(
            "writing",
            target,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "output file exists"),
        ));
    }
    Ok(())
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl PendingFile {
    /// Starts a file for `target` (mode 0666 less the umask, as `cp` or `llama-quantize` make
    /// them). Fails when `target` is one of `inputs`, or exists and `overwrite` is false.
    pub fn create(target: &Path, inputs: &[&Path], overwrite: bool) -> Result<Self> {
        check_target(target, inputs, overwrite)?;
        let dir = parent_dir(target);
        if std::env::var_os(NO_TMPFILE_ENV).is_none() {
            if let Some(file) = unnamed_in(dir)? {
                return Ok(PendingFile {
                    file,
                    target: target.to_path_buf(),
                    overwrite,
                    pending: Pending::Unnamed,
                    _cleanup: None,
                });
            }
        }
        let tmp = named_in(dir, target)?;
        let (file, path) = tmp.into_parts();
        let cleanup = fault::RemoveOnFault::new(&path);
        Ok(PendingFile {
            file,
            target: target.to_path_buf(),
            overwrite,
            pending: Pending::Named(path),
            _cleanup: Some(cleanup),
        })
    }

    /// The file to write to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The name the file will have.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Whether the file is unnamed until committed (`O_TMPFILE`).
    pub fn is_unnamed(&self) -> bool {
        matches!(self.pending, Pending::Unnamed)
    }

    /// Syncs the file and gives it its name (replacing an existing file only when `overwrite`
    /// was asked). Only now does `target` change.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        self.file
            .sync_all()
            .map_err(|e| Error::io("syncing", &target, e))?;
        match self.pending {
            Pending::Named(path) => {
                let persisted = if self.overwrite {
                    path.persist(&target).map(drop)
                } else {
                    path.persist_noclobber(&target).map(drop)
                };
                persisted.map_err(|e| {
                    Error::io(
                        "renaming the finished file to",
                        &target,
                        without_path(e.error),
                    )
                })?;
            }
            Pending::Unnamed => link_unnamed(&self.file, &target, self.overwrite)?,
        }
        sync_dir(parent_dir(&target));
        Ok(())
    }
}

/// Writes `bytes` as the whole file `target`, which appears only complete (see
/// [`PendingFile`]); the checks are those of [`PendingFile::create`].
pub fn write_whole(target: &Path, bytes: &[u8], inputs: &[&Path], overwrite: bool) -> Result<()> {
    use std::io::Write;
    let file = PendingFile::create(target, inputs, overwrite)?;
    file.file()
        .write_all(bytes)
        .map_err(|e| Error::io("writing", target, e))?;
    file.commit()
}

/// The prefix of every temporary name this process gives a file for `target`.
fn temp_prefix(target: &Path) -> String {
    let stem = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.gguf".into());
    format!(".{stem}.dass-{}-", std::process::id())
}

/// How this tool names temporary files: `PREFIX` (from [`temp_prefix`]) then
/// `XXXXXX.partial`.
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".partial");
    // tempfile's default 0600 suits secrets, not models: ask for 0666 so the umask decides.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}

/// A named temporary file for `target` in `dir`.
fn named_in(dir: &Path, target: &Path) -> Result<tempfile::NamedTempFile> {
    temp_builder(&temp_prefix(target))
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a file in", dir, without_path(e)))
}

/// tempfile's errors carry the path in their text; the error this crate prints names it
/// already, so only the operating system's words are kept.
fn without_path(e: std::io::Error) -> std::io::Error {
    let inner = e
        .get_ref()
        .and_then(|p| p.source())
        .and_then(|s| s.downcast_ref::<std::io::Error>());
    match inner.and_then(|i| i.raw_os_error()) {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => e,
    }
}

/// An unnamed file in `dir`, or `None` where the filesystem (or system) has no `O_TMPFILE`.
#[cfg(target_os = "linux")]
fn unnamed_in(dir: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666)
        .open(dir);
    match opened {
        Ok(f) => Ok(Some(f)),
        // Not supported by this filesystem (or kernel): the named file instead.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io("creating a file in", dir, e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn unnamed_in(_dir: &Path) -> Result<Option<File>> {
    Ok(None)
}

/// Gives the unnamed `file` the name `target`. Without `overwrite` the link itself refuses an
/// existing `target` (another run may have made it meanwhile); with it, the file is linked to a
/// temporary name and renamed over `target`, which replaces it atomically.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, target: &Path, overwrite: bool) -> Result<()> {
    let err = |e| Error::io("naming the finished file", target, e);
    if !overwrite {
        return link_fd(file, target).map_err(err);
    }
    // A fresh name with the same prefix as the named temporary files (so that a kill in the
    // instant between link and rename leaves a file `leftovers` recognises), then the rename.
    let linked = temp_builder(&temp_prefix(target))
        .make_in(parent_dir(target), |temp| link_fd(file, temp))
        .map_err(|e| err(without_path(e)))?;
    linked
        .into_temp_path()
        .persist(target)
        .map_err(|e| err(without_path(e.error)))
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _target: &Path, _overwrite: bool) -> Result<()> {
    unreachable!("unnamed files exist only on Linux")
}

/// `linkat` of an open unnamed file: through `/proc/self/fd` (what an unprivileged process may
/// do), or with `AT_EMPTY_PATH` where `/proc` is not mounted.
#[cfg(target_os = "linux")]
fn link_fd(file: &File, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    let to = CString::new(to.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    let proc_path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: both paths are NUL-terminated C strings that outlive the calls.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc_path.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOENT) {
        return Err(e);
    }
    let empty = CString::new("").expect("no NUL");
    // SAFETY: as above; AT_EMPTY_PATH links the file `fd` refers to.
    let r = unsafe {
        libc::linkat(
            fd,
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes a new name durable; best effort, as not every filesystem allows fsync on a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A file or directory a run of this tool left behind when it was killed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    pub path: PathBuf,
    /// The process that made it.
    pub pid: u32,
    /// Bytes it takes (a directory: the files directly in it).
    pub bytes: u64,
    /// Whether that process still runs and holds it open (then it is not debris).
    pub live: bool,
}

/// The temporary files and sweep directories of this tool in `dir`.
pub fn leftovers(dir: &Path) -> Result<Vec<Leftover>> {
    let listing = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    let mut found = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(leftover_pid) else {
            continue;
        };
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => continue, // gone meanwhile
        };
        let bytes = if meta.is_dir() {
            std::fs::read_dir(&path)
                .map(|l| {
                    l.filter_map(|e| e.ok()?.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0)
        } else {
            meta.len()
        };
        let live = process_holds(pid, &path);
        found.push(Leftover {
            path,
            pid,
            bytes,
            live,
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Removes the leftovers in `dir` that no live process holds; returns them.
pub fn remove_leftovers(dir: &Path) -> Result<Vec<Leftover>> {
    let mut removed = Vec::new();
    for l in leftovers(dir)?.into_iter().filter(|l| !l.live) {
        let r = if l.path.is_dir() {
            std::fs::remove_dir_all(&l.path)
        } else {
            std::fs::remove_file(&l.path)
        };
        match r {
            Ok(()) => removed.push(l),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &l.path, e)),
        }
    }
    Ok(removed)
}

/// The prefix of a sweep's working directory made by this process.
pub fn sweep_dir_prefix(hidden: bool) -> String {
    format!(
        "{}dass-sweep-{}-",
        if hidden { "." } else { "" },
        std::process::id()
    )
}

/// The pid in a leftover's name: `.NAME.dass-PID-XXXXXX.partial` or `[.]dass-sweep-PID-XXXXXX`.
fn leftover_pid(name: &str) -> Option<u32> {
    let pid_then_rest = if let Some(rest) = name.strip_suffix(".partial") {
        if !name.starts_with('.') {
            return None;
        }
        rest.rsplit_once(".dass-")?.1
    } else {
        name.strip_prefix('.')
            .unwrap_or(name)
            .strip_prefix("dass-sweep-")?
    };
    let (pid, random) = pid_then_rest.split_once('-')?;
    if random.is_empty() || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` runs and has `path` (or, for a directory, a file in it) open. Without
/// `/proc` the answer is yes: nothing is removed that might be in use.
fn process_holds(pid: u32, path: &Path) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
        return false; // no such process (or not ours to look at: then not this tool's run)
    };
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|held| held == path || held.starts_with(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_are_recognised_and_nothing_else() {
        assert_eq!(leftover_pid(".out.gguf.dass-123-a1B2c3.partial"), Some(123));
        assert_eq!(leftover_pid(".m.dass-x.gguf.dass-7-zz.partial"), Some(7));
        assert_eq!(leftover_pid(".dass-sweep-42-Xy9"), Some(42));
        assert_eq!(leftover_pid("dass-sweep-42-Xy9"), Some(42));
        for other in [
            "out.gguf",
            "out.gguf.dass-1-ab.partial", // not hidden
            ".out.gguf.AbC123.partial",   // an older tool's name: no pid
            ".out.gguf.dass-1-.partial",
            ".out.gguf.dass-x-ab.partial",
            ".dass-sweep-42",
            "dass-sweep-42-a.b",
        ] {
            assert_eq!(leftover_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_committed_file_has_its_name_and_nothing_else_is_left() {
        for named in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("out.bin");
            let p = if named {
                let tmp = named_in(dir.path(), &target).unwrap();
                let (file, path) = tmp.into_parts();
                PendingFile {
                    file,
                    target: target.clone(),
                    overwrite: false,
                    pending: Pending::Named(path),
                    _cleanup: None,
                }
            } else {
                PendingFile::create(&target, &[], false).unwrap()
            };
            use std::io::Write;
            p.file().write_all(b"hello").unwrap();
            if !named {
                // The unnamed file has no name in the directory while it is written.
                assert!(p.is_unnamed(), "this filesystem has O_TMPFILE");
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            } else {
                let l = leftovers(dir.path()).unwrap();
                assert_eq!(l.len(), 1);
                assert!(l[0].live, "this process holds it: {l:?}");
                assert!(remove_leftovers(dir.path()).unwrap().is_empty());
            }
            p.commit().unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), b"hello");
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["out.bin"]);
        }
    }

    #[test]
    fn commit_refuses_a_target_made_meanwhile_unless_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let p = PendingFile::create(&target, &[], false).unwrap();
        std::fs::write(&target, b"theirs").unwrap();
        let e = p.commit().unwrap_err().to_string();
        assert!(e.contains("exists"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");

        let p = PendingFile::create(&target, &[], true).unwrap();
        use std::io::Write;
        p.file().write_all(b"ours").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"ours");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dead_processes_leftovers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0 never names a process's /proc entry.
        let dead = dir.path().join(".out.gguf.dass-0-abc123.partial");
        std::fs::write(&dead, b"1234").unwrap();
        let sweep = dir.path().join(".dass-sweep-0-xyz");
        std::fs::create_dir(&sweep).unwrap();
        std::fs::write(sweep.join("candidate-0.gguf"), b"12").unwrap();
        let own = dir
            .path()
            .join(format!(".b.gguf.dass-{}-q.partial", std::process::id()));
        let held = File::create(&own).unwrap();
        std::fs::write(dir.path().join("keep.gguf"), b"x").unwrap();

        let found = leftovers(dir.path()).unwrap();
        let summary: Vec<(u64, bool)> = found.iter().map(|l| (l.bytes, l.live)).collect();
        assert_eq!(summary, [(0, true), (2, false), (4, false)], "{found:?}");
        let removed = remove_leftovers(dir.path()).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!dead.exists() && !sweep.exists() && own.exists());
        drop(held);
    }
}
