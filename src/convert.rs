//! The `convert` job from start to end, in the order data flows: check the output paths, open
//! the model (a GGUF file, a split GGUF or a Hugging Face checkpoint), the imatrix and the
//! statistics file, plan what happens to every tensor, then execute the plan and report. The
//! command line only fills in a [`Request`] and prints.

use std::path::{Path, PathBuf};

use crate::activations::Activations;
use crate::error::{Error, Result};
use crate::execute::{execute, Progress};
use crate::gguf::writer::check_not_an_input;
use crate::gguf::GgufModel;
use crate::hf::model::{checkpoint_files, HfModel};
use crate::imatrix::{Imatrix, ImatrixFormat};
use crate::imatrix_cut;
use crate::out_type::OutType;
use crate::output_file::write_whole;
use crate::plan::{self, Plan};
use crate::report::{Report, ReportFormat};
use crate::source::Source;
use crate::stats::Stats;
use crate::verify::{self, Verdict};

/// What the user asked `convert` to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// A GGUF file (any shard of a split model) or a checkpoint directory.
    pub input: PathBuf,
    pub output: PathBuf,
    pub imatrix: Option<PathBuf>,
    /// A statistics file (docs/stats.md): second moments for refitting and `--channel-score
    /// lsq`; without `imatrix`, its `in_sum2` and `counts` serve as the imatrix.
    pub stats: Option<PathBuf>,
    /// The pruning options (with their defaults filled in).
    pub options: plan::Options,
    /// Whether any pruning option (or --keep-ffn) was given. A checkpoint without them is only
    /// converted, as llama.cpp's converter converts it; a GGUF input is always planned.
    pub pruning_requested: bool,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// Where to write the imatrix cut to the kept channels when channels are removed (default:
    /// beside the output, see [`crate::imatrix_cut::default_path`]).
    pub imatrix_out: Option<PathBuf>,
    /// Only plan: the output and report paths are checked for conflicts with the inputs, but
    /// an existing output is no error and nothing is written.
    pub dry_run: bool,
    /// Replace an existing output.
    pub force: bool,
}

/// A conversion whose inputs are open and whose plan is made.
pub struct Job {
    request: Request,
    model: Source,
    /// Every file the conversion reads (model shards or checkpoint files, the imatrix and the
    /// statistics file).
    inputs: Vec<PathBuf>,
    /// The statistics file, mapped, when one was given (refitting reads its matrices).
    stats: Option<Stats>,
    /// The file the imatrix was read from: `--imatrix`, or else the statistics file.
    imatrix_path: Option<PathBuf>,
    plan: Plan,
    /// The imatrix and where its cut copy goes, when channels are removed.
    cut_imatrix: Option<(ImatrixFormat, PathBuf)>,
    /// The imatrix per layer and role, for the report.
    activations: Option<Activations>,
}

impl Job {
    /// Checks the paths, opens the inputs and makes the plan. Nothing is written.
    pub fn prepare(request: Request) -> Result<Job> {
        let (model, mut inputs, options) = open_model(&request)?;
        inputs.extend(request.imatrix.iter().cloned());
        inputs.extend(request.stats.iter().cloned());
        // Without an imatrix, the statistics file's in_sum2 and counts are one.
        let imatrix_path = request.imatrix.clone().or_else(|| request.stats.clone());
        let imatrix = match &imatrix_path {
            Some(p) => Some(Imatrix::open(p)?),
            None => None,
        };
        let stats = match &request.stats {
            Some(p) => Some(Stats::open(p)?),
            None => None,
        };
        let cut_imatrix = match (&options.channels, &imatrix) {
            (Some(_), Some(im)) => Some((
                im.format,
                request
                    .imatrix_out
                    .clone()
                    .unwrap_or_else(|| imatrix_cut::default_path(&request.output, im.format)),
            )),
            (None, _) if request.imatrix_out.is_some() => {
                return Err(Error::Usage(
                    "--imatrix-out names where the imatrix cut to the kept channels goes: it \
                     needs --keep-ffn"
                        .into(),
                ))
            }
            (_, None) if request.imatrix_out.is_some() => {
                return Err(Error::Usage(
                    "--imatrix-out needs --imatrix or --stats (the statistics to cut)".into(),
                ))
            }
            _ => None,
        };
        check_paths(
            &request,
            &inputs,
            cut_imatrix.as_ref().map(|(_, p)| p.as_path()),
        )?;
        let file_name = |p: &Option<PathBuf>| {
            p.as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let imatrix_name = file_name(&imatrix_path);
        let stats_name = file_name(&request.stats);
        let prune = !matches!(model, Source::Hf(_)) || request.pruning_requested;
        if !prune && stats.is_some() {
            return Err(Error::Usage(
                "--stats refits the weights pruning or --keep-ffn keeps: give pruning options \
                 too"
                .into(),
            ));
        }
        let plan = if prune {
            plan::make_plan(
                &model,
                imatrix.as_ref().map(|i| (i, imatrix_name.as_str())),
                stats.as_ref().map(|s| (s, stats_name.as_str())),
                &options,
            )?
        } else {
            plan::conversion_plan(&model)
        };
        Ok(Job {
            request,
            model,
            inputs,
            stats,
            imatrix_path,
            plan,
            cut_imatrix,
            activations: imatrix.as_ref().map(Activations::of),
        })
    }

    /// What will happen to every tensor.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The imatrix cut to the kept channels, when channels go: its format and where it will be
    /// written.
    pub fn cut_imatrix(&self) -> Option<(ImatrixFormat, &Path)> {
        self.cut_imatrix.as_ref().map(|(f, p)| (*f, p.as_path()))
    }

    /// Writes the output (and the report, when asked for) and returns the report.
    pub fn run(&self, progress: &dyn Progress) -> Result<Report> {
        let r = &self.request;
        let inputs: Vec<&Path> = self.inputs.iter().map(|p| p.as_path()).collect();
        let outcome = execute(
            &self.model,
            &self.plan,
            self.stats.as_ref(),
            &r.output,
            &inputs,
            r.force,
            progress,
        )?;
        if let (Some((format, path)), Some(channels), Some(input)) =
            (&self.cut_imatrix, &self.plan.channels, &self.imatrix_path)
        {
            let mut taken = inputs.clone();
            taken.push(&r.output);
            let written =
                imatrix_cut::write_cut_imatrix(input, *format, channels, path, &taken, r.force);
            if let Err(e) = written {
                // The model without the imatrix it needs next is not a result: take it back.
                let _ = std::fs::remove_file(&r.output);
                return Err(e);
            }
        }
        let report = Report::new(
            self.model.describe(),
            r.output.display().to_string(),
            self.imatrix_path.as_ref().map(|p| p.display().to_string()),
            &self.plan,
            outcome,
            self.activations.clone(),
        );
        if let Some(path) = &r.report {
            let text = match ReportFormat::of(path) {
                ReportFormat::Json => {
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::Usage(format!("encoding the report: {e}")))?
                        + "\n"
                }
                ReportFormat::Html => report.html_page().render()?,
            };
            let inputs: Vec<&Path> = self.inputs.iter().map(|p| p.as_path()).collect();
            write_whole(path, text.as_bytes(), &inputs, true)?;
        }
        Ok(report)
    }
}

impl Job {
    /// Whether the output will record anything `verify` can check (weights zeroed or channels
    /// removed); a checkpoint converted without pruning options records nothing.
    pub fn makes_claims(&self) -> bool {
        self.plan.options_summary.method != "none" || self.plan.channels.is_some()
    }

    /// Checks the written output against its own metadata and against the input (`verify`,
    /// docs/method.md "Checking an output: verify"); call after [`Job::run`].
    pub fn verify(&self, progress: &dyn Progress) -> Result<Verdict> {
        verify::verify(&self.request.output, Some(&self.model), progress)
    }
}

/// Opens the model; returns it, the files it reads and the pruning options that apply to it.
fn open_model(r: &Request) -> Result<(Source, Vec<PathBuf>, plan::Options)> {
    if Source::is_checkpoint_dir(&r.input) {
        // Before reading anything: the output may not be any file of the checkpoint.
        let files = checkpoint_files(&r.input)?;
        let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        check_not_an_input(&r.output, &refs)?;
        let model = HfModel::open(&r.input, r.options.outtype)?;
        // The checkpoint's weights are already in the chosen type; pruning keeps it.
        let options = plan::Options {
            outtype: OutType::Auto,
            ..r.options.clone()
        };
        Ok((Source::Hf(Box::new(model)), files, options))
    } else {
        let model = GgufModel::open(&r.input)?;
        let shards = model
            .shards()
            .iter()
            .map(|s| s.path().to_path_buf())
            .collect();
        Ok((Source::Gguf(model), shards, r.options.clone()))
    }
}

/// The output may not be an input; the report and the cut imatrix may be neither, nor each
/// other; an existing output needs `force`. (The writer guards the first rule again when it
/// creates the file.)
fn check_paths(r: &Request, inputs: &[PathBuf], cut_imatrix: Option<&Path>) -> Result<()> {
    let inputs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    check_not_an_input(&r.output, &inputs)?;
    if let Some(im) = cut_imatrix {
        let mut taken = inputs.clone();
        taken.push(&r.output);
        taken.extend(r.report.as_deref());
        check_not_an_input(im, &taken).map_err(|e| {
            Error::Usage(format!(
                "the cut imatrix must go to a file that is neither an input nor the output: {e}"
            ))
        })?;
        if im == r.output || r.report.as_deref() == Some(im) {
            return Err(Error::Usage(format!(
                "the cut imatrix {} would replace the output or the report",
                im.display()
            )));
        }
        if !r.dry_run && !r.force && im.exists() {
            return Err(Error::Usage(format!(
                "{} exists: pass --force to replace it (or choose --imatrix-out)",
                im.display()
            )));
        }
    }
    if let Some(report) = &r.report {
        let mut taken = inputs.clone();
        taken.push(&r.output);
        check_not_an_input(report, &taken).map_err(|e| {
            Error::Usage(format!(
                "--report must name a file that is neither an input nor the output: {e}"
            ))
        })?;
        if report == &r.output {
            return Err(Error::Usage(
                "--report and --output name the same file".into(),
            ));
        }
        let dir = report.parent().filter(|p| !p.as_os_str().is_empty());
        if dir.is_some_and(|d| !d.is_dir()) {
            return Err(Error::Usage(format!(
                "cannot write the report {}: its directory does not exist",
                report.display()
            )));
        }
    }
    if !r.dry_run && !r.force && r.output.exists() {
        return Err(Error::Usage(format!(
            "{} exists: pass --force to replace it",
            r.output.display()
        )));
    }
    Ok(())
}
