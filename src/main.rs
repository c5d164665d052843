//! The `dass-gguf` command line: parse arguments, call the library, print, set the exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use dass_gguf::convert::{self, Progress};
use dass_gguf::gguf::GgufModel;
use dass_gguf::hf::model::{checkpoint_files, HfModel};
use dass_gguf::hf::tensors::FileType;
use dass_gguf::imatrix::Imatrix;
use dass_gguf::inspect::{self, FileKind};
use dass_gguf::kernels::Pattern;
use dass_gguf::plan::{self, Method, OutType, Scope};
use dass_gguf::report::Report;
use dass_gguf::source::Source;

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
    /// Prune a GGUF model with DaSS, Wanda or magnitude and write a new GGUF.
    Convert(ConvertArgs),
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
        Command::Convert(args) => convert_command(args),
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
    if file.is_dir() {
        anyhow::bail!(
            "{} is a directory: inspect reads one file (for a Hugging Face checkpoint, one of its .safetensors files)",
            file.display()
        );
    }
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    Dass,
    Wanda,
    Magnitude,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    /// gate, up and down of every block
    Ffn,
    /// ffn plus attention q/k/v/output
    All,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutTypeArg {
    /// float tensors keep their type, quantized ones become F16
    Auto,
    F32,
    F16,
    Bf16,
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// The model: a GGUF file (for a split model, any shard), or a Hugging Face checkpoint
    /// directory (config.json, tokenizer files, *.safetensors), converted as llama.cpp's
    /// convert_hf_to_gguf.py converts it and pruned only when pruning options are given.
    input: PathBuf,
    /// Where to write the pruned model.
    #[arg(short, long)]
    output: PathBuf,
    /// llama.cpp imatrix file (GGUF or legacy .dat); needed by dass and wanda.
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// How weights are scored [default: dass].
    #[arg(long, value_enum)]
    method: Option<MethodArg>,
    /// Fraction of each comparison group to zero, in [0, 1). Default 0.5.
    #[arg(long, value_parser = parse_sparsity, conflicts_with = "pattern", allow_negative_numbers = true)]
    sparsity: Option<f64>,
    /// Semi-structured pattern N:M: zero N of every M consecutive weights, e.g. 2:4.
    #[arg(long, value_parser = parse_pattern)]
    pattern: Option<(usize, usize)>,
    /// DaSS exponent on the intermediate activation norm.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    alpha: f32,
    /// Which tensors are candidates for pruning.
    #[arg(long, value_enum, default_value = "ffn")]
    scope: ScopeArg,
    /// Only prune tensors whose name matches this regex (repeatable; on top of --scope).
    #[arg(long)]
    include: Vec<String>,
    /// Never prune tensors whose name matches this regex (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Type of the pruned tensors (GGUF input; auto keeps float types and writes quantized
    /// ones as F16), or of every converted weight (checkpoint input; auto is the type of the
    /// checkpoint's first F16/BF16 matrix, as in convert_hf_to_gguf.py).
    #[arg(long, value_enum, default_value = "auto")]
    outtype: OutTypeArg,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print what would happen to every tensor, and stop.
    #[arg(long)]
    dry_run: bool,
    /// Write a JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

fn parse_sparsity(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("sparsity must be in [0, 1), got {v}"))
    }
}

fn parse_pattern(s: &str) -> std::result::Result<(usize, usize), String> {
    let err = || format!("'{s}' is not a pattern N:M with 0 < N < M, e.g. 2:4");
    let (n, m) = s.split_once(':').ok_or_else(err)?;
    let (n, m): (usize, usize) = (
        n.trim().parse().map_err(|_| err())?,
        m.trim().parse().map_err(|_| err())?,
    );
    if n == 0 || n >= m {
        return Err(err());
    }
    Ok((n, m))
}

/// An indicatif bar fed by the conversion.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn phase(&self, name: &str, total_bytes: u64) {
        self.0.set_length(total_bytes);
        self.0.set_position(0);
        self.0.set_prefix(name.to_string());
    }
    fn tensor(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn convert_command(a: ConvertArgs) -> Result<()> {
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("setting up the thread pool")?;
    }
    let regexes = |v: &[String]| -> Result<Vec<regex::Regex>> {
        v.iter()
            .map(|r| regex::Regex::new(r).with_context(|| format!("bad regex '{r}'")))
            .collect()
    };
    let pattern = match (a.pattern, a.sparsity) {
        (Some((n, m)), _) => Pattern::NM { n, m },
        (None, s) => Pattern::Unstructured {
            sparsity: s.unwrap_or(0.5),
        },
    };
    let options = plan::Options {
        method: match a.method.unwrap_or(MethodArg::Dass) {
            MethodArg::Dass => Method::Dass,
            MethodArg::Wanda => Method::Wanda,
            MethodArg::Magnitude => Method::Magnitude,
        },
        pattern,
        alpha: a.alpha,
        scope: match a.scope {
            ScopeArg::Ffn => Scope::Ffn,
            ScopeArg::All => Scope::All,
        },
        include: regexes(&a.include)?,
        exclude: regexes(&a.exclude)?,
        outtype: match a.outtype {
            OutTypeArg::Auto => OutType::Auto,
            OutTypeArg::F32 => OutType::F32,
            OutTypeArg::F16 => OutType::F16,
            OutTypeArg::Bf16 => OutType::Bf16,
        },
    };

    let checkpoint = Source::is_checkpoint_dir(&a.input);
    let prune = !checkpoint
        || a.imatrix.is_some()
        || a.method.is_some()
        || a.sparsity.is_some()
        || a.pattern.is_some();
    let (model, input_paths) = if checkpoint {
        // Before reading anything: the output may not be any file of the checkpoint.
        let files = checkpoint_files(&a.input)?;
        let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
        dass_gguf::gguf::writer::check_not_an_input(&a.output, &refs)?;
        let file_type = match a.outtype {
            OutTypeArg::Auto => None,
            OutTypeArg::F32 => Some(FileType::F32),
            OutTypeArg::F16 => Some(FileType::F16),
            OutTypeArg::Bf16 => Some(FileType::BF16),
        };
        let model = HfModel::open(&a.input, file_type)?;
        (Source::Hf(Box::new(model)), files)
    } else {
        let model = GgufModel::open(&a.input)?;
        let shards = model
            .shards()
            .iter()
            .map(|s| s.path().to_path_buf())
            .collect();
        (Source::Gguf(model), shards)
    };
    // The checkpoint's weights are already in the chosen type; pruning keeps it.
    let options = if checkpoint {
        plan::Options {
            outtype: OutType::Auto,
            ..options
        }
    } else {
        options
    };
    let mut inputs: Vec<&std::path::Path> = input_paths.iter().map(|p| p.as_path()).collect();
    if let Some(p) = &a.imatrix {
        inputs.push(p);
    }
    dass_gguf::gguf::writer::check_not_an_input(&a.output, &inputs)?;
    if let Some(report) = &a.report {
        let mut taken = inputs.clone();
        taken.push(&a.output);
        dass_gguf::gguf::writer::check_not_an_input(report, &taken)
            .context("--report must name a file that is neither an input nor the output")?;
        if report == &a.output {
            anyhow::bail!("--report and --output name the same file");
        }
        let dir = report.parent().filter(|p| !p.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            anyhow::bail!(
                "cannot write the report {}: its directory does not exist",
                report.display()
            );
        }
    }
    if !a.dry_run && !a.force && a.output.exists() {
        anyhow::bail!("{} exists: pass --force to replace it", a.output.display());
    }
    let imatrix = match &a.imatrix {
        Some(p) => Some(Imatrix::open(p)?),
        None => None,
    };
    let imatrix_name = a
        .imatrix
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plan = if prune {
        plan::make_plan(
            &model,
            imatrix.as_ref().map(|i| (i, imatrix_name.as_str())),
            &options,
        )?
    } else {
        plan::conversion_plan(&model)
    };
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        write!(out, "{plan}")?;
        out.flush()?;
        return Ok(());
    }

    let bar = progress_bar(0, a.quiet);
    if !bar.is_hidden() {
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    }
    let bar = Bar(bar);
    let outcome = convert::execute(
        &model,
        imatrix.as_ref(),
        &plan,
        &a.output,
        &inputs,
        a.force,
        &bar,
    )?;
    bar.0.finish_and_clear();
    let report = Report::new(
        model.describe(),
        a.output.display().to_string(),
        a.imatrix.as_ref().map(|p| p.display().to_string()),
        &plan,
        outcome,
    );
    if let Some(path) = &a.report {
        let json = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, json).with_context(|| format!("writing report {}", path.display()))?;
    }
    if !a.quiet {
        eprint!("{report}");
    }
    Ok(())
}
