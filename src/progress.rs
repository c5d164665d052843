//! Progress bars on a terminal (indicatif), hidden with `--quiet` or when stderr is not a
//! terminal.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::execute::Progress;
use crate::sweep::Steps;

/// A byte-counting bar, or a hidden one when `quiet` or stderr is not a terminal.
pub fn bytes_bar(quiet: bool, template: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The bar of `inspect --zeros`.
pub fn inspect_bar(quiet: bool) -> ProgressBar {
    bytes_bar(
        quiet,
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
}

/// The bar of `calibrate`: tokens evaluated of `total`, with tokens per second.
pub fn tokens_bar(quiet: bool, total: u64) -> ProgressBar {
    let bar = bytes_bar(
        quiet,
        "calibrate [{bar:40}] {pos}/{len} tokens ({per_sec}, {eta})",
    );
    bar.set_length(total);
    bar
}

/// The bar of `convert`: the phase, the bytes done, the tensor being worked on.
pub struct ConvertBar(pub ProgressBar);

impl ConvertBar {
    pub fn new(quiet: bool) -> Self {
        ConvertBar(bytes_bar(
            quiet,
            "{prefix:>16} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {wide_msg}",
        ))
    }
}

impl Progress for ConvertBar {
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

/// The bars of `sweep`: the runs done with the time left, and under it the conversion of the
/// current candidate.
pub struct SweepBar {
    runs: ProgressBar,
    conversion: ConvertBar,
}

impl SweepBar {
    pub fn new(quiet: bool) -> Self {
        let runs = bytes_bar(
            quiet,
            "{prefix:>16} [{bar:30}] {pos}/{len} runs ({elapsed}, about {eta} left) {wide_msg}",
        );
        let conversion = ConvertBar::new(quiet);
        if !runs.is_hidden() {
            let multi = MultiProgress::new();
            let runs = multi.add(runs.clone());
            runs.set_prefix("sweep");
            multi.add(conversion.0.clone());
        }
        SweepBar { runs, conversion }
    }

    pub fn finish(&self) {
        self.runs.finish_and_clear();
        self.conversion.0.finish_and_clear();
    }
}

impl Steps for SweepBar {
    fn step(&self, done: usize, total: usize, label: &str) {
        self.runs.set_length(total as u64);
        self.runs.set_position(done as u64);
        self.runs.set_message(label.to_string());
    }
    fn conversion(&self) -> &dyn Progress {
        &self.conversion
    }
}
