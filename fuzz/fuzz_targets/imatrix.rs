//! Feeds arbitrary bytes to `Imatrix::parse` (legacy `.dat` or GGUF). When it parses, the
//! entries must be self-consistent.
#![no_main]

use dass_gguf::imatrix::Imatrix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Imatrix::parse(data) else {
        return;
    };
    for (name, e) in &m.entries {
        assert_eq!(name, &e.name);
        if let Some(counts) = &e.counts {
            assert_eq!(counts.len(), e.n_mat);
        }
        if let Some(mean) = &e.mean {
            assert_eq!(mean.len(), e.mean_sq.len());
        }
        let n_in = e.len_per_matrix();
        if let Ok(per) = e.per_expert(n_in) {
            assert!(per.iter().all(|v| v.len() == n_in));
        }
    }
});
