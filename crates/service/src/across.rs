//! Running a job with each execution's state split over ranks
//! ([`kettle_core::distributed`]): what a process group started under MPI
//! runs for a job larger than one node's memory. Every rank is handed the
//! same [`RankJob`] and calls [`run_job_across`]; rank 0 gets the job's
//! result, the same as [`execute::run_job`](crate::execute) gives for it in
//! one process (the same counts and shot order for the seed; states,
//! probabilities and expectation values to rounding).
//!
//! What a distributed state cannot give yet is refused on every rank
//! before anything runs: noise, the density matrix, `adjoint_gradient`, a
//! sparse state (`statevector` past `max_listed_qubits`) and probabilities
//! over more measured qubits than that.

use std::collections::BTreeMap;
use std::time::Instant;

use kettle_core::distributed::Communicator;
use kettle_core::{Float, Simulator, StateVector, final_measurements, measured_qubits};
use kettle_ir::Circuit;
use serde::{Deserialize, Serialize};

use crate::config::TenantLimits;
use crate::execute::{RunFailure, Wanted, execution_circuit, fraction_done, sweep_progress};
use crate::model::{ExecutionResult, JobResult, JobSpec, Method, Precision, ResultType};
use crate::prepare::read_noise_model;

/// How rank 0 of `kettle job-run` reports progress on standard error: this,
/// then the fraction done (`kettle-progress 0.25`), a line at a time; the
/// launch reads it for the job's progress.
pub const PROGRESS_PREFIX: &str = "kettle-progress ";

/// What every rank of a job across ranks is handed: the job, and the
/// limits its program is parsed again under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankJob {
    /// The admitted job.
    pub spec: JobSpec,
    /// The tenant's limits at admission.
    pub limits: TenantLimits,
    /// The most qubits whose outcomes or amplitudes a result lists.
    pub max_listed_qubits: u32,
}

/// Runs every execution of `job` with its state split over the ranks of
/// `comm` on `sim`'s threads: the result on rank 0, `None` on the others.
///
/// # Errors
/// The same message on every rank: what a distributed run cannot give (see
/// the module documentation), a program or noise model that no longer
/// reads, or a failed run.
pub fn run_job_across(
    sim: &Simulator,
    job: &RankJob,
    comm: &dyn Communicator,
) -> Result<Option<JobResult>, String> {
    run_job_across_reporting(sim, job, comm, &|_| {})
}

/// [`run_job_across`], telling `progress` on this rank the fraction of the
/// job done (executions done and the running one's share) as it goes.
///
/// # Errors
/// As [`run_job_across`].
pub fn run_job_across_reporting(
    sim: &Simulator,
    job: &RankJob,
    comm: &dyn Communicator,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<JobResult>, String> {
    run(sim, job, comm, progress).map_err(|e| match e {
        RunFailure::Stopped => "stopped".to_string(),
        RunFailure::Error(message) => message,
    })
}

fn run(
    sim: &Simulator,
    job: &RankJob,
    comm: &dyn Communicator,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Option<JobResult>, RunFailure> {
    let started = Instant::now();
    let spec = &job.spec;
    if let Some(why) = why_not_split(spec, job.max_listed_qubits) {
        return Err(RunFailure::Error(why));
    }
    let ranks = comm.size().max(1) as u64;
    let noise = read_noise_model(spec.noise_model.as_ref())
        .map_err(|e| RunFailure::Error(format!("the noise model no longer reads: {e}")))?;
    let mut executions = Vec::with_capacity(spec.executions.len());
    for (i, inputs) in spec.executions.iter().enumerate() {
        let circuit = execution_circuit(spec, inputs, &job.limits, noise.as_ref())?;
        // Admitted for one state of its size: each rank holds its share,
        // and branches replay rather than copy beyond it.
        let global = ranks.trailing_zeros();
        // Fewer qubits than global ones: refused by the run, with its reason.
        let local = circuit.num_qubits().saturating_sub(global);
        let slice = match spec.precision {
            Precision::F64 => StateVector::<f64>::bytes_for(local),
            Precision::F32 => StateVector::<f32>::bytes_for(local),
        };
        let share = (spec.memory_bytes / ranks).max(u64::try_from(slice).unwrap_or(u64::MAX));
        let sim = sim.clone().with_memory_budget(Some(share));
        let seed = spec.seed.wrapping_add(i as u64);
        let run = match spec.precision {
            Precision::F64 => run_one::<f64>,
            Precision::F32 => run_one::<f32>,
        };
        let of = spec.executions.len() as u64;
        let report = |p| progress(fraction_done(sweep_progress(p, i as u64, of)));
        if let Some(mut result) = run(&sim, &circuit, job, seed, comm, &report)? {
            result.inputs = inputs.clone();
            executions.push(result);
        }
    }
    Ok((comm.rank() == 0).then(|| JobResult {
        executions,
        run_seconds: started.elapsed().as_secs_f64(),
    }))
}

/// What a distributed run cannot give yet, if `spec` asks for it: the
/// reason, as admission reports it for a job too large for one node and as
/// every rank refuses it. (Probabilities over more than
/// `max_listed_qubits` measured qubits are refused by the run: which
/// qubits are measured is known once the circuit is read.)
pub(crate) fn why_not_split(spec: &JobSpec, max_listed_qubits: u32) -> Option<String> {
    let what = if spec.noisy || spec.noise_model.is_some() {
        "noise"
    } else if spec.method == Method::DensityMatrix {
        "the density_matrix method"
    } else if (spec.result_types.iter()).any(|t| matches!(t, ResultType::AdjointGradient(_))) {
        "adjoint_gradient"
    } else if spec.result_types.contains(&ResultType::Statevector)
        && spec.qubits > max_listed_qubits
    {
        "a sparse state vector (past max_listed_qubits)"
    } else {
        return None;
    };
    Some(format!("{what} is not supported across ranks yet"))
}

/// One execution over the ranks; its result on rank 0.
fn run_one<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    job: &RankJob,
    seed: u64,
    comm: &dyn Communicator,
    progress: &(dyn Fn(kettle_core::Progress) + Sync),
) -> Result<Option<ExecutionResult>, RunFailure> {
    let spec = &job.spec;
    let wanted = Wanted::of(spec)?;
    let finals = final_measurements(circuit);
    let shots = spec.shots;
    let mut result = Wanted::empty_result(seed, shots, Vec::new());
    if !wanted.runs(shots) {
        return Ok((comm.rank() == 0).then_some(result));
    }
    let wants_probabilities = spec.result_types.contains(&ResultType::Probabilities);
    if let (true, Some(finals)) = (wants_probabilities, finals.as_deref())
        && measured_qubits(finals).len() as u32 > job.max_listed_qubits
    {
        return Err(RunFailure::Error(
            "probabilities over more measured qubits than max_listed_qubits are not listed \
             across ranks yet; ask for counts instead"
                .into(),
        ));
    }
    let method = kettle_core::Method::Statevector;
    let options = wanted.run_options(shots, seed, finals.is_some(), method);
    let run = sim.run_distributed_reporting::<F>(circuit, &options, comm, progress)?;
    // What the state gives is gathered by collective calls on every rank.
    let mut probabilities: Option<BTreeMap<String, f64>> = None;
    let mut statevector = None;
    if let (Some(state), Some(finals)) = (run.state.as_ref(), finals.as_deref()) {
        if wants_probabilities {
            probabilities = state.classical_distribution(finals, circuit.num_clbits())?;
        }
        if spec.result_types.contains(&ResultType::Statevector) {
            statevector = state
                .gather()
                .map(|whole| whole.into_iter().map(|a| [a.re, a.im]).collect());
        }
    }
    let Some(counts) = run.counts.as_ref() else {
        return Ok(None);
    };
    result.seed = run.seed;
    wanted.record(&mut result, counts, &run.expectations);
    result.probabilities = probabilities;
    result.statevector = statevector;
    Ok(Some(result))
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use kettle_core::distributed::ThreadGroup;
    use kettle_core::{Monitor, Progress};

    use super::*;
    use crate::execute::run_job;
    use crate::model::{GradientRequest, JobRequest};
    use crate::prepare::check_request;

    struct Unwatched;

    impl Monitor for Unwatched {
        fn on_progress(&self, _: Progress) -> ControlFlow<()> {
            ControlFlow::Continue(())
        }
    }

    fn job(request: serde_json::Value) -> RankJob {
        let request: JobRequest = serde_json::from_value(request).unwrap();
        let limits = TenantLimits::default();
        RankJob {
            spec: check_request(&request, &limits, 1 << 30, 20).unwrap(),
            limits,
            max_listed_qubits: 20,
        }
    }

    /// A dynamic program: gates, a mid-circuit measurement, a reset and a
    /// condition, on 8 qubits (the top ones global at 2 and 4 ranks).
    const DYNAMIC: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[8];\ncreg c[8];\n\
        creg m[1];\nh q[7];\ncx q[7],q[0];\nry(0.7) q[6];\ncx q[6],q[3];\nmeasure q[7] -> m[0];\n\
        if(m==1) x q[5];\nreset q[6];\nh q[6];\ncu1(0.4) q[6],q[2];\nrx(1.1) q[7];\n\
        measure q -> c;\n";

    /// A sweep without mid-circuit measurement, whose state is listed.
    const SWEEP: &str = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\n\
        qubit[7] q;\nbit[7] c;\nh q[0];\nfor int i in [0:5] { cx q[i], q[i + 1]; }\n\
        rx(theta) q[6];\nry(theta * 2) q[3];\nc = measure q;\n";

    fn assert_close(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}");
    }

    fn assert_same(split: &JobResult, single: &JobResult, ranks: usize) {
        assert_eq!(split.executions.len(), single.executions.len());
        for (s, o) in split.executions.iter().zip(&single.executions) {
            assert_eq!(s.inputs, o.inputs);
            assert_eq!((s.seed, s.shots), (o.seed, o.shots));
            assert_eq!(s.counts, o.counts, "{ranks} ranks");
            assert_eq!(s.memory, o.memory, "{ranks} ranks");
            match (&s.probabilities, &o.probabilities) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
                    for (k, p) in b {
                        assert_close(a[k], *p, k);
                    }
                }
                (a, b) => assert_eq!(a.is_some(), b.is_some()),
            }
            match (&s.statevector, &o.statevector) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.len(), b.len());
                    for (x, y) in a.iter().zip(b) {
                        assert_close(x[0], y[0], "re");
                        assert_close(x[1], y[1], "im");
                    }
                }
                (a, b) => assert_eq!(a.is_some(), b.is_some()),
            }
            assert_eq!(s.expectations.len(), o.expectations.len());
            for (a, b) in s.expectations.iter().zip(&o.expectations) {
                assert_eq!(a.observable, b.observable);
                assert_close(a.value, b.value, &a.observable);
                assert_close(a.std_error, b.std_error, &a.observable);
            }
        }
    }

    #[test]
    fn a_job_across_ranks_gives_the_single_process_result() {
        let sim = Simulator::new();
        let jobs = [
            job(serde_json::json!({
                "program": {"format": "qasm2", "source": DYNAMIC},
                "shots": 3000, "seed": 5,
                "result_types": ["counts", "memory"],
            })),
            job(serde_json::json!({
                "program": {"format": "qasm3", "source": SWEEP},
                "shots": 500, "seed": 8,
                "inputs": {"theta": [0.1, 0.7, 2.0]},
                "result_types": ["counts", "memory", "probabilities", "statevector",
                                 {"expectation": ["Y6 X3", "Z0 Z5"]}],
            })),
        ];
        for job in &jobs {
            let single = run_job(
                &sim,
                &job.spec,
                None,
                &job.limits,
                job.max_listed_qubits,
                &Unwatched,
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
            for ranks in [2, 4] {
                let out = ThreadGroup::run(ranks, |comm| run_job_across(&sim, job, comm));
                let split = out[0].as_ref().unwrap().as_ref().expect("rank 0's result");
                assert_same(split, &single, ranks);
                assert!(out[1..].iter().all(|r| matches!(r, Ok(None))));
            }
        }
    }

    #[test]
    fn what_cannot_split_is_refused_alike_on_every_rank() {
        let sim = Simulator::new();
        let base = job(serde_json::json!({
            "program": {"format": "qasm2", "source": DYNAMIC},
            "shots": 10,
        }));
        let mut noisy = base.clone();
        noisy.spec.noisy = true;
        let mut density = base.clone();
        density.spec.method = Method::DensityMatrix;
        let mut gradient = base.clone();
        gradient
            .spec
            .result_types
            .push(ResultType::AdjointGradient(GradientRequest {
                observables: vec!["Z0".into()],
                parameters: None,
            }));
        let mut sparse = base.clone();
        sparse.spec.result_types = vec![ResultType::Statevector];
        sparse.max_listed_qubits = 4;
        let mut wide = job(serde_json::json!({
            "program": {"format": "qasm3", "source": SWEEP},
            "inputs": {"theta": 0.3},
            "result_types": ["probabilities"],
        }));
        wide.max_listed_qubits = 4;
        // Two qubits over eight ranks: the run's own refusal, not a panic.
        let out = ThreadGroup::run(8, |comm| {
            let bell = job(serde_json::json!({
                "program": {"format": "qasm2", "source":
                    "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\n\
                     cx q[0],q[1];\nmeasure q -> c;\n"},
            }));
            run_job_across(&sim, &bell, comm)
        });
        for rank in &out {
            let message = rank.as_ref().expect_err("too narrow");
            assert!(message.contains("per slice"), "{message}");
        }
        for (job, what) in [
            (noisy, "noise"),
            (density, "density_matrix"),
            (gradient, "adjoint_gradient"),
            (sparse, "sparse state"),
            (wide, "probabilities"),
        ] {
            let out = ThreadGroup::run(2, |comm| run_job_across(&sim, &job, comm));
            for rank in &out {
                let message = rank.as_ref().expect_err(what);
                assert!(message.contains(what), "{message}");
                assert!(message.contains("across ranks"), "{message}");
            }
        }
    }
}
