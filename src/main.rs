//! The `dass-gguf` command line: parse arguments, call the library, print, set the exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use dass_gguf::gguf::GgufModel;
use dass_gguf::imatrix::Imatrix;
use dass_gguf::inspect::{self, FileKind};

#[derive(Parser)]
#[command(
    name = "dass-gguf",
    version,
    about = "Prune LLM weights in GGUF files for llama.cpp"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a model GGUF, an imatrix (GGUF or legacy .dat) or a safetensors file holds.
    Inspect {
        /// The file. For a split model, any one of its shards.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Dequantize every tensor and report the fraction of exact zeros (models only).
        #[arg(long)]
        zeros: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`| head`) is not an error worth reporting.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect {
            file,
            json,
            zeros,
            quiet,
        } => inspect_command(&file, json, zeros, quiet),
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn inspect_command(file: &std::path::Path, json: bool, zeros: bool, quiet: bool) -> Result<()> {
    let kind = inspect::detect(file)?;
    if zeros && kind != FileKind::GgufModel {
        anyhow::bail!("--zeros applies to model GGUF files only");
    }
    let text = match kind {
        FileKind::GgufModel => {
            let model = GgufModel::open(file)?;
            let bar = progress_bar(
                if zeros {
                    inspect::zeros_work(&model)
                } else {
                    0
                },
                quiet || !zeros,
            );
            bar.set_message("counting zeros");
            let report = inspect::inspect_model(&model, zeros, &|n| bar.inc(n))?;
            bar.finish_and_clear();
            render(&report, json)?
        }
        FileKind::GgufImatrix | FileKind::LegacyImatrix => {
            let im = Imatrix::open(file).with_context(|| {
                if kind == FileKind::LegacyImatrix {
                    format!(
                        "{} is neither GGUF nor safetensors, and reading it as a legacy imatrix failed",
                        file.display()
                    )
                } else {
                    format!("reading imatrix {}", file.display())
                }
            })?;
            render(&inspect::inspect_imatrix(file, &im), json)?
        }
        FileKind::Safetensors => render(&inspect::inspect_safetensors(file)?, json)?,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn render<T: serde::Serialize + std::fmt::Display>(report: &T, json: bool) -> Result<String> {
    Ok(if json {
        let mut s = serde_json::to_string_pretty(report)?;
        s.push('\n');
        s
    } else {
        report.to_string()
    })
}
