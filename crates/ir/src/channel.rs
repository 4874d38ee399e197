//! Quantum channels: completely positive, trace-preserving maps on one or
//! two qubits, in the two forms a simulator uses them (issue 18).
//!
//! A [`ChannelForm::Mixture`] applies unitary `U_i` with probability `p_i`:
//! a trajectory picks one branch with one random number and needs no norm
//! (qsim's and Qulacs' fast path); a density matrix takes `Σ p_i U_i ρ U_i†`.
//! A [`ChannelForm::Kraus`] map takes `Σ K_i ρ K_i†` with `Σ K_i† K_i = I`; a
//! trajectory picks `K_i` with probability `‖K_i ψ‖²`. [`Channel::kraus`]
//! recognises Kraus operators that are all multiples of unitaries and keeps
//! them as a mixture.
//!
//! The named channels follow the conventions of the libraries their users
//! come from: Braket's noise pragmas (`bit_flip`, `phase_flip`,
//! `pauli_channel`, `depolarizing`, `two_qubit_depolarizing`,
//! `two_qubit_dephasing`, `amplitude_damping`,
//! `generalized_amplitude_damping`, `phase_damping`, `kraus`) and Qiskit
//! Aer's noise library (`depolarizing_error`, `thermal_relaxation_error`,
//! `reset_error`), whose parameters differ (Braket's depolarizing `p` is
//! the probability of an error, Qiskit's `λ` that of a fully mixed state).
//!
//! Matrices follow the IR's bit order: for a channel on qubits `[q0, q1]`,
//! bit `i` of a matrix index is `q_i`.

use std::sync::Arc;

use num_complex::Complex64;
use thiserror::Error;

use crate::matrix::GateMatrix;

/// Qubits a channel may act on.
pub const MAX_CHANNEL_QUBITS: u32 = 2;

/// How far `Σ K†K` may be from the identity, and `Σ p` from 1 (entry-wise
/// largest difference; the same tolerance as a unitary's).
pub const CHANNEL_TOLERANCE: f64 = crate::matrix::UNITARY_TOLERANCE;

/// A channel on one or two qubits.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    num_qubits: u32,
    /// Shared: a noise model puts the same channel after every gate of a
    /// kind, and a million-gate circuit must not hold a million copies.
    form: Arc<ChannelForm>,
    /// The name it was built by (`depolarizing`, `kraus`, …) and its
    /// parameters, for drawings and the JSON format.
    name: &'static str,
    params: Vec<f64>,
}

/// How a channel acts.
#[derive(Clone, Debug, PartialEq)]
pub enum ChannelForm {
    /// Unitary `U_i` with probability `p_i` (the probabilities add up to 1;
    /// those that are 0 are left out).
    Mixture(Vec<(f64, GateMatrix)>),
    /// Kraus operators with `Σ K_i† K_i = I`.
    Kraus(Vec<GateMatrix>),
}

/// Why a channel cannot be built.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ChannelError {
    /// A parameter outside its range (or not finite).
    #[error("{what} must be {range}, not {value}")]
    Parameter {
        /// Which parameter, as the channel's library names it.
        what: &'static str,
        /// Its allowed range, in words.
        range: &'static str,
        /// The value given.
        value: f64,
    },
    /// No operators, or operators of different sizes.
    #[error("{0}")]
    Shape(String),
    /// `Σ K†K` is not the identity.
    #[error(
        "the Kraus operators are not trace-preserving: Σ K†K differs from the identity by {deviation:e} (at most {CHANNEL_TOLERANCE:e})"
    )]
    NotTracePreserving {
        /// The largest entry of `|Σ K†K − I|`.
        deviation: f64,
    },
}

fn c(re: f64, im: f64) -> Complex64 {
    Complex64::new(re, im)
}

/// The 2×2 matrix with these rows.
fn m2(rows: [[Complex64; 2]; 2]) -> GateMatrix {
    GateMatrix::new(1, rows.into_iter().flatten().collect()).expect("2x2")
}

/// The Paulis I, X, Y, Z.
fn paulis() -> [GateMatrix; 4] {
    let (o, l, i) = (c(0., 0.), c(1., 0.), c(0., 1.));
    [
        m2([[l, o], [o, l]]),
        m2([[o, l], [l, o]]),
        m2([[o, -i], [i, o]]),
        m2([[l, o], [o, -l]]),
    ]
}

fn probability(what: &'static str, p: f64) -> Result<f64, ChannelError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(ChannelError::Parameter {
            what,
            range: "between 0 and 1",
            value: p,
        })
    }
}

impl Channel {
    /// Qubits it acts on (1 or 2).
    pub fn num_qubits(&self) -> u32 {
        self.num_qubits
    }

    /// How it acts.
    pub fn form(&self) -> &ChannelForm {
        &self.form
    }

    /// Its Kraus operators (`√p_i U_i` for a mixture).
    pub fn kraus_operators(&self) -> Vec<GateMatrix> {
        match &*self.form {
            ChannelForm::Kraus(ops) => ops.clone(),
            ChannelForm::Mixture(branches) => {
                branches.iter().map(|(p, u)| u.scaled(p.sqrt())).collect()
            }
        }
    }

    /// A mixture of unitaries: `(probability, unitary)` pairs on the same
    /// qubits, probabilities that add up to 1. Branches of probability 0
    /// are dropped.
    ///
    /// # Errors
    /// A probability outside [0, 1], a sum other than 1, matrices of
    /// different sizes or more than [`MAX_CHANNEL_QUBITS`] qubits, or one
    /// that is not unitary.
    pub fn mixture(branches: Vec<(f64, GateMatrix)>) -> Result<Channel, ChannelError> {
        let num_qubits = same_size(branches.iter().map(|(_, u)| u))?;
        let mut total = 0.0;
        for (p, u) in &branches {
            probability("a branch's probability", *p)?;
            total += p;
            let deviation = u.unitarity_deviation();
            if deviation > CHANNEL_TOLERANCE {
                return Err(ChannelError::Shape(format!(
                    "a branch of a mixture is not unitary (U†U differs from the identity by {deviation:e})"
                )));
            }
        }
        if (total - 1.0).abs() > CHANNEL_TOLERANCE {
            return Err(ChannelError::Parameter {
                what: "the sum of a mixture's probabilities",
                range: "1",
                value: total,
            });
        }
        Ok(Channel {
            num_qubits,
            form: Arc::new(ChannelForm::Mixture(
                branches.into_iter().filter(|(p, _)| *p > 0.0).collect(),
            )),
            name: "mixture",
            params: Vec::new(),
        })
    }

    /// General Kraus operators on the same one or two qubits, at most
    /// `4^n` of them, with `Σ K† K = I` within [`CHANNEL_TOLERANCE`]
    /// (Braket's `kraus`). When every `K_i` is a multiple of a unitary the
    /// channel is kept as the equivalent mixture.
    ///
    /// # Errors
    /// No operators, too many, operators of different sizes, entries that
    /// are not finite, or a map that is not trace-preserving.
    pub fn kraus(ops: Vec<GateMatrix>) -> Result<Channel, ChannelError> {
        let num_qubits = same_size(ops.iter())?;
        let dim = 1usize << num_qubits;
        if ops.len() > dim * dim {
            return Err(ChannelError::Shape(format!(
                "{} Kraus operators on {num_qubits} qubit(s); at most {}",
                ops.len(),
                dim * dim
            )));
        }
        Channel::from_kraus(ops)
    }

    /// [`Channel::kraus`] without the bound on the number of operators
    /// (a composition of channels may have more than a minimal set).
    fn from_kraus(ops: Vec<GateMatrix>) -> Result<Channel, ChannelError> {
        let num_qubits = same_size(ops.iter())?;
        let dim = 1usize << num_qubits;
        if ops.iter().any(|k| {
            k.data()
                .iter()
                .any(|z| !z.re.is_finite() || !z.im.is_finite())
        }) {
            return Err(ChannelError::Shape(
                "a Kraus operator has an entry that is not finite".into(),
            ));
        }
        let mut sum = vec![c(0., 0.); dim * dim];
        for k in &ops {
            let kk = k.adjoint().matmul(k);
            for (s, x) in sum.iter_mut().zip(kk.data()) {
                *s += x;
            }
        }
        let deviation = deviation_from_identity(&sum, dim);
        if deviation > CHANNEL_TOLERANCE {
            return Err(ChannelError::NotTracePreserving { deviation });
        }
        // Each K†K = p·I: K = √p·U, a mixture.
        let mut branches = Vec::with_capacity(ops.len());
        for k in &ops {
            let kk = k.adjoint().matmul(k);
            let p = kk.get(0, 0).re;
            let data: Vec<Complex64> = kk.data().to_vec();
            let scaled: Vec<Complex64> =
                data.iter().map(|x| x / p.max(f64::MIN_POSITIVE)).collect();
            if p > 0.0 && deviation_from_identity(&scaled, dim) <= CHANNEL_TOLERANCE {
                branches.push((p, k.scaled(1.0 / p.sqrt())));
            } else if p > 0.0 || k.data().iter().any(|z| z.norm() > 0.0) {
                return Ok(Channel {
                    num_qubits,
                    form: Arc::new(ChannelForm::Kraus(ops)),
                    name: "kraus",
                    params: Vec::new(),
                });
            }
        }
        Ok(Channel {
            num_qubits,
            form: Arc::new(ChannelForm::Mixture(branches)),
            name: "kraus",
            params: Vec::new(),
        })
    }

    /// Pauli `X` with probability `p` (Braket's `bit_flip`).
    ///
    /// # Errors
    /// `p` outside [0, 1].
    pub fn bit_flip(p: f64) -> Result<Channel, ChannelError> {
        Ok(Channel::pauli_channel(p, 0.0, 0.0)?.named("bit_flip", &[p]))
    }

    /// Pauli `Z` with probability `p` (Braket's `phase_flip`).
    ///
    /// # Errors
    /// `p` outside [0, 1].
    pub fn phase_flip(p: f64) -> Result<Channel, ChannelError> {
        Ok(Channel::pauli_channel(0.0, 0.0, p)?.named("phase_flip", &[p]))
    }

    /// `X`, `Y`, `Z` with probabilities `px`, `py`, `pz` (Braket's
    /// `pauli_channel`).
    ///
    /// # Errors
    /// A probability outside [0, 1], or a sum above 1.
    pub fn pauli_channel(px: f64, py: f64, pz: f64) -> Result<Channel, ChannelError> {
        for p in [px, py, pz] {
            probability("a Pauli channel's probability", p)?;
        }
        let [i, x, y, z] = paulis();
        Ok(
            Channel::mixture(vec![(1.0 - px - py - pz, i), (px, x), (py, y), (pz, z)])?
                .named("pauli_channel", &[px, py, pz]),
        )
    }

    /// `(1 − p)ρ + p/3 (XρX + YρY + ZρZ)`: `p` is the probability of an
    /// error (Braket's `depolarizing`).
    ///
    /// # Errors
    /// `p` outside [0, 3/4] (beyond, the map overshoots the fully mixed state).
    pub fn depolarizing(p: f64) -> Result<Channel, ChannelError> {
        if !(0.0..=0.75).contains(&p) {
            return Err(ChannelError::Parameter {
                what: "depolarizing's probability",
                range: "between 0 and 3/4",
                value: p,
            });
        }
        Ok(Channel::pauli_channel(p / 3.0, p / 3.0, p / 3.0)?.named("depolarizing", &[p]))
    }

    /// `(1 − p)ρ + p/15 Σ PρP` over the 15 two-qubit Paulis other than
    /// `I⊗I` (Braket's `two_qubit_depolarizing`).
    ///
    /// # Errors
    /// `p` outside [0, 15/16].
    pub fn two_qubit_depolarizing(p: f64) -> Result<Channel, ChannelError> {
        if !(0.0..=15.0 / 16.0).contains(&p) {
            return Err(ChannelError::Parameter {
                what: "two_qubit_depolarizing's probability",
                range: "between 0 and 15/16",
                value: p,
            });
        }
        let ps = paulis();
        let mut branches = Vec::with_capacity(16);
        for (a, pa) in ps.iter().enumerate() {
            for (b, pb) in ps.iter().enumerate() {
                let w = if a == 0 && b == 0 { 1.0 - p } else { p / 15.0 };
                branches.push((w, pa.kron(pb)));
            }
        }
        Ok(Channel::mixture(branches)?.named("two_qubit_depolarizing", &[p]))
    }

    /// `(1 − p)ρ + p/3 (ZI ρ ZI + IZ ρ IZ + ZZ ρ ZZ)` (Braket's
    /// `two_qubit_dephasing`).
    ///
    /// # Errors
    /// `p` outside [0, 3/4].
    pub fn two_qubit_dephasing(p: f64) -> Result<Channel, ChannelError> {
        if !(0.0..=0.75).contains(&p) {
            return Err(ChannelError::Parameter {
                what: "two_qubit_dephasing's probability",
                range: "between 0 and 3/4",
                value: p,
            });
        }
        let [i, _, _, z] = paulis();
        Ok(Channel::mixture(vec![
            (1.0 - p, i.kron(&i)),
            (p / 3.0, i.kron(&z)),
            (p / 3.0, z.kron(&i)),
            (p / 3.0, z.kron(&z)),
        ])?
        .named("two_qubit_dephasing", &[p]))
    }

    /// Decay from |1⟩ to |0⟩ with probability `γ` (Braket's
    /// `amplitude_damping`): `K0 = [[1, 0], [0, √(1−γ)]]`,
    /// `K1 = [[0, √γ], [0, 0]]`.
    ///
    /// # Errors
    /// `γ` outside [0, 1].
    pub fn amplitude_damping(gamma: f64) -> Result<Channel, ChannelError> {
        Ok(
            Channel::generalized_amplitude_damping(gamma, 1.0)?
                .named("amplitude_damping", &[gamma]),
        )
    }

    /// Amplitude damping towards a thermal state that is |0⟩ with
    /// probability `p` (Braket's `generalized_amplitude_damping(gamma,
    /// probability)`): `√p·[[1, 0], [0, √(1−γ)]]`, `√p·[[0, √γ], [0, 0]]`,
    /// `√(1−p)·[[√(1−γ), 0], [0, 1]]`, `√(1−p)·[[0, 0], [√γ, 0]]`.
    ///
    /// # Errors
    /// `γ` or `p` outside [0, 1].
    pub fn generalized_amplitude_damping(gamma: f64, p: f64) -> Result<Channel, ChannelError> {
        probability("gamma", gamma)?;
        probability("probability", p)?;
        let (o, g, k) = (c(0., 0.), c(gamma.sqrt(), 0.), c((1.0 - gamma).sqrt(), 0.));
        let l = c(1., 0.);
        let (a, b) = (p.sqrt(), (1.0 - p).sqrt());
        let ops = [
            (a, m2([[l, o], [o, k]])),
            (a, m2([[o, g], [o, o]])),
            (b, m2([[k, o], [o, l]])),
            (b, m2([[o, o], [g, o]])),
        ];
        Ok(Channel::kraus(
            ops.iter()
                .filter(|(w, _)| *w > 0.0)
                .map(|(w, m)| m.scaled(*w))
                .collect(),
        )?
        .named("generalized_amplitude_damping", &[gamma, p]))
    }

    /// Loss of coherence without loss of energy (Braket's `phase_damping`):
    /// `K0 = [[1, 0], [0, √(1−γ)]]`, `K1 = [[0, 0], [0, √γ]]`.
    ///
    /// # Errors
    /// `γ` outside [0, 1].
    pub fn phase_damping(gamma: f64) -> Result<Channel, ChannelError> {
        probability("gamma", gamma)?;
        let (o, l) = (c(0., 0.), c(1., 0.));
        Ok(Channel::kraus(vec![
            m2([[l, o], [o, c((1.0 - gamma).sqrt(), 0.)]]),
            m2([[o, o], [o, c(gamma.sqrt(), 0.)]]),
        ])?
        .named("phase_damping", &[gamma]))
    }

    /// `(1 − λ)ρ + λ·I/2^n` on `n` qubits (Qiskit Aer's
    /// `depolarizing_error(λ, n)`): `λ` is the weight of the fully mixed
    /// state, so each of the `4^n − 1` non-identity Paulis has probability
    /// `λ/4^n`.
    ///
    /// # Errors
    /// `n` other than 1 or 2, or `λ` outside [0, 4^n/(4^n − 1)].
    pub fn depolarizing_mixed(lambda: f64, num_qubits: u32) -> Result<Channel, ChannelError> {
        if !(1..=MAX_CHANNEL_QUBITS).contains(&num_qubits) {
            return Err(ChannelError::Shape(format!(
                "depolarizing on {num_qubits} qubits; 1 or 2"
            )));
        }
        let count = 4f64.powi(num_qubits as i32);
        if !(0.0..=count / (count - 1.0)).contains(&lambda) {
            return Err(ChannelError::Parameter {
                what: "depolarizing_error's param",
                range: "between 0 and 4^n/(4^n − 1)",
                value: lambda,
            });
        }
        let ps = paulis();
        let strings: Vec<GateMatrix> = if num_qubits == 1 {
            ps.to_vec()
        } else {
            ps.iter()
                .flat_map(|a| ps.iter().map(move |b| a.kron(b)))
                .collect()
        };
        let each = lambda / count;
        Ok(Channel::mixture(
            strings
                .into_iter()
                .enumerate()
                .map(|(k, s)| (if k == 0 { 1.0 - lambda + each } else { each }, s))
                .collect(),
        )?
        .named("depolarizing_error", &[lambda]))
    }

    /// Qiskit Aer's `thermal_relaxation_error(t1, t2, time,
    /// excited_state_population)`: after `time`, the excited population
    /// relaxes as `e^{−time/T1}` towards `excited_state_population` and the
    /// coherence decays as `e^{−time/T2}`. Built as generalized amplitude
    /// damping (the `T1` part, which leaves coherence `e^{−time/2T1}`)
    /// followed by phase damping for the rest, which exists when
    /// `T2 ≤ 2·T1`.
    ///
    /// # Errors
    /// Times that are negative or not finite (`T1`, `T2` may be infinite:
    /// no decay), `T2 > 2·T1`, or a population outside [0, 1].
    pub fn thermal_relaxation(
        t1: f64,
        t2: f64,
        time: f64,
        excited_state_population: f64,
    ) -> Result<Channel, ChannelError> {
        for (what, v) in [("T1", t1), ("T2", t2)] {
            if v.is_nan() || v <= 0.0 {
                return Err(ChannelError::Parameter {
                    what,
                    range: "positive",
                    value: v,
                });
            }
        }
        if !time.is_finite() || time < 0.0 {
            return Err(ChannelError::Parameter {
                what: "time",
                range: "a finite time of at least 0",
                value: time,
            });
        }
        if t2 > 2.0 * t1 {
            return Err(ChannelError::Parameter {
                what: "T2",
                range: "at most 2·T1",
                value: t2,
            });
        }
        probability("excited_state_population", excited_state_population)?;
        let decay = (-time / t1).exp();
        let gad =
            Channel::generalized_amplitude_damping(1.0 - decay, 1.0 - excited_state_population)?;
        // Coherence left by the T1 part: √decay; wanted: e^{−time/T2}.
        let left = (-time / t2 + time / (2.0 * t1)).exp().min(1.0);
        let dephase = Channel::phase_damping(1.0 - left * left)?;
        let mut ops = Vec::new();
        for d in dephase.kraus_operators() {
            for g in gad.kraus_operators() {
                let k = d.matmul(&g);
                if k.data().iter().any(|z| z.norm() > 0.0) {
                    ops.push(k);
                }
            }
        }
        Ok(Channel::from_kraus(ops)?.named(
            "thermal_relaxation_error",
            &[t1, t2, time, excited_state_population],
        ))
    }

    /// Qiskit Aer's `reset_error(p0, p1)`: reset to |0⟩ with probability
    /// `p0`, to |1⟩ with probability `p1`, else nothing.
    ///
    /// # Errors
    /// A probability outside [0, 1], or `p0 + p1 > 1`.
    pub fn reset_error(p0: f64, p1: f64) -> Result<Channel, ChannelError> {
        probability("p0", p0)?;
        probability("p1", p1)?;
        let rest = 1.0 - p0 - p1;
        if rest < -CHANNEL_TOLERANCE {
            return Err(ChannelError::Parameter {
                what: "p0 + p1",
                range: "at most 1",
                value: p0 + p1,
            });
        }
        let (o, l) = (c(0., 0.), c(1., 0.));
        let mut ops = Vec::new();
        if rest > 0.0 {
            ops.push(m2([[l, o], [o, l]]).scaled(rest.sqrt()));
        }
        for (w, to_one) in [(p0, false), (p1, true)] {
            if w > 0.0 {
                let s = c(w.sqrt(), 0.);
                // |target⟩⟨0| and |target⟩⟨1|.
                let (a, b) = if to_one {
                    (m2([[o, o], [s, o]]), m2([[o, o], [o, s]]))
                } else {
                    (m2([[s, o], [o, o]]), m2([[o, s], [o, o]]))
                };
                ops.push(a);
                ops.push(b);
            }
        }
        Ok(Channel::from_kraus(ops)?.named("reset_error", &[p0, p1]))
    }

    fn named(mut self, name: &'static str, params: &[f64]) -> Channel {
        self.name = name;
        self.params = params.to_vec();
        self
    }

    /// The name it was built by: a named channel's (`depolarizing`,
    /// `thermal_relaxation_error`, …), else `mixture` or `kraus`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The parameters of a named channel, in its library's order (none for
    /// `mixture` and `kraus`).
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// A unitary applied always: a mixture of one branch.
    ///
    /// # Errors
    /// A matrix on more than [`MAX_CHANNEL_QUBITS`] qubits or not unitary.
    pub fn from_unitary(u: GateMatrix) -> Result<Channel, ChannelError> {
        Channel::mixture(vec![(1.0, u)])
    }

    /// `self` followed by `then`, on the same qubits: Kraus operators
    /// `L_j K_i` (a mixture again when both are).
    ///
    /// # Errors
    /// Channels on different numbers of qubits.
    pub fn then(&self, then: &Channel) -> Result<Channel, ChannelError> {
        if self.num_qubits != then.num_qubits {
            return Err(ChannelError::Shape(format!(
                "a channel on {} qubit(s) composed with one on {}",
                self.num_qubits, then.num_qubits
            )));
        }
        if let (ChannelForm::Mixture(a), ChannelForm::Mixture(b)) = (&*self.form, &*then.form) {
            let branches = b
                .iter()
                .flat_map(|(pb, ub)| a.iter().map(move |(pa, ua)| (pa * pb, ub.matmul(ua))))
                .collect();
            return Ok(Channel {
                num_qubits: self.num_qubits,
                form: Arc::new(ChannelForm::Mixture(branches)),
                name: "mixture",
                params: Vec::new(),
            });
        }
        let mut ops = Vec::new();
        for l in then.kraus_operators() {
            for k in self.kraus_operators() {
                let lk = l.matmul(&k);
                if lk.data().iter().any(|z| z.norm() > 0.0) {
                    ops.push(lk);
                }
            }
        }
        Channel::from_kraus(ops)
    }

    /// `Σ p_i · channel_i`: each channel applied with its probability (Qiskit
    /// Aer's `QuantumError`, a list of circuits with probabilities).
    ///
    /// # Errors
    /// Probabilities outside [0, 1] or not adding up to 1, or channels on
    /// different numbers of qubits.
    pub fn mix(parts: Vec<(f64, Channel)>) -> Result<Channel, ChannelError> {
        let mut total = 0.0;
        for (p, _) in &parts {
            probability("an error's probability", *p)?;
            total += p;
        }
        if (total - 1.0).abs() > CHANNEL_TOLERANCE {
            return Err(ChannelError::Parameter {
                what: "the sum of an error's probabilities",
                range: "1",
                value: total,
            });
        }
        if parts
            .iter()
            .all(|(_, c)| matches!(*c.form, ChannelForm::Mixture(_)))
        {
            let mut branches = Vec::new();
            for (p, c) in &parts {
                if let ChannelForm::Mixture(b) = &*c.form {
                    branches.extend(b.iter().map(|(q, u)| (p * q, u.clone())));
                }
            }
            return Channel::mixture(branches);
        }
        let mut ops = Vec::new();
        for (p, c) in &parts {
            if *p > 0.0 {
                ops.extend(c.kraus_operators().iter().map(|k| k.scaled(p.sqrt())));
            }
        }
        Channel::from_kraus(ops)
    }

    /// Whether every branch of a mixture is the identity up to a phase (a
    /// channel that changes nothing, such as `depolarizing(0)`).
    pub fn is_identity(&self) -> bool {
        match &*self.form {
            ChannelForm::Mixture(b) => b.iter().all(|(_, u)| u.is_phase_times_identity()),
            ChannelForm::Kraus(_) => false,
        }
    }
}

/// A classical readout error on one measured bit: the value a measurement
/// wrote is read back flipped with a probability that depends on it (Qiskit
/// Aer's `ReadoutError` on one qubit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReadoutError {
    flip_from_0: f64,
    flip_from_1: f64,
}

impl ReadoutError {
    /// From an assignment matrix: row `i` holds the probabilities of reading
    /// 0 and 1 when the measured value is `i` (Aer's convention).
    ///
    /// # Errors
    /// An entry outside [0, 1] or a row that does not add up to 1.
    pub fn new(assignment: [[f64; 2]; 2]) -> Result<ReadoutError, ChannelError> {
        for row in assignment {
            for p in row {
                probability("a readout error's probability", p)?;
            }
            if (row[0] + row[1] - 1.0).abs() > CHANNEL_TOLERANCE {
                return Err(ChannelError::Parameter {
                    what: "each row of a readout error's assignment matrix",
                    range: "adding up to 1",
                    value: row[0] + row[1],
                });
            }
        }
        Ok(ReadoutError {
            flip_from_0: assignment[0][1],
            flip_from_1: assignment[1][0],
        })
    }

    /// The probability that a bit holding `value` is read flipped.
    pub fn flip_probability(&self, value: bool) -> f64 {
        if value {
            self.flip_from_1
        } else {
            self.flip_from_0
        }
    }

    /// The assignment matrix it was built from.
    pub fn assignment(&self) -> [[f64; 2]; 2] {
        [
            [1.0 - self.flip_from_0, self.flip_from_0],
            [self.flip_from_1, 1.0 - self.flip_from_1],
        ]
    }
}

/// The common size of `matrices`: 1 or 2 qubits.
fn same_size<'a>(mut matrices: impl Iterator<Item = &'a GateMatrix>) -> Result<u32, ChannelError> {
    let Some(first) = matrices.next() else {
        return Err(ChannelError::Shape(
            "a channel needs at least one operator".into(),
        ));
    };
    let n = first.num_qubits();
    if !(1..=MAX_CHANNEL_QUBITS).contains(&n) {
        return Err(ChannelError::Shape(format!(
            "a channel acts on 1 or 2 qubits, not {n}"
        )));
    }
    if matrices.any(|m| m.num_qubits() != n) {
        return Err(ChannelError::Shape(
            "a channel's operators must all act on the same number of qubits".into(),
        ));
    }
    Ok(n)
}

/// The largest entry of `|m − I|` for a `dim × dim` row-major `m`.
fn deviation_from_identity(m: &[Complex64], dim: usize) -> f64 {
    let mut worst: f64 = 0.0;
    for r in 0..dim {
        for col in 0..dim {
            let want = if r == col { 1.0 } else { 0.0 };
            worst = worst.max((m[r * dim + col] - c(want, 0.0)).norm());
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Σ K ρ K†` for a row-major density matrix (the plain reference).
    fn apply(ch: &Channel, rho: &[Complex64]) -> Vec<Complex64> {
        let dim = 1usize << ch.num_qubits();
        let rho = GateMatrix::new(ch.num_qubits(), rho.to_vec()).unwrap();
        let mut out = vec![c(0., 0.); dim * dim];
        for k in ch.kraus_operators() {
            let t = k.matmul(&rho).matmul(&k.adjoint());
            for (o, x) in out.iter_mut().zip(t.data()) {
                *o += x;
            }
        }
        out
    }

    /// A full-rank one-qubit density matrix with a complex coherence.
    fn rho1() -> Vec<Complex64> {
        vec![c(0.7, 0.), c(0.2, -0.15), c(0.2, 0.15), c(0.3, 0.)]
    }

    fn close(a: &[Complex64], b: &[Complex64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).norm() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn every_named_channel_is_trace_preserving_in_the_right_form() {
        let channels = [
            (Channel::bit_flip(0.1).unwrap(), true),
            (Channel::phase_flip(0.2).unwrap(), true),
            (Channel::pauli_channel(0.1, 0.05, 0.2).unwrap(), true),
            (Channel::depolarizing(0.3).unwrap(), true),
            (Channel::two_qubit_depolarizing(0.2).unwrap(), true),
            (Channel::two_qubit_dephasing(0.3).unwrap(), true),
            (Channel::depolarizing_mixed(0.4, 1).unwrap(), true),
            (Channel::depolarizing_mixed(0.4, 2).unwrap(), true),
            (Channel::amplitude_damping(0.3).unwrap(), false),
            (
                Channel::generalized_amplitude_damping(0.3, 0.8).unwrap(),
                false,
            ),
            (Channel::phase_damping(0.4).unwrap(), false),
            (
                Channel::thermal_relaxation(50.0, 70.0, 1.0, 0.1).unwrap(),
                false,
            ),
            (Channel::reset_error(0.1, 0.05).unwrap(), false),
        ];
        for (ch, mixture) in channels {
            let dim = 1usize << ch.num_qubits();
            let mut sum = vec![c(0., 0.); dim * dim];
            for k in ch.kraus_operators() {
                for (s, x) in sum.iter_mut().zip(k.adjoint().matmul(&k).data()) {
                    *s += x;
                }
            }
            assert!(deviation_from_identity(&sum, dim) < 1e-12, "{ch:?}");
            assert_eq!(
                matches!(ch.form(), ChannelForm::Mixture(_)),
                mixture,
                "{ch:?}"
            );
        }
        // Phase damping at γ = 1 − e^0 is the identity, kept as a mixture.
        let none = Channel::thermal_relaxation(f64::INFINITY, f64::INFINITY, 1.0, 0.0).unwrap();
        close(&apply(&none, &rho1()), &rho1());
    }

    #[test]
    fn channels_act_as_their_libraries_define_them() {
        let r = rho1();
        let (a, b, d) = (r[0], r[1], r[3]);
        // Braket's depolarizing: (1 − 4p/3)ρ + (2p/3)·I.
        let p = 0.3;
        let s = 1.0 - 4.0 * p / 3.0;
        let want = [
            a * s + 2.0 * p / 3.0,
            b * s,
            b.conj() * s,
            d * s + 2.0 * p / 3.0,
        ];
        close(&apply(&Channel::depolarizing(p).unwrap(), &r), &want);
        // Qiskit's depolarizing_error: (1 − λ)ρ + λ·I/2.
        let l = 0.4;
        let want = [
            a * (1.0 - l) + l / 2.0,
            b * (1.0 - l),
            b.conj() * (1.0 - l),
            d * (1.0 - l) + l / 2.0,
        ];
        close(
            &apply(&Channel::depolarizing_mixed(l, 1).unwrap(), &r),
            &want,
        );
        // Amplitude damping: |1⟩ population times 1 − γ, coherence √(1 − γ).
        let g: f64 = 0.3;
        let want = [
            a + g * d,
            b * (1.0 - g).sqrt(),
            b.conj() * (1.0 - g).sqrt(),
            d * (1.0 - g),
        ];
        close(&apply(&Channel::amplitude_damping(g).unwrap(), &r), &want);
        // Phase damping: coherence √(1 − γ), populations kept.
        let want = [a, b * (1.0 - g).sqrt(), b.conj() * (1.0 - g).sqrt(), d];
        close(&apply(&Channel::phase_damping(g).unwrap(), &r), &want);
        // Generalized amplitude damping towards a state |0⟩ with probability q.
        let q = 0.8;
        let want = [
            a + g * (q * d - (1.0 - q) * a),
            b * (1.0 - g).sqrt(),
            b.conj() * (1.0 - g).sqrt(),
            d - g * (q * d - (1.0 - q) * a),
        ];
        close(
            &apply(&Channel::generalized_amplitude_damping(g, q).unwrap(), &r),
            &want,
        );
        // Thermal relaxation: excited population → pe with e^{−t/T1},
        // coherence × e^{−t/T2} (Qiskit's definition).
        let (t1, t2, t, pe): (f64, f64, f64, f64) = (50.0, 70.0, 13.0, 0.1);
        let e1 = (-t / t1).exp();
        let e2 = (-t / t2).exp();
        let excited = d.re * e1 + pe * (1.0 - e1);
        let want = [c(1.0 - excited, 0.), b * e2, b.conj() * e2, c(excited, 0.)];
        close(
            &apply(&Channel::thermal_relaxation(t1, t2, t, pe).unwrap(), &r),
            &want,
        );
        // Reset error: p0 to |0⟩, p1 to |1⟩.
        let (p0, p1) = (0.1, 0.25);
        let keep = 1.0 - p0 - p1;
        let want = [a * keep + p0, b * keep, b.conj() * keep, d * keep + p1];
        close(&apply(&Channel::reset_error(p0, p1).unwrap(), &r), &want);
    }

    #[test]
    fn two_qubit_channels_follow_the_bit_order() {
        // Dephasing on (q0, q1) of |+⟩|0⟩ (q0 in |+⟩): ZI (Z on q1) leaves it,
        // IZ and ZZ flip q0's coherence: it shrinks by 1 − 2·(2p/3).
        let p = 0.3;
        let h = 0.5;
        // Basis |q1 q0⟩: |00⟩ and |01⟩ hold the state.
        let mut rho = vec![c(0., 0.); 16];
        for (r, col) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            rho[r * 4 + col] = c(h, 0.);
        }
        let out = apply(&Channel::two_qubit_dephasing(p).unwrap(), &rho);
        assert!(
            (out[1].re - h * (1.0 - 4.0 * p / 3.0)).abs() < 1e-12,
            "{out:?}"
        );
        assert!((out[0].re - h).abs() < 1e-12);
        // Qiskit's two-qubit depolarizing: (1 − λ)ρ + λ·I/4.
        let l = 0.5;
        let out = apply(&Channel::depolarizing_mixed(l, 2).unwrap(), &rho);
        assert!((out[0].re - (h * (1.0 - l) + l / 4.0)).abs() < 1e-12);
        assert!((out[5].re - (h * (1.0 - l) + l / 4.0)).abs() < 1e-12);
        assert!((out[10].re - l / 4.0).abs() < 1e-12);
        assert!((out[1].re - h * (1.0 - l)).abs() < 1e-12);
    }

    #[test]
    fn kraus_maps_are_checked_and_unitary_ones_become_mixtures() {
        let [i, x, _, z] = paulis();
        // √0.9·I, √0.1·X: a bit flip, recognised as a mixture.
        let ch = Channel::kraus(vec![i.scaled(0.9f64.sqrt()), x.scaled(0.1f64.sqrt())]).unwrap();
        match ch.form() {
            ChannelForm::Mixture(b) => {
                assert_eq!(b.len(), 2);
                assert!((b[0].0 - 0.9).abs() < 1e-12 && (b[1].0 - 0.1).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        let err =
            Channel::kraus(vec![i.scaled(0.9f64.sqrt()), z.scaled(0.2f64.sqrt())]).unwrap_err();
        assert!(
            matches!(err, ChannelError::NotTracePreserving { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("not trace-preserving"));
        for bad in [
            vec![],
            vec![GateMatrix::identity(3)],
            vec![i.clone(), GateMatrix::identity(2)],
            vec![i.scaled(f64::NAN)],
            vec![i.scaled(0.5); 5],
        ] {
            assert!(Channel::kraus(bad).is_err());
        }
        for bad in [
            Channel::bit_flip(1.5),
            Channel::depolarizing(0.8),
            Channel::pauli_channel(0.5, 0.4, 0.3),
            Channel::amplitude_damping(f64::NAN),
            Channel::thermal_relaxation(10.0, 30.0, 1.0, 0.0),
            Channel::thermal_relaxation(10.0, 5.0, -1.0, 0.0),
            Channel::reset_error(0.7, 0.5),
            Channel::depolarizing_mixed(0.5, 3),
        ] {
            let err = bad.unwrap_err();
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(
            Channel::depolarizing(0.8).unwrap_err().to_string(),
            "depolarizing's probability must be between 0 and 3/4, not 0.8"
        );
    }

    #[test]
    fn channels_compose_and_mix_as_maps_do() {
        let rho = rho1();
        let ad = Channel::amplitude_damping(0.3).unwrap();
        let flip = Channel::bit_flip(0.2).unwrap();
        // `then` is the composition, in order; two mixtures stay a mixture.
        close(
            &apply(&ad.then(&flip).unwrap(), &rho),
            &apply(&flip, &apply(&ad, &rho)),
        );
        close(
            &apply(&flip.then(&ad).unwrap(), &rho),
            &apply(&ad, &apply(&flip, &rho)),
        );
        let z = Channel::phase_flip(0.1).unwrap();
        assert!(matches!(
            flip.then(&z).unwrap().form(),
            ChannelForm::Mixture(_)
        ));
        // `mix` weighs the maps.
        let mixed = Channel::mix(vec![(0.25, ad.clone()), (0.75, flip.clone())]).unwrap();
        let want: Vec<Complex64> = apply(&ad, &rho)
            .iter()
            .zip(apply(&flip, &rho))
            .map(|(a, b)| a * 0.25 + b * 0.75)
            .collect();
        close(&apply(&mixed, &rho), &want);
        assert!(matches!(
            Channel::mix(vec![(0.5, flip.clone()), (0.5, z)])
                .unwrap()
                .form(),
            ChannelForm::Mixture(_)
        ));
        assert!(Channel::mix(vec![(0.5, flip.clone())]).is_err());
        assert!(Channel::mix(vec![(1.5, flip.clone()), (-0.5, ad.clone())]).is_err());
        let two = Channel::two_qubit_dephasing(0.1).unwrap();
        assert!(flip.then(&two).is_err());
        assert!(Channel::mix(vec![(0.5, flip), (0.5, two)]).is_err());
        // Names and parameters are kept for drawings and the JSON format.
        assert_eq!(ad.name(), "amplitude_damping");
        assert_eq!(ad.params(), &[0.3]);
        assert!(Channel::depolarizing(0.0).unwrap().is_identity());
        assert!(!Channel::depolarizing(0.1).unwrap().is_identity());
    }

    #[test]
    fn readout_errors_are_checked_assignment_matrices() {
        let e = ReadoutError::new([[0.9, 0.1], [0.25, 0.75]]).unwrap();
        assert_eq!(e.flip_probability(false), 0.1);
        assert_eq!(e.flip_probability(true), 0.25);
        assert_eq!(e.assignment(), [[0.9, 0.1], [0.25, 0.75]]);
        assert!(ReadoutError::new([[0.9, 0.2], [0.0, 1.0]]).is_err());
        assert!(ReadoutError::new([[1.1, -0.1], [0.0, 1.0]]).is_err());
        assert!(ReadoutError::new([[f64::NAN, 0.0], [0.0, 1.0]]).is_err());
    }
}
