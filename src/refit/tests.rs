//! The refit math on cases small enough to check by hand, and the blocked SparseGPT update
//! against the plain column-by-column one.

use faer::MatRef;

use super::*;

fn view(w: &[f64], rows: usize, n: usize) -> MatRef<'_, f64> {
    MatRef::from_row_major_slice(w, rows, n)
}

/// SplitMix64 uniform numbers in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// `XᵀX / t` of `t` tokens of `n` inputs (row-major `t × n`).
fn second_moment(x: &[f64], t: usize, n: usize) -> Vec<f64> {
    let mut h = vec![0.0; n * n];
    for row in x.chunks(n) {
        for i in 0..n {
            for j in 0..n {
                h[i * n + j] += row[i] * row[j];
            }
        }
    }
    h.iter().map(|v| v / t as f64).collect()
}

/// `W x` for `W` `rows × n`.
fn apply(w: &[f64], rows: usize, x: &[f64]) -> Vec<f64> {
    let n = x.len();
    (0..rows)
        .map(|r| (0..n).map(|c| w[r * n + c] * x[c]).sum())
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "at {i}: {x} vs {y}");
    }
}

#[test]
fn damping_sets_dead_inputs_to_one_then_adds_the_mean_diagonal() {
    let h = vec![4.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0];
    let d = Damped::new(h, 3, 0.1);
    assert_eq!(d.dead, vec![false, false, true]);
    // diag after the dead fix: 4, 2, 1 -> mean 7/3.
    let lambda = 0.1 * 7.0 / 3.0;
    assert!((d.lambda - lambda).abs() < 1e-15);
    assert_eq!(d.at(0, 0), 4.0 + lambda);
    assert_eq!(d.at(2, 2), 1.0 + lambda);
    assert_eq!(d.at(0, 1), 1.0);
}

#[test]
fn keeping_every_channel_changes_nothing() {
    let mut rng = Rng(1);
    let (rows, n, t) = (5, 6, 40);
    let x = rng.vec(t * n);
    let h = Damped::new(second_moment(&x, t, n), n, 0.01);
    let w = rng.vec(rows * n);
    let kept: Vec<u32> = (0..n as u32).collect();
    assert_eq!(refit_kept(&w, rows, &h, &kept, "t", 0.01).unwrap(), w);
}

#[test]
fn a_removed_channel_that_the_kept_ones_make_is_reconstructed_exactly() {
    let mut rng = Rng(2);
    let (rows, n, t) = (4, 4, 30);
    // Channel 2 = 0.5 x0 - 2 x1 + x3 on every token.
    let mut x = rng.vec(t * n);
    for tok in x.chunks_mut(n) {
        tok[2] = 0.5 * tok[0] - 2.0 * tok[1] + tok[3];
    }
    let h = Damped::new(second_moment(&x, t, n), n, 0.0);
    let w = rng.vec(rows * n);
    let kept = [0u32, 1, 3];
    let refit = refit_kept(&w, rows, &h, &kept, "t", 0.0).unwrap();
    // By hand: W' = W_K + W[:, 2] (0.5, -2, 1).
    let by_hand: Vec<f64> = (0..rows)
        .flat_map(|r| {
            let c = w[r * n + 2];
            vec![w[r * n] + 0.5 * c, w[r * n + 1] - 2.0 * c, w[r * n + 3] + c]
        })
        .collect();
    close(&refit, &by_hand, 1e-9);
    for tok in x.chunks(n) {
        let xk = [tok[0], tok[1], tok[3]];
        close(&apply(&refit, rows, &xk), &apply(&w, rows, tok), 1e-9);
    }
}

#[test]
fn sparsegpt_with_identity_statistics_is_plain_masking() {
    let mut rng = Rng(3);
    let (rows, n) = (7, 300);
    let w = rng.vec(rows * n);
    let mask: Vec<bool> = (0..rows * n).map(|i| i % 3 == 1).collect();
    let mut id = vec![0.0; n * n];
    for i in 0..n {
        id[i * n + i] = 1.0;
    }
    for damp in [0.0, 0.01] {
        let f = Factor::new(&Damped::new(id.clone(), n, damp), "t", damp).unwrap();
        let mut got = w.clone();
        update(&mut got, &mask, &f);
        let want: Vec<f64> = w
            .iter()
            .zip(&mask)
            .map(|(&x, &m)| if m { 0.0 } else { x })
            .collect();
        close(&got, &want, 1e-12);
    }
}

/// The update column by column, unblocked, as the paper's algorithm 1 with a fixed mask.
fn plain_update(w: &mut [f64], mask: &[bool], f: &Factor) {
    let n = f.n;
    for (row, m) in w.chunks_mut(n).zip(mask.chunks(n)) {
        for i in 0..n {
            if m[i] {
                let err = row[i] / f.u[i * n + i];
                for (x, u) in row[i..].iter_mut().zip(&f.u[i * n + i..(i + 1) * n]) {
                    *x -= err * u;
                }
                row[i] = 0.0;
            }
        }
    }
}

#[test]
fn the_blocked_update_is_the_plain_one_and_keeps_n_m() {
    let mut rng = Rng(4);
    let (rows, n, t) = (37, 2 * sparsegpt::BLOCK + 44, 600);
    let x = rng.vec(t * n);
    let h = Damped::new(second_moment(&x, t, n), n, 0.01);
    let f = Factor::new(&h, "t", 0.01).unwrap();
    // U is upper triangular and UᵀU = H⁻¹, i.e. H Uᵀ U = I.
    let u = view(&f.u, n, n);
    let should_be_identity = h.view() * u.transpose() * u;
    for i in 0..n {
        for j in 0..n {
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((should_be_identity[(i, j)] - want).abs() < 1e-8);
        }
        for j in 0..i {
            assert_eq!(f.u[i * n + j], 0.0);
        }
    }
    let w = rng.vec(rows * n);
    // 2:4 along rows: zero the two smallest of every four.
    let mut mask = vec![false; rows * n];
    for (g, m) in w.chunks(4).zip(mask.chunks_mut(4)) {
        let mut order = [0usize, 1, 2, 3];
        order.sort_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()));
        m[order[0]] = true;
        m[order[1]] = true;
    }
    let mut blocked = w.clone();
    update(&mut blocked, &mask, &f);
    let mut plain = w.clone();
    plain_update(&mut plain, &mask, &f);
    close(&blocked, &plain, 1e-10);
    for (g, m) in blocked.chunks(4).zip(mask.chunks(4)) {
        for (x, &z) in g.iter().zip(m) {
            assert_eq!(*x == 0.0, z, "zeros exactly at the mask");
        }
    }
    // The update lowers the output error on the calibration statistics: tr(ΔW H ΔWᵀ).
    let err = |v: &[f64]| -> f64 {
        let d: Vec<f64> = v.iter().zip(&w).map(|(a, b)| a - b).collect();
        (0..rows)
            .map(|r| {
                let dr = &d[r * n..(r + 1) * n];
                (0..n)
                    .map(|i| dr[i] * (0..n).map(|j| h.at(i, j) * dr[j]).sum::<f64>())
                    .sum::<f64>()
            })
            .sum()
    };
    let masked: Vec<f64> = w
        .iter()
        .zip(&mask)
        .map(|(&x, &m)| if m { 0.0 } else { x })
        .collect();
    assert!(err(&blocked) < 0.9 * err(&masked));
}

#[test]
fn greedy_least_squares_removes_a_redundant_channel_first_and_its_costs_add_up() {
    let mut rng = Rng(5);
    let (rows, n, t) = (6, 8, 200);
    let mut x = rng.vec(t * n);
    for tok in x.chunks_mut(n) {
        // Channel 5 is made of channels 0 and 1; channel 6 is dead.
        tok[5] = tok[0] - 0.5 * tok[1];
        tok[6] = 0.0;
    }
    let damp = 1e-9;
    let h = Damped::new(second_moment(&x, t, n), n, damp);
    let w = rng.vec(rows * n);
    let choice = choose_lsq(&w, rows, &h, 5, "t", damp).unwrap();
    assert_eq!(choice.kept.len(), 5);
    // The dead channel goes for nothing; any one of 0, 1 and 5 (the other two make it) for
    // next to nothing, and then the other two are needed.
    assert!(!choice.kept.contains(&6));
    assert_eq!(choice.scores[6], 0.0);
    let free: Vec<u32> = [0u32, 1, 5]
        .into_iter()
        .filter(|&j| !choice.kept.contains(&j) && choice.scores[j as usize] < 1e-6)
        .collect();
    assert_eq!(free.len(), 1, "{:?}", choice.scores);
    let others = (0..n).filter(|&j| ![0, 1, 5, 6].contains(&j));
    assert!(others.map(|j| choice.scores[j]).all(|s| s > 1e-3));
    // The costs of the removed channels add up to the refit's error tr(ΔW H ΔWᵀ), ΔW being
    // W minus the refitted kept columns (removed columns 0).
    let refit = refit_kept(&w, rows, &h, &choice.kept, "t", damp).unwrap();
    let k = choice.kept.len();
    let mut delta = w.clone();
    for r in 0..rows {
        for (a, &c) in choice.kept.iter().enumerate() {
            delta[r * n + c as usize] -= refit[r * k + a];
        }
    }
    let err: f64 = (0..rows)
        .map(|r| {
            let d = &delta[r * n..(r + 1) * n];
            (0..n)
                .map(|i| d[i] * (0..n).map(|j| h.at(i, j) * d[j]).sum::<f64>())
                .sum::<f64>()
        })
        .sum();
    let removed: f64 = (0..n as u32)
        .filter(|j| !choice.kept.contains(j))
        .map(|j| choice.scores[j as usize])
        .sum();
    // The dead channel costs 0 by definition; its 1 on the diagonal adds ‖W[:, 6]‖² (1 + λ).
    let dead_col: f64 = (0..rows).map(|r| w[r * n + 6].powi(2)).sum::<f64>() * h.at(6, 6);
    assert!(
        (err - dead_col - removed).abs() < 1e-8 * err.max(1.0),
        "{err} vs {removed} + {dead_col}"
    );
}

#[test]
fn greedy_ties_go_to_the_lower_index() {
    let n = 4;
    let mut id = vec![0.0; n * n];
    for i in 0..n {
        id[i * n + i] = 1.0;
    }
    let h = Damped::new(id, n, 0.0);
    let w = vec![1.0; 2 * n];
    let choice = choose_lsq(&w, 2, &h, 2, "t", 0.0).unwrap();
    assert_eq!(choice.kept, vec![2, 3]);
}

#[test]
fn a_singular_matrix_without_damping_is_an_error_naming_the_tensor() {
    let n = 3;
    let h = Damped::new(vec![1.0; n * n], n, 0.0);
    let e = Factor::new(&h, "blk.0.ffn_down.weight", 0.0).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("blk.0.ffn_down.weight") && msg.contains("--damp"),
        "{msg}"
    );
}
