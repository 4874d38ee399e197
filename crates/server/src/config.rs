//! [`ServerConfig`]: everything `kettle serve` is configured with, from
//! defaults, then a TOML file (`--config kettle.toml`), then `KETTLE_*`
//! environment variables (nested fields with `__`:
//! `KETTLE_LIMITS__MAX_QUBITS=28`); the CLI's flags go last. The store is
//! `store` (`KETTLE_STORE`, `--store`: `sqlite:DIR` or `postgres://…`) or,
//! as before it existed, `data_dir`; naming both is refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kettle_service::store::StoreLocation;
use kettle_service::{AuthMode, RankLaunch, ServiceConfig, TenantLimits};
use serde::{Deserialize, Serialize};

use crate::ServerError;

/// The server's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// Folder of the job database (default `./kettle-data`), when `store`
    /// is not set: the same as `store = "sqlite:DIR"`.
    pub data_dir: PathBuf,
    /// Where the store lives: `"sqlite:DIR"` (the embedded default, one
    /// server per folder) or `"postgres://USER@HOST/DB"` (a database any
    /// number of nodes share). Unset: `data_dir`.
    #[serde(with = "store_location")]
    pub store: Option<StoreLocation>,
    /// Jobs that may run at once for one tenant (default: the core
    /// count); while all are busy, one more worker runs a job of a tenant
    /// with none running.
    pub workers: Option<usize>,
    /// Threads one simulation may use (default: the core count).
    pub sim_threads: Option<usize>,
    /// Bytes of state vectors all running jobs together may hold, such as
    /// `"16GiB"` (default 4 GiB).
    pub memory_budget: ByteSize,
    /// Seconds a job may run before it fails (default 3600).
    pub max_run_time_seconds: u64,
    /// Seconds a submission's checks (its program parsed for every
    /// execution) may take before it is refused with `422`
    /// `limit-exceeded` (default 10).
    pub max_admission_seconds: u64,
    /// Longest `?wait=` a request may block, in seconds (default 60).
    pub max_wait_seconds: u64,
    /// Largest qubit count whose state vector is returned as JSON; 2^this
    /// is the most non-zero probabilities a result lists (default 20).
    pub max_listed_qubits: u32,
    /// Largest result a job may have, in bytes of JSON, such as `"64MiB"`
    /// (default 128 MiB, room for one 20-qubit state vector; at most
    /// 512 MiB). Known at submission: a job whose result could be larger
    /// is refused with `413`.
    pub max_result_bytes: ByteSize,
    /// Seconds a response body may take to be sent (default 60); a client
    /// that reads slower loses the connection, and the memory held for
    /// its response is let go.
    pub write_timeout_seconds: u64,
    /// Bytes of job results that responses may hold in memory at once
    /// (default 256 MiB); a response that cannot get its share within a
    /// few seconds is answered `503` with `Retry-After`.
    pub response_memory: ByteSize,
    /// Days finished jobs are kept (default 7).
    pub retention_days: u64,
    /// Seconds running jobs get to finish at SIGTERM before they are
    /// stopped and re-queued (default 30).
    pub shutdown_grace_seconds: u64,
    /// Deepest nesting of a JSON request body (default 32).
    pub max_json_depth: usize,
    /// Seconds a client may take to send its request headers (default 5);
    /// slower clients get `408` and lose the connection.
    pub header_timeout_seconds: u64,
    /// Seconds a client may take to send a request body (default 30); a
    /// client that trickles bytes gets `408` and loses the connection.
    pub body_timeout_seconds: u64,
    /// Connections open at once (default 4096); more wait in the kernel's
    /// listen backlog until one closes, so thousands of idle sockets cannot
    /// exhaust memory or file descriptors.
    pub max_connections: usize,
    /// Let local mode (no API keys) listen on a non-loopback address.
    pub insecure_no_auth: bool,
    /// How requests are authenticated: `"auto"` (default: keys once the
    /// store has ever held one, local mode for a store that never has),
    /// `"local"` (no keys; `--local`) or `"keys"` (`--require-keys`).
    pub auth: AuthMode,
    /// On a PostgreSQL store: seconds a node's claim on a job lasts
    /// without its heartbeat (default 15; renewed every third of it). A
    /// node that dies has its jobs run again elsewhere within about this
    /// plus `claim_poll_ms`.
    pub lease_seconds: u64,
    /// On a PostgreSQL store: milliseconds between a node's looks for work
    /// when nothing wakes it (default 1000).
    pub claim_poll_ms: u64,
    /// On a PostgreSQL store: the largest `memory_budget` of any node, such
    /// as `"64GiB"`. Jobs are admitted up to it and run by a node whose own
    /// budget they fit (default: this node's `memory_budget`).
    pub cluster_memory_budget: Option<ByteSize>,
    /// How a job larger than `memory_budget` runs with its state split
    /// over MPI ranks (`[ranks]`); unset, such a job is refused.
    pub ranks: Option<RanksConfig>,
    /// Limits of every tenant without its own entry.
    pub limits: TenantLimits,
    /// Limits per tenant.
    pub tenants: BTreeMap<String, TenantLimits>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./kettle-data"),
            store: None,
            workers: None,
            sim_threads: None,
            memory_budget: ByteSize::gib(4),
            max_run_time_seconds: 3600,
            max_admission_seconds: 10,
            max_wait_seconds: 60,
            max_listed_qubits: 20,
            max_result_bytes: ByteSize::b(kettle_service::DEFAULT_MAX_RESULT_BYTES),
            write_timeout_seconds: 60,
            response_memory: ByteSize::mib(256),
            retention_days: 7,
            shutdown_grace_seconds: 30,
            max_json_depth: 32,
            header_timeout_seconds: 5,
            body_timeout_seconds: 30,
            max_connections: 4096,
            insecure_no_auth: false,
            auth: AuthMode::Auto,
            lease_seconds: 15,
            claim_poll_ms: 1000,
            cluster_memory_budget: None,
            ranks: None,
            limits: TenantLimits::default(),
            tenants: BTreeMap::new(),
        }
    }
}

/// `[ranks]`: the launch of a job across MPI ranks. A job whose state is
/// larger than `memory_budget` (and that a split state can run: no noise,
/// no density matrix, no gradient) is admitted up to `ranks ×
/// memory_per_rank` and run by `launcher … program job-run`.
///
/// ```toml
/// [ranks]
/// ranks = 4
/// launcher = ["mpirun", "-np", "{ranks}", "--hostfile", "/etc/kettle/hosts"]
/// memory_per_rank = "64GiB"
/// threads_per_rank = 16
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RanksConfig {
    /// Ranks a job runs on: a power of two, at least 2.
    pub ranks: u32,
    /// The command that starts the ranks (`{ranks}` is replaced by the
    /// rank count); it must forward rank 0's standard input and output, as
    /// `mpirun` and `srun` do.
    pub launcher: Vec<String>,
    /// The `kettle` executable (built with `--features mpi`) on the ranks'
    /// machines (default: this server's own executable).
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// Bytes of state one rank may hold (default: `memory_budget`).
    #[serde(default)]
    pub memory_per_rank: Option<ByteSize>,
    /// Simulation threads of each rank (default: `sim_threads` divided
    /// among the ranks, as when they share this machine).
    #[serde(default)]
    pub threads_per_rank: Option<usize>,
}

impl ServerConfig {
    /// Defaults, then `file` if given, then `KETTLE_*` variables.
    ///
    /// # Errors
    /// [`ServerError::Config`] naming the bad file, field or value.
    pub fn load(file: Option<&Path>) -> Result<ServerConfig, ServerError> {
        // What the operator gave, apart from the defaults: to tell a
        // `data_dir` they set from the default one.
        let mut given = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ServerError::Config(format!(
                    "the configuration file {} does not exist",
                    file.display()
                )));
            }
            given = given.merge(Toml::file(file));
        }
        // Variables of the same prefix that are not fields: KETTLE_LOG is
        // the log filter (read by the tracing setup); the test suite's
        // PostgreSQL and MPI switches reach the servers the tests start.
        given = given.merge(
            Env::prefixed("KETTLE_")
                .ignore(&["LOG", "TEST_POSTGRES", "REQUIRE_POSTGRES", "REQUIRE_MPI"])
                .split("__"),
        );
        let config: ServerConfig = Figment::from(Serialized::defaults(ServerConfig::default()))
            .merge(given.clone())
            .extract()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        if let Some(store) = &config.store
            && given.contains("data_dir")
        {
            return Err(ServerError::Config(format!(
                "both `store` ({store}) and `data_dir` ({}) are set (in the configuration \
                 file or KETTLE_STORE and KETTLE_DATA_DIR): give one; `data_dir = \"DIR\"` \
                 is `store = \"sqlite:DIR\"`",
                config.data_dir.display()
            )));
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses values the server cannot honour.
    ///
    /// # Errors
    /// [`ServerError::Config`] naming the field.
    pub fn check(&self) -> Result<(), ServerError> {
        let ceiling = kettle_service::MAX_RESULT_BYTES_CEILING;
        if let Some(ranks) = &self.service_config().ranks {
            ranks.check().map_err(ServerError::Config)?;
        }
        if self.max_result_bytes.as_u64() > ceiling {
            return Err(ServerError::Config(format!(
                "max_result_bytes is {}, more than the {} a result may have (it is stored as one SQLite value, and held in memory while it is stored and sent)",
                self.max_result_bytes.as_u64(),
                ceiling
            )));
        }
        Ok(())
    }

    /// Where the store lives: `store`, else the SQLite folder `data_dir`.
    pub fn store_location(&self) -> StoreLocation {
        self.store
            .clone()
            .unwrap_or_else(|| StoreLocation::Sqlite(self.data_dir.clone()))
    }

    /// The service's part.
    pub fn service_config(&self) -> ServiceConfig {
        let mut c = ServiceConfig::new(&self.data_dir);
        c.store = self.store_location();
        c.auth = self.auth;
        if let Some(w) = self.workers {
            c.workers = w.max(1);
        }
        if let Some(t) = self.sim_threads {
            c.sim_threads = t.max(1);
        }
        c.memory_budget = self.memory_budget.as_u64();
        c.max_run_time = Duration::from_secs(self.max_run_time_seconds.max(1));
        c.max_admission_time = Duration::from_secs(self.max_admission_seconds.max(1));
        c.max_listed_qubits = self.max_listed_qubits;
        // Past the ceiling is refused by `check`, and capped by the service.
        c.max_result_bytes = self.max_result_bytes.as_u64();
        c.retention = Duration::from_secs(self.retention_days.saturating_mul(86_400));
        c.lease = Duration::from_secs(self.lease_seconds.max(1));
        c.claim_poll = Duration::from_millis(self.claim_poll_ms.clamp(10, 60_000));
        c.cluster_memory_budget = self.cluster_memory_budget.map(|b| b.as_u64());
        c.default_limits = self.limits.clone();
        c.tenant_limits = self.tenants.clone();
        c.ranks = self.ranks.as_ref().map(|r| RankLaunch {
            ranks: r.ranks,
            launcher: r.launcher.clone(),
            program: r.program.clone().unwrap_or_else(|| {
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("kettle"))
            }),
            memory_per_rank: r.memory_per_rank.map_or(c.memory_budget, |b| b.as_u64()),
            threads_per_rank: r
                .threads_per_rank
                .unwrap_or(c.sim_threads / r.ranks.max(1) as usize)
                .max(1),
        });
        c
    }
}

/// `store` as text: what `StoreLocation` parses. Serialising gives the URL
/// whole, password included (the defaults are serialised, and they have no
/// store); `Debug` and `Display` of a location hide the password.
mod store_location {
    use kettle_service::store::StoreLocation;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        store: &Option<StoreLocation>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match store {
            None => s.serialize_none(),
            Some(StoreLocation::Sqlite(dir)) => {
                s.serialize_some(&format!("sqlite:{}", dir.display()))
            }
            Some(StoreLocation::Postgres(url)) => s.serialize_some(url),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<StoreLocation>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure type
mod tests {
    use super::*;

    #[test]
    fn a_toml_file_and_the_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "kettle.toml",
                "addr = \"0.0.0.0:9000\"\nmemory_budget = \"16GiB\"\nworkers = 3\n\
                 [limits]\nmax_qubits = 28\n[tenants.big]\nmax_qubits = 32\n",
            )?;
            jail.set_env("KETTLE_MAX_RUN_TIME_SECONDS", "5");
            jail.set_env("KETTLE_MAX_ADMISSION_SECONDS", "3");
            jail.set_env("KETTLE_LIMITS__MAX_SHOTS", "100");
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            assert_eq!(c.addr, "0.0.0.0:9000".parse().unwrap());
            assert_eq!(c.memory_budget.as_u64(), 16 << 30);
            assert_eq!(c.workers, Some(3));
            assert_eq!(c.limits.max_qubits, 28);
            assert_eq!(c.limits.max_shots, 100);
            assert_eq!(c.tenants["big"].max_qubits, 32);
            let s = c.service_config();
            assert_eq!(s.max_run_time, Duration::from_secs(5));
            assert_eq!(s.max_admission_time, Duration::from_secs(3));
            assert_eq!(s.limits_for("big").max_qubits, 32);
            assert_eq!(s.limits_for("other").max_qubits, 28);
            Ok(())
        });
    }

    #[test]
    fn the_log_filter_and_test_variables_are_not_fields() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KETTLE_LOG", "warn");
            jail.set_env(
                "KETTLE_TEST_POSTGRES",
                "postgres://postgres@127.0.0.1/postgres",
            );
            jail.set_env("KETTLE_REQUIRE_POSTGRES", "1");
            jail.set_env("KETTLE_REQUIRE_MPI", "1");
            jail.set_env("KETTLE_MAX_WAIT_SECONDS", "2");
            let c = ServerConfig::load(None).unwrap();
            assert_eq!(c.max_wait_seconds, 2);
            Ok(())
        });
    }

    #[test]
    fn result_and_response_limits_are_read_and_bounded() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "kettle.toml",
                "max_result_bytes = \"64MiB\"\nresponse_memory = \"1GiB\"\n",
            )?;
            jail.set_env("KETTLE_WRITE_TIMEOUT_SECONDS", "7");
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            assert_eq!(c.service_config().max_result_bytes, 64 << 20);
            assert_eq!(c.response_memory.as_u64(), 1 << 30);
            assert_eq!(c.write_timeout_seconds, 7);
            jail.set_env("KETTLE_MAX_RESULT_BYTES", "1GB");
            let err = ServerConfig::load(None).unwrap_err();
            assert!(err.to_string().contains("max_result_bytes"), "{err}");
            Ok(())
        });
        let defaults = ServerConfig::default();
        assert_eq!(
            defaults.service_config().max_result_bytes,
            kettle_service::DEFAULT_MAX_RESULT_BYTES
        );
    }

    #[test]
    fn the_auth_mode_is_set_by_file_or_environment() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(ServerConfig::load(None).unwrap().auth, AuthMode::Auto);
            jail.create_file("kettle.toml", "auth = \"local\"\n")?;
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            assert_eq!(c.service_config().auth, AuthMode::Local);
            jail.set_env("KETTLE_AUTH", "keys");
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            assert_eq!(c.auth, AuthMode::Keys);
            jail.set_env("KETTLE_AUTH", "none");
            assert!(ServerConfig::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_store_is_set_by_file_or_environment_and_not_beside_data_dir() {
        figment::Jail::expect_with(|jail| {
            let c = ServerConfig::load(None).unwrap();
            assert_eq!(
                c.service_config().store,
                StoreLocation::Sqlite("./kettle-data".into())
            );
            jail.create_file("kettle.toml", "store = \"postgres://k:pw@db/kettle\"\n")?;
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            assert_eq!(
                c.service_config().store,
                StoreLocation::Postgres("postgres://k:pw@db/kettle".into())
            );
            assert!(!format!("{c:?}").contains("pw"), "{c:?}");
            jail.set_env("KETTLE_STORE", "sqlite:/srv/kettle");
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            assert_eq!(
                c.store_location(),
                StoreLocation::Sqlite("/srv/kettle".into())
            );
            jail.set_env("KETTLE_DATA_DIR", "/srv/other");
            let err = ServerConfig::load(None).unwrap_err().to_string();
            assert!(err.contains("store") && err.contains("data_dir"), "{err}");
            jail.set_env("KETTLE_STORE", "mysql://db/kettle");
            let err = ServerConfig::load(None).unwrap_err().to_string();
            assert!(err.contains("mysql://"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("KETTLE_DATA_DIR", "/srv/kettle");
            let c = ServerConfig::load(None).unwrap();
            assert_eq!(
                c.store_location(),
                StoreLocation::Sqlite("/srv/kettle".into())
            );
            Ok(())
        });
    }

    #[test]
    fn the_ranks_launch_is_read_filled_in_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "kettle.toml",
                "memory_budget = \"1GiB\"\nsim_threads = 8\n[ranks]\nranks = 4\n\
                 launcher = [\"mpirun\", \"-np\", \"{ranks}\"]\nprogram = \"/opt/kettle\"\n",
            )?;
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            let launch = c.service_config().ranks.unwrap();
            assert_eq!(launch.memory_per_rank, 1 << 30);
            assert_eq!(launch.memory_budget(), 4 << 30);
            assert_eq!(launch.threads_per_rank, 2);
            assert_eq!(
                launch.command_line().join(" "),
                "mpirun -np 4 /opt/kettle job-run --ranks 4 --threads 2"
            );
            assert_eq!(c.service_config().split_memory_budget(), 4 << 30);
            jail.create_file("kettle.toml", "[ranks]\nranks = 3\nlauncher = [\"srun\"]\n")?;
            let err = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap_err();
            assert!(err.to_string().contains("power of two"), "{err}");
            jail.create_file("kettle.toml", "[ranks]\nranks = 2\nlauncher = []\n")?;
            let err = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap_err();
            assert!(err.to_string().contains("launcher"), "{err}");
            Ok(())
        });
    }

    /// The README's `[ranks]` example loads as written.
    #[test]
    fn the_readmes_ranks_example_loads() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("\n## Past one machine: MPI ranks\n")
            .nth(1)
            .expect("the README's MPI section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("its toml block");
        figment::Jail::expect_with(|jail| {
            jail.create_file("kettle.toml", example)?;
            let c = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap();
            let launch = c.service_config().ranks.unwrap();
            assert_eq!((launch.ranks, launch.threads_per_rank), (4, 16));
            assert_eq!(launch.memory_budget(), 256 << 30);
            assert!(
                launch
                    .command_line()
                    .join(" ")
                    .starts_with("mpirun -np 4 --hostfile /etc/kettle/hosts ")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_fields_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("kettle.toml", "adress = \"1.2.3.4:1\"\n")?;
            let err = ServerConfig::load(Some(Path::new("kettle.toml"))).unwrap_err();
            assert!(err.to_string().contains("adress"), "{err}");
            Ok(())
        });
    }
}
