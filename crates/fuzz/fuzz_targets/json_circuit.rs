//! Kettle's JSON circuit format (`parse_program` with the JSON format) on
//! arbitrary bytes, default limits; what it accepts must survive `to_json`.
#![no_main]

use kettle_qasm::{Limits, ParseOptions, SourceFormat, parse_json, parse_program, to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(circuit) = parse_program(data, SourceFormat::Json, &ParseOptions::default()) else {
        return;
    };
    assert!(circuit.num_qubits() <= limits.max_qubits);
    if let Err(e) = circuit.validate() {
        panic!("accepted an invalid circuit: {e}");
    }
    // Writing it and reading it back gives a circuit that writes the same
    // (the first write may reorder controls, which changes nothing).
    let once = to_json(&circuit);
    let again = match parse_json(&once, &limits) {
        Ok(c) => c,
        Err(e) => panic!("to_json wrote what parse_json refuses: {e}\n{once}"),
    };
    assert_eq!(to_json(&again), once, "to_json ∘ parse_json is not stable");
});
