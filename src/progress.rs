//! Progress bars on a terminal (indicatif), hidden with `--quiet` or when stderr is not a
//! terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::execute::Progress;

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
