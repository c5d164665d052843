//! Mask kernels on 7B-sized matrices (Llama-2-7B / Mistral-7B feed-forward shapes).
//!
//!     cargo bench --bench kernels [-- FILTER]
//!
//! * `column/…`: DaSS gate/up, [`Axis::Column`] groups on 14336 × 4096 (n_ff rows of n_embd
//!   inputs) with [`Scale::PerRow`] (`v_down[r]^0.25`): unstructured 50% and 2:4.
//! * `row/…`: Wanda-style [`Axis::Row`] groups on 4096 × 14336 (ffn_down) with
//!   [`Scale::PerColumn`] (`sqrt(v[c])`): unstructured 50%, 2:4 and 4:8.
//!
//! * `sparsegpt/…`: SparseGPT's update of the weights a fixed 2:4 mask keeps
//!   ([`dass_gguf::refit::update`]) on SmolLM2's feed-forward shapes, 1536 × 576 (gate/up) and
//!   576 × 1536 (down), the factor of a random damped second moment made once outside the
//!   timing.
//!
//! Each mask kernel runs on every instruction set this CPU has ([`Level::available`]: portable, and AVX2
//! when present). Throughput is in weights (elements) per second. Each call takes a large
//! fraction of a second, so samples are few and flat (one call each) to keep the whole run to a
//! few minutes on two cores.
//!
//! Weights are F16-rounded bell-shaped values with rare outliers (so equal scores occur as in
//! real F16 models); factors come from log-normal mean squares with a few 100× channels.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use half::f16;

use dass_gguf::kernels::{select_zeros_at, Axis, Level, Pattern, Scale};

const N_EMBD: usize = 4096;
const N_FF: usize = 14336;

/// SplitMix64: small, fast, good enough for benchmark inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `n` weights of std ~0.02, rounded to F16 and back as in an F16 model.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let r = rng.next();
            let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff);
            let mut z = (s as f32 - 98_304.0) / 32_768.0;
            if (r >> 48) < 16 {
                z *= 4.0 + (r & 7) as f32;
            }
            f16::from_f32(0.02 * z).to_f32()
        })
        .collect()
}

/// Log-normal mean squares with four channels 100× larger, raised to `power`.
fn factors(n: usize, power: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut v: Vec<f64> = (0..n).map(|_| (-2.0 + rng.normal()).exp()).collect();
    for _ in 0..4 {
        let i = (rng.next() % n as u64) as usize;
        v[i] *= 100.0;
    }
    v.iter().map(|x| x.powf(power) as f32).collect()
}

fn label(p: Pattern) -> String {
    match p {
        Pattern::Unstructured { sparsity } => format!("unstructured{:.0}", sparsity * 100.0),
        Pattern::NM { n, m } => format!("{n}:{m}"),
    }
}

/// One matrix shape and grouping, with the patterns to run on it.
struct Case<'a> {
    name: &'static str,
    rows: usize,
    cols: usize,
    scale: Scale<'a>,
    axis: Axis,
    patterns: Vec<Pattern>,
}

fn bench(c: &mut Criterion) {
    let n = N_EMBD * N_FF;
    // One weight buffer serves both shapes (same element count).
    let w = weights(n, 1);
    let mut zero = vec![false; n];
    let v_down_quarter = factors(N_FF, 0.25, 2); // DaSS gate/up: one factor per row (n_ff rows)
    let v_sqrt = factors(N_FF, 0.5, 3); // Wanda on ffn_down: one factor per column (n_ff cols)

    let cases = [
        Case {
            name: "column",
            rows: N_FF,
            cols: N_EMBD,
            scale: Scale::PerRow(&v_down_quarter),
            axis: Axis::Column,
            patterns: vec![
                Pattern::Unstructured { sparsity: 0.5 },
                Pattern::NM { n: 2, m: 4 },
            ],
        },
        Case {
            name: "row",
            rows: N_EMBD,
            cols: N_FF,
            scale: Scale::PerColumn(&v_sqrt),
            axis: Axis::Row,
            patterns: vec![
                Pattern::Unstructured { sparsity: 0.5 },
                Pattern::NM { n: 2, m: 4 },
                Pattern::NM { n: 4, m: 8 },
            ],
        },
    ];
    for Case {
        name,
        rows,
        cols,
        scale,
        axis,
        patterns,
    } in cases
    {
        let mut g = c.benchmark_group(format!("{name}_{rows}x{cols}"));
        g.throughput(Throughput::Elements(n as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for pattern in patterns {
            for level in Level::available() {
                let id = BenchmarkId::new(label(pattern), level.name());
                g.bench_function(id, |b| {
                    b.iter(|| {
                        black_box(select_zeros_at(
                            level,
                            black_box(&w),
                            rows,
                            cols,
                            scale,
                            axis,
                            pattern,
                            &mut zero,
                        ))
                    })
                });
            }
        }
        g.finish();
    }
}

/// A damped second moment of `n` inputs from `2n` random correlated tokens.
fn second_moment(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let t = 2 * n;
    let x: Vec<f64> = (0..t * n).map(|_| rng.normal()).collect();
    let mut h = vec![0.0f64; n * n];
    for tok in x.chunks(n) {
        for i in 0..n {
            let xi = tok[i] + 0.5 * tok[(i + 1) % n];
            for j in 0..n {
                h[i * n + j] += xi * (tok[j] + 0.5 * tok[(j + 1) % n]);
            }
        }
    }
    h.iter().map(|v| v / t as f64).collect()
}

fn bench_sparsegpt(c: &mut Criterion) {
    use dass_gguf::refit::{update, Damped, Factor};
    let mut g = c.benchmark_group("sparsegpt");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (rows, cols) in [(1536usize, 576usize), (576, 1536)] {
        let n = rows * cols;
        let h = Damped::new(second_moment(cols, 7), cols, 0.01);
        let factor = Factor::new(&h, "bench", 0.01).expect("positive definite");
        let w: Vec<f64> = weights(n, 8).into_iter().map(f64::from).collect();
        // 2:4 along rows: the two smallest of every four.
        let mut mask = vec![false; n];
        for (g4, m) in w.chunks(4).zip(mask.chunks_mut(4)) {
            let mut order = [0usize, 1, 2, 3];
            order.sort_by(|&a, &b| g4[a].abs().total_cmp(&g4[b].abs()));
            m[order[0]] = true;
            m[order[1]] = true;
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("2:4", format!("{rows}x{cols}")), |b| {
            b.iter_batched_ref(
                || w.clone(),
                |w| update(black_box(w), &mask, &factor),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_sparsegpt);
criterion_main!(benches);
