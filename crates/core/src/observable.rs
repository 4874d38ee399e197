//! Observables as weighted sums of Pauli strings, and their expectation
//! values computed in place, without copying the state.
//!
//! For a Pauli string with X-or-Y mask `f`, Z-or-Y mask `z` and `y` factors
//! of Y, `P|i⟩ = i^y (−1)^{|i ∧ z|} |i ⊕ f⟩`, so
//! `⟨ψ|P|ψ⟩ = i^y Σ_i (−1)^{|i ∧ z|} conj(ψ[i ⊕ f]) ψ[i]`: one read-only
//! pass per term, summed in fixed pieces (the same for any thread count).

use std::fmt;
use std::str::FromStr;

use kettle_ir::Qubit;
use num_complex::Complex64;

use crate::error::SimError;
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::StateVector;

/// A single-qubit Pauli operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pauli {
    /// Identity.
    I,
    /// Pauli X.
    X,
    /// Pauli Y.
    Y,
    /// Pauli Z.
    Z,
}

/// `coefficient × P_{q1} P_{q2} …`.
#[derive(Clone, Debug, PartialEq)]
pub struct PauliTerm {
    /// Real weight.
    pub coefficient: f64,
    /// Non-identity factors, one per qubit.
    pub factors: Vec<(Qubit, Pauli)>,
}

/// A Hermitian observable: a real-weighted sum of Pauli strings.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PauliSum {
    /// The terms, added.
    pub terms: Vec<PauliTerm>,
}

impl PauliTerm {
    /// A term from a Qiskit label such as `"XIZ"`: the rightmost character
    /// is qubit 0.
    ///
    /// # Errors
    /// [`SimError::Observable`] for a character other than I, X, Y, Z.
    pub fn from_label(label: &str, coefficient: f64) -> Result<PauliTerm, SimError> {
        let mut factors = Vec::new();
        for (q, ch) in label.chars().rev().enumerate() {
            let p = pauli(ch).ok_or_else(|| {
                SimError::Observable(format!(
                    "`{ch}` in label `{label}` is not one of I, X, Y, Z"
                ))
            })?;
            if p != Pauli::I {
                factors.push((q as Qubit, p));
            }
        }
        Ok(PauliTerm {
            coefficient,
            factors,
        })
    }
}

impl PauliTerm {
    /// `(f, z, y)`: the X-or-Y mask, the Z-or-Y mask and the number of Y
    /// factors, so that `P|i⟩ = i^y (−1)^{|i ∧ z|} |i ⊕ f⟩`.
    pub(crate) fn masks(&self) -> (usize, usize, u32) {
        let (mut flip, mut z, mut ys) = (0usize, 0usize, 0u32);
        for &(q, p) in &self.factors {
            match p {
                Pauli::I => {}
                Pauli::X => flip |= 1 << q,
                Pauli::Y => {
                    flip |= 1 << q;
                    z |= 1 << q;
                    ys += 1;
                }
                Pauli::Z => z |= 1 << q,
            }
        }
        (flip, z, ys)
    }
}

impl PauliSum {
    /// Fails if a term names a qubit a state of `num_qubits` lacks.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] for the first such qubit.
    pub(crate) fn check_qubits(&self, num_qubits: u32) -> Result<(), SimError> {
        for t in &self.terms {
            if let Some(&(qubit, _)) = t.factors.iter().find(|(q, _)| *q >= num_qubits) {
                return Err(SimError::QubitOutOfRange { qubit, num_qubits });
            }
        }
        Ok(())
    }
}

fn pauli(ch: char) -> Option<Pauli> {
    Some(match ch.to_ascii_uppercase() {
        'I' => Pauli::I,
        'X' => Pauli::X,
        'Y' => Pauli::Y,
        'Z' => Pauli::Z,
        _ => return None,
    })
}

impl FromStr for PauliSum {
    type Err = SimError;

    /// Parses sums such as `"Z0 Z1"`, `"0.5*X0"`, `"X0 Y1 - 2.5 Z3 + 1"`:
    /// terms separated by `+`/`-`, each an optional number (with optional
    /// `*`) and Pauli factors written as a letter and a qubit index.
    fn from_str(s: &str) -> Result<PauliSum, SimError> {
        let err = |m: String| SimError::Observable(format!("{m} in `{s}`"));
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let mut terms = Vec::new();
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        loop {
            skip_ws(&mut i);
            let mut sign = 1.0;
            if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                if chars[i] == '-' {
                    sign = -1.0;
                }
                i += 1;
                skip_ws(&mut i);
            } else if !terms.is_empty() {
                return Err(err(format!("expected `+` or `-` at character {}", i + 1)));
            }
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || ".eE".contains(chars[i])) {
                // An exponent may carry a sign.
                if "eE".contains(chars[i]) && i + 1 < chars.len() && "+-".contains(chars[i + 1]) {
                    i += 1;
                }
                i += 1;
            }
            let mut coefficient = 1.0;
            let has_number = i > start;
            if has_number {
                let text: String = chars[start..i].iter().collect();
                coefficient = text
                    .parse::<f64>()
                    .map_err(|_| err(format!("`{text}` is not a number")))?;
                skip_ws(&mut i);
                if i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
            }
            let mut factors: Vec<(Qubit, Pauli)> = Vec::new();
            loop {
                skip_ws(&mut i);
                if i < chars.len() && chars[i] == '*' && !factors.is_empty() {
                    i += 1;
                    skip_ws(&mut i);
                }
                let Some(p) = chars.get(i).copied().and_then(pauli) else {
                    break;
                };
                i += 1;
                let qs = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[qs..i].iter().collect();
                let q: Qubit = text.parse().map_err(|_| {
                    err(format!(
                        "Pauli factor at character {qs} needs a qubit index"
                    ))
                })?;
                if factors.iter().any(|&(fq, _)| fq == q) {
                    return Err(err(format!("qubit {q} appears twice in one term")));
                }
                if p != Pauli::I {
                    factors.push((q, p));
                }
            }
            if !has_number && factors.is_empty() {
                return Err(err(format!("expected a term at character {}", i + 1)));
            }
            if !coefficient.is_finite() {
                return Err(err("a weight is not finite".into()));
            }
            terms.push(PauliTerm {
                coefficient: sign * coefficient,
                factors,
            });
            skip_ws(&mut i);
            if i >= chars.len() {
                break;
            }
        }
        Ok(PauliSum { terms })
    }
}

impl fmt::Display for PauliSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, t) in self.terms.iter().enumerate() {
            if k > 0 {
                f.write_str(" + ")?;
            }
            write!(f, "{}", t.coefficient)?;
            for (q, p) in &t.factors {
                write!(f, " {p:?}{q}")?;
            }
        }
        Ok(())
    }
}

/// `Σ c·Tr(X P)` over the terms `c·P` of `observable`, where
/// `entry(i, f)` is `⟨i|X|i ⊕ f⟩` over basis states `i < len`: a Pauli
/// string maps `|i⟩` to `i^y (−1)^{|i ∧ z|} |i ⊕ f⟩`, so `Tr(XP)` sums
/// those entries with signs and one phase. A pure state's `X` is `|ψ⟩⟨ψ|`
/// (`entry` = `ψ[i] ψ̄[i⊕f]`), a density matrix's is `ρ`.
pub(crate) fn pauli_trace(
    observable: &PauliSum,
    len: usize,
    par: &Parallelism,
    entry: impl Fn(usize, usize) -> Complex64 + Sync,
) -> f64 {
    let mut total = 0.0;
    for term in &observable.terms {
        let (flip, zmask, ys) = term.masks();
        let pieces = par.map_pieces(len, 1 << 12, 1, |range| {
            let mut acc = Complex64::new(0.0, 0.0);
            for i in range {
                let v = entry(i, flip);
                if (i & zmask).count_ones() % 2 == 1 {
                    acc -= v;
                } else {
                    acc += v;
                }
            }
            acc
        });
        let sum: Complex64 = pieces.into_iter().sum();
        // i^y: the value is real for Hermitian P; keep the real part.
        let value = match ys % 4 {
            0 => sum.re,
            1 => -sum.im,
            2 => -sum.re,
            _ => sum.im,
        };
        total += term.coefficient * value;
    }
    total
}

/// `⟨ψ|O|ψ⟩` for a Hermitian `O` (real by construction).
pub(crate) fn expectation<F: Float>(
    state: &StateVector<F>,
    observable: &PauliSum,
    par: &Parallelism,
) -> Result<f64, SimError> {
    observable.check_qubits(state.num_qubits())?;
    Ok(pauli_trace(observable, state.len(), par, |i, flip| {
        let a = state.amp(i);
        let b = state.amp(i ^ flip);
        Complex64::new(b.re.to_f64(), -b.im.to_f64()) * Complex64::new(a.re.to_f64(), a.im.to_f64())
    }))
}

impl<F: Float> StateVector<F> {
    /// `⟨ψ|O|ψ⟩`, computed in place.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] if a term names a qubit the state lacks.
    pub fn expectation(&self, observable: &PauliSum, par: &Parallelism) -> Result<f64, SimError> {
        expectation(self, observable, par)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_forms() {
        let s: PauliSum = "Z0 Z1".parse().unwrap();
        assert_eq!(s.terms.len(), 1);
        assert_eq!(s.terms[0].factors, vec![(0, Pauli::Z), (1, Pauli::Z)]);
        let s: PauliSum = "0.5*X0".parse().unwrap();
        assert_eq!(s.terms[0].coefficient, 0.5);
        let s: PauliSum = "X0 Y1 - 2.5 Z3 + 1 + 1e-3*Z0*Z2".parse().unwrap();
        assert_eq!(s.terms.len(), 4);
        assert_eq!(s.terms[1].coefficient, -2.5);
        assert!(s.terms[2].factors.is_empty());
        assert_eq!(s.terms[3].coefficient, 1e-3);
        for bad in ["", "Q0", "X", "Z0 Z0", "0.5 +", "X0 Z1 3"] {
            assert!(bad.parse::<PauliSum>().is_err(), "{bad:?} should fail");
        }
        let t = PauliTerm::from_label("XIZ", 2.0).unwrap();
        assert_eq!(t.factors, vec![(0, Pauli::Z), (2, Pauli::X)]);
    }
}
