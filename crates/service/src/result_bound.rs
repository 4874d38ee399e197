//! Upper bounds of a result's size as JSON, known before the job runs:
//! admission refuses a job whose result could pass `max_result_bytes`, and
//! the HTTP layer takes a response's share of memory by the bound before it
//! reads the result. A bound may be loose; it must never be below the real
//! size (`prepare::tests::the_result_bound_is_never_below_the_real_json`).

use std::collections::BTreeMap;

use kettle_core::{final_measurements, measured_qubits};
use kettle_ir::Circuit;

use crate::model::ResultType;

/// Bytes of a result's JSON besides its executions: `{"executions":[`,
/// `],"run_seconds":`, a number and `}`.
pub(crate) const RESULT_ENVELOPE_BOUND: u128 = 16 + 17 + F64_JSON_BYTES + 1;

/// Most bytes of a finite `f64` in JSON (`-2.2250738585072014e-308`; a
/// non-finite one is `null`).
const F64_JSON_BYTES: u128 = 24;
/// Most bytes of a `u64` in JSON.
const U64_JSON_BYTES: u128 = 20;

/// Most bytes of `text` as a JSON string, quotes included (every byte
/// escaped as `\u00XX` at worst).
fn json_string_bound(text: &str) -> u128 {
    2 + 6 * text.len() as u128
}

/// Decimal digits of `n`.
fn digits(n: u64) -> u128 {
    u128::from(n.checked_ilog10().map_or(1, |d| d + 1))
}

/// `2^bits`, saturating.
fn outcomes(bits: u32) -> u128 {
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// An upper bound of the bytes of one execution's result as JSON (an
/// [`ExecutionResult`](crate::ExecutionResult) as the API serialises it,
/// with bitstring or hex keys): counts have at most min(shots,
/// 2^clbits) entries, memory one per shot, probabilities at most
/// 2^min(measured qubits, `max_listed_qubits`), a state vector 2^qubits
/// `[re, im]` pairs (past `max_listed_qubits` qubits, at most
/// 2^`max_listed_qubits` of them, keyed by bitstring).
pub(crate) fn execution_result_bound(
    circuit: &Circuit,
    types: &[ResultType],
    shots: u64,
    inputs: &BTreeMap<String, f64>,
    max_listed_qubits: u32,
) -> u128 {
    let clbits = circuit.num_clbits();
    // A key: the bitstring, or `0x` and a hex digit per 4 bits (at least
    // one), in quotes.
    let key = 2 + u128::from(clbits.max(2 + clbits.div_ceil(4).max(1)));
    // `{"seed":…,"shots":…,"method":"density_matrix"}` and the comma
    // after it.
    let mut bytes = 2 + 7 + U64_JSON_BYTES + 9 + U64_JSON_BYTES + 26 + 1;
    if !inputs.is_empty() {
        // `"inputs":{…},`, each `"name":value,`.
        bytes += 12;
        for name in inputs.keys() {
            bytes += json_string_bound(name) + 1 + F64_JSON_BYTES + 1;
        }
    }
    let mut add = |field: u128, entries: u128, entry: u128| {
        // `,"field":[…]` (or `{…}`): the field's name in quotes, the colon,
        // brackets and comma; each entry and its comma.
        bytes = bytes
            .saturating_add(field + 6)
            .saturating_add(entries.saturating_mul(entry + 1));
    };
    for t in types {
        match t {
            ResultType::Counts => add(
                6,
                u128::from(shots).min(outcomes(clbits)),
                key + 1 + digits(shots),
            ),
            ResultType::Memory => add(6, u128::from(shots), key),
            ResultType::Probabilities => {
                // Readout errors may flip bits no measurement wrote.
                let measured = final_measurements(circuit)
                    .filter(|_| !circuit.is_noisy())
                    .map_or(clbits, |finals| measured_qubits(&finals).len() as u32);
                // Non-zero outcomes only, and at most 2^max_listed_qubits
                // of them (more fail the job).
                let entries = outcomes(measured.min(clbits)).min(outcomes(max_listed_qubits));
                add(13, entries, key + 1 + F64_JSON_BYTES);
            }
            ResultType::Statevector if circuit.num_qubits() <= max_listed_qubits => add(
                11,
                outcomes(circuit.num_qubits()),
                1 + F64_JSON_BYTES + 1 + F64_JSON_BYTES + 1,
            ),
            // `sparse_statevector`: `"bits":[re,im]` for at most
            // 2^max_listed_qubits non-zero amplitudes.
            ResultType::Statevector => add(
                18,
                outcomes(circuit.num_qubits()).min(outcomes(max_listed_qubits)),
                2 + u128::from(circuit.num_qubits())
                    + 1
                    + 1
                    + F64_JSON_BYTES
                    + 1
                    + F64_JSON_BYTES
                    + 1,
            ),
            ResultType::Expectation(list) => {
                // `{"observable":…,"value":…,"std_error":…}` each.
                for text in list {
                    add(
                        12,
                        1,
                        15 + json_string_bound(text) + 9 + F64_JSON_BYTES + 13 + F64_JSON_BYTES + 1,
                    );
                }
            }
            ResultType::AdjointGradient(g) => {
                // `{"observable":…,"value":…,"gradient":{"name":value,…}}` each.
                let per_parameter: u128 = g
                    .parameters
                    .iter()
                    .flatten()
                    .map(|name| json_string_bound(name) + 1 + F64_JSON_BYTES + 1)
                    .sum();
                for text in &g.observables {
                    add(
                        9,
                        1,
                        15 + json_string_bound(text) + 9 + F64_JSON_BYTES + 13 + per_parameter + 1,
                    );
                }
            }
        }
    }
    bytes
}
