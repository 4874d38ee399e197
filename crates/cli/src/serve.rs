//! `kettle serve` (the HTTP job API of `kettle-server`), `kettle keys`
//! (its API keys) and `kettle store` (backups of its store): flags on top
//! of the configuration file and `KETTLE_*` variables, which
//! `kettle-server` reads.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytesize::ByteSize;
use kettle_server::{AuthMode, ServerConfig, ServerError, ServiceError};

use crate::failure::Failure;

/// Options of `kettle serve`; each one given overrides the configuration.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Folder of the job database [default: ./kettle-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
    /// Folder of the job database [default: ./kettle-data, or the
    /// configuration's `data_dir`].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file, for its `data_dir`.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do with the store.
    #[command(subcommand)]
    pub action: StoreAction,
}

/// Store maintenance.
#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
    /// Write a consistent copy of the store to a new file, also while a
    /// server runs. To restore, put the copy as `kettle.db` into an empty
    /// folder and serve that folder.
    Backup {
        /// The new file.
        path: PathBuf,
    },
}

/// `kettle keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// Folder of the job database [default: ./kettle-data, or the
    /// configuration's `data_dir`].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file, for its `data_dir`.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
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

fn parse_bytes(text: &str) -> Result<ByteSize, String> {
    text.parse::<ByteSize>()
        .map_err(|e| format!("`{text}` is not a size like 16GiB ({e})"))
}

fn server_failure(e: ServerError) -> Failure {
    match e {
        ServerError::Config(_)
        | ServerError::Insecure(_)
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
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
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

/// The data folder a `keys` or `store` command works on.
fn data_dir_of(data_dir: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, Failure> {
    match data_dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(ServerConfig::load(config).map_err(server_failure)?.data_dir),
    }
}

/// Store maintenance: a backup of the live store.
pub(crate) fn store(args: &StoreArgs) -> Result<(), Failure> {
    let data_dir = data_dir_of(args.data_dir.as_deref(), args.config.as_deref())?;
    match &args.action {
        StoreAction::Backup { path } => {
            kettle_server::store_backup(&data_dir, path).map_err(server_failure)?;
            let _ = writeln!(
                std::io::stderr(),
                "backed up the store in {} to {}",
                data_dir.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Creates, lists or revokes API keys in the data folder's store.
pub(crate) fn keys(args: &KeysArgs) -> Result<(), Failure> {
    let data_dir = data_dir_of(args.data_dir.as_deref(), args.config.as_deref())?;
    let data_dir: &Path = &data_dir;
    let mut out = std::io::stdout().lock();
    match &args.action {
        KeysAction::Create { tenant } => {
            let created = kettle_server::keys_create(data_dir, tenant).map_err(server_failure)?;
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
            for key in kettle_server::keys_list(data_dir).map_err(server_failure)? {
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
            if !kettle_server::keys_revoke(data_dir, id).map_err(server_failure)? {
                return Err(Failure::input(format!(
                    "kettle: no active key has the id {id}"
                )));
            }
            writeln!(out, "revoked {id}")?;
        }
    }
    Ok(())
}
