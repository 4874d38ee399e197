//! Every program in `circuits/` gives the result its header comment claims.
//!
//! Each claim is one function, run on the OpenQASM 2 program (module
//! `qasm2`) and on its OpenQASM 3 twin (module `qasm3`). The numbers were
//! checked independently against Qiskit and Aer (`tests/qiskit/check_circuits.py`).

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use kettle::qasm::{Limits, ParseOptions, parse_qasm2, parse_qasm3};
use kettle::{Circuit, Complex64, Parallelism, PauliSum, RunOptions, Simulator, StateVector};

use crate::util::kettle;

/// The two source languages of `circuits/`.
#[derive(Clone, Copy, Debug)]
enum Lang {
    Qasm2,
    Qasm3,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Qasm2 => "qasm2",
            Lang::Qasm3 => "qasm3",
        }
    }
}

fn path(lang: Lang, stem: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("circuits")
        .join(lang.dir())
        .join(format!("{stem}.qasm"))
}

fn load_with(lang: Lang, stem: &str, inputs: &[(&str, f64)]) -> Circuit {
    let path = path(lang, stem);
    let text = std::fs::read_to_string(&path).expect("sample circuit exists");
    let shown = path.display();
    match lang {
        Lang::Qasm2 => {
            parse_qasm2(&text, &Limits::default()).unwrap_or_else(|d| panic!("{shown}: {d}"))
        }
        Lang::Qasm3 => {
            let options = ParseOptions {
                inputs: inputs.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
                ..ParseOptions::default()
            };
            parse_qasm3(&text, &options).unwrap_or_else(|d| panic!("{shown}: {d}"))
        }
    }
}

fn load(lang: Lang, stem: &str) -> Circuit {
    load_with(lang, stem, &[])
}

fn counts(c: &Circuit, shots: u64, seed: u64) -> BTreeMap<String, u64> {
    Simulator::new()
        .run::<f64>(
            c,
            &RunOptions {
                shots,
                seed: Some(seed),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap()
        .counts
        .to_bitstrings()
}

/// The state before the (terminal) measurements.
fn state(c: &Circuit) -> StateVector<f64> {
    Simulator::new().statevector::<f64>(c).unwrap()
}

/// Exact probabilities of qubits 0..n, as the classical bits read them when
/// `measure q -> c` maps qubit i to bit i.
fn probabilities(c: &Circuit, n: u32) -> Vec<f64> {
    let qubits: Vec<u32> = (0..n).collect();
    state(c)
        .probabilities(&qubits, &Parallelism::Sequential)
        .unwrap()
}

fn expectation(state: &StateVector<f64>, observable: &str) -> f64 {
    let o: PauliSum = observable.parse().unwrap();
    state.expectation(&o, &Parallelism::Sequential).unwrap()
}

/// Every shot reads `want`.
fn deterministic(lang: Lang, stem: &str, want: &str, seed: u64) {
    assert_eq!(
        counts(&load(lang, stem), 500, seed),
        BTreeMap::from([(want.to_string(), 500)]),
        "{lang:?} {stem}"
    );
}

fn bell_and_ghz_give_only_the_two_extremes(lang: Lang) {
    for (file, zero, one) in [("bell", "00", "11"), ("ghz", "00000", "11111")] {
        let circuit = load(lang, file);
        let c = counts(&circuit, 2000, 1);
        assert_eq!(c.len(), 2, "{file}: {c:?}");
        assert!(c[zero] > 800 && c[one] > 800, "{file}: {c:?}");
        let p = probabilities(&circuit, circuit.num_qubits());
        assert!((p[0] - 0.5).abs() < 1e-12 && (p[p.len() - 1] - 0.5).abs() < 1e-12);
    }
}

fn oracle_algorithms_are_deterministic(lang: Lang) {
    deterministic(lang, "bernstein_vazirani", "1011", 2);
    deterministic(lang, "deutsch_jozsa", "101", 3);
}

fn grover_finds_the_marked_state(lang: Lang) {
    let circuit = load(lang, "grover3");
    let c = counts(&circuit, 4000, 4);
    let p = c["101"] as f64 / 4000.0;
    assert!((p - 0.9453).abs() < 0.02, "{p} {c:?}");
    let exact = (5.0 * (1.0 / 8f64.sqrt()).asin()).sin().powi(2);
    assert!((probabilities(&circuit, 3)[0b101] - exact).abs() < 1e-12);
}

fn teleportation_moves_the_state(lang: Lang) {
    let circuit = load(lang, "teleport");
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
    let one: f64 = exact
        .iter()
        .filter(|(k, _)| k.starts_with('1'))
        .map(|(_, p)| p)
        .sum();
    assert!((one - 0.35f64.sin().powi(2)).abs() < 1e-12, "{exact:?}");
    for m in ["00", "01", "10", "11"] {
        let pm: f64 = exact
            .iter()
            .filter(|(k, _)| k.ends_with(m))
            .map(|(_, p)| p)
            .sum();
        assert!((pm - 0.25).abs() < 1e-12, "{m}: {exact:?}");
    }
    assert!(kettle_reference::chi_square_p_value(&c, &exact, 20_000) > 1e-4);
}

fn qft_of_five_has_the_textbook_phases(lang: Lang) {
    let state = state(&load(lang, "qft4"));
    for k in 0..16u64 {
        let want = Complex64::from_polar(0.25, 2.0 * PI * 5.0 * k as f64 / 16.0);
        assert!(
            (state.amplitude(k).unwrap() - want).norm() < 1e-12,
            "amplitude {k}"
        );
    }
}

fn inverse_qft_returns_the_basis_state(lang: Lang) {
    let circuit = load(lang, "iqft4");
    assert!((probabilities(&circuit, 4)[0b1011] - 1.0).abs() < 1e-12);
    deterministic(lang, "iqft4", "1011", 6);
}

fn phase_estimation_reads_five_eighths(lang: Lang) {
    let circuit = load(lang, "qpe3");
    assert!((probabilities(&circuit, 3)[0b101] - 1.0).abs() < 1e-12);
    deterministic(lang, "qpe3", "101", 7);
}

fn cuccaro_adder_adds_13_and_9(lang: Lang) {
    // `ra` (a, restored: 1101) then `sum` (cout and b: 10110 = 22).
    deterministic(lang, "adder4", "110110110", 8);
    let state = state(&load(lang, "adder4"));
    // Qubits: cin (0), a (1..=4), b (5..=8), cout (9).
    let index = (0b1101 << 1) | (0b0110 << 5) | (1 << 9);
    assert!((state.amplitude(index).unwrap().norm_sqr() - 1.0).abs() < 1e-12);
}

fn grover4_amplifies_1101(lang: Lang) {
    let circuit = load(lang, "grover4");
    let p = probabilities(&circuit, 4);
    let hit = (7.0 * 0.25f64.asin()).sin().powi(2);
    assert!((hit - 0.961_319).abs() < 1e-6);
    for (k, &pk) in p.iter().enumerate() {
        let want = if k == 0b1101 { hit } else { (1.0 - hit) / 15.0 };
        assert!((pk - want).abs() < 1e-12, "{k:04b}: {pk} vs {want}");
    }
    let c = counts(&circuit, 4000, 9);
    assert!((c["1101"] as f64 / 4000.0 - hit).abs() < 0.015, "{c:?}");
}

/// Values from Qiskit's `Statevector` for the same circuit.
fn qaoa_layer_favours_the_maximum_cuts(lang: Lang) {
    let circuit = load(lang, "qaoa_maxcut");
    let state = state(&circuit);
    let cost = "2.5 - 0.5*Z0 Z1 - 0.5*Z1 Z2 - 0.5*Z2 Z3 - 0.5*Z3 Z0 - 0.5*Z0 Z2";
    assert!((expectation(&state, cost) - 3.237_096_650_919_198).abs() < 1e-12);
    for edge in ["Z0 Z1", "Z1 Z2", "Z2 Z3", "Z3 Z0"] {
        assert!((expectation(&state, edge) - -0.312_951_300_343_156_1).abs() < 1e-12);
    }
    assert!((expectation(&state, "Z0 Z2") - -0.222_388_100_465_776).abs() < 1e-12);
    let p = probabilities(&circuit, 4);
    for cut in [0b0101, 0b1010] {
        assert!((p[cut] - 0.163_811_518_036_773).abs() < 1e-12);
    }
    for none in [0b0000, 0b1111] {
        assert!((p[none] - 0.007_335_867_865_195).abs() < 1e-12);
    }
    // The two maximum cuts are the two most frequent outcomes.
    let c = counts(&circuit, 10_000, 10);
    let mut by_count: Vec<(&String, &u64)> = c.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<&str> = by_count[..2].iter().map(|(k, _)| k.as_str()).collect();
    assert!(top.contains(&"0101") && top.contains(&"1010"), "{c:?}");
}

/// One function per claim, run on both languages.
macro_rules! claims {
    ($($claim:ident),* $(,)?) => {
        mod qasm2 {
            $(#[test] fn $claim() { super::$claim(super::Lang::Qasm2) })*
        }
        mod qasm3 {
            $(#[test] fn $claim() { super::$claim(super::Lang::Qasm3) })*
        }
    };
}

claims!(
    bell_and_ghz_give_only_the_two_extremes,
    oracle_algorithms_are_deterministic,
    grover_finds_the_marked_state,
    teleportation_moves_the_state,
    qft_of_five_has_the_textbook_phases,
    inverse_qft_returns_the_basis_state,
    phase_estimation_reads_five_eighths,
    cuccaro_adder_adds_13_and_9,
    grover4_amplifies_1101,
    qaoa_layer_favours_the_maximum_cuts,
);

/// The circuits in both folders, with a claim above; `vqe_ansatz` is
/// OpenQASM 3 only (it has inputs).
const TWINS: &[&str] = &[
    "adder4",
    "bell",
    "bernstein_vazirani",
    "deutsch_jozsa",
    "ghz",
    "grover3",
    "grover4",
    "iqft4",
    "qaoa_maxcut",
    "qft4",
    "qpe3",
    "teleport",
];

#[test]
fn every_program_is_checked() {
    for (lang, extra) in [(Lang::Qasm2, None), (Lang::Qasm3, Some("vqe_ansatz"))] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("circuits")
            .join(lang.dir());
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|f| f.strip_suffix(".qasm").map(str::to_string))
            .collect();
        found.sort();
        let mut want: Vec<String> = TWINS.iter().map(|s| s.to_string()).collect();
        want.extend(extra.map(str::to_string));
        want.sort();
        assert_eq!(
            found,
            want,
            "{}: a program without a test, or a test without its program",
            dir.display()
        );
    }
}

#[test]
fn qasm3_twins_mean_the_same_circuits() {
    for stem in TWINS {
        let (two, three) = (load(Lang::Qasm2, stem), load(Lang::Qasm3, stem));
        assert_eq!(two.num_qubits(), three.num_qubits(), "{stem}");
        assert_eq!(two.num_clbits(), three.num_clbits(), "{stem}");
        if *stem == "teleport" {
            let (a, b) = (
                kettle_reference::exact_distribution(&two),
                kettle_reference::exact_distribution(&three),
            );
            assert_eq!(a.len(), b.len(), "{stem}");
            for (k, p) in &a {
                assert!((p - b[k]).abs() < 1e-12, "{stem} {k}");
            }
            continue;
        }
        let (a, b) = (state(&two).to_vec_f64(), state(&three).to_vec_f64());
        let overlap: Complex64 = a.iter().zip(&b).map(|(x, y)| x.conj() * y).sum();
        assert!(overlap.norm_sqr() > 1.0 - 1e-12, "{stem}: {overlap}");
    }
}

const THETA: f64 = 0.3;
const PHI: f64 = 1.1;

fn check_vqe_state(amps: &[Complex64], expect: impl Fn(&str) -> f64) {
    let (ct, st) = ((THETA / 2.0).cos(), (THETA / 2.0).sin());
    let (cp, sp) = ((PHI / 2.0).cos(), (PHI / 2.0).sin());
    let want = [ct * cp, st * sp, ct * sp, st * cp];
    assert_eq!(amps.len(), 4);
    for (k, (a, w)) in amps.iter().zip(want).enumerate() {
        assert!(
            (a - Complex64::new(w, 0.0)).norm() < 1e-12,
            "amplitude {k}: {a}"
        );
    }
    for (w, stated) in want
        .iter()
        .zip([0.842_951_6, 0.078_109_4, 0.516_818_0, 0.127_399_7])
    {
        assert!((w - stated).abs() < 1e-7, "the header's amplitudes");
    }
    assert!((expect("Z0") - THETA.cos()).abs() < 1e-12);
    assert!((expect("Z1") - THETA.cos() * PHI.cos()).abs() < 1e-12);
    assert!((expect("Z0 Z1") - PHI.cos()).abs() < 1e-12);
    assert!((expect("X0 X1") - THETA.sin()).abs() < 1e-12);
}

#[test]
fn vqe_ansatz_takes_its_angles_as_inputs() {
    let circuit = load_with(Lang::Qasm3, "vqe_ansatz", &[("theta", THETA), ("phi", PHI)]);
    let s = state(&circuit);
    check_vqe_state(&s.to_vec_f64(), |o| expectation(&s, o));
    // phi = pi: the H2 ground state of examples/vqe.rs at theta = -0.2235370.
    let ground = load_with(
        Lang::Qasm3,
        "vqe_ansatz",
        &[("theta", -0.223_537_0), ("phi", PI)],
    );
    let h2 = "-1.052373245772859 + 0.39793742484318045*Z1 - 0.39793742484318045*Z0 \
              - 0.01128010425623538*Z0 Z1 + 0.18093119978423156*X0 X1";
    let e = expectation(&state(&ground), h2);
    assert!((e - -1.857_275_030_202_38).abs() < 1e-9, "{e}");
}

#[test]
fn kettle_run_binds_inputs_from_the_command_line() {
    let file = path(Lang::Qasm3, "vqe_ansatz");
    let file = file.to_str().unwrap();
    let flags = ["--input", "theta=0.3", "--input", "phi=1.1"];
    let json = r#"{"theta": 0.3, "phi": 1.1}"#;
    for inputs in [&flags[..], &["--inputs", json][..]] {
        let mut args = vec!["run", file, "--json", "--statevector"];
        args.extend_from_slice(inputs);
        for o in ["Z0", "Z1", "Z0 Z1", "X0 X1"] {
            args.extend_from_slice(&["--expect", o]);
        }
        let out = kettle(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let amps: Vec<[f64; 2]> = serde_json::from_value(v["statevector"].clone()).unwrap();
        let amps: Vec<Complex64> = amps
            .iter()
            .map(|&[re, im]| Complex64::new(re, im))
            .collect();
        let values: BTreeMap<String, f64> = v["expectation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["observable"].as_str().unwrap().to_string(),
                    e["value"].as_f64().unwrap(),
                )
            })
            .collect();
        check_vqe_state(&amps, |o| values[o]);
    }
    // A missing input is an error that names it.
    let out = kettle(&["run", file, "--input", "theta=0.3"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("phi"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
