//! The job request decoder as the HTTP server runs it:
//! `kettle_service::decode_json` (the body's nesting depth against the
//! server's default limit, 32; integral floats as integers) reads a
//! `JobRequest`, and the service's admission check (`check_request`:
//! request fields, the program parsed for every execution of a sweep, tenant
//! limits, memory budget) decides, with the default tenant limits and a
//! 1 GiB budget.
#![no_main]

use kettle_service::{JobRequest, TenantLimits, check_request, decode_json};
use libfuzzer_sys::fuzz_target;

/// The server's default `max_json_depth`.
const MAX_JSON_DEPTH: usize = 32;
/// A modest memory budget: 1 GiB (26 qubits at f64).
const MEMORY_BUDGET: u64 = 1 << 30;
/// The service's default `max_listed_qubits`.
const MAX_LISTED_QUBITS: u32 = 20;

fuzz_target!(|data: &[u8]| {
    let limits = TenantLimits::default();
    if data.len() > limits.max_request_bytes {
        return;
    }
    let Ok(req) = decode_json::<JobRequest>(data, MAX_JSON_DEPTH) else {
        return;
    };
    if let Ok(spec) = check_request(&req, &limits, MEMORY_BUDGET, MAX_LISTED_QUBITS) {
        // What admission accepts is within the limits it was given.
        assert!(spec.qubits <= limits.max_qubits);
        assert!(u128::from(spec.memory_bytes) <= u128::from(MEMORY_BUDGET));
        assert!(spec.executions.len() <= limits.max_executions);
        assert!(spec.shots <= limits.max_shots);
        // The spec is stored as JSON text and read back by a worker.
        let text = serde_json::to_string(&spec).expect("a spec serializes");
        let back: kettle_service::JobSpec =
            serde_json::from_str(&text).expect("a stored spec reads back");
        assert_eq!(back.executions.len(), spec.executions.len());
    }
});
