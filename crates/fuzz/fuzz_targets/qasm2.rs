//! The OpenQASM 2 front end on arbitrary bytes, default limits, no include
//! resolver (as the HTTP service runs it).
#![no_main]

use kettle_qasm::{
    Limits, ParseOptions, SourceFormat, parse_json, parse_program, parse_qasm2_bytes, to_json,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let direct = parse_qasm2_bytes(data, &limits);
    let via = parse_program(data, SourceFormat::Qasm2, &ParseOptions::default());
    // The two entry points are the same front end: the same verdict.
    assert_eq!(direct.is_ok(), via.is_ok());
    if let Ok(circuit) = direct {
        // What the front end accepts is a valid circuit within the limits...
        assert!(circuit.num_qubits() <= limits.max_qubits);
        assert!(circuit.ops().len() <= limits.max_operations);
        if let Err(e) = circuit.validate() {
            panic!("accepted an invalid circuit: {e}");
        }
        // ...that the JSON format can carry.
        if circuit.ops().len() <= 10_000 {
            let json = to_json(&circuit);
            if let Err(e) = parse_json(&json, &limits) {
                panic!("to_json wrote what parse_json refuses: {e}\n{json}");
            }
        }
    }
});
