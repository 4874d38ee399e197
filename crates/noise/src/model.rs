//! The noise model: Aer's list of errors read into tables keyed by
//! operation name and qubits, and applied to a circuit.

use std::collections::HashMap;

use kettle_ir::{Circuit, MAX_NESTING, Operation, Qubit, ReadoutError, StandardGate};
use serde_json::{Map, Value};

use crate::error::NoiseModelError;
use crate::json::{Path, array, get, number, object, qubits, required, string};
use crate::quantum_error::{self, AER_THRESHOLD, BuiltError};

/// A noise model: quantum errors attached to operations by name (and, for
/// local errors, by qubits), and readout errors attached to measurements.
///
/// Read one with [`NoiseModel::from_aer_json`]; [`NoiseModel::apply`]
/// returns a circuit with the noise written in as
/// [`Operation::Channel`] and [`Operation::ReadoutError`] operations.
#[derive(Clone, Debug, Default)]
pub struct NoiseModel {
    /// Every quantum error, in the document's order; the tables hold
    /// positions in it.
    pub(crate) errors: Vec<BuiltError>,
    /// Operation name (canonical, see [`canonical_name`]) → its errors.
    quantum: HashMap<String, ErrorTable>,
    pub(crate) readout: ReadoutTable,
}

/// The errors of one operation name: the local ones by exact qubits, and
/// the default ones for any other qubits. Several errors under one key act
/// one after the other, in the document's order (Aer's tables do the same).
#[derive(Clone, Debug, Default)]
struct ErrorTable {
    default: Vec<usize>,
    local: HashMap<Vec<Qubit>, Vec<usize>>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ReadoutTable {
    pub(crate) default: Vec<ReadoutError>,
    pub(crate) local: HashMap<Qubit, Vec<ReadoutError>>,
}

/// Where an error applies: `None` for every qubit (Aer's empty key), else
/// the exact qubits.
type Key = Option<Vec<Qubit>>;

/// The name an operation has in a kettle-ir circuit: a standard gate's
/// aliases (`u3`, `u1`, `i`, `cnot`, …) become its canonical name (`u`,
/// `p`, `id`, `cx`), since the IR keeps no other spelling; anything else
/// (`measure`, `reset`, `unitary`) is kept as it is.
fn canonical_name(name: &str) -> String {
    StandardGate::from_name(name).map_or_else(|| name.to_owned(), |g| g.name().to_owned())
}

impl NoiseModel {
    /// Reads `NoiseModel.to_dict(serializable=True)` of Qiskit Aer, the
    /// document Aer hands its C++ core. `null` and `{}` are the empty model,
    /// as in Aer.
    ///
    /// Operation names are matched in kettle-ir's spelling: an error listed
    /// for `u3` applies to kettle-ir's `u` gates (the IR does not keep the
    /// alias a gate was written with), and errors listed for two aliases of
    /// one gate both apply to it.
    ///
    /// # Errors
    /// [`NoiseModelError::Invalid`] with the JSONPath of the first problem:
    /// a value of the wrong type, an unknown error type or instruction,
    /// probabilities outside [0, 1] or not adding up to 1 (within Aer's
    /// 1e-10), a matrix of the wrong size, a Kraus map that is not
    /// trace-preserving, a unitary that is not unitary, an error on more
    /// than two qubits, a nonlocal error (`noise_qubits`) or a readout error
    /// on more than one qubit.
    pub fn from_aer_json(json: &Value) -> Result<NoiseModel, NoiseModelError> {
        let mut model = NoiseModel::default();
        let root = Path::ROOT;
        if json.is_null() {
            return Ok(model);
        }
        let Some(errors) = get(object(json, &root)?, "errors") else {
            return Ok(model);
        };
        let errors_path = root.key("errors");
        for (i, entry) in array(errors, &errors_path)?.iter().enumerate() {
            model.add_entry(entry, &errors_path.index(i))?;
        }
        Ok(model)
    }

    fn add_entry(&mut self, entry: &Value, path: &Path<'_>) -> Result<(), NoiseModelError> {
        let obj = object(entry, path)?;
        let type_path = path.key("type");
        let kind = string(required(obj, "type", path)?, &type_path)?;
        refuse_nonlocal(obj, path)?;
        let keys = gate_qubits(obj, path)?;
        match kind {
            "qerror" | "plerror" => {
                let operations = operations(obj, path)?;
                let built = quantum_error::build(obj, path)?;
                let index = self.errors.len();
                self.errors.push(built);
                for op in operations {
                    let table = self.quantum.entry(op).or_default();
                    for key in &keys {
                        match key {
                            None => table.default.push(index),
                            Some(q) => table.local.entry(q.clone()).or_default().push(index),
                        }
                    }
                }
                Ok(())
            }
            "roerror" => {
                let error = readout_error(obj, path)?;
                for (i, key) in keys.iter().enumerate() {
                    match key.as_deref() {
                        None => self.readout.default.push(error),
                        Some(&[q]) => self.readout.local.entry(q).or_default().push(error),
                        Some(qs) => {
                            return Err(path.key("gate_qubits").index(i).error(format!(
                                "a readout error on {} qubits; Kettle supports single-qubit readout errors",
                                qs.len()
                            )));
                        }
                    }
                }
                Ok(())
            }
            other => Err(type_path.error(format!(
                "unknown error type `{other}`; expected `qerror`, `plerror` or `roerror`"
            ))),
        }
    }

    /// The names of the operations that have a quantum error, sorted (in
    /// kettle-ir's spelling: `u` for `u3`).
    pub fn noisy_operations(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .quantum
            .iter()
            .filter(|(_, t)| !t.default.is_empty() || !t.local.is_empty())
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Whether any measurement has a readout error.
    pub fn has_readout_errors(&self) -> bool {
        !self.readout.default.is_empty() || !self.readout.local.is_empty()
    }

    /// Whether the model adds no noise at all.
    pub fn is_ideal(&self) -> bool {
        self.errors.iter().all(|e| e.channel.is_none()) && !self.has_readout_errors()
    }

    /// `circuit` with its noise written in, as Aer inserts it: after each
    /// gate and reset with an error, an [`Operation::Channel`] on the
    /// gate's first qubits; before each measurement with an error, its
    /// channel; after each measurement of a qubit with a readout error, an
    /// [`Operation::ReadoutError`] on the measured bit. Operations inside
    /// `if` blocks get their noise inside the block. Errors that change
    /// nothing are left out, and so is every error of a gate with extra
    /// `controls` (a `ctrl @` modifier has no counterpart in Aer's tables).
    /// Channels and readout errors already in the circuit stay as they are.
    /// Aer matches a gate by its label when it has one; kettle-ir gates have
    /// no labels, so only names match.
    ///
    /// # Errors
    /// [`NoiseModelError::ErrorWiderThanOperation`] when an error acts on
    /// more qubits than its operation has; [`NoiseModelError::TooDeep`] for
    /// `if` blocks nested deeper than [`MAX_NESTING`].
    pub fn apply(&self, circuit: &Circuit) -> Result<Circuit, NoiseModelError> {
        let ops = self.noisy_ops(circuit.ops(), 0)?;
        let mut out = Circuit::new(circuit.num_qubits());
        for register in circuit.registers() {
            out = out.creg(&register.name, register.size);
        }
        out.append_ops(ops);
        Ok(out)
    }

    fn noisy_ops(
        &self,
        ops: &[Operation],
        depth: usize,
    ) -> Result<Vec<Operation>, NoiseModelError> {
        if depth > MAX_NESTING {
            return Err(NoiseModelError::TooDeep { max: MAX_NESTING });
        }
        let mut out = Vec::with_capacity(ops.len() + ops.len() / 2);
        for op in ops {
            match op {
                Operation::Gate {
                    gate,
                    qubits,
                    controls,
                } if controls.is_empty() => {
                    out.push(op.clone());
                    self.push_errors(gate.name(), qubits, &mut out)?;
                }
                Operation::Measure { qubit, clbit } => {
                    // Aer puts a measurement's quantum error before it.
                    self.push_errors("measure", &[*qubit], &mut out)?;
                    out.push(op.clone());
                    self.push_readout(*qubit, *clbit, &mut out);
                }
                Operation::Reset { qubit } => {
                    out.push(op.clone());
                    self.push_errors("reset", &[*qubit], &mut out)?;
                }
                Operation::IfElse {
                    condition,
                    then_ops,
                    else_ops,
                } => out.push(Operation::IfElse {
                    condition: condition.clone(),
                    then_ops: self.noisy_ops(then_ops, depth + 1)?,
                    else_ops: self.noisy_ops(else_ops, depth + 1)?,
                }),
                _ => out.push(op.clone()),
            }
        }
        Ok(out)
    }

    /// The errors of `name` on `qubits`: the local ones if any, else the
    /// default ones (Aer's precedence).
    fn errors_for(&self, name: &str, qubits: &[Qubit]) -> &[usize] {
        match self.quantum.get(name) {
            Some(table) => table.local.get(qubits).unwrap_or(&table.default),
            None => &[],
        }
    }

    fn push_errors(
        &self,
        name: &str,
        qubits: &[Qubit],
        out: &mut Vec<Operation>,
    ) -> Result<(), NoiseModelError> {
        for &i in self.errors_for(name, qubits) {
            let error = &self.errors[i];
            let n = error.num_qubits as usize;
            if n > qubits.len() {
                return Err(NoiseModelError::ErrorWiderThanOperation {
                    operation: name.to_owned(),
                    qubits: qubits.to_vec(),
                    error_qubits: error.num_qubits,
                });
            }
            if let Some(channel) = &error.channel {
                out.push(Operation::Channel {
                    channel: channel.clone(),
                    qubits: qubits[..n].to_vec(),
                });
            }
        }
        Ok(())
    }

    fn push_readout(&self, qubit: Qubit, clbit: u32, out: &mut Vec<Operation>) {
        let errors = self
            .readout
            .local
            .get(&qubit)
            .unwrap_or(&self.readout.default);
        out.extend(
            errors
                .iter()
                .map(|&error| Operation::ReadoutError { clbit, error }),
        );
    }
}

/// Nonlocal errors (noise on qubits other than the operation's) have no
/// place in a circuit of local channels; Aer itself dropped them from its
/// Python API.
fn refuse_nonlocal(obj: &Map<String, Value>, path: &Path<'_>) -> Result<(), NoiseModelError> {
    let Some(v) = get(obj, "noise_qubits") else {
        return Ok(());
    };
    let noise_path = path.key("noise_qubits");
    if array(v, &noise_path)?.is_empty() {
        return Ok(());
    }
    Err(noise_path
        .error("nonlocal errors (noise on qubits other than the operation's) are not supported"))
}

/// The keys of `gate_qubits`; absent or empty: the default key alone. An
/// empty qubit list is the default key too (Aer's key for it is the same
/// empty string).
fn gate_qubits(obj: &Map<String, Value>, path: &Path<'_>) -> Result<Vec<Key>, NoiseModelError> {
    let Some(v) = get(obj, "gate_qubits") else {
        return Ok(vec![None]);
    };
    let list_path = path.key("gate_qubits");
    let lists = array(v, &list_path)?;
    if lists.is_empty() {
        return Ok(vec![None]);
    }
    lists
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let qs = qubits(q, &list_path.index(i))?;
            Ok((!qs.is_empty()).then_some(qs))
        })
        .collect()
}

/// The distinct operation names of an entry, canonical; absent: none (the
/// error then applies to nothing, as in Aer).
fn operations(obj: &Map<String, Value>, path: &Path<'_>) -> Result<Vec<String>, NoiseModelError> {
    let Some(v) = get(obj, "operations") else {
        return Ok(Vec::new());
    };
    let ops_path = path.key("operations");
    let mut names: Vec<String> = Vec::new();
    for (i, name) in array(v, &ops_path)?.iter().enumerate() {
        let name = canonical_name(string(name, &ops_path.index(i))?);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// A readout error's 2×2 assignment matrix (row `i`: the probabilities of
/// reading 0 and 1 when the outcome is `i`).
fn readout_error(
    obj: &Map<String, Value>,
    path: &Path<'_>,
) -> Result<ReadoutError, NoiseModelError> {
    let probs_path = path.key("probabilities");
    let rows = array(required(obj, "probabilities", path)?, &probs_path)?;
    if rows.len() != 2 {
        return Err(probs_path.error(format!(
            "an assignment matrix of {} rows; Kettle supports single-qubit readout errors (2 rows)",
            rows.len()
        )));
    }
    let mut assignment = [[0.0; 2]; 2];
    for (i, row) in rows.iter().enumerate() {
        let row_path = probs_path.index(i);
        let entries = array(row, &row_path)?;
        if entries.len() != 2 {
            return Err(row_path.error(format!(
                "a row of {} probabilities; a single-qubit readout error has 2",
                entries.len()
            )));
        }
        for (j, p) in entries.iter().enumerate() {
            let p = number(p, &row_path.index(j))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(row_path
                    .index(j)
                    .error(format!("a probability must be between 0 and 1, not {p}")));
            }
            assignment[i][j] = p;
        }
        let total = assignment[i][0] + assignment[i][1];
        if (total - 1.0).abs() > AER_THRESHOLD {
            return Err(row_path.error(format!(
                "the row adds up to {total}, not 1 (within {AER_THRESHOLD:e})"
            )));
        }
    }
    ReadoutError::new(assignment).map_err(|e| probs_path.error(e.to_string()))
}
