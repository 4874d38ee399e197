//! Tenants' API keys: creation (the plaintext is shown once), listing,
//! revocation, and verification of a bearer token.
//!
//! A key reads `kt_<id>_<secret>`: `id` (12 hex digits) is public and finds
//! the stored row; `secret` is 32 random bytes from the operating system.
//! Only SHA-256 of the whole key is stored. A plain fast hash is right here
//! (unlike for passwords): with 256 bits of entropy there is nothing to
//! brute-force, so a slow KDF would only slow every request. The stored and
//! computed hashes are compared in constant time; the row is found by the
//! public id, so no lookup depends on secret bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AuthMode;
use crate::error::ServiceError;
use crate::store::{ApiKeyRow, JobStore};
use crate::time::{now_ms, rfc3339};

const PREFIX: &str = "kt_";
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;
/// Longest tenant name.
const MAX_TENANT_CHARS: usize = 64;

/// A key just created: the only time its plaintext exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// Public id (for `revoke`).
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The key to put in `Authorization: Bearer …`.
    pub key: String,
}

/// A key as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Public id.
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> Result<String, ServiceError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| ServiceError::Store(format!("no randomness from the system: {e}")))?;
    Ok(hex(&buf))
}

fn digest(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Checks a tenant name: 1–64 of `A–Z a–z 0–9 _ . -`.
///
/// # Errors
/// [`ServiceError::InvalidRequest`] naming what is wrong.
pub fn check_tenant(tenant: &str) -> Result<(), ServiceError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_CHARS
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "tenant",
            format!(
                "tenant names are 1 to {MAX_TENANT_CHARS} letters, digits, `_`, `.` or `-`; got `{tenant}`"
            ),
        ))
    }
}

/// Creates a key for `tenant`.
///
/// # Errors
/// A bad tenant name, or a store failure.
pub async fn create_key(store: &dyn JobStore, tenant: &str) -> Result<CreatedKey, ServiceError> {
    check_tenant(tenant)?;
    let id = random_hex(ID_BYTES)?;
    let key = format!("{PREFIX}{id}_{}", random_hex(SECRET_BYTES)?);
    store
        .insert_key(&ApiKeyRow {
            id: id.clone(),
            tenant: tenant.to_owned(),
            hash: digest(&key),
            created_ms: now_ms(),
            revoked_ms: None,
        })
        .await?;
    Ok(CreatedKey {
        id,
        tenant: tenant.to_owned(),
        key,
    })
}

/// Every key, oldest first.
///
/// # Errors
/// A store failure.
pub async fn list_keys(store: &dyn JobStore) -> Result<Vec<KeyInfo>, ServiceError> {
    Ok(store
        .list_keys()
        .await?
        .into_iter()
        .map(|k| KeyInfo {
            id: k.id,
            tenant: k.tenant,
            created_at: rfc3339(k.created_ms),
            revoked_at: k.revoked_ms.map(rfc3339),
        })
        .collect())
}

/// Revokes the key `id`; whether it was active.
///
/// # Errors
/// A store failure.
pub async fn revoke_key(store: &dyn JobStore, id: &str) -> Result<bool, ServiceError> {
    store.revoke_key(id, now_ms()).await
}

/// The tenant of a bearer key.
///
/// # Errors
/// [`ServiceError::Unauthorized`] for a malformed, unknown or revoked key.
pub async fn authenticate(store: &dyn JobStore, key: &str) -> Result<String, ServiceError> {
    let unknown = || ServiceError::Unauthorized("the API key is not valid".into());
    let id = key
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(unknown)?;
    let row = store.find_key(id).await?.ok_or_else(unknown)?;
    let matches: bool = digest(key).ct_eq(&row.hash).into();
    if !matches {
        return Err(unknown());
    }
    if row.revoked_ms.is_some() {
        return Err(ServiceError::Unauthorized("the API key was revoked".into()));
    }
    Ok(row.tenant)
}

/// How a service authenticates, and why: the one place the mode is
/// decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthDecision {
    /// Local mode: no keys, every request is tenant `local`.
    pub local: bool,
    /// Why, for the start-up line.
    pub reason: String,
}

/// Decides the mode from the operator's choice and the store. Local mode
/// is never the default for a store that has held a key (revoking the last
/// one does not switch authentication off), nor for a shared store (see
/// [`JobStore::shared`]); without an active key, every
/// request then gets `401` until `kettle keys create` adds one, which takes
/// effect without a restart (keys are checked per request).
///
/// # Errors
/// A store failure.
pub async fn decide_auth(
    mode: AuthMode,
    store: &dyn JobStore,
) -> Result<AuthDecision, ServiceError> {
    let held = store.keys_held().await?;
    let active = store.active_key_count().await?;
    let no_active_key = if active == 0 {
        "; no key is active now, so every request gets 401 until `kettle keys create TENANT` \
         adds one (no restart needed)"
    } else {
        ""
    };
    Ok(match mode {
        AuthMode::Local => AuthDecision {
            local: true,
            reason: format!(
                "LOCAL MODE, chosen with --local (auth = \"local\"): requests need no API key and \
                 all act as tenant `local`{}",
                if held {
                    "; the API keys in this store are not checked"
                } else {
                    ""
                }
            ),
        },
        AuthMode::Keys => AuthDecision {
            local: false,
            reason: format!(
                "API keys required (Authorization: Bearer <key>), chosen with --require-keys \
                 (auth = \"keys\"){no_active_key}"
            ),
        },
        AuthMode::Auto if held => AuthDecision {
            local: false,
            reason: format!(
                "API keys required (Authorization: Bearer <key>): this store has held API keys, \
                 so authentication stays on (local mode only with --local){no_active_key}"
            ),
        },
        // Several nodes on one database are a service on a network, and a
        // key created later must take effect on every node without a
        // restart: keys are required from the start.
        AuthMode::Auto if store.shared() => AuthDecision {
            local: false,
            reason: format!(
                "API keys required (Authorization: Bearer <key>): the store is shared by several \
                 nodes (local mode only with --local){no_active_key}"
            ),
        },
        AuthMode::Auto => AuthDecision {
            local: true,
            reason: "LOCAL MODE: this data folder has never held an API key, so requests need \
                     none and all act as tenant `local`; create a key with `kettle keys create \
                     TENANT` (and restart) to require authentication"
                .into(),
        },
    })
}
