//! The HTML report: one self-contained page (inline SVG charts and CSS, nothing fetched, no
//! scripts) showing what a conversion pruned and why, what the imatrix says about each layer,
//! and a sweep's perplexity against size.
//!
//! Every chart is followed by its numbers in a table whose cells carry the exact value in a
//! `data-value` attribute (the same numbers the JSON report holds), so the page can be checked
//! by a program and read without the picture.

pub mod charts;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::activations::{Activations, Quantiles};
use crate::error::Result;
use crate::report::Report;
use crate::sweep;

use charts::{Labels, Point, Scale, Series, Spread};

/// What one page shows; every part is optional.
pub struct Page<'a> {
    /// The page title, e.g. "dass-gguf report: model-pruned.gguf".
    pub title: String,
    /// Lines of the summary table: (what, value).
    pub facts: Vec<(String, String)>,
    /// A finished conversion.
    pub report: Option<&'a Report>,
    /// The imatrix summary (a conversion's own, or one given for an unpruned model).
    pub activations: Option<&'a Activations>,
    /// A sweep's results.
    pub sweep: Option<&'a sweep::Outcome>,
}

/// One section: a heading, what the chart shows, the chart and its numbers.
struct Section {
    id: &'static str,
    heading: String,
    about: String,
    svg: String,
    table: Table,
}

/// A table of numbers; each cell holds its display text and exact value.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

enum Cell {
    Text(String),
    Number { shown: String, value: f64 },
}

fn num(value: f64, shown: String) -> Cell {
    Cell::Number { shown, value }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An exact value as the `data-value` attribute holds it (Rust's shortest round-trip form).
fn exact(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// Four significant digits.
fn sig4(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return exact(v);
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    }
}

impl Page<'_> {
    /// The whole page.
    pub fn render(&self) -> Result<String> {
        let mut sections = Vec::new();
        if let Some(r) = self.report {
            sections.extend(zeroed_section(r)?);
            if let Some(s) = widths_section(r)? {
                sections.push(s);
            }
        }
        let activations = self
            .activations
            .or_else(|| self.report.and_then(|r| r.activations.as_ref()));
        if let Some(a) = activations {
            if let Some(s) = v_down_section(a, self.report)? {
                sections.push(s);
            }
        }
        if let Some(s) = self
            .report
            .map(channel_score_section)
            .transpose()?
            .flatten()
        {
            sections.push(s);
        }
        if let Some(a) = activations {
            if let Some(s) = activation_section(a)? {
                sections.push(s);
            }
        }
        if let Some(s) = self.sweep {
            sections.push(sweep_section(s)?);
        }
        Ok(page(&self.title, &self.facts, &sections))
    }
}

fn page(title: &str, facts: &[(String, String)], sections: &[Section]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"generator\" content=\"dass-gguf {}\">\n<title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        env!("CARGO_PKG_VERSION"),
        escape(title),
        STYLE,
        escape(title)
    );
    h += "<table class=\"facts\" id=\"facts\">\n";
    for (k, v) in facts {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    h += "</table>\n";
    if sections.is_empty() {
        h += "<p>Nothing to draw: no pruning, no imatrix and no sweep results were given.</p>\n";
    } else {
        h += "<nav><ul>\n";
        for s in sections {
            let _ = writeln!(
                h,
                "<li><a href=\"#{}\">{}</a></li>",
                s.id,
                escape(&s.heading)
            );
        }
        h += "</ul></nav>\n";
    }
    for s in sections {
        let _ = write!(
            h,
            "<section id=\"{id}\">\n<h2>{}</h2>\n<p>{}</p>\n<figure>\n{}\n</figure>\n\
             <details><summary>The numbers</summary>\n<table class=\"data\" id=\"{id}-data\">\n<tr>",
            escape(&s.heading),
            escape(&s.about),
            accessible(&s.svg, &s.heading),
            id = s.id,
        );
        for c in &s.table.head {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h += "</tr>\n";
        for row in &s.table.rows {
            h += "<tr>";
            for c in row {
                match c {
                    Cell::Text(t) => {
                        let _ = write!(h, "<td>{}</td>", escape(t));
                    }
                    Cell::Number { shown, value } => {
                        let _ = write!(
                            h,
                            "<td class=\"n\" data-value=\"{}\">{}</td>",
                            exact(*value),
                            escape(shown)
                        );
                    }
                }
            }
            h += "</tr>\n";
        }
        h += "</table>\n</details>\n</section>\n";
    }
    h += "</body>\n</html>\n";
    h
}

/// Marks a chart as an image with a name for screen readers.
fn accessible(svg: &str, name: &str) -> String {
    svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", escape(name)),
        1,
    )
}

const STYLE: &str = "body { font-family: sans-serif; max-width: 880px; margin: 1.5em auto; \
padding: 0 1em; color: #111; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { background: #f2f2f2; }
figure { margin: 0.5em 0; } svg { max-width: 100%; height: auto; }
details { margin-bottom: 1em; } summary { cursor: pointer; color: #0072b2; }
@media print { details { display: none; } section { break-inside: avoid; } }
";

/// Block number of tensor `name` (`blk.N.…`).
fn block_of(name: &str) -> Option<u32> {
    name.strip_prefix("blk.")?.split_once('.')?.0.parse().ok()
}

/// One pruned tensor: its layer, zeroed share and name.
struct Zeroed<'a> {
    block: u32,
    share: f64,
    name: &'a str,
}

/// Zeroed share per layer and tensor role (one heatmap row per role, in order of appearance).
fn zeroed_section(r: &Report) -> Result<Option<Section>> {
    let mut by_role: BTreeMap<(usize, &str), Vec<Zeroed>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for t in &r.tensors {
        let Some(block) = block_of(&t.name) else {
            continue;
        };
        if !order.contains(&t.role) {
            order.push(t.role);
        }
        let i = order.iter().position(|x| *x == t.role).unwrap_or(0);
        by_role.entry((i, t.role)).or_default().push(Zeroed {
            block,
            share: t.sparsity,
            name: &t.name,
        });
    }
    if by_role.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = by_role.keys().map(|(_, role)| role.to_string()).collect();
    let cells: Vec<(f64, usize, f64)> = by_role
        .values()
        .enumerate()
        .flat_map(|(row, v)| {
            v.iter()
                .map(move |z| (f64::from(z.block), row, 100.0 * z.share))
        })
        .collect();
    let caption = "Zeroed share (%) by layer and tensor role";
    let svg = charts::heatmap(
        &Labels {
            caption,
            x: "layer (block number)",
            y: "tensor role",
        },
        &names,
        &cells,
        0.0..100.0,
        &|v| format!("{v:.0}"),
    )?;
    let mut rows = Vec::new();
    for ((_, role), v) in &by_role {
        for z in v {
            rows.push(vec![
                Cell::Text(z.name.to_string()),
                num(f64::from(z.block), z.block.to_string()),
                Cell::Text(role.to_string()),
                num(z.share, format!("{:.2}%", 100.0 * z.share)),
            ]);
        }
    }
    Ok(Some(Section {
        id: "zeroed",
        heading: caption.into(),
        about: format!(
            "The share (%) of each pruned tensor's weights that {} ({}) set to zero, per layer \
             and role; a blank cell is a tensor left as it was. A uniform colour is the rule's \
             quota met everywhere; a lighter or darker cell is a layer given more or less to \
             prune.",
            r.options.method, r.options.pattern
        ),
        svg,
        table: Table {
            head: vec![
                "tensor".into(),
                "layer".into(),
                "role".into(),
                "zeroed".into(),
            ],
            rows,
        },
    }))
}

/// Kept feed-forward width per layer, when channels were removed.
fn widths_section(r: &Report) -> Result<Option<Section>> {
    let Some(c) = &r.channels else {
        return Ok(None);
    };
    let values: Vec<(f64, f64)> = c
        .layers
        .iter()
        .map(|l| (f64::from(l.block), l.kept as f64))
        .collect();
    let caption = "Kept feed-forward width by layer";
    let svg = charts::bars(
        &Labels {
            caption,
            x: "layer (block number)",
            y: "intermediate channels kept",
        },
        &values,
        Some((c.original_width as f64, "width before removal")),
    )?;
    let rows = c
        .layers
        .iter()
        .map(|l| {
            vec![
                num(f64::from(l.block), l.block.to_string()),
                num(l.channels as f64, l.channels.to_string()),
                num(l.kept as f64, l.kept.to_string()),
                num(
                    l.removed_score_share,
                    format!("{:.2}%", 100.0 * l.removed_score_share),
                ),
            ]
        })
        .collect();
    Ok(Some(Section {
        id: "widths",
        heading: caption.into(),
        about: format!(
            "Channels (a gate row, an up row and a down column each) kept per block, out of {}; \
             allocation {}, score {}. The last column is the share of the block's channel score \
             the removed channels held.",
            c.original_width, c.allocation, c.score
        ),
        svg,
        table: Table {
            head: vec![
                "layer".into(),
                "channels before".into(),
                "kept".into(),
                "score removed".into(),
            ],
            rows,
        },
    }))
}

fn quantile_cells(q: &Quantiles) -> Vec<Cell> {
    [q.min, q.p10, q.p25, q.median, q.p75, q.p90, q.max]
        .into_iter()
        .map(|v| num(v, sig4(v)))
        .collect()
}

fn quantile_head() -> Vec<String> {
    ["min", "10%", "25%", "median", "75%", "90%", "max"]
        .map(String::from)
        .to_vec()
}

/// The distribution of `v_down` (the feed-forward intermediate activations' mean squares) per
/// layer, with the cut when channels were removed by activation.
fn v_down_section(a: &Activations, r: Option<&Report>) -> Result<Option<Section>> {
    let role = if a.role("ffn_down").next().is_some() {
        "ffn_down"
    } else if a.role("ffn_down_exps").next().is_some() {
        "ffn_down_exps"
    } else {
        return Ok(None);
    };
    let channels = r.and_then(|r| r.channels.as_ref());
    let cut_by_activation = channels.filter(|c| c.score == "activation");
    let mut spreads = Vec::new();
    let mut rows = Vec::new();
    for row in a.role(role) {
        let Some(q) = row.quantiles else { continue };
        let cut = cut_by_activation.and_then(|c| {
            c.layers
                .iter()
                .find(|l| l.block == row.block)
                .and_then(|l| l.highest_removed_score)
        });
        spreads.push(Spread {
            x: f64::from(row.block),
            q,
            cut,
        });
        let mut cells = vec![
            num(f64::from(row.block), row.block.to_string()),
            num(row.columns as f64, row.columns.to_string()),
        ];
        cells.extend(quantile_cells(&q));
        rows.push(cells);
    }
    let caption = "Intermediate-channel activation (v_down) by layer";
    let svg = charts::spreads(
        &Labels {
            caption,
            x: "layer (block number)",
            y: "v_down: mean square per channel",
        },
        &spreads,
        "cut: highest removed channel",
    )?;
    let mut about = format!(
        "For each block, the spread over its intermediate channels of v_down, the mean square of \
         the channel's activation (the imatrix entry of {role}), on a log scale when every value \
         is positive. DaSS weighs each channel's weights by v_down^α; channel removal by \
         activation removes the channels with the lowest v_down."
    );
    if cut_by_activation.is_some() {
        about += " The vermillion line is the highest v_down among the removed channels: \
                   everything below it in that block went.";
    } else if let Some(c) = channels {
        let _ = write!(
            about,
            " Channels were removed by the '{}' score: its own chart, with the cut, follows.",
            c.score
        );
    }
    let mut head = vec!["layer".to_string(), "channels".to_string()];
    head.extend(quantile_head());
    Ok(Some(Section {
        id: "v-down",
        heading: caption.into(),
        about,
        svg,
        table: Table { head, rows },
    }))
}

/// The channel scores per layer with the cut, when channels were removed.
fn channel_score_section(r: &Report) -> Result<Option<Section>> {
    // By activation the score is v_down itself: its chart already shows the cut.
    let Some(c) = r.channels.as_ref().filter(|c| c.score != "activation") else {
        return Ok(None);
    };
    let mut spreads = Vec::new();
    let mut rows = Vec::new();
    for l in &c.layers {
        let Some(q) = l.score_quantiles else { continue };
        spreads.push(Spread {
            x: f64::from(l.block),
            q,
            cut: l.highest_removed_score,
        });
        let mut cells = vec![num(f64::from(l.block), l.block.to_string())];
        cells.extend(quantile_cells(&q));
        for v in [l.highest_removed_score, l.lowest_kept_score] {
            cells.push(match v {
                Some(v) => num(v, sig4(v)),
                None => Cell::Text("none".into()),
            });
        }
        rows.push(cells);
    }
    if spreads.is_empty() {
        return Ok(None);
    }
    let caption = format!("Channel score ({}) by layer, with the cut", c.score);
    let svg = charts::spreads(
        &Labels {
            caption: &caption,
            x: "layer (block number)",
            y: &format!("channel score: {}", c.score),
        },
        &spreads,
        "cut: highest removed score",
    )?;
    let mut head = vec!["layer".to_string()];
    head.extend(quantile_head());
    head.extend(["highest removed".to_string(), "lowest kept".to_string()]);
    Ok(Some(Section {
        id: "channel-scores",
        heading: caption,
        about: format!(
            "The spread of the score each block's channels were ranked by ('{}'), and the cut: \
             the channels scoring at or below the vermillion line were removed (ties go to the \
             lower index).",
            c.score
        ),
        svg,
        table: Table { head, rows },
    }))
}

/// Mean input activation by layer, one line per group of roles that share their input.
fn activation_section(a: &Activations) -> Result<Option<Section>> {
    // Roles whose means agree in every block read the same input (q, k and v; gate and up):
    // one line, named after all of them.
    let roles = a.roles();
    let means =
        |role: &str| -> Vec<(u32, f64)> { a.role(role).map(|r| (r.block, r.mean)).collect() };
    type Means = Vec<(u32, f64)>;
    let mut groups: Vec<(Vec<&str>, Means)> = Vec::new();
    for role in roles {
        let m = means(role);
        match groups.iter_mut().find(|(_, g)| *g == m) {
            Some((names, _)) => names.push(role),
            None => groups.push((vec![role], m)),
        }
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let series: Vec<Series> = groups
        .iter()
        .map(|(names, m)| Series {
            label: names.join(", "),
            points: m.iter().map(|&(b, v)| (f64::from(b), v)).collect(),
        })
        .collect();
    let caption = "Mean input activation by layer and role (imatrix)";
    let svg = charts::lines(
        &Labels {
            caption,
            x: "layer (block number)",
            y: "mean square of the input",
        },
        &series,
        Scale::Log,
        false,
    )?;
    let rows = a
        .rows
        .iter()
        .map(|r| {
            vec![
                Cell::Text(r.name.clone()),
                num(f64::from(r.block), r.block.to_string()),
                Cell::Text(r.role.clone()),
                num(r.columns as f64, r.columns.to_string()),
                num(r.mean, sig4(r.mean)),
                match r.quantiles {
                    Some(q) => num(q.max, sig4(q.max)),
                    None => Cell::Text("none".into()),
                },
            ]
        })
        .collect();
    Ok(Some(Section {
        id: "activations",
        heading: caption.into(),
        about: "The imatrix's mean square of each weight's input, averaged over the input \
                columns, per block. Roles that read the same input share a line. A layer far \
                above its neighbours carries outlier activations, which is where magnitude \
                pruning goes wrong and activation-aware rules matter."
            .into(),
        svg,
        table: Table {
            head: vec![
                "entry".into(),
                "layer".into(),
                "role".into(),
                "columns".into(),
                "mean".into(),
                "max".into(),
            ],
            rows,
        },
    }))
}

/// A sweep: perplexity against size.
fn sweep_section(s: &sweep::Outcome) -> Result<Section> {
    let mb = |b: u64| b as f64 / 1e6;
    let mut points = vec![Point {
        tag: String::new(),
        size_mb: mb(s.baseline.size_bytes),
        ppl: s.baseline.measured.ppl,
        plus_minus: s.baseline.measured.plus_minus,
        baseline: true,
        chosen: false,
    }];
    let mut rows = vec![sweep_row("", &s.baseline, false)];
    for (i, c) in s.candidates.iter().enumerate() {
        points.push(Point {
            tag: (i + 1).to_string(),
            size_mb: mb(c.size_bytes),
            ppl: c.measured.ppl,
            plus_minus: c.measured.plus_minus,
            baseline: false,
            chosen: i == s.best,
        });
        rows.push(sweep_row(&(i + 1).to_string(), c, i == s.best));
    }
    let caption = "Perplexity against file size (sweep)";
    let svg = charts::tradeoff(
        &Labels {
            caption,
            x: "file size (MB)",
            y: "perplexity (lower is better)",
        },
        &points,
    )?;
    Ok(Section {
        id: "sweep",
        heading: caption.into(),
        about: format!(
            "Each setting converted and measured with llama-perplexity on {} (-c {}{}), the \
             same text for every point. Points whose bars overlap are within the noise.",
            s.text.display(),
            s.ctx,
            s.chunks
                .map(|n| format!(", {n} chunks"))
                .unwrap_or_default()
        ),
        svg,
        table: Table {
            head: vec![
                "#".into(),
                "settings".into(),
                "size (bytes)".into(),
                "perplexity".into(),
                "±".into(),
                "chosen".into(),
            ],
            rows,
        },
    })
}

fn sweep_row(tag: &str, r: &sweep::Row, chosen: bool) -> Vec<Cell> {
    vec![
        Cell::Text(tag.to_string()),
        Cell::Text(r.label.clone()),
        num(r.size_bytes as f64, r.size_bytes.to_string()),
        num(r.measured.ppl, format!("{:.4}", r.measured.ppl)),
        num(
            r.measured.plus_minus,
            format!("{:.4}", r.measured.plus_minus),
        ),
        Cell::Text(if chosen { "yes" } else { "" }.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activations::block_role;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(exact(0.1), "0.1");
        assert_eq!(exact(1e-7), "1e-7");
        assert_eq!(exact(f64::NAN), "NaN");
        assert_eq!(exact(0.1).parse::<f64>().unwrap(), 0.1);
        assert_eq!(sig4(12.3456), "12.35");
        assert_eq!(sig4(0.012345), "0.01235");
        assert_eq!(sig4(1234567.0), "1.235e6");
        assert_eq!(block_of("blk.17.ffn_up.weight"), Some(17));
        assert_eq!(block_of("output.weight"), None);
        assert_eq!(block_role("blk.17.ffn_up.weight"), Some((17, "ffn_up")));
    }

    #[test]
    fn an_empty_page_says_so() {
        let page = Page {
            title: "t <x>".into(),
            facts: vec![("model".into(), "m&m".into())],
            report: None,
            activations: None,
            sweep: None,
        }
        .render()
        .unwrap();
        assert!(page.contains("<title>t &lt;x&gt;</title>"));
        assert!(page.contains("<td>m&amp;m</td>"));
        assert!(page.contains("Nothing to draw"));
        assert!(!page.contains("<script"));
    }
}
