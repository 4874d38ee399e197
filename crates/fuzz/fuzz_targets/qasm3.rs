//! The OpenQASM 3 front end on arbitrary bytes, default limits, no include
//! resolver: once with no input values, once with a value for every `input`
//! the program declares (values picked by the input's last byte, among them
//! NaN, infinities and huge numbers), and `qasm3_inputs` itself.
#![no_main]

use std::collections::BTreeMap;

use kettle_qasm::{
    Limits, ParseOptions, SourceFormat, parse_json, parse_program, qasm3_inputs, to_json,
};
use libfuzzer_sys::fuzz_target;

/// Values an input may get: ordinary ones first, then the hostile ones.
const VALUES: [f64; 16] = [
    0.5,
    0.0,
    1.0,
    -1.0,
    3.0,
    std::f64::consts::PI,
    -0.0,
    1e-300,
    2.5,
    64.0,
    -7.0,
    9007199254740993.0,
    1e308,
    -1e308,
    f64::INFINITY,
    f64::NAN,
];

fn check(data: &[u8], options: &ParseOptions<'_>) {
    if let Ok(circuit) = parse_program(data, SourceFormat::Qasm3, options) {
        assert!(circuit.num_qubits() <= options.limits.max_qubits);
        assert!(circuit.ops().len() <= options.limits.max_operations);
        if let Err(e) = circuit.validate() {
            panic!("accepted an invalid circuit: {e}");
        }
        if circuit.ops().len() <= 10_000 {
            let json = to_json(&circuit);
            if let Err(e) = parse_json(&json, &options.limits) {
                panic!("to_json wrote what parse_json refuses: {e}\n{json}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut options = ParseOptions {
        limits: limits.clone(),
        ..ParseOptions::default()
    };
    check(data, &options);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(inputs) = qasm3_inputs(text, &limits) else {
        return;
    };
    let pick = usize::from(data.last().copied().unwrap_or(0));
    let values: BTreeMap<String, f64> = inputs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), VALUES[(pick + i) % VALUES.len()]))
        .collect();
    if values.is_empty() {
        // A value for an input the program does not declare.
        options.inputs.insert("undeclared".into(), 1.0);
    } else {
        options.inputs = values;
    }
    check(data, &options);
});
