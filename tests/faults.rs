//! Faults a careful user meets, on the real SmolLM2 files: a kill at any moment of a
//! conversion, an input truncated while it is read (GGUF, checkpoint, imatrix), and a full
//! filesystem. Each must leave no output (and, where the filesystem has `O_TMPFILE`, no file at
//! all) and say what happened.
//!
//! Missing files skip with a printed reason unless DASS_REQUIRE_REAL_FILES names smollm2. The
//! full-filesystem test mounts a small tmpfs in a user and mount namespace (`unshare -rm`), as
//! an unprivileged user may; where the system forbids that, it fails saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dass_command, dir_listing, real_file};

fn smollm2() -> Option<(PathBuf, PathBuf)> {
    Some((
        real_file("smollm2", "model.f16.gguf")?,
        real_file("smollm2", "imatrix.gguf")?,
    ))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn spawn_convert(input: &Path, out: &Path, im: &Path, named: bool, extra: &[&str]) -> Child {
    let mut c = dass_command();
    c.arg("convert")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--imatrix")
        .arg(im)
        .arg("--quiet")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if named {
        c.env("DASS_GGUF_NO_TMPFILE", "1");
    } else {
        c.env_remove("DASS_GGUF_NO_TMPFILE");
    }
    c.spawn().expect("spawn dass-gguf")
}

fn kill9(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

#[test]
fn a_kill_at_any_moment_leaves_nothing_in_the_target_directory() {
    let Some((model, im)) = smollm2() else { return };
    // From just after start (opening, planning) to the last tensors; the conversion takes a
    // few seconds here. A run that finished first is fine too: then its output is complete.
    for delay_ms in [20u64, 150, 400, 900, 1600, 2500, 4000] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.gguf");
        let mut child = spawn_convert(&model, &out, &im, false, &[]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        kill9(&mut child);
        let left = dir_listing(dir.path());
        if finished {
            assert_eq!(left, ["out.gguf"], "after {delay_ms} ms");
        } else {
            assert!(
                left.is_empty(),
                "a kill after {delay_ms} ms left {left:?} behind"
            );
        }
    }
}

#[test]
fn without_o_tmpfile_a_killed_runs_file_is_named_and_cleaned() {
    let Some((model, im)) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let mut child = spawn_convert(&model, &out, &im, true, &[]);
    // Wait until the temporary file exists, then kill.
    let t0 = Instant::now();
    while dir_listing(dir.path()).is_empty() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    kill9(&mut child);
    let left = dir_listing(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let pid = child.id();
    assert!(
        left[0].starts_with(&format!(".out.gguf.dass-{pid}-")) && left[0].ends_with(".partial"),
        "{left:?}"
    );

    // The next run says so, and with --clean removes it.
    let small = ["--method", "magnitude", "--include", "blk.0.ffn_up"];
    let note = dass_command()
        .args(["convert".as_ref(), model.as_os_str(), "-o".as_ref()])
        .arg(dir.path().join("a.gguf"))
        .args(small)
        .output()
        .unwrap();
    assert!(note.status.success(), "{}", stderr(&note));
    let text = stderr(&note);
    assert!(
        text.contains("1 file left by killed runs of dass-gguf") && text.contains(&left[0]),
        "{text}"
    );
    let clean = dass_command()
        .args(["convert".as_ref(), model.as_os_str(), "-o".as_ref()])
        .arg(dir.path().join("b.gguf"))
        .args(small)
        .arg("--clean")
        .output()
        .unwrap();
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert!(
        stderr(&clean).contains("removed 1 file(s)"),
        "{}",
        stderr(&clean)
    );
    assert_eq!(dir_listing(dir.path()), ["a.gguf", "b.gguf"]);
}

/// Starts `cmd`, waits until it has `watched` mapped, stops it, truncates `victim` to
/// `keep` bytes, lets it go on and returns what it did.
fn truncate_while_mapped(mut cmd: Command, watched: &Path, victim: &Path, keep: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let maps = format!("/proc/{}/maps", child.id());
    let name = watched.canonicalize().unwrap();
    let name = name.to_string_lossy().into_owned();
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(&maps).unwrap_or_default();
        if text.contains(&name) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it mapped {name}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name} never mapped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id() as i32;
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .set_len(keep)
        .unwrap();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    child.wait_with_output().unwrap()
}

fn assert_input_changed(res: &Output, victim_name: &str, out_dir: &Path) {
    let err = stderr(res);
    assert_eq!(res.status.code(), Some(2), "{err}");
    assert!(
        err.contains(victim_name) && err.contains("input changed while being read"),
        "{err}"
    );
    assert!(
        dir_listing(out_dir).is_empty(),
        "{:?}",
        dir_listing(out_dir)
    );
}

#[test]
fn a_gguf_input_truncated_while_read_is_a_clear_error_and_leaves_nothing() {
    let Some((model, im)) = smollm2() else { return };
    for named in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.gguf");
        std::fs::copy(&model, &input).unwrap();
        let out_dir = dir.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let mut cmd = dass_command();
        cmd.arg("convert")
            .arg(&input)
            .arg("-o")
            .arg(out_dir.join("out.gguf"))
            .arg("--imatrix")
            .arg(&im)
            .arg("--quiet");
        if named {
            cmd.env("DASS_GGUF_NO_TMPFILE", "1");
        }
        // The header stays; the tensor data goes.
        let res = truncate_while_mapped(cmd, &input, &input, 2_000_000);
        assert_input_changed(&res, "in.gguf", &out_dir);
    }
}

#[test]
fn a_checkpoint_truncated_while_read_is_a_clear_error_and_leaves_nothing() {
    let Some(ckpt) = common::cached("hf/smollm2", "smollm2", "scripts/make-hf-checkpoints.sh")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ckpt");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(&ckpt).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
    }
    let weights = copy.join("model.safetensors");
    assert!(weights.exists(), "the checkpoint has one model.safetensors");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let mut cmd = dass_command();
    cmd.arg("convert")
        .arg(&copy)
        .arg("-o")
        .arg(out_dir.join("out.gguf"))
        .args(["--outtype", "f16", "--quiet"]);
    let res = truncate_while_mapped(cmd, &weights, &weights, 1_000_000);
    assert_input_changed(&res, "model.safetensors", &out_dir);
}

/// Runs `script` with `sh` in a new user and mount namespace, where it may mount a tmpfs.
fn in_namespace(script: &str) -> Output {
    let probe = Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .expect("unshare (util-linux) is installed");
    assert!(
        probe.status.success(),
        "this system forbids user namespaces (unshare -rm true: {}); the full-filesystem test \
         needs one to mount a small tmpfs",
        stderr(&probe)
    );
    Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn a_full_filesystem_says_how_much_is_needed_and_leaves_nothing() {
    let Some((model, im)) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let bin = env!("CARGO_BIN_EXE_dass-gguf");
    let (m, i, d) = (model.display(), im.display(), mnt.display());
    // Too small from the start: refused before a byte is written. Then room at the start, but
    // another writer fills the disk meanwhile: the write fails. After each, the directory must
    // hold nothing of ours.
    let script = format!(
        "set -e; mount -t tmpfs -o size=100m tmpfs {d}
         {bin} convert {m} -o {d}/a.gguf --imatrix {i} --quiet 2>{d}/../err1 && exit 10 || true
         ls -A {d} > {d}/../ls1
         mount -o remount,size=300m {d}
         ( {bin} convert {m} -o {d}/b.gguf --imatrix {i} --quiet 2>{d}/../err2 && exit 10 || true ) &
         sleep 0.5; dd if=/dev/zero of={d}/filler bs=1M count=290 2>/dev/null || true
         wait $!
         rm -f {d}/filler
         ls -A {d} > {d}/../ls2"
    );
    let res = in_namespace(&script);
    assert!(res.status.success(), "{}", stderr(&res));
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    let err1 = read("err1");
    assert!(
        err1.contains("a.gguf: not enough space")
            && err1.contains("and only 104.86 MB (104857600 bytes) are free"),
        "{err1}"
    );
    assert!(err1.contains("MB ("), "{err1}");
    assert_eq!(read("ls1"), "");
    let err2 = read("err2");
    // The filler may win the race for the start too; either message names the sizes.
    assert!(
        err2.contains("b.gguf: no space left on its filesystem: the output needs")
            || err2.contains("b.gguf: not enough space"),
        "{err2}"
    );
    assert!(
        err2.matches(" bytes)").count() == 2 && err2.lines().count() == 1,
        "{err2}"
    );
    assert_eq!(read("ls2"), "");
}
