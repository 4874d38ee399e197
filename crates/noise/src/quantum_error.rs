//! One Aer `QuantumError` built into one channel on its qubits.
//!
//! An error is a list of small circuits with probabilities (`"instructions"`
//! and `"probabilities"`), or, for a Pauli-Lindblad error, of Pauli
//! generators with rates (`"instructions"` and `"rates"`; Aer reads `rates`
//! whatever the `type`). Each circuit is the composition of its
//! instructions, each embedded in the error's qubits; the error is their
//! mixture. As in Aer (`quantum_error.hpp`), circuits of probability at
//! most 1e-10 are dropped and the error acts on `1 + the largest qubit
//! index` of the circuits kept: the first that many qubits of the
//! operation it is attached to.

use kettle_ir::{Channel, Complex64, GateMatrix, MAX_CHANNEL_QUBITS, StandardGate};
use serde_json::{Map, Value};

use crate::error::NoiseModelError;
use crate::json::{Path, array, get, matrix, number, object, qubits, required, string};
use crate::linalg::{compact, embed, identity_channel, reduce_kraus};

/// Aer's threshold: probabilities and rates at most this are dropped, and
/// probabilities must add up to 1 within it.
pub(crate) const AER_THRESHOLD: f64 = 1e-10;

/// A quantum error, built.
#[derive(Clone, Debug)]
pub(crate) struct BuiltError {
    /// How many qubits it acts on (the first ones of the operation's); 0
    /// when every circuit kept is empty.
    pub(crate) num_qubits: u32,
    /// The channel; `None` when it changes nothing.
    pub(crate) channel: Option<Channel>,
}

/// An instruction of an error circuit, on its own qubits.
struct Instruction {
    qubits: Vec<u32>,
    action: Action,
}

enum Action {
    Unitary(GateMatrix),
    /// Checked to be trace-preserving, at most `4^k` operators.
    Kraus(Vec<GateMatrix>),
    /// A global phase, a delay or a barrier: nothing to a density matrix.
    Nothing,
}

/// Instruction names a Pauli-Lindblad generator may hold.
const PAULI_NAMES: [&str; 6] = ["id", "i", "x", "y", "z", "pauli"];

/// Builds the quantum error of the entry `obj` at `path`.
pub(crate) fn build(
    obj: &Map<String, Value>,
    path: &Path<'_>,
) -> Result<BuiltError, NoiseModelError> {
    let circuits_path = path.key("instructions");
    let circuits = array(required(obj, "instructions", path)?, &circuits_path)?;
    if let Some(rates) = get(obj, "rates") {
        return build_generators(circuits, rates, path);
    }
    let probs_path = path.key("probabilities");
    let probs = probabilities(
        required(obj, "probabilities", path)?,
        circuits.len(),
        &probs_path,
    )?;
    let mut kept = Vec::new();
    for (j, (circuit, &p)) in circuits.iter().zip(&probs).enumerate() {
        let keep = p > AER_THRESHOLD;
        let parsed = parse_circuit(circuit, &circuits_path.index(j), keep, false)?;
        if keep {
            kept.push((p, parsed, j));
        }
    }
    let n = error_qubits(kept.iter().map(|(_, c, _)| c));
    if n == 0 {
        return Ok(BuiltError {
            num_qubits: 0,
            channel: None,
        });
    }
    // Aer samples from the kept probabilities, which renormalises them.
    let total: f64 = kept.iter().map(|(p, _, _)| p).sum();
    let mut parts = Vec::with_capacity(kept.len());
    for (p, circuit, j) in kept {
        let channel = compose(&circuit, n, &circuits_path.index(j))?;
        parts.push((p / total, channel));
    }
    let channel = Channel::mix(parts)
        .and_then(compact)
        .map_err(|e| path.error(format!("cannot build the error: {e}")))?;
    Ok(finish(n, channel))
}

fn finish(num_qubits: u32, channel: Channel) -> BuiltError {
    BuiltError {
        num_qubits,
        channel: (!channel.is_identity()).then_some(channel),
    }
}

/// The probabilities of `count` circuits: each in [0, 1], adding up to 1.
fn probabilities(v: &Value, count: usize, path: &Path<'_>) -> Result<Vec<f64>, NoiseModelError> {
    let items = array(v, path)?;
    if items.len() != count {
        return Err(path.error(format!(
            "{} probabilities for {count} circuits in `instructions`",
            items.len()
        )));
    }
    let mut probs = Vec::with_capacity(count);
    for (j, item) in items.iter().enumerate() {
        let p = number(item, &path.index(j))?;
        if !(0.0..=1.0).contains(&p) {
            return Err(path
                .index(j)
                .error(format!("a probability must be between 0 and 1, not {p}")));
        }
        probs.push(p);
    }
    let total: f64 = probs.iter().sum();
    if (total - 1.0).abs() > AER_THRESHOLD {
        return Err(path.error(format!(
            "the probabilities add up to {total}, not 1 (within {AER_THRESHOLD:e})"
        )));
    }
    Ok(probs)
}

/// The qubits an error acts on: one more than the largest index used.
fn error_qubits<'a>(circuits: impl Iterator<Item = &'a Vec<Instruction>>) -> u32 {
    circuits
        .flatten()
        .flat_map(|i| i.qubits.iter().map(|q| q + 1))
        .max()
        .unwrap_or(0)
}

/// The instructions of one circuit. Only a circuit that is `kept` must fit
/// in [`MAX_CHANNEL_QUBITS`] qubits (Aer ignores the others).
fn parse_circuit(
    v: &Value,
    path: &Path<'_>,
    kept: bool,
    paulis_only: bool,
) -> Result<Vec<Instruction>, NoiseModelError> {
    array(v, path)?
        .iter()
        .enumerate()
        .map(|(k, inst)| parse_instruction(inst, &path.index(k), kept, paulis_only))
        .collect()
}

fn parse_instruction(
    v: &Value,
    path: &Path<'_>,
    kept: bool,
    paulis_only: bool,
) -> Result<Instruction, NoiseModelError> {
    let obj = object(v, path)?;
    let name = string(required(obj, "name", path)?, &path.key("name"))?;
    let qubits_path = path.key("qubits");
    let qubits = qubits(required(obj, "qubits", path)?, &qubits_path)?;
    check_qubits(&qubits, kept, &qubits_path)?;
    if get(obj, "condition").is_some() {
        return Err(path
            .key("condition")
            .error("conditional instructions inside an error are not supported"));
    }
    if paulis_only && !PAULI_NAMES.contains(&name) {
        return Err(path.key("name").error(format!(
            "a Pauli-Lindblad generator holds only Pauli instructions ({}), not `{name}`",
            PAULI_NAMES.join(", ")
        )));
    }
    let params = match get(obj, "params") {
        Some(p) => array(p, &path.key("params"))?,
        None => &[],
    };
    let action = action(name, &qubits, params, path)?;
    Ok(Instruction { qubits, action })
}

/// Distinct qubits, at most two; in a kept circuit, below two.
fn check_qubits(qubits: &[u32], kept: bool, path: &Path<'_>) -> Result<(), NoiseModelError> {
    if qubits.len() > MAX_CHANNEL_QUBITS as usize {
        return Err(path.error(format!(
            "an instruction on {} qubits; Kettle's channels act on at most {MAX_CHANNEL_QUBITS}",
            qubits.len()
        )));
    }
    if qubits.len() == 2 && qubits[0] == qubits[1] {
        return Err(path.error(format!("qubit {} appears twice", qubits[0])));
    }
    if let Some(q) = qubits.iter().find(|&&q| q >= MAX_CHANNEL_QUBITS)
        && kept
    {
        return Err(path.error(format!(
            "qubit {q} makes this an error on {} qubits; Kettle's channels act on at most {MAX_CHANNEL_QUBITS}",
            u64::from(*q) + 1
        )));
    }
    Ok(())
}

/// What the instruction `name` does on its `k` qubits.
fn action(
    name: &str,
    qubits: &[u32],
    params: &[Value],
    path: &Path<'_>,
) -> Result<Action, NoiseModelError> {
    let k = qubits.len() as u32;
    let params_path = path.key("params");
    match name {
        "reset" => Ok(reset(k)),
        "kraus" => kraus(params, k, &params_path),
        "unitary" => unitary(params, k, &params_path),
        "pauli" => pauli(params, k, &params_path).map(Action::Unitary),
        "delay" | "barrier" => Ok(Action::Nothing),
        "superop" => Err(path.key("name").error(
            "superoperator instructions are not supported; give the error as Kraus operators",
        )),
        _ => standard_gate(name, k, params, path),
    }
}

/// Reset of each of `k` qubits to |0⟩: Kraus operators `|0⟩⟨b|`.
fn reset(k: u32) -> Action {
    let (o, l) = (Complex64::new(0.0, 0.0), Complex64::new(1.0, 0.0));
    let one = [
        GateMatrix::new(1, vec![l, o, o, o]).expect("2x2"),
        GateMatrix::new(1, vec![o, l, o, o]).expect("2x2"),
    ];
    let mut ops: Vec<GateMatrix> = Vec::new();
    for _ in 0..k {
        ops = if ops.is_empty() {
            one.to_vec()
        } else {
            ops.iter()
                .flat_map(|a| one.iter().map(move |b| b.kron(a)))
                .collect()
        };
    }
    if ops.is_empty() {
        Action::Nothing
    } else {
        Action::Kraus(ops)
    }
}

fn kraus(params: &[Value], k: u32, path: &Path<'_>) -> Result<Action, NoiseModelError> {
    if k == 0 {
        return Err(path.error("a Kraus instruction needs at least one qubit"));
    }
    if params.is_empty() {
        return Err(path.error("a Kraus instruction needs at least one matrix"));
    }
    let mut ops = params
        .iter()
        .enumerate()
        .map(|(i, m)| matrix(m, k, &path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    if ops.len() > 1 << (2 * k) {
        ops = reduce_kraus(&ops, k);
    }
    // Checked here so that the error names the instruction.
    Channel::kraus(ops.clone()).map_err(|e| path.error(e.to_string()))?;
    Ok(Action::Kraus(ops))
}

fn unitary(params: &[Value], k: u32, path: &Path<'_>) -> Result<Action, NoiseModelError> {
    let [m] = params else {
        return Err(path.error(format!(
            "a unitary instruction takes one matrix, not {} parameters",
            params.len()
        )));
    };
    let m = matrix(m, k, &path.index(0))?;
    let deviation = m.unitarity_deviation();
    if deviation > kettle_ir::UNITARY_TOLERANCE {
        return Err(path.index(0).error(format!(
            "the matrix is not unitary (U†U differs from the identity by {deviation:e})"
        )));
    }
    Ok(Action::Unitary(m))
}

/// A Pauli string in Qiskit's label order: the rightmost letter acts on the
/// instruction's first qubit. A phase prefix (`-`, `i`, `-i`) is a global
/// phase and is ignored.
fn pauli(params: &[Value], k: u32, path: &Path<'_>) -> Result<GateMatrix, NoiseModelError> {
    let [label] = params else {
        return Err(path.error(format!(
            "a Pauli instruction takes one label, not {} parameters",
            params.len()
        )));
    };
    let label_path = path.index(0);
    let label = string(label, &label_path)?;
    let letters = label
        .trim_start_matches(['+', '-'])
        .trim_start_matches(['i', 'j']);
    if letters.len() != k as usize {
        return Err(label_path.error(format!(
            "the label `{label}` has {} letters for {k} qubits",
            letters.len()
        )));
    }
    let mut m = GateMatrix::identity(0);
    for letter in letters.chars() {
        let p = pauli_matrix(letter)
            .ok_or_else(|| label_path.error(format!("`{letter}` is not one of I, X, Y, Z")))?;
        // Letters run from the last qubit to the first: each new one is lower.
        m = m.kron(&p);
    }
    Ok(m)
}

fn pauli_matrix(letter: char) -> Option<GateMatrix> {
    let gate = match letter {
        'I' => StandardGate::Id,
        'X' => StandardGate::X,
        'Y' => StandardGate::Y,
        'Z' => StandardGate::Z,
        _ => return None,
    };
    Some(gate.matrix(&[]))
}

fn standard_gate(
    name: &str,
    k: u32,
    params: &[Value],
    path: &Path<'_>,
) -> Result<Action, NoiseModelError> {
    let Some(gate) = StandardGate::from_name(name) else {
        return Err(path.key("name").error(format!(
            "unknown instruction `{name}`; an error's circuits may hold standard gates, \
             `pauli`, `unitary`, `kraus`, `reset`, `delay` and `barrier`"
        )));
    };
    if gate == StandardGate::GlobalPhase {
        return Ok(Action::Nothing);
    }
    if gate.num_qubits() != k {
        return Err(path.key("qubits").error(format!(
            "`{name}` acts on {} qubit(s), not {k}",
            gate.num_qubits()
        )));
    }
    if params.len() != gate.num_params() {
        return Err(path.key("params").error(format!(
            "`{name}` takes {} parameter(s), not {}",
            gate.num_params(),
            params.len()
        )));
    }
    let params_path = path.key("params");
    let angles = params
        .iter()
        .enumerate()
        .map(|(i, p)| number(p, &params_path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Action::Unitary(gate.matrix(&angles)))
}

/// The instructions of `circuit`, in order, as one channel on `n` qubits.
fn compose(circuit: &[Instruction], n: u32, path: &Path<'_>) -> Result<Channel, NoiseModelError> {
    let fail = |e: kettle_ir::ChannelError| path.error(format!("cannot compose the circuit: {e}"));
    let mut channel = identity_channel(n).map_err(fail)?;
    for inst in circuit {
        let step = match &inst.action {
            Action::Nothing => continue,
            Action::Unitary(u) => Channel::from_unitary(embed(u, &inst.qubits, n)),
            Action::Kraus(ops) => {
                Channel::kraus(ops.iter().map(|k| embed(k, &inst.qubits, n)).collect())
            }
        };
        channel = step
            .and_then(|s| channel.then(&s))
            .and_then(compact)
            .map_err(fail)?;
    }
    Ok(channel)
}

/// A Pauli-Lindblad error: generator `P_i` applied independently with
/// probability `(1 − e^{−2 r_i}) / 2` (Aer's `sample_noise_generators`).
fn build_generators(
    circuits: &[Value],
    rates: &Value,
    path: &Path<'_>,
) -> Result<BuiltError, NoiseModelError> {
    let rates_path = path.key("rates");
    let rates = array(rates, &rates_path)?;
    if rates.len() != circuits.len() {
        return Err(rates_path.error(format!(
            "{} rates for {} generators in `instructions`",
            rates.len(),
            circuits.len()
        )));
    }
    let circuits_path = path.key("instructions");
    let mut kept = Vec::new();
    for (j, (circuit, rate)) in circuits.iter().zip(rates).enumerate() {
        let r = number(rate, &rates_path.index(j))?;
        let keep = r.abs() > AER_THRESHOLD;
        if keep && r < 0.0 {
            return Err(rates_path
                .index(j)
                .error(format!("a rate must not be negative, not {r}")));
        }
        let parsed = parse_circuit(circuit, &circuits_path.index(j), keep, true)?;
        if keep {
            kept.push((r, parsed, j));
        }
    }
    let n = error_qubits(kept.iter().map(|(_, c, _)| c));
    if n == 0 {
        return Ok(BuiltError {
            num_qubits: 0,
            channel: None,
        });
    }
    let fail = |e: kettle_ir::ChannelError| path.error(format!("cannot build the error: {e}"));
    let mut channel = identity_channel(n).map_err(fail)?;
    for (r, circuit, j) in kept {
        let pauli = pauli_product(&circuit, n);
        let flip = 0.5 - 0.5 * (-2.0 * r).exp();
        let step = Channel::mixture(vec![(1.0 - flip, GateMatrix::identity(n)), (flip, pauli)])
            .map_err(|e| circuits_path.index(j).error(e.to_string()))?;
        channel = channel.then(&step).and_then(compact).map_err(fail)?;
    }
    Ok(finish(n, channel))
}

/// The product of a generator's Pauli instructions on `n` qubits.
fn pauli_product(circuit: &[Instruction], n: u32) -> GateMatrix {
    let mut m = GateMatrix::identity(n);
    for inst in circuit {
        if let Action::Unitary(u) = &inst.action {
            m = embed(u, &inst.qubits, n).matmul(&m);
        }
    }
    m
}
