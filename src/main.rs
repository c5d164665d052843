//! The `dass-gguf` command line: parse arguments, call the library, print, set the exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use dass_gguf::channels::{Allocation, ChannelOptions, ChannelScore, Keep};
use dass_gguf::convert::{Job, Request};
use dass_gguf::error::human_bytes;
use dass_gguf::gguf::GgufModel;
use dass_gguf::inspect;
use dass_gguf::kernels::Pattern;
use dass_gguf::model_report::{write_model_report, ModelReportRequest};
use dass_gguf::out_type::OutType;
use dass_gguf::output_file::{self, parent_dir};
use dass_gguf::perplexity::Perplexity;
use dass_gguf::plan::{self, MethodChoice, Scope};
use dass_gguf::progress;
use dass_gguf::refit::RefitOptions;
use dass_gguf::rules::Method;
use dass_gguf::source::Source;
use dass_gguf::sweep::{self, Candidate, SweepRequest};
use dass_gguf::verify;

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
    /// Prune a GGUF model (or a Hugging Face checkpoint) with DaSS, Wanda or magnitude, or
    /// remove whole feed-forward channels (--keep-ffn), and write a new GGUF.
    Convert(Box<ConvertArgs>),
    /// Try pruning settings on your own model: convert each candidate, measure it with
    /// llama.cpp's llama-perplexity on your text, print the table (and JSON), and with --apply
    /// keep the best.
    Sweep(Box<SweepArgs>),
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
    /// Write the report of a model that is not (or not yet) pruned: what its imatrix says per
    /// layer and role, and a sweep's perplexity against size. An HTML page with charts when
    /// the output's name ends in .html, JSON otherwise.
    Report {
        /// The model (GGUF; for a split model, any shard).
        model: PathBuf,
        /// llama.cpp imatrix file (GGUF or legacy .dat) of this model.
        #[arg(long)]
        imatrix: Option<PathBuf>,
        /// The results `sweep --json FILE` wrote.
        #[arg(long)]
        sweep: Option<PathBuf>,
        /// Where to write the report (replaced if it exists; never one of the inputs).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Run the model through llama.cpp over calibration text and write the statistics that let
    /// pruning refit what it removes: per feed-forward block the second-moment matrices of
    /// ffn_down's input and of the block input, with the diagonals an imatrix holds
    /// (docs/stats.md). Needs a build with `--features calibrate`.
    Calibrate(Box<CalibrateArgs>),
    /// Check a file convert wrote against what its dass.* metadata claims (and, with
    /// --against, against the input it was made from). Exit code 1 when anything is not so.
    Verify {
        /// The file. For a split model, any one of its shards.
        file: PathBuf,
        /// The input the file was made from (GGUF; any shard of a split model): then every
        /// changed weight must be a zero, and everything not pruned must be the input's.
        #[arg(long)]
        against: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Exit code when `verify` (or `convert --verify`) finds the file is not what it claims;
/// errors (unreadable files, bad arguments) exit with 2.
const EXIT_VIOLATIONS: u8 = 1;

fn main() -> ExitCode {
    // A mapped input truncated underneath becomes an error naming it, not a silent SIGBUS.
    dass_gguf::fault::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
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

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Convert(args) => convert_command(*args),
        Command::Sweep(args) => sweep_command(*args).map(|()| ExitCode::SUCCESS),
        Command::Inspect {
            file,
            json,
            zeros,
            quiet,
        } => inspect_command(&file, json, zeros, quiet).map(|()| ExitCode::SUCCESS),
        Command::Verify {
            file,
            against,
            json,
            quiet,
        } => verify_command(&file, against.as_deref(), json, quiet),
        Command::Calibrate(args) => calibrate_command(*args).map(|()| ExitCode::SUCCESS),
        Command::Report {
            model,
            imatrix,
            sweep,
            output,
        } => {
            let request = ModelReportRequest {
                model,
                imatrix,
                sweep,
                output,
            };
            write_model_report(&request)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(clap::Args, Debug)]
struct CalibrateArgs {
    /// The model (GGUF, any type llama.cpp runs; for a split model, its first shard).
    model: PathBuf,
    /// Calibration text (UTF-8); several files are read one after the other.
    #[arg(long, short = 'f', required = true, num_args = 1..)]
    text: Vec<PathBuf>,
    /// At most this many chunks (default: as many as the text fills).
    #[arg(long)]
    chunks: Option<usize>,
    /// Tokens per chunk (llama-imatrix's -c).
    #[arg(long, short = 'c', default_value_t = 512)]
    ctx: usize,
    /// Where to write the statistics file (GGUF, docs/stats.md).
    #[arg(long, short)]
    output: PathBuf,
    /// Also write the diagonals as a standard imatrix (GGUF) that llama-quantize reads.
    #[arg(long, value_name = "FILE")]
    export_imatrix: Option<PathBuf>,
    /// Keep the attention inputs' second-moment matrices too.
    #[arg(long)]
    attention: bool,
    /// llama.cpp's threads (default: every core).
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Replace the outputs if they exist.
    #[arg(long)]
    force: bool,
}

fn calibrate_command(a: CalibrateArgs) -> Result<()> {
    let opts = dass_gguf::calibrate::CalibrateOptions {
        model: a.model,
        texts: a.text,
        chunks: a.chunks,
        ctx: a.ctx,
        output: a.output,
        export_imatrix: a.export_imatrix,
        attention: a.attention,
        threads: a.threads,
        quiet: a.quiet,
        force: a.force,
    };
    let summary = dass_gguf::calibrate::run(&opts)?;
    if !a.quiet {
        eprintln!(
            "calibrate: {} chunks of {} tokens in {:.1} s ({:.0} tokens/s); {} weights, {} \
             second-moment matrices; wrote {} ({:.1} MiB)",
            summary.chunks,
            summary.chunk_size,
            summary.seconds,
            summary.tokens_per_second,
            summary.weights,
            summary.matrices,
            summary.output.display(),
            summary.output_bytes as f64 / (1u64 << 20) as f64
        );
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&summary)? + "\n";
        let mut inputs: Vec<&std::path::Path> = vec![opts.model.as_path(), opts.output.as_path()];
        inputs.extend(opts.texts.iter().map(|p| p.as_path()));
        output_file::write_whole(path, text.as_bytes(), &inputs, true)?;
    }
    Ok(())
}

fn verify_command(
    file: &std::path::Path,
    against: Option<&std::path::Path>,
    json: bool,
    quiet: bool,
) -> Result<ExitCode> {
    let input = match against {
        Some(p) if p.is_dir() => anyhow::bail!(
            "--against {}: a directory; verify compares with a GGUF input (convert --verify \
             checks an output made from a checkpoint)",
            p.display()
        ),
        Some(p) => Some(Source::Gguf(GgufModel::open(p)?)),
        None => None,
    };
    let bar = progress::ConvertBar::new(quiet);
    let verdict = verify::verify(file, input.as_ref(), &bar);
    bar.0.finish_and_clear();
    let verdict = verdict?;
    let mut out = std::io::stdout().lock();
    out.write_all(verdict.render(json)?.as_bytes())?;
    out.flush()?;
    Ok(if verdict.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}

fn inspect_command(file: &std::path::Path, json: bool, zeros: bool, quiet: bool) -> Result<()> {
    let bar = progress::inspect_bar(quiet || !zeros);
    bar.set_message("counting zeros");
    let report = inspect::inspect_path(file, zeros, |n| bar.set_length(n), &|n| bar.inc(n))?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    out.write_all(report.render(json)?.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    /// Chosen per model and pattern from the imatrix (docs/method.md "The default: auto")
    Auto,
    /// DaSS: gate/up rows weighted by their channel's activation, grouped per column
    Dass,
    /// Wanda: |w| times the input's RMS, grouped per output row
    Wanda,
    /// |w| alone
    Magnitude,
    /// RIA: |w|'s share of its row and column sums times the input's RMS^alpha, per matrix
    Ria,
    /// gate/up: Wanda's and DaSS's factors together, per matrix (unstructured only)
    Hybrid,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AllocateArg {
    Uniform,
    Global,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ChannelScoreArg {
    /// v_down[i] * ||W_down[:, i]||^2
    Energy,
    /// v_down[i]
    Activation,
    /// v_down[i]^(alpha/2) * sum_c (|W_gate[i][c]| + |W_up[i][c]|) * sqrt(v_in[c])
    Dass,
    /// weights only (baseline)
    Weight,
    /// seeded random (baseline)
    Random,
    /// greedy least squares with the second moments of --stats: the channel whose loss the
    /// others make up best goes first
    Lsq,
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
    /// llama.cpp imatrix file (GGUF or legacy .dat); needed by every method but magnitude.
    /// A statistics file (--stats) serves as one too.
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Statistics file with the second moments of the feed-forward inputs (dass-gguf
    /// calibrate, docs/stats.md): the weights that stay are refitted by least squares (kept
    /// channels of ffn_down) and SparseGPT's update (pruned tensors); without --imatrix it
    /// serves as the imatrix too.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Use --stats as statistics only (imatrix, --channel-score lsq): refit nothing.
    #[arg(long, requires = "stats")]
    no_refit: bool,
    /// Damping of the second moments: damp × their mean diagonal is added to the diagonal
    /// (SparseGPT's percdamp).
    #[arg(
        long,
        default_value_t = dass_gguf::refit::DEFAULT_DAMP,
        requires = "stats",
        allow_negative_numbers = true
    )]
    damp: f64,
    #[command(flatten)]
    prune: PruneArgs,
    /// Where to write the imatrix cut to the kept channels (default: beside the output).
    #[arg(long)]
    imatrix_out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print what would happen to every tensor, and stop.
    #[arg(long)]
    dry_run: bool,
    /// Write a report here: an HTML page with charts when the name ends in .html, JSON
    /// otherwise.
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
    /// First remove what killed runs of this tool left in the output's directory (temporary
    /// files no live process holds).
    #[arg(long)]
    clean: bool,
    /// After writing, check the output against its metadata and the input (as `verify
    /// --against`); on a violation, exit 1 and leave the output in place for inspection.
    #[arg(long, conflicts_with = "dry_run")]
    verify: bool,
}

#[derive(clap::Args)]
struct SweepArgs {
    /// The model (GGUF; for a split model, any shard).
    input: PathBuf,
    /// llama.cpp imatrix file (GGUF or legacy .dat); needed by every method but magnitude.
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// The text perplexity is measured on (plain text; better not the imatrix's own text).
    #[arg(long)]
    text: PathBuf,
    /// Methods to try, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "wanda,dass,ria,hybrid"
    )]
    methods: Vec<MethodArg>,
    /// Patterns to try, comma-separated: a sparsity such as 0.5, or N:M such as 2:4.
    #[arg(long, value_delimiter = ',', default_value = "0.5")]
    patterns: Vec<String>,
    /// Values of --alpha to try, comma-separated (for the methods that have it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.5",
        allow_negative_numbers = true
    )]
    alphas: Vec<f32>,
    /// Another candidate: convert's pruning options in one string, e.g. "--keep-ffn 0.75" or
    /// "--method wanda --pattern 2:4 --scope all" (repeatable).
    #[arg(long = "candidate", allow_hyphen_values = true)]
    candidates: Vec<String>,
    /// Try only the --candidate settings, not --methods × --patterns × --alphas.
    #[arg(long)]
    no_grid: bool,
    /// llama.cpp's llama-perplexity (default: found on PATH).
    #[arg(long)]
    llama_perplexity: Option<PathBuf>,
    /// Context length for llama-perplexity.
    #[arg(long, short = 'c', default_value_t = 512)]
    ctx: usize,
    /// Chunks of the text to measure (default: all of it).
    #[arg(long)]
    chunks: Option<usize>,
    /// Threads, for the conversions and llama-perplexity (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the best candidate here (and its cut imatrix beside it when channels go).
    #[arg(long)]
    apply: Option<PathBuf>,
    /// Replace the --apply file if it exists.
    #[arg(long)]
    force: bool,
    /// First remove what killed runs of this tool left beside --apply's file and in the
    /// temporary directory (files and directories no live process holds).
    #[arg(long)]
    clean: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// A `--candidate` string, parsed as convert's options.
#[derive(Parser)]
#[command(name = "--candidate", no_binary_name = true)]
struct CandidateCli {
    #[command(flatten)]
    prune: PruneArgs,
}

fn parse_candidate(s: &str) -> Result<Candidate> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let cli = CandidateCli::try_parse_from(&words)
        .map_err(|e| anyhow::anyhow!("--candidate '{s}': {}", e.to_string().trim_end()))?;
    let (options, _) = cli
        .prune
        .options()
        .with_context(|| format!("--candidate '{s}'"))?;
    Ok(Candidate {
        label: words.join(" "),
        options,
    })
}

/// The grid of --methods × --patterns × --alphas, as candidate strings; the hybrid's N:M cells
/// are left out (it has no N:M form).
fn grid(a: &SweepArgs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in &a.patterns {
        let pattern = if p.contains(':') {
            parse_pattern(p).map_err(|e| anyhow::anyhow!("--patterns: {e}"))?;
            format!("--pattern {p}")
        } else {
            parse_sparsity(p).map_err(|e| anyhow::anyhow!("--patterns: {e}"))?;
            format!("--sparsity {p}")
        };
        for &m in &a.methods {
            let method = m.method();
            if method == MethodChoice::Named(Method::Hybrid) && p.contains(':') {
                continue;
            }
            let alphas: Vec<Option<f32>> = if method.uses_alpha() && a.alphas != [0.5] {
                a.alphas.iter().map(|&x| Some(x)).collect()
            } else {
                vec![None]
            };
            for alpha in alphas {
                let mut c = format!("--method {} {pattern}", method.name());
                if let Some(x) = alpha {
                    c += &format!(" --alpha {x}");
                }
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn sweep_command(a: SweepArgs) -> Result<()> {
    set_threads(a.threads)?;
    match &a.apply {
        Some(target) => leftovers(parent_dir(target), a.clean, a.quiet)?,
        None => leftovers(&std::env::temp_dir(), a.clean, a.quiet)?,
    }
    let mut strings = if a.no_grid { Vec::new() } else { grid(&a)? };
    strings.extend(a.candidates.iter().cloned());
    let candidates = strings
        .iter()
        .map(|s| parse_candidate(s))
        .collect::<Result<Vec<_>>>()?;
    let perplexity = Perplexity::new(
        a.llama_perplexity.clone(),
        a.text.clone(),
        a.ctx,
        a.chunks,
        a.threads,
    )?;
    let bar = progress::SweepBar::new(a.quiet);
    let outcome = sweep::sweep(
        SweepRequest {
            input: a.input,
            imatrix: a.imatrix.clone(),
            candidates,
            perplexity,
            apply: a.apply,
            force: a.force,
        },
        &bar,
    );
    bar.finish();
    let outcome = outcome?;
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&outcome)? + "\n";
        // Written whole or not at all, and never over the model, imatrix or text.
        let mut inputs = vec![outcome.model.as_path(), outcome.text.as_path()];
        inputs.extend(a.imatrix.as_deref());
        output_file::write_whole(path, text.as_bytes(), &inputs, true)?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(outcome.table().as_bytes())?;
    out.flush()?;
    Ok(())
}

/// What is pruned and how: the options `convert` takes and `sweep --candidate` strings hold.
#[derive(clap::Args, Clone)]
struct PruneArgs {
    /// How weights are scored [default: auto].
    #[arg(long, value_enum)]
    method: Option<MethodArg>,
    /// Fraction of each comparison group to zero, in [0, 1). Default 0.5.
    #[arg(long, value_parser = parse_sparsity, conflicts_with = "pattern", allow_negative_numbers = true)]
    sparsity: Option<f64>,
    /// Semi-structured pattern N:M: zero N of every M consecutive weights, e.g. 2:4.
    #[arg(long, value_parser = parse_pattern)]
    pattern: Option<(usize, usize)>,
    /// Exponent on the activation norm: DaSS's and the hybrid's on the intermediate
    /// channel's, RIA's on the input's.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    alpha: f32,
    /// Remove whole feed-forward channels: keep this share of each block's channels (in
    /// (0, 1]) or this many (an integer above 1), rounded to --width-multiple. Prunes only
    /// when --pattern or --sparsity is given too.
    #[arg(long)]
    keep_ffn: Option<Keep>,
    /// uniform: every layer keeps the same width; global: one budget for the whole model,
    /// widths per layer by score (written as llama.cpp's deci architecture; llama only).
    #[arg(long, value_enum, default_value = "uniform")]
    allocate: AllocateArg,
    /// Kept widths are rounded to a multiple of this (K-quants need 256).
    #[arg(long, default_value_t = 256)]
    width_multiple: usize,
    /// How channels are scored for --keep-ffn (the lowest go).
    #[arg(long, value_enum, default_value = "activation")]
    channel_score: ChannelScoreArg,
    /// Seed of --channel-score random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
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
}

impl PruneArgs {
    /// The library's options, and whether any pruning option was given.
    fn options(&self) -> Result<(plan::Options, bool)> {
        let a = self;
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
        let zeroing_asked = a.sparsity.is_some() || a.pattern.is_some();
        let options = plan::Options {
            method: a.method.unwrap_or(MethodArg::Auto).method(),
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
            prune: a.keep_ffn.is_none() || zeroing_asked,
            channels: a.keep_ffn.map(|keep| ChannelOptions {
                keep,
                allocation: match a.allocate {
                    AllocateArg::Uniform => Allocation::Uniform,
                    AllocateArg::Global => Allocation::Global,
                },
                multiple: a.width_multiple,
                score: match a.channel_score {
                    ChannelScoreArg::Energy => ChannelScore::Energy,
                    ChannelScoreArg::Activation => ChannelScore::Activation,
                    ChannelScoreArg::Dass => ChannelScore::Dass,
                    ChannelScoreArg::Weight => ChannelScore::Weight,
                    ChannelScoreArg::Random => ChannelScore::Random,
                    ChannelScoreArg::Lsq => ChannelScore::Lsq,
                },
                alpha: a.alpha,
                seed: a.seed,
            }),
            refit: RefitOptions::default(),
        };
        let asked = a.method.is_some() || zeroing_asked || a.keep_ffn.is_some();
        Ok((options, asked))
    }
}

impl MethodArg {
    fn method(self) -> MethodChoice {
        let named = MethodChoice::Named;
        match self {
            MethodArg::Auto => MethodChoice::Auto,
            MethodArg::Dass => named(Method::Dass),
            MethodArg::Wanda => named(Method::Wanda),
            MethodArg::Magnitude => named(Method::Magnitude),
            MethodArg::Ria => named(Method::Ria),
            MethodArg::Hybrid => named(Method::Hybrid),
        }
    }
}

/// What killed runs left in `dir`: removed with `clean`, else named in a note (unless `quiet`).
/// A directory that cannot be listed is left to the command's own error.
fn leftovers(dir: &std::path::Path, clean: bool, quiet: bool) -> Result<()> {
    let size = |l: &[output_file::Leftover]| human_bytes(l.iter().map(|x| x.bytes).sum());
    let names = |l: &[output_file::Leftover]| {
        l.iter()
            .map(|x| x.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if clean && dir.is_dir() {
        let removed = output_file::remove_leftovers(dir)?;
        if !quiet && !removed.is_empty() {
            eprintln!(
                "removed {} file(s) left by killed runs ({}): {}",
                removed.len(),
                size(&removed),
                names(&removed)
            );
        }
    } else if !quiet && !clean {
        let stale: Vec<_> = output_file::leftovers(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| !l.live)
            .collect();
        if !stale.is_empty() {
            eprintln!(
                "note: {} holds {} left by killed runs of dass-gguf ({}): {}; --clean removes them",
                dir.display(),
                if stale.len() == 1 {
                    "1 file".to_string()
                } else {
                    format!("{} files", stale.len())
                },
                size(&stale),
                names(&stale)
            );
        }
    }
    Ok(())
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("setting up the thread pool")?;
    }
    Ok(())
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

fn convert_command(a: ConvertArgs) -> Result<ExitCode> {
    set_threads(a.threads)?;
    leftovers(parent_dir(&a.output), a.clean, a.quiet)?;
    let (mut options, asked) = a.prune.options()?;
    options.refit = RefitOptions {
        damp: a.damp,
        refit: !a.no_refit,
    };
    let pruning_requested = a.imatrix.is_some() || a.stats.is_some() || asked;
    let job = Job::prepare(Request {
        input: a.input,
        output: a.output.clone(),
        imatrix: a.imatrix,
        stats: a.stats,
        options,
        pruning_requested,
        report: a.report,
        imatrix_out: a.imatrix_out,
        dry_run: a.dry_run,
        force: a.force,
    })?;
    if a.verify && !job.makes_claims() {
        anyhow::bail!(
            "--verify checks what pruning or --keep-ffn records; this conversion prunes nothing \
             (give pruning options, or drop --verify)"
        );
    }
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        write!(out, "{}", job.plan())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }

    let bar = progress::ConvertBar::new(a.quiet);
    let report = job.run(&bar)?;
    bar.0.finish_and_clear();
    if !a.quiet {
        eprint!("{report}");
    }
    if !a.verify {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress::ConvertBar::new(a.quiet);
    let verdict = job.verify(&bar);
    bar.0.finish_and_clear();
    let verdict = verdict?;
    if verdict.ok() {
        if !a.quiet {
            eprintln!(
                "verified: {} pruned tensors, {} groups, no violations",
                verdict.pruned_tensors, verdict.groups_checked
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprint!("{verdict}");
    eprintln!(
        "error: {} is not what its metadata says ({} violations); it was left in place for \
         inspection: please report this as a bug",
        a.output.display(),
        verdict.violations
    );
    Ok(ExitCode::from(EXIT_VIOLATIONS))
}
