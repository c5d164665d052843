//! The HTML report (`convert --report FILE.html`, `dass-gguf report`): every chart is present
//! with its labels, nothing is fetched or run, and the numbers in the page are the JSON
//! report's, on SmolLM2 and its imatrix.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use regex::Regex;
use serde_json::Value as Json;

use common::{dass, dir_listing, fixture, real_file};

/// One table cell: its text and, for numbers, the exact value.
#[derive(Debug, Clone)]
struct Cell {
    text: String,
    value: Option<f64>,
}

/// The section `<section id="ID">…</section>` of the page.
fn section<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("<section id=\"{id}\">"))?;
    let end = start + html[start..].find("</section>")?;
    Some(&html[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The rows of the section's data table (without the header row).
fn rows(section: &str) -> Vec<Vec<Cell>> {
    let row = Regex::new(r"(?s)<tr>(.*?)</tr>").unwrap();
    let cell = Regex::new(r#"(?s)<td(?: class="n" data-value="([^"]*)")?>(.*?)</td>"#).unwrap();
    let table = &section[section.find("<table class=\"data\"").expect("a data table")..];
    row.captures_iter(table)
        .filter(|r| !r[1].contains("<th>"))
        .map(|r| {
            cell.captures_iter(&r[1])
                .map(|c| Cell {
                    text: unescape(&c[2]),
                    value: c
                        .get(1)
                        .map(|v| v.as_str().parse::<f64>().expect("a number")),
                })
                .collect()
        })
        .collect()
}

/// Checks that the section holds one chart with its caption and axis titles.
fn assert_chart(html: &str, id: &str, texts: &[&str]) -> Vec<Vec<Cell>> {
    let s = section(html, id).unwrap_or_else(|| panic!("no section {id}"));
    assert_eq!(s.matches("<svg ").count(), 1, "{id}: one chart");
    assert!(
        s.contains("role=\"img\""),
        "{id}: the chart is named for screen readers"
    );
    for t in texts {
        assert!(s.contains(t), "{id}: no {t:?}");
    }
    let r = rows(s);
    assert!(!r.is_empty(), "{id}: an empty table");
    r
}

/// Nothing in the page is fetched or run.
fn assert_self_contained(html: &str) {
    for bad in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", "src=",
    ] {
        assert!(!html.contains(bad), "the page has {bad}");
    }
    let links = Regex::new(r##"(?:href|xlink:href)="([^"#][^"]*)""##).unwrap();
    assert!(
        links.captures_iter(html).next().is_none(),
        "the page links out"
    );
    for u in Regex::new(r#"https?://[^\s"<]+"#).unwrap().find_iter(html) {
        assert_eq!(
            u.as_str(),
            "http://www.w3.org/2000/svg",
            "only the SVG namespace"
        );
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn json_f64(v: &Json) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn quantiles(q: &Json) -> Vec<f64> {
    ["min", "p10", "p25", "median", "p75", "p90", "max"]
        .iter()
        .map(|k| json_f64(&q[k]))
        .collect()
}

fn values(cells: &[Cell]) -> Vec<f64> {
    cells
        .iter()
        .map(|c| c.value.expect("a number cell"))
        .collect()
}

fn run_ok<S: AsRef<OsStr>>(args: &[S]) {
    let out = dass(args);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_json(path: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Checks the activation sections against the JSON's `activations`.
fn check_activations(html: &str, activations: &Json) {
    let json_rows = activations["rows"].as_array().unwrap();
    let by_name: HashMap<&str, &Json> = json_rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r))
        .collect();
    let table = assert_chart(
        html,
        "activations",
        &[
            "Mean input activation by layer and role",
            "mean square of the input",
        ],
    );
    assert_eq!(table.len(), json_rows.len());
    for row in &table {
        let j = by_name[row[0].text.as_str()];
        assert_eq!(row[1].value, j["block"].as_f64());
        assert_eq!(row[2].text, j["role"].as_str().unwrap());
        assert_eq!(row[3].value, j["columns"].as_f64());
        assert!(close(row[4].value.unwrap(), json_f64(&j["mean"])));
        assert!(close(
            row[5].value.unwrap(),
            json_f64(&j["quantiles"]["max"])
        ));
    }
    let table = assert_chart(
        html,
        "v-down",
        &[
            "Intermediate-channel activation (v_down) by layer",
            "v_down: mean square per channel",
            "layer (block number)",
        ],
    );
    let downs: Vec<&Json> = json_rows
        .iter()
        .filter(|r| r["role"] == "ffn_down")
        .collect();
    assert_eq!(table.len(), downs.len());
    assert_eq!(table.len(), 30, "SmolLM2 has 30 blocks");
    for (row, j) in table.iter().zip(downs) {
        assert_eq!(row[0].value, j["block"].as_f64());
        assert_eq!(row[1].value, j["columns"].as_f64());
        let (got, want) = (values(&row[2..]), quantiles(&j["quantiles"]));
        assert!(
            got.iter().zip(&want).all(|(a, b)| close(*a, *b)),
            "{got:?} {want:?}"
        );
    }
}

#[test]
fn smollm2_html_report_holds_the_json_reports_numbers() {
    let (Some(model), Some(imatrix)) = (
        real_file("smollm2", "model.f16.gguf"),
        real_file("smollm2", "imatrix.gguf"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Channels removed by energy (so the score chart is drawn), then DaSS 2:4 on what is kept.
    let run = |report: &str, out: &str| {
        run_ok(&[
            OsStr::new("convert"),
            model.as_os_str(),
            OsStr::new("-o"),
            d.join(out).as_os_str(),
            OsStr::new("--imatrix"),
            imatrix.as_os_str(),
            OsStr::new("--keep-ffn"),
            OsStr::new("0.75"),
            OsStr::new("--channel-score"),
            OsStr::new("energy"),
            OsStr::new("--method"),
            OsStr::new("dass"),
            OsStr::new("--pattern"),
            OsStr::new("2:4"),
            OsStr::new("--report"),
            d.join(report).as_os_str(),
            OsStr::new("--quiet"),
        ])
    };
    run("r.HTML", "a.gguf");
    run("r.json", "b.gguf");
    let html = std::fs::read_to_string(d.join("r.HTML")).unwrap();
    let json = read_json(&d.join("r.json"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_self_contained(&html);
    assert!(
        html.len() < 1 << 20,
        "the page of a 135M model is {} bytes",
        html.len()
    );

    // Zeroed share: one cell per pruned tensor, the JSON's sparsity.
    let table = assert_chart(
        &html,
        "zeroed",
        &["Zeroed share", "layer (block number)", "tensor role"],
    );
    let tensors = json["tensors"].as_array().unwrap();
    assert_eq!(table.len(), tensors.len());
    let sparsity: HashMap<&str, f64> = tensors
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), json_f64(&t["sparsity"])))
        .collect();
    for row in &table {
        assert!(
            close(row[3].value.unwrap(), sparsity[row[0].text.as_str()]),
            "{}",
            row[0].text
        );
        assert_eq!(row[3].value, Some(0.5), "2:4 zeroes half of every group");
    }

    // Widths and the channel scores with the cut.
    let layers = json["channels"]["layers"].as_array().unwrap();
    let table = assert_chart(
        &html,
        "widths",
        &[
            "Kept feed-forward width by layer",
            "intermediate channels kept",
            "width before removal",
        ],
    );
    assert_eq!(table.len(), layers.len());
    for (row, l) in table.iter().zip(layers) {
        assert_eq!(row[0].value, l["block"].as_f64());
        assert_eq!(row[1].value, l["channels"].as_f64());
        assert_eq!(row[2].value, l["kept"].as_f64());
        assert_eq!(
            row[2].value,
            json["channels"]["width"].as_f64(),
            "uniform widths"
        );
        assert!(close(
            row[3].value.unwrap(),
            json_f64(&l["removed_score_share"])
        ));
    }
    let table = assert_chart(
        &html,
        "channel-scores",
        &[
            "Channel score (energy) by layer, with the cut",
            "cut: highest removed score",
        ],
    );
    assert_eq!(table.len(), layers.len());
    for (row, l) in table.iter().zip(layers) {
        assert_eq!(row[0].value, l["block"].as_f64());
        let (got, want) = (values(&row[1..8]), quantiles(&l["score_quantiles"]));
        assert!(
            got.iter().zip(&want).all(|(a, b)| close(*a, *b)),
            "{got:?} {want:?}"
        );
        let removed = json_f64(&l["highest_removed_score"]);
        let kept = json_f64(&l["lowest_kept_score"]);
        assert!(close(row[8].value.unwrap(), removed) && close(row[9].value.unwrap(), kept));
        assert!(removed <= kept, "the cut separates removed from kept");
    }

    check_activations(&html, &json["activations"]);
    assert!(section(&html, "sweep").is_none(), "no sweep was given");
}

/// A sweep's results as `sweep --json` writes them.
fn sweep_json() -> Json {
    serde_json::json!({
        "model": "model.f16.gguf",
        "text": "eval.txt",
        "ctx": 512,
        "chunks": 20,
        "baseline": {"label": "the model as it is", "size_bytes": 270_900_000u64, "ppl": 11.67, "plus_minus": 0.25, "seconds": 30.0},
        "candidates": [
            {"label": "--method wanda --sparsity 0.5", "size_bytes": 270_950_000u64, "ppl": 20.07, "plus_minus": 0.5, "seconds": 40.0},
            {"label": "--method hybrid --sparsity 0.5", "size_bytes": 270_950_000u64, "ppl": 18.54, "plus_minus": 0.45, "seconds": 41.0},
            {"label": "--keep-ffn 0.75 <x>", "size_bytes": 230_000_000u64, "ppl": 19.1, "plus_minus": 0.47, "seconds": 20.0}
        ],
        "best": 1,
        "applied": null
    })
}

#[test]
fn smollm2_report_command_draws_the_imatrix_and_a_sweep() {
    let (Some(model), Some(imatrix)) = (
        real_file("smollm2", "model.f16.gguf"),
        real_file("smollm2", "imatrix.gguf"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sweep = d.join("sweep.json");
    std::fs::write(&sweep, serde_json::to_string_pretty(&sweep_json()).unwrap()).unwrap();
    for out in ["r.html", "r.json"] {
        run_ok(&[
            OsStr::new("report"),
            model.as_os_str(),
            OsStr::new("--imatrix"),
            imatrix.as_os_str(),
            OsStr::new("--sweep"),
            sweep.as_os_str(),
            OsStr::new("-o"),
            d.join(out).as_os_str(),
        ]);
    }
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    let json = read_json(&d.join("r.json"));
    assert_self_contained(&html);
    assert!(
        html.contains("<th>architecture</th><td>llama</td>"),
        "the model's facts"
    );
    for absent in ["zeroed", "widths", "channel-scores"] {
        assert!(
            section(&html, absent).is_none(),
            "{absent}: nothing was pruned"
        );
    }
    check_activations(&html, &json["activations"]);
    assert_eq!(
        json["sweep"],
        sweep_json(),
        "the sweep passes through unchanged"
    );

    let table = assert_chart(
        &html,
        "sweep",
        &[
            "Perplexity against file size",
            "file size (MB)",
            "perplexity (lower is better)",
            "chosen (lowest perplexity)",
        ],
    );
    let s = sweep_json();
    let mut want = vec![&s["baseline"]];
    want.extend(s["candidates"].as_array().unwrap());
    assert_eq!(table.len(), want.len());
    for (i, (row, w)) in table.iter().zip(want).enumerate() {
        assert_eq!(
            row[0].text,
            if i == 0 { String::new() } else { i.to_string() }
        );
        assert_eq!(
            row[1].text,
            w["label"].as_str().unwrap(),
            "labels are escaped and kept"
        );
        assert_eq!(row[2].value, w["size_bytes"].as_f64());
        assert_eq!(row[3].value, w["ppl"].as_f64());
        assert_eq!(row[4].value, w["plus_minus"].as_f64());
        assert_eq!(
            row[5].text == "yes",
            i == 2,
            "candidate 2 (best = 1) is the chosen one"
        );
    }
}

#[test]
fn report_refuses_what_does_not_fit_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("model.gguf");
    std::fs::copy(fixture("convert-llama.gguf"), &model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let out = d.join("r.html");
    let report = |extra: &[&OsStr]| {
        let mut args = vec![
            OsStr::new("report"),
            model.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ];
        args.extend_from_slice(extra);
        dass(&args)
    };
    // The imatrix of another model.
    let foreign = report(&[
        OsStr::new("--imatrix"),
        fixture("convert-moe.imatrix.gguf").as_os_str(),
    ]);
    assert_eq!(foreign.status.code(), Some(2));
    let err = String::from_utf8_lossy(&foreign.stderr);
    assert!(
        err.contains("convert-moe.imatrix.gguf") && err.contains("another model"),
        "{err}"
    );
    // A sweep file that is not one.
    let bad = d.join("bad.json");
    std::fs::write(&bad, b"{\"best\": 0}").unwrap();
    let res = report(&[OsStr::new("--sweep"), bad.as_os_str()]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(2));
    assert!(
        err.contains("bad.json") && err.contains("sweep --json"),
        "{err}"
    );
    // The output may not be an input.
    let res = dass(&[
        OsStr::new("report"),
        model.as_os_str(),
        OsStr::new("-o"),
        model.as_os_str(),
    ]);
    assert_eq!(
        res.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the input is untouched"
    );
    assert_eq!(
        dir_listing(d),
        ["bad.json", "model.gguf"],
        "nothing written"
    );
    // The model's own imatrix works; without one the page says what it lacks.
    let ok = report(&[
        OsStr::new("--imatrix"),
        fixture("convert-llama.imatrix.gguf").as_os_str(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(section(&std::fs::read_to_string(&out).unwrap(), "activations").is_some());
    let bare = report(&[]);
    assert!(bare.status.success());
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("Nothing to draw"));
}

/// The imatrix summary (mean and quantiles per entry) against gguf-py + NumPy
/// (scripts/oracle/activation_summary.py), on SmolLM2's imatrix.
#[test]
fn smollm2_activation_summary_matches_numpy() {
    let (Some(model), Some(imatrix), Some(python)) = (
        real_file("smollm2", "model.f16.gguf"),
        real_file("smollm2", "imatrix.gguf"),
        common::oracle_python("smollm2"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("r.json"), dir.path().join("numpy.json"));
    run_ok(&[
        OsStr::new("report"),
        model.as_os_str(),
        OsStr::new("--imatrix"),
        imatrix.as_os_str(),
        OsStr::new("-o"),
        ours.as_os_str(),
    ]);
    common::run_oracle(
        &python,
        "activation_summary.py",
        &[imatrix.as_os_str(), theirs.as_os_str()],
    );
    let ours = read_json(&ours);
    let theirs = read_json(&theirs);
    let rows = ours["activations"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), theirs.as_object().unwrap().len());
    assert_eq!(rows.len(), 210, "SmolLM2: 30 blocks of 7 weights");
    for r in rows {
        let t = &theirs[r["name"].as_str().unwrap()];
        assert_eq!(r["block"], t["block"]);
        assert_eq!(r["role"], t["role"]);
        assert_eq!(r["columns"], t["columns"]);
        let mut got = quantiles(&r["quantiles"]);
        got.push(json_f64(&r["mean"]));
        let mut want: Vec<f64> = t["quantiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(json_f64)
            .collect();
        want.push(json_f64(&t["mean"]));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs(),
                "{}: {got:?} {want:?}",
                r["name"]
            );
        }
    }
}
