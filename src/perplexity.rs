//! Running llama.cpp's `llama-perplexity` on a model and reading its result: the measurement
//! behind `sweep`. The tool is the user's own (found on `PATH` or given), so what is measured is
//! what their llama.cpp computes; nothing here evaluates a model.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name looked up on `PATH` when no tool is given.
pub const TOOL: &str = "llama-perplexity";

/// How perplexity is measured: the same text, context and chunks for every model.
#[derive(Debug, Clone)]
pub struct Perplexity {
    pub tool: PathBuf,
    pub text: PathBuf,
    /// Context length (`-c`).
    pub ctx: usize,
    /// Number of chunks of `ctx` tokens (`--chunks`); `None`: the whole text.
    pub chunks: Option<usize>,
    /// Threads (`-t`); `None`: llama.cpp's default.
    pub threads: Option<usize>,
}

/// One measurement, as llama-perplexity prints it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub ppl: f64,
    /// The ± llama-perplexity prints (its estimate of the standard error).
    pub plus_minus: f64,
}

impl Perplexity {
    /// `tool` if given (it must exist), else `llama-perplexity` on `PATH`; the text must be a
    /// readable file.
    pub fn new(
        tool: Option<PathBuf>,
        text: PathBuf,
        ctx: usize,
        chunks: Option<usize>,
        threads: Option<usize>,
    ) -> Result<Perplexity> {
        let tool = match tool {
            Some(t) if t.is_file() => t,
            Some(t) => {
                return Err(Error::Tool {
                    tool: t,
                    message: "no such file (--llama-perplexity names llama.cpp's \
                              llama-perplexity executable)"
                        .into(),
                })
            }
            None => find_on_path(TOOL, std::env::var_os("PATH")).ok_or_else(|| Error::Tool {
                tool: TOOL.into(),
                message: "not found on PATH: install llama.cpp's tools or give \
                          --llama-perplexity PATH"
                    .into(),
            })?,
        };
        std::fs::File::open(&text).map_err(|e| Error::io("opening", &text, e))?;
        if ctx < 16 {
            return Err(Error::Usage(format!(
                "a context of {ctx} tokens is too short to measure perplexity"
            )));
        }
        if chunks == Some(0) {
            return Err(Error::Usage("--chunks must be at least 1".into()));
        }
        Ok(Perplexity {
            tool,
            text,
            ctx,
            chunks,
            threads,
        })
    }

    /// The arguments for `model`.
    pub fn args(&self, model: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![
            "-m".into(),
            model.into(),
            "-f".into(),
            self.text.clone().into(),
            "-c".into(),
            self.ctx.to_string().into(),
        ];
        if let Some(n) = self.chunks {
            a.extend(["--chunks".into(), n.to_string().into()]);
        }
        if let Some(t) = self.threads {
            a.extend(["-t".into(), t.to_string().into()]);
        }
        a
    }

    /// Runs the tool on `model` and reads its final estimate.
    pub fn measure(&self, model: &Path) -> Result<Measured> {
        let out = Command::new(&self.tool)
            .args(self.args(model))
            .output()
            .map_err(|e| Error::Tool {
                tool: self.tool.clone(),
                message: format!("cannot run it: {e}"),
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(m) = final_estimate(&text) {
            if out.status.success() {
                return Ok(m);
            }
        }
        let fail = |message: String| Error::Tool {
            tool: self.tool.clone(),
            message,
        };
        if let Some(line) = text.lines().find(|l| l.contains("you need at least")) {
            return Err(fail(format!(
                "the text {} is too short for a context of {}: {}",
                self.text.display(),
                self.ctx,
                line.trim()
            )));
        }
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(fail(format!(
            "{} on {} ({}), and printed no final estimate; its last lines:\n{}",
            if out.status.success() {
                "ran"
            } else {
                "failed"
            },
            model.display(),
            out.status,
            tail.join("\n")
        )))
    }
}

/// The first executable file called `name` in the `PATH` list.
fn find_on_path(name: &str, path: Option<OsString>) -> Option<PathBuf> {
    std::env::split_paths(&path?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Reads `Final estimate: PPL = 11.6700 +/- 0.43` (llama-perplexity's last result line, which
/// may follow a timestamp or log prefix).
fn final_estimate(text: &str) -> Option<Measured> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("Final estimate: PPL ="))?;
    let rest = line.split("Final estimate: PPL =").nth(1)?;
    let mut parts = rest.split("+/-");
    let ppl: f64 = parts.next()?.trim().parse().ok()?;
    let plus_minus: f64 = parts.next()?.split_whitespace().next()?.parse().ok()?;
    (ppl.is_finite() && plus_minus.is_finite()).then_some(Measured { ppl, plus_minus })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_final_estimate_after_a_prefix() {
        let out = "[1]10.1,[2]11.2,\n0.01.234.567 I Final estimate: PPL = 11.6700 +/- 0.43120\n";
        assert_eq!(
            final_estimate(out),
            Some(Measured {
                ppl: 11.67,
                plus_minus: 0.4312
            })
        );
        assert_eq!(final_estimate("Final estimate: PPL = nan +/- nan"), None);
        assert_eq!(final_estimate("no estimate"), None);
    }

    #[test]
    fn finds_an_executable_on_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join(TOOL);
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                find_on_path(TOOL, Some(path.clone())),
                None,
                "not executable"
            );
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(find_on_path(TOOL, Some(path)), Some(tool));
        assert_eq!(find_on_path(TOOL, None), None);
    }
}
