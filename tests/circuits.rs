//! Every program in `circuits/` gives the result its header comment claims.

use std::collections::BTreeMap;
use std::path::Path;

use kettle::qasm::{Limits, parse_qasm2};
use kettle::{Circuit, RunOptions, Simulator};

fn load(name: &str) -> Circuit {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("circuits/qasm2")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("sample circuit exists");
    parse_qasm2(&text, &Limits::default()).unwrap_or_else(|d| panic!("{name}: {d}"))
}

fn counts(c: &Circuit, shots: u64, seed: u64) -> BTreeMap<String, u64> {
    Simulator::new()
        .run::<f64>(
            c,
            &RunOptions {
                shots,
                seed: Some(seed),
                keep_state: false,
            },
        )
        .unwrap()
        .counts
        .to_bitstrings()
}

#[test]
fn bell_and_ghz_give_only_the_two_extremes() {
    for (file, zero, one) in [("bell.qasm", "00", "11"), ("ghz.qasm", "00000", "11111")] {
        let c = counts(&load(file), 2000, 1);
        assert_eq!(c.len(), 2, "{file}: {c:?}");
        assert!(c[zero] > 800 && c[one] > 800, "{file}: {c:?}");
    }
}

#[test]
fn oracle_algorithms_are_deterministic() {
    assert_eq!(
        counts(&load("bernstein_vazirani.qasm"), 500, 2),
        BTreeMap::from([("1011".into(), 500)])
    );
    assert_eq!(
        counts(&load("deutsch_jozsa.qasm"), 500, 3),
        BTreeMap::from([("101".into(), 500)])
    );
}

#[test]
fn grover_finds_the_marked_state() {
    let c = counts(&load("grover3.qasm"), 4000, 4);
    let p = c["101"] as f64 / 4000.0;
    assert!((p - 0.9453).abs() < 0.02, "{p} {c:?}");
}

#[test]
fn teleportation_moves_the_state() {
    let circuit = load("teleport.qasm");
    let c = counts(&circuit, 20_000, 5);
    let ones: u64 = c
        .iter()
        .filter(|(k, _)| k.starts_with('1'))
        .map(|(_, n)| n)
        .sum();
    assert!(
        (ones as f64 / 20_000.0 - 0.35f64.sin().powi(2)).abs() < 0.01,
        "{c:?}"
    );
    let exact = kettle_reference::exact_distribution(&circuit);
    assert!(kettle_reference::chi_square_p_value(&c, &exact, 20_000) > 1e-4);
}

#[test]
fn qft_of_five_has_the_textbook_phases() {
    let state = Simulator::new()
        .statevector::<f64>(&load("qft4.qasm"))
        .unwrap();
    for k in 0..16u64 {
        let want =
            kettle::Complex64::from_polar(0.25, 2.0 * std::f64::consts::PI * 5.0 * k as f64 / 16.0);
        assert!(
            (state.amplitude(k).unwrap() - want).norm() < 1e-12,
            "amplitude {k}"
        );
    }
}
