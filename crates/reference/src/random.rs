//! Seeded random circuits over the whole gate catalogue: unitary ones, and
//! dynamic ones with mid-circuit measurement, reset and classical control.

use std::f64::consts::TAU;

use kettle_ir::{Circuit, Condition, Control, Gate, Operation, Qubit, StandardGate, UnitaryMatrix};
use num_complex::Complex64;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `k` distinct qubits out of `0..n`, in random order (partial Fisher–Yates).
fn distinct_qubits(rng: &mut Xoshiro256PlusPlus, n: u32, k: usize) -> Vec<Qubit> {
    let mut all: Vec<Qubit> = (0..n).collect();
    for i in 0..k {
        let j = rng.random_range(i..all.len());
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

/// A standard complex Gaussian (Box–Muller).
fn gaussian(rng: &mut Xoshiro256PlusPlus) -> Complex64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1], so the log is finite
    let u2 = rng.random::<f64>();
    Complex64::from_polar((-2.0 * u1.ln()).sqrt(), TAU * u2)
}

/// A random `k`-qubit unitary: complex Gaussian columns orthonormalised by
/// (modified) Gram–Schmidt. That is a QR decomposition with a positive
/// diagonal, so the result is Haar-distributed.
fn random_unitary(rng: &mut Xoshiro256PlusPlus, k: u32) -> UnitaryMatrix {
    let dim = 1usize << k;
    let mut cols: Vec<Vec<Complex64>> = (0..dim)
        .map(|_| (0..dim).map(|_| gaussian(rng)).collect())
        .collect();
    for j in 0..dim {
        for i in 0..j {
            let proj: Complex64 = cols[i]
                .iter()
                .zip(&cols[j])
                .map(|(a, b)| a.conj() * b)
                .sum();
            let qi = cols[i].clone();
            for (x, q) in cols[j].iter_mut().zip(&qi) {
                *x -= proj * q;
            }
        }
        let norm = cols[j].iter().map(|x| x.norm_sqr()).sum::<f64>().sqrt();
        for x in &mut cols[j] {
            *x /= norm;
        }
    }
    let data = (0..dim * dim).map(|e| cols[e % dim][e / dim]).collect();
    UnitaryMatrix::from_entries(k, data).expect("Gram–Schmidt output is unitary")
}

/// A reproducible random unitary circuit of `num_gates` operations on
/// `num_qubits` qubits (no classical bits).
///
/// Each operation is, by chance: a barrier on random qubits (5 %), a random
/// 1–3-qubit `Gate::Unitary` (10 %), a global phase (5 %), or else a gate drawn
/// uniformly from [`StandardGate::ALL`] (gates wider than the circuit are
/// redrawn) with angles uniform in (−2π, 2π). Any gate gets 1–2 extra
/// controls, each randomly `Control::one` or `Control::zero`, with probability
/// 1/4 when qubits are left for them. Targets and controls are distinct.
/// The same arguments always give the same circuit.
pub fn random_circuit(num_qubits: u32, num_gates: usize, seed: u64) -> Circuit {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = num_qubits;
    let mut circuit = Circuit::new(n);
    for _ in 0..num_gates {
        let roll: f64 = rng.random();
        let gate = if roll < 0.05 {
            let k = rng.random_range(0..=n as usize);
            circuit.push(Operation::Barrier {
                qubits: distinct_qubits(&mut rng, n, k),
            });
            continue;
        } else if roll < 0.15 && n > 0 {
            let k = rng.random_range(1..=n.min(3));
            Gate::Unitary(random_unitary(&mut rng, k))
        } else if roll < 0.20 {
            Gate::standard(StandardGate::GlobalPhase, &[rng.random_range(-TAU..TAU)])
        } else {
            let g = loop {
                let g = StandardGate::ALL[rng.random_range(0..StandardGate::ALL.len())];
                if g.num_qubits() <= n {
                    break g;
                }
            };
            let params: Vec<f64> = (0..g.num_params())
                .map(|_| rng.random_range(-TAU..TAU))
                .collect();
            Gate::standard(g, &params)
        };
        let k = gate.num_qubits() as usize;
        let free = n as usize - k;
        let num_controls = if free > 0 && rng.random_bool(0.25) {
            rng.random_range(1..=free.min(2))
        } else {
            0
        };
        let mut qubits = distinct_qubits(&mut rng, n, k + num_controls);
        let controls = qubits
            .split_off(k)
            .into_iter()
            .map(|q| {
                if rng.random_bool(0.5) {
                    Control::one(q)
                } else {
                    Control::zero(q)
                }
            })
            .collect();
        circuit.push(Operation::Gate {
            gate,
            qubits,
            controls,
        });
    }
    circuit
}

/// A reproducible random dynamic circuit on `num_qubits` qubits and as
/// many classical bits: `layers` rounds of a few [`random_circuit`] gates,
/// each followed by one of a measurement of a random qubit into a random
/// bit, a reset of a random qubit, or an `if` on one or two bits whose arms
/// hold a few random gates (the `else` arm half the time); it ends by
/// measuring qubit `q` into bit `q`. The same arguments always give the
/// same circuit.
pub fn random_dynamic_circuit(num_qubits: u32, layers: usize, seed: u64) -> Circuit {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = num_qubits;
    let mut circuit = Circuit::new(n).creg("c", n);
    let gates = |rng: &mut Xoshiro256PlusPlus, most: usize| {
        let count = rng.random_range(1..=most);
        random_circuit(n, count, rng.random()).ops().to_vec()
    };
    for _ in 0..layers {
        let ops = gates(&mut rng, 6);
        circuit.append_ops(ops);
        let q = rng.random_range(0..n);
        let b = rng.random_range(0..n);
        match rng.random_range(0..3) {
            0 => circuit = circuit.measure(q, b),
            1 => circuit = circuit.reset(q),
            _ => {
                let condition = if rng.random_bool(0.5) {
                    Condition::bit(b, rng.random_bool(0.5))
                } else {
                    let other = (b + 1 + rng.random_range(0..n - 1)) % n;
                    Condition::equals(vec![b, other], rng.random_range(0..4))
                };
                let then_ops = gates(&mut rng, 3);
                let else_ops = if rng.random_bool(0.5) {
                    gates(&mut rng, 3)
                } else {
                    Vec::new()
                };
                circuit.push(Operation::IfElse {
                    condition,
                    then_ops,
                    else_ops,
                });
            }
        }
    }
    for q in 0..n {
        circuit = circuit.measure(q, q);
    }
    circuit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_and_valid() {
        for n in 0..=7 {
            for seed in 0..10 {
                let a = random_circuit(n, 80, seed);
                assert_eq!(a, random_circuit(n, 80, seed));
                assert_eq!(a.ops().len(), 80);
                a.validate().unwrap();
            }
        }
        assert_ne!(random_circuit(4, 50, 1), random_circuit(4, 50, 2));
    }

    #[test]
    fn dynamic_circuits_are_deterministic_valid_and_dynamic() {
        for seed in 0..20 {
            let a = random_dynamic_circuit(5, 8, seed);
            assert_eq!(a, random_dynamic_circuit(5, 8, seed));
            a.validate().unwrap();
            assert_eq!(a.num_clbits(), 5);
            assert!(
                a.ops()
                    .iter()
                    .any(|o| matches!(o, Operation::IfElse { .. } | Operation::Reset { .. })),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn covers_the_whole_catalogue() {
        let (mut names, mut unitaries, mut pos, mut neg, mut barriers) =
            (HashSet::new(), 0, 0, 0, 0);
        for seed in 0..20 {
            for op in random_circuit(5, 200, seed).ops() {
                match op {
                    Operation::Gate { gate, controls, .. } => {
                        match gate {
                            Gate::Standard { gate, .. } => {
                                names.insert(gate.name());
                            }
                            Gate::Unitary(_) => unitaries += 1,
                        }
                        pos += controls.iter().filter(|c| c.on).count();
                        neg += controls.iter().filter(|c| !c.on).count();
                    }
                    Operation::Barrier { .. } => barriers += 1,
                    other => panic!("non-unitary op {other:?}"),
                }
            }
        }
        assert_eq!(names.len(), StandardGate::ALL.len());
        assert!(unitaries > 0 && pos > 0 && neg > 0 && barriers > 0);
    }
}
