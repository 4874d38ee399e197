//! `kettle job-run`: one job of `kettle serve` with its state split over
//! MPI ranks. Rank 0 reads the job (a `kettle_service::RankJob`, as JSON)
//! on standard input and hands it to every rank; rank 0 prints the job's
//! result as one JSON line. It is what a service's launch command
//! (`mpirun`, `srun`) starts for a job larger than one node: both forward
//! rank 0's standard input and output, so ranks on other machines need
//! neither the store nor a shared file. Rank 0 also writes its progress
//! to standard error (`kettle_service::PROGRESS_PREFIX` lines).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use kettle_core::{Parallelism, Simulator};
use kettle_service::{PROGRESS_PREFIX, RankJob, run_job_across_reporting};

use crate::JobRunArgs;
use crate::failure::Failure;
use crate::ranks::Ranks;

/// The largest job read: a request is at most a few MiB (its tenant's
/// `max_request_bytes`), its spec not much more.
const MAX_JOB_BYTES: usize = 64 << 20;
/// Least milliseconds between two progress lines.
const REPORT_EVERY_MS: u64 = 250;

pub(crate) fn job_run(args: &JobRunArgs, ranks: Option<&Ranks>) -> Result<(), Failure> {
    let Some(ranks) = ranks else {
        return Err(Failure::input(
            "kettle job-run: runs under mpirun or srun (a build with --features mpi)",
        ));
    };
    let comm = ranks.comm();
    if let Some(expected) = args.ranks
        && comm.size() != expected as usize
    {
        // Every rank sees the same sizes, so every rank refuses alike.
        return Err(Failure::input(format!(
            "kettle job-run: started on {} ranks, but the job was planned for {expected} \
             (check the launch command's rank count)",
            comm.size()
        )));
    }
    let mut bytes = Vec::new();
    if comm.rank() == 0 {
        std::io::stdin()
            .lock()
            .take(MAX_JOB_BYTES as u64 + 1)
            .read_to_end(&mut bytes)?;
    }
    // Every rank judges the same bytes, so every rank fails alike.
    comm.broadcast(&mut bytes);
    if bytes.len() > MAX_JOB_BYTES {
        return Err(Failure::input(format!(
            "kettle job-run: the job on standard input is larger than {} MiB",
            MAX_JOB_BYTES >> 20
        )));
    }
    let job: RankJob = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::input(format!(
            "kettle job-run: the job on standard input does not read: {e}"
        ))
    })?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let sim = Simulator::new().with_parallelism(Parallelism::threads(threads)?);
    // Rank 0 tells the launching server how far it is, four times a second
    // at most.
    let reports = comm.rank() == 0;
    let started = std::time::Instant::now();
    let last_ms = AtomicU64::new(0);
    let report = |fraction: f64| {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if reports && ms >= last_ms.load(Ordering::Relaxed) + REPORT_EVERY_MS {
            last_ms.store(ms, Ordering::Relaxed);
            let _ = writeln!(std::io::stderr().lock(), "{PROGRESS_PREFIX}{fraction:.4}");
        }
    };
    let result = run_job_across_reporting(&sim, &job, comm, &report)
        .map_err(|message| Failure::input(format!("kettle job-run: {message}")))?;
    if let Some(result) = result {
        let line = serde_json::to_string(&result)
            .map_err(|e| Failure::internal(format!("kettle job-run: {e}")))?;
        writeln!(std::io::stdout().lock(), "{line}")?;
    }
    Ok(())
}
