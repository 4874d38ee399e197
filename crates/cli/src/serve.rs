//! `kettle serve` (the HTTP job API of `kettle-server`), `kettle keys`
//! (its API keys) and `kettle store` (backups of its store, and copies
//! from one store to another): flags on top of the configuration file and
//! `KETTLE_*` variables, which `kettle-server` reads. Each command works on
//! one store, `--store URL` (`sqlite:DIR` or `postgres://…`) or the older
//! `--data-dir DIR`, else the configuration's.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytesize::ByteSize;
use kettle_server::{AuthMode, Copied, ServerConfig, ServerError, ServiceError, StoreLocation};

use crate::failure::Failure;

/// Options of `kettle serve`; each one given overrides the configuration.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Folder of the job database [default: ./kettle-data]; the same as
    /// `--store sqlite:DIR`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the store lives: `sqlite:DIR` (embedded, one server per
    /// folder) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, shared by any
    /// number of servers [config: store; env: KETTLE_STORE].
    #[arg(long, value_name = "URL", value_parser = parse_store, conflicts_with = "data_dir")]
    pub store: Option<StoreLocation>,
    /// Jobs that may run at once for one tenant [default: the core count];
    /// while all are busy, one more worker runs another tenant's job.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Memory all running state vectors may take together, like 16GiB
    /// [default: 4GiB].
    #[arg(long, value_parser = parse_bytes)]
    pub memory_budget: Option<ByteSize>,
    /// A TOML configuration file (see `kettle-server`'s `ServerConfig`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve without API keys on a non-loopback address (anyone who can
    /// reach it can submit jobs).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Local mode: no API keys, every request acts as tenant `local`, even
    /// if the store holds keys [config: auth = "local"]. Without it, a store
    /// that has ever held a key requires one.
    #[arg(long, conflicts_with = "require_keys")]
    pub local: bool,
    /// Require API keys even in a store that has never held one (every
    /// request gets 401 until `kettle keys create`) [config: auth = "keys"].
    #[arg(long)]
    pub require_keys: bool,
}

/// `kettle store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Which store.
    #[command(flatten)]
    pub which: WhichStore,
    /// What to do with the store.
    #[command(subcommand)]
    pub action: StoreAction,
}

/// The store a `keys` or `store` command works on.
#[derive(Debug, clap::Args)]
pub struct WhichStore {
    /// Folder of the job database [default: ./kettle-data, or the
    /// configuration's `store` or `data_dir`]; the same as `--store
    /// sqlite:DIR`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// The store: `sqlite:DIR` or `postgres://USER[:PASSWORD]@HOST/DB`
    /// [default: the configuration's; env: KETTLE_STORE].
    #[arg(long, global = true, value_name = "URL", value_parser = parse_store, conflicts_with = "data_dir")]
    pub store: Option<StoreLocation>,
    /// A TOML configuration file, for its `store` or `data_dir`.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// Store maintenance.
#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
    /// Write a consistent copy of an SQLite store to a new file, also while
    /// a server runs. To restore, put the copy as `kettle.db` into an empty
    /// folder and serve that folder. (PostgreSQL: use pg_dump.)
    Backup {
        /// The new file.
        path: PathBuf,
    },
    /// Copy every job (results and idempotency keys included) and every API
    /// key from one store into another, e.g. an SQLite folder into the
    /// PostgreSQL database of a cluster, then check that all arrived. What
    /// the destination holds already stays as it is, so running it again
    /// copies nothing new. Stop the server on an SQLite folder first.
    Copy {
        /// The store to copy from [default: the store of --store,
        /// --data-dir or the configuration].
        #[arg(long, value_name = "URL", value_parser = parse_store)]
        from: Option<StoreLocation>,
        /// The store to copy into (created if new).
        #[arg(long, value_name = "URL", value_parser = parse_store)]
        to: StoreLocation,
    },
}

/// `kettle keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// Which store.
    #[command(flatten)]
    pub which: WhichStore,
    /// What to do with the keys.
    #[command(subcommand)]
    pub action: KeysAction,
}

/// Key management.
#[derive(Debug, clap::Subcommand)]
pub enum KeysAction {
    /// Create a key for a tenant and print it (it is shown only once).
    Create {
        /// The tenant the key acts for.
        tenant: String,
    },
    /// List the keys (ids and tenants, never the secrets).
    List,
    /// Revoke a key by its id.
    Revoke {
        /// The key's id, as `list` shows it.
        id: String,
    },
}

fn parse_store(text: &str) -> Result<StoreLocation, String> {
    text.parse()
}

fn parse_bytes(text: &str) -> Result<ByteSize, String> {
    text.parse::<ByteSize>()
        .map_err(|e| format!("`{text}` is not a size like 16GiB ({e})"))
}

fn server_failure(e: ServerError) -> Failure {
    match e {
        ServerError::Config(_)
        | ServerError::Insecure(_)
        | ServerError::Store(_)
        | ServerError::Bind { .. }
        | ServerError::Service(ServiceError::InvalidRequest { .. }) => {
            Failure::input(format!("kettle: {e}"))
        }
        other => Failure::internal(format!("kettle: {other}")),
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub(crate) fn serve(args: &ServeArgs) -> Result<(), Failure> {
    let mut config = ServerConfig::load(args.config.as_deref()).map_err(server_failure)?;
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    // A flag overrides the configuration's store, whichever way that was
    // given.
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
        config.store = None;
    }
    if let Some(store) = &args.store {
        config.store = Some(store.clone());
    }
    if let Some(workers) = args.workers {
        config.workers = Some(workers);
    }
    if let Some(budget) = args.memory_budget {
        config.memory_budget = budget;
    }
    if args.insecure_no_auth {
        config.insecure_no_auth = true;
    }
    if args.local {
        config.auth = AuthMode::Local;
    }
    if args.require_keys {
        config.auth = AuthMode::Keys;
    }
    kettle_server::run(config).map_err(server_failure)
}

/// The store a `keys` or `store` command works on.
fn store_of(which: &WhichStore) -> Result<StoreLocation, Failure> {
    match (&which.store, &which.data_dir) {
        (Some(store), _) => Ok(store.clone()),
        (None, Some(dir)) => Ok(StoreLocation::Sqlite(dir.clone())),
        (None, None) => Ok(ServerConfig::load(which.config.as_deref())
            .map_err(server_failure)?
            .store_location()),
    }
}

/// Store maintenance: a backup of a live SQLite store, or a copy into
/// another store.
pub(crate) fn store(args: &StoreArgs) -> Result<(), Failure> {
    match &args.action {
        StoreAction::Backup { path } => {
            let store = store_of(&args.which)?;
            kettle_server::store_backup(&store, path).map_err(server_failure)?;
            let _ = writeln!(
                std::io::stderr(),
                "backed up the store {store} to {}",
                path.display()
            );
        }
        StoreAction::Copy { from, to } => {
            let from = match from {
                Some(_) if args.which.store.is_some() || args.which.data_dir.is_some() => {
                    return Err(Failure::input(
                        "kettle: give the store to copy from once: --from, or --store or \
                         --data-dir",
                    ));
                }
                Some(from) => from.clone(),
                None => store_of(&args.which)?,
            };
            copy(&from, to)?;
        }
    }
    Ok(())
}

/// `kettle store copy`: prints what was copied; fails naming what did not
/// arrive.
fn copy(from: &StoreLocation, to: &StoreLocation) -> Result<(), Failure> {
    let report = kettle_server::store_copy(from, to).map_err(server_failure)?;
    let mut out = std::io::stdout().lock();
    for (what, copied) in [("jobs", &report.jobs), ("API keys", &report.keys)] {
        writeln!(
            out,
            "{what}: {} in the source, {} copied, {} already in the destination",
            copied.source, copied.copied, copied.present
        )?;
    }
    if report.complete() {
        let _ = writeln!(std::io::stderr(), "copied {from} to {to}; the counts agree");
        return Ok(());
    }
    let mut problems = Vec::new();
    for (what, copied) in [("jobs", &report.jobs), ("API keys", &report.keys)] {
        problems.extend(differences(what, copied, to));
    }
    Err(Failure::internal(format!(
        "kettle: the copy from {from} to {to} is incomplete: {}",
        problems.join("; ")
    )))
}

/// What is wrong with one kind's copy, in words.
fn differences(what: &str, copied: &Copied, to: &StoreLocation) -> Vec<String> {
    let named = |ids: &[String], count: u64| {
        let more = count.saturating_sub(ids.len() as u64);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", ids.join(", "))
    };
    let mut problems = Vec::new();
    if copied.missing > 0 {
        problems.push(format!(
            "{} of the {what} are not in {to} ({})",
            copied.missing,
            named(&copied.missing_ids, copied.missing)
        ));
    }
    if copied.differing > 0 {
        problems.push(format!(
            "{} of the {what} differ in {to} (tenant, secret or revocation: {}); \
             revoke or fix them there",
            copied.differing,
            named(&copied.differing_ids, copied.differing)
        ));
    }
    if copied.source != copied.copied + copied.present {
        problems.push(format!(
            "{what}: {} in the source, but {} copied and {} there before",
            copied.source, copied.copied, copied.present
        ));
    }
    problems
}

/// Creates, lists or revokes API keys in the store.
pub(crate) fn keys(args: &KeysArgs) -> Result<(), Failure> {
    let store = store_of(&args.which)?;
    let mut out = std::io::stdout().lock();
    match &args.action {
        KeysAction::Create { tenant } => {
            let created = kettle_server::keys_create(&store, tenant).map_err(server_failure)?;
            writeln!(out, "{}", created.key)?;
            let _ = writeln!(
                std::io::stderr(),
                "created key {} for tenant {}; it is shown only this once \
                 (send it as `Authorization: Bearer <key>`)",
                created.id,
                created.tenant
            );
        }
        KeysAction::List => {
            for key in kettle_server::keys_list(&store).map_err(server_failure)? {
                let state = key
                    .revoked_at
                    .map_or_else(|| "active".to_string(), |at| format!("revoked {at}"));
                writeln!(
                    out,
                    "{}  {}  created {}  {state}",
                    key.id, key.tenant, key.created_at
                )?;
            }
        }
        KeysAction::Revoke { id } => {
            if !kettle_server::keys_revoke(&store, id).map_err(server_failure)? {
                return Err(Failure::input(format!(
                    "kettle: no active key has the id {id}"
                )));
            }
            writeln!(out, "revoked {id}")?;
        }
    }
    Ok(())
}
