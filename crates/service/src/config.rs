//! What the service is configured with: the memory budget, workers, the
//! run-time limit, result caps, retention, per-tenant limits, and the launch
//! of jobs larger than a node across MPI ranks. Loading it
//! from files and the environment is the server's business.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::StoreLocation;

/// The default of [`ServiceConfig::max_result_bytes`]: 128 MiB, room for
/// one 20-qubit state vector (at most 52 bytes of JSON per amplitude, 55 MB)
/// with the probabilities of its 20 measured qubits beside it.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 128 << 20;
/// The largest [`ServiceConfig::max_result_bytes`] a server accepts: a
/// result is stored as one SQLite value, and SQLite refuses values over
/// 10^9 bytes (the job would then never end); a result is also held in
/// memory, whole, while it is stored and served.
pub const MAX_RESULT_BYTES_CEILING: u64 = 512 << 20;

/// Limits that apply to each tenant's submissions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Most qubits in one job.
    pub max_qubits: u32,
    /// Most shots per execution.
    pub max_shots: u64,
    /// Most executions (sweep length) in one job.
    pub max_executions: usize,
    /// Most jobs queued or running at once; one more gets `429`.
    pub max_active_jobs: usize,
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            max_qubits: 34,
            max_shots: 1_000_000,
            max_executions: 1000,
            max_active_jobs: 1000,
            max_request_bytes: 4 << 20,
        }
    }
}

/// How requests are authenticated: chosen by the operator; [`Auto`]
/// (the default) is decided from the store (see
/// [`keys::decide_auth`](crate::keys::decide_auth)).
///
/// [`Auto`]: AuthMode::Auto
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Keys are required once the store has ever held one; a store that
    /// never has runs in local mode.
    #[default]
    Auto,
    /// Local mode: no keys, every request is tenant `local`.
    Local,
    /// Keys are required, even before the first one exists.
    Keys,
}

/// The service's configuration.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How requests are authenticated.
    pub auth: AuthMode,
    /// Where the store lives: an SQLite data folder (created if missing,
    /// locked while the service runs) or a PostgreSQL database.
    pub store: StoreLocation,
    /// Worker threads: jobs that may run at once. One more thread starts
    /// a job only while all of these are busy, and only of a tenant with no
    /// job running (so one tenant's long jobs never keep another's waiting);
    /// a single tenant uses exactly `workers`.
    pub workers: usize,
    /// Threads one simulation may use for its passes over the state (shared
    /// by all workers).
    pub sim_threads: usize,
    /// Bytes of state vectors all running jobs together may hold.
    pub memory_budget: u64,
    /// A job running longer is stopped and fails.
    pub max_run_time: Duration,
    /// A submission whose checks (its program parsed for every execution
    /// of its sweep) take longer is refused (`limit-exceeded`,
    /// `max_admission_seconds`). The parser's work budget bounds one parse
    /// to a few seconds; this bounds a whole sweep, and a machine slower
    /// than the budget assumed.
    pub max_admission_time: Duration,
    /// Largest qubit count whose state vector is returned as JSON; 2^this is
    /// the most non-zero probabilities a result lists (any number of qubits
    /// may be measured).
    pub max_listed_qubits: u32,
    /// Largest result a job may have, in bytes of JSON (an upper bound known
    /// at admission); a job whose result could be larger is refused with
    /// `413`. At most [`MAX_RESULT_BYTES_CEILING`].
    pub max_result_bytes: u64,
    /// Finished jobs are deleted after this long.
    pub retention: Duration,
    /// How often finished jobs past the retention time are looked for
    /// (also once at start).
    pub purge_interval: Duration,
    /// Limits for tenants without their own entry.
    pub default_limits: TenantLimits,
    /// Limits per tenant name.
    pub tenant_limits: BTreeMap<String, TenantLimits>,
    /// A job blocked on memory this long stops smaller jobs from being
    /// started past it, so a large job is not starved.
    pub reserve_after: Duration,
    /// On a shared store: how long a node's claim on a job lasts without
    /// its heartbeat (renewed every third of it). A node that dies or
    /// loses the database has its jobs claimed by another node within
    /// `lease + claim_poll`.
    pub lease: Duration,
    /// On a shared store: the largest memory budget of any node. A node
    /// admits jobs up to it, though it claims only those that fit its own
    /// `memory_budget`, so a big node runs what a small one accepted.
    /// `None`: this node's own budget.
    pub cluster_memory_budget: Option<u64>,
    /// On a shared store: how often a node looks for work without being
    /// woken (notifications are lost while a connection is down), and how
    /// often a `?wait` re-reads a job another node runs.
    pub claim_poll: Duration,
    /// How this node runs a job larger than its memory budget with the
    /// state split over MPI ranks; `None`: it does not, and such a job is
    /// refused at submission.
    pub ranks: Option<RankLaunch>,
}

/// How a node starts the ranks of a job larger than its memory budget:
/// `launcher` (with `{ranks}` replaced by [`ranks`](Self::ranks)), then
/// `program job-run --ranks R --threads T`. The launcher is the cluster's
/// own (`mpirun -np {ranks} --hostfile hosts`, `srun -n {ranks}`); it
/// forwards rank 0's standard input (the job) and output (its result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankLaunch {
    /// Ranks a job runs on: a power of two, at least 2. `kettle job-run`
    /// refuses to run on any other number, so a launcher that starts a
    /// different count fails the job instead of splitting it wrongly.
    pub ranks: u32,
    /// The command that starts the ranks, before the program: its first
    /// word is the executable, found on `PATH`.
    pub launcher: Vec<String>,
    /// The `kettle` executable on the ranks' machines.
    pub program: std::path::PathBuf,
    /// Bytes of state one rank may hold: a job needs at most `ranks` times
    /// this.
    pub memory_per_rank: u64,
    /// Simulation threads of each rank.
    pub threads_per_rank: usize,
}

impl RankLaunch {
    /// The most bytes of state a job run across the ranks may need.
    pub fn memory_budget(&self) -> u64 {
        self.memory_per_rank.saturating_mul(u64::from(self.ranks))
    }

    /// The command line: the launcher with `{ranks}` filled in, then the
    /// program and its arguments.
    pub fn command_line(&self) -> Vec<String> {
        let ranks = self.ranks.to_string();
        let mut line: Vec<String> = (self.launcher.iter())
            .map(|word| word.replace("{ranks}", &ranks))
            .collect();
        line.push(self.program.display().to_string());
        line.extend([
            "job-run".into(),
            "--ranks".into(),
            ranks,
            "--threads".into(),
            self.threads_per_rank.max(1).to_string(),
        ]);
        line
    }

    /// Refuses a launch that cannot work.
    ///
    /// # Errors
    /// What is wrong, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if self.ranks < 2 || !self.ranks.is_power_of_two() {
            return Err(format!(
                "ranks.ranks is {}: a state splits over a power of two ranks, at least 2",
                self.ranks
            ));
        }
        if self.launcher.first().is_none_or(String::is_empty) {
            return Err(
                "ranks.launcher is empty: give the command that starts ranks, such as \
                 [\"mpirun\", \"-np\", \"{ranks}\"]"
                    .into(),
            );
        }
        Ok(())
    }
}

impl ServiceConfig {
    /// Defaults for an SQLite store in `data_dir` (set
    /// [`store`](Self::store) for another): workers and simulation threads from the
    /// core count, a 4 GiB budget, 1 hour per job, 10 seconds per
    /// admission, 20 listed qubits, results
    /// kept 7 days
    /// (looked for every 10 minutes).
    pub fn new(data_dir: impl Into<PathBuf>) -> ServiceConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServiceConfig {
            auth: AuthMode::Auto,
            store: StoreLocation::Sqlite(data_dir.into()),
            workers: cores,
            sim_threads: cores,
            memory_budget: 4 << 30,
            max_run_time: Duration::from_secs(3600),
            max_admission_time: Duration::from_secs(10),
            max_listed_qubits: 20,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            retention: Duration::from_secs(7 * 24 * 3600),
            purge_interval: Duration::from_secs(600),
            default_limits: TenantLimits::default(),
            tenant_limits: BTreeMap::new(),
            reserve_after: Duration::from_secs(30),
            lease: Duration::from_secs(15),
            cluster_memory_budget: None,
            claim_poll: Duration::from_secs(1),
            ranks: None,
        }
    }

    /// The memory budget a job's state is admitted against: the cluster's
    /// largest on a shared store, when given.
    pub fn admission_memory_budget(&self) -> u64 {
        self.cluster_memory_budget
            .map_or(self.memory_budget, |c| c.max(self.memory_budget))
    }

    /// The most bytes of state a job may need, run here or across ranks:
    /// what a job that can be split is admitted against.
    pub fn split_memory_budget(&self) -> u64 {
        let alone = self.admission_memory_budget();
        self.ranks
            .as_ref()
            .map_or(alone, |r| r.memory_budget().max(alone))
    }

    /// The limits of `tenant`.
    pub fn limits_for(&self, tenant: &str) -> &TenantLimits {
        self.tenant_limits
            .get(tenant)
            .unwrap_or(&self.default_limits)
    }
}
