//! The catalogue of standard gates (Qiskit's `qelib1.inc` and OpenQASM 3's
//! `stdgates.inc`), their matrices, and the [`Gate`] value an operation carries.
//!
//! Matrices follow Qiskit's definitions and qubit order: for a gate applied to
//! qubits `[q0, q1, …]`, bit `i` of a matrix index is the state of `qubits[i]`.
//! Controlled gates list their controls first (`cx(control, target)`).

use num_complex::Complex64;
use smallvec::SmallVec;
use std::f64::consts::FRAC_1_SQRT_2;

use crate::matrix::{GateMatrix, UnitaryMatrix};

/// A gate of the standard set.
///
/// Aliases share a variant: `u1` is [`StandardGate::P`], `u`/`U`/`u3` are
/// [`StandardGate::U`], `cu1`/`cphase` are [`StandardGate::Cp`], `CX` is
/// [`StandardGate::Cx`]; [`StandardGate::from_name`] knows every spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is documented by its entry in `INFO`
pub enum StandardGate {
    Id,
    X,
    Y,
    Z,
    H,
    S,
    Sdg,
    T,
    Tdg,
    Sx,
    Sxdg,
    Rx,
    Ry,
    Rz,
    P,
    U2,
    U,
    Cx,
    Cy,
    Cz,
    Ch,
    Csx,
    Cp,
    Crx,
    Cry,
    Crz,
    Cu3,
    Cu,
    Swap,
    Ccx,
    Cswap,
    Rxx,
    Ryy,
    Rzz,
    Rzx,
    Ecr,
    ISwap,
    GlobalPhase,
}

/// Static facts about one gate.
struct Info {
    name: &'static str,
    qubits: u32,
    params: usize,
    /// Leading qubits that are plain |1⟩-controls of a smaller base gate.
    controls: u32,
}

const fn info(name: &'static str, qubits: u32, params: usize, controls: u32) -> Info {
    Info {
        name,
        qubits,
        params,
        controls,
    }
}

impl StandardGate {
    /// Every standard gate, in catalogue order.
    pub const ALL: [StandardGate; 38] = {
        use StandardGate::*;
        [
            Id,
            X,
            Y,
            Z,
            H,
            S,
            Sdg,
            T,
            Tdg,
            Sx,
            Sxdg,
            Rx,
            Ry,
            Rz,
            P,
            U2,
            U,
            Cx,
            Cy,
            Cz,
            Ch,
            Csx,
            Cp,
            Crx,
            Cry,
            Crz,
            Cu3,
            Cu,
            Swap,
            Ccx,
            Cswap,
            Rxx,
            Ryy,
            Rzz,
            Rzx,
            Ecr,
            ISwap,
            GlobalPhase,
        ]
    };

    fn info(self) -> Info {
        use StandardGate::*;
        match self {
            Id => info("id", 1, 0, 0),
            X => info("x", 1, 0, 0),
            Y => info("y", 1, 0, 0),
            Z => info("z", 1, 0, 0),
            H => info("h", 1, 0, 0),
            S => info("s", 1, 0, 0),
            Sdg => info("sdg", 1, 0, 0),
            T => info("t", 1, 0, 0),
            Tdg => info("tdg", 1, 0, 0),
            Sx => info("sx", 1, 0, 0),
            Sxdg => info("sxdg", 1, 0, 0),
            Rx => info("rx", 1, 1, 0),
            Ry => info("ry", 1, 1, 0),
            Rz => info("rz", 1, 1, 0),
            P => info("p", 1, 1, 0),
            U2 => info("u2", 1, 2, 0),
            U => info("u", 1, 3, 0),
            Cx => info("cx", 2, 0, 1),
            Cy => info("cy", 2, 0, 1),
            Cz => info("cz", 2, 0, 1),
            Ch => info("ch", 2, 0, 1),
            Csx => info("csx", 2, 0, 1),
            Cp => info("cp", 2, 1, 1),
            Crx => info("crx", 2, 1, 1),
            Cry => info("cry", 2, 1, 1),
            Crz => info("crz", 2, 1, 1),
            Cu3 => info("cu3", 2, 3, 1),
            Cu => info("cu", 2, 4, 1),
            Swap => info("swap", 2, 0, 0),
            Ccx => info("ccx", 3, 0, 2),
            Cswap => info("cswap", 3, 0, 1),
            Rxx => info("rxx", 2, 1, 0),
            Ryy => info("ryy", 2, 1, 0),
            Rzz => info("rzz", 2, 1, 0),
            Rzx => info("rzx", 2, 1, 0),
            Ecr => info("ecr", 2, 0, 0),
            ISwap => info("iswap", 2, 0, 0),
            GlobalPhase => info("gphase", 0, 1, 0),
        }
    }

    /// Canonical lower-case name (`"cx"`, `"u"`, `"gphase"`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Number of qubits, controls included.
    pub fn num_qubits(self) -> u32 {
        self.info().qubits
    }

    /// Number of angle parameters.
    pub fn num_params(self) -> usize {
        self.info().params
    }

    /// Looks a gate up by any of its OpenQASM 2/3 or Qiskit spellings.
    pub fn from_name(name: &str) -> Option<StandardGate> {
        use StandardGate::*;
        Some(match name {
            "id" | "i" | "u0" => Id,
            "x" => X,
            "y" => Y,
            "z" => Z,
            "h" => H,
            "s" => S,
            "sdg" => Sdg,
            "t" => T,
            "tdg" => Tdg,
            "sx" => Sx,
            "sxdg" => Sxdg,
            "rx" => Rx,
            "ry" => Ry,
            "rz" => Rz,
            "p" | "u1" | "phase" => P,
            "u2" => U2,
            "u" | "U" | "u3" => U,
            "cx" | "CX" | "cnot" => Cx,
            "cy" => Cy,
            "cz" => Cz,
            "ch" => Ch,
            "csx" => Csx,
            "cp" | "cu1" | "cphase" => Cp,
            "crx" => Crx,
            "cry" => Cry,
            "crz" => Crz,
            "cu3" => Cu3,
            "cu" => Cu,
            "swap" => Swap,
            "ccx" | "toffoli" => Ccx,
            "cswap" | "fredkin" => Cswap,
            "rxx" => Rxx,
            "ryy" => Ryy,
            "rzz" => Rzz,
            "rzx" => Rzx,
            "ecr" => Ecr,
            "iswap" => ISwap,
            "gphase" | "global_phase" => GlobalPhase,
            _ => return None,
        })
    }

    /// Splits the gate into `(m, base)`: its first `m` qubits are |1⟩-controls
    /// and `base` acts on the rest. Kernels use this to touch only the
    /// controlled subspace; `m` is 0 for gates that are not controlled.
    ///
    /// `params` must hold [`num_params`](Self::num_params) values
    /// ([`Circuit::validate`](crate::Circuit::validate) checks it).
    pub fn controlled_base(self, params: &[f64]) -> (u32, GateMatrix) {
        use StandardGate::*;
        let base = match self {
            Cx | Ccx => X,
            Cy => Y,
            Cz => Z,
            Ch => H,
            Csx => Sx,
            Cp => P,
            Crx => Rx,
            Cry => Ry,
            Crz => Rz,
            Cu3 => U,
            Cswap => Swap,
            Cu => {
                // Controlled e^{iγ}·U(θ, φ, λ): the phase is relative, not global.
                let phase = Complex64::from_polar(1.0, params[3]);
                let u = base_matrix(U, &params[..3]);
                let data = u.data().iter().map(|z| z * phase).collect();
                let m = GateMatrix::new(1, data).expect("2x2");
                return (1, m);
            }
            other => return (0, base_matrix(other, params)),
        };
        (self.info().controls, base_matrix(base, params))
    }

    /// The gate's full unitary on all of its qubits.
    pub fn matrix(self, params: &[f64]) -> GateMatrix {
        let (controls, base) = self.controlled_base(params);
        if controls == 0 {
            base
        } else {
            base.controlled(controls)
        }
    }
}

fn c(re: f64, im: f64) -> Complex64 {
    Complex64::new(re, im)
}

fn expi(theta: f64) -> Complex64 {
    Complex64::from_polar(1.0, theta)
}

/// Matrices of the gates that are not built from a controlled base.
fn base_matrix(gate: StandardGate, p: &[f64]) -> GateMatrix {
    use StandardGate::*;
    let o = c(0.0, 0.0);
    let l = c(1.0, 0.0);
    let i = c(0.0, 1.0);
    let r = FRAC_1_SQRT_2;
    match gate {
        Id => GateMatrix::diagonal(&[l, l]),
        X => GateMatrix::from_rows([[o, l], [l, o]]),
        Y => GateMatrix::from_rows([[o, -i], [i, o]]),
        Z => GateMatrix::diagonal(&[l, -l]),
        H => GateMatrix::from_rows([[c(r, 0.), c(r, 0.)], [c(r, 0.), c(-r, 0.)]]),
        S => GateMatrix::diagonal(&[l, i]),
        Sdg => GateMatrix::diagonal(&[l, -i]),
        T => GateMatrix::diagonal(&[l, c(r, r)]),
        Tdg => GateMatrix::diagonal(&[l, c(r, -r)]),
        Sx => GateMatrix::from_rows([[c(0.5, 0.5), c(0.5, -0.5)], [c(0.5, -0.5), c(0.5, 0.5)]]),
        Sxdg => GateMatrix::from_rows([[c(0.5, -0.5), c(0.5, 0.5)], [c(0.5, 0.5), c(0.5, -0.5)]]),
        Rx => {
            let (s, co) = (p[0] / 2.0).sin_cos();
            GateMatrix::from_rows([[c(co, 0.), c(0., -s)], [c(0., -s), c(co, 0.)]])
        }
        Ry => {
            let (s, co) = (p[0] / 2.0).sin_cos();
            GateMatrix::from_rows([[c(co, 0.), c(-s, 0.)], [c(s, 0.), c(co, 0.)]])
        }
        Rz => GateMatrix::diagonal(&[expi(-p[0] / 2.0), expi(p[0] / 2.0)]),
        P => GateMatrix::diagonal(&[l, expi(p[0])]),
        U2 => GateMatrix::from_rows([
            [c(r, 0.), -expi(p[1]) * r],
            [expi(p[0]) * r, expi(p[0] + p[1]) * r],
        ]),
        U => {
            let (s, co) = (p[0] / 2.0).sin_cos();
            GateMatrix::from_rows([
                [c(co, 0.), -expi(p[2]) * s],
                [expi(p[1]) * s, expi(p[1] + p[2]) * co],
            ])
        }
        Swap => GateMatrix::from_rows([[l, o, o, o], [o, o, l, o], [o, l, o, o], [o, o, o, l]]),
        ISwap => GateMatrix::from_rows([[l, o, o, o], [o, o, i, o], [o, i, o, o], [o, o, o, l]]),
        Ecr => {
            let (a, b) = (c(r, 0.), c(0., r));
            GateMatrix::from_rows([[o, a, o, b], [a, o, -b, o], [o, b, o, a], [-b, o, a, o]])
        }
        Rxx => {
            let (s, co) = (p[0] / 2.0).sin_cos();
            let (k, m) = (c(co, 0.), c(0., -s));
            GateMatrix::from_rows([[k, o, o, m], [o, k, m, o], [o, m, k, o], [m, o, o, k]])
        }
        Ryy => {
            let (s, co) = (p[0] / 2.0).sin_cos();
            let (k, m, q) = (c(co, 0.), c(0., -s), c(0., s));
            GateMatrix::from_rows([[k, o, o, q], [o, k, m, o], [o, m, k, o], [q, o, o, k]])
        }
        Rzz => {
            let (a, b) = (expi(-p[0] / 2.0), expi(p[0] / 2.0));
            GateMatrix::diagonal(&[a, b, b, a])
        }
        Rzx => {
            // exp(-iθ/2 · X⊗Z): Z on the first qubit, X on the second (Qiskit).
            let (s, co) = (p[0] / 2.0).sin_cos();
            let (k, m, q) = (c(co, 0.), c(0., -s), c(0., s));
            GateMatrix::from_rows([[k, o, m, o], [o, k, o, q], [m, o, k, o], [o, q, o, k]])
        }
        GlobalPhase => GateMatrix::diagonal(&[expi(p[0])]),
        Cx | Cy | Cz | Ch | Csx | Cp | Crx | Cry | Crz | Cu3 | Cu | Ccx | Cswap => {
            unreachable!("controlled gates are built from their base")
        }
    }
}

/// The unitary an operation applies: a standard gate with its angles, or an
/// explicit matrix.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// A gate of the standard catalogue and its parameters.
    Standard {
        /// Which gate.
        gate: StandardGate,
        /// Its angles, in radians, in the order OpenQASM lists them.
        params: SmallVec<[f64; 4]>,
    },
    /// An arbitrary unitary, checked when it was built.
    Unitary(UnitaryMatrix),
}

impl Gate {
    /// A standard gate with its parameters.
    pub fn standard(gate: StandardGate, params: &[f64]) -> Gate {
        Gate::Standard {
            gate,
            params: SmallVec::from_slice(params),
        }
    }

    /// Number of qubits the gate itself acts on (not counting extra controls).
    pub fn num_qubits(&self) -> u32 {
        match self {
            Gate::Standard { gate, .. } => gate.num_qubits(),
            Gate::Unitary(u) => u.num_qubits(),
        }
    }

    /// A short name for messages (`"rx"`, `"unitary"`).
    pub fn name(&self) -> &'static str {
        match self {
            Gate::Standard { gate, .. } => gate.name(),
            Gate::Unitary(_) => "unitary",
        }
    }

    /// See [`StandardGate::controlled_base`]; a unitary has no built-in controls.
    pub fn controlled_base(&self) -> (u32, GateMatrix) {
        match self {
            Gate::Standard { gate, params } => gate.controlled_base(params),
            Gate::Unitary(u) => (0, u.matrix().clone()),
        }
    }

    /// The full matrix on the gate's qubits.
    pub fn matrix(&self) -> GateMatrix {
        match self {
            Gate::Standard { gate, params } => gate.matrix(params),
            Gate::Unitary(u) => u.matrix().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_is_unitary_and_named() {
        let angles = [0.3, -1.1, 2.5, 0.7];
        for g in StandardGate::ALL {
            let m = g.matrix(&angles[..g.num_params()]);
            assert_eq!(m.num_qubits(), g.num_qubits(), "{}", g.name());
            assert!(m.unitarity_deviation() < 1e-14, "{} not unitary", g.name());
            assert_eq!(StandardGate::from_name(g.name()), Some(g));
        }
    }

    #[test]
    fn aliases_resolve() {
        assert_eq!(StandardGate::from_name("u1"), Some(StandardGate::P));
        assert_eq!(StandardGate::from_name("U"), Some(StandardGate::U));
        assert_eq!(StandardGate::from_name("cu1"), Some(StandardGate::Cp));
        assert_eq!(StandardGate::from_name("CX"), Some(StandardGate::Cx));
        assert_eq!(StandardGate::from_name("nope"), None);
    }
}
