//! [`PgStore`]: the job store shared by every node of a cluster (stub until
//! the PostgreSQL implementation lands).

use super::StoreResult;
use crate::error::ServiceError;

/// The PostgreSQL job store.
#[derive(Debug)]
pub struct PgStore;

impl PgStore {
    /// Connects to `url`.
    ///
    /// # Errors
    /// Always, for now.
    pub async fn connect(_url: &str) -> StoreResult<PgStore> {
        Err(ServiceError::Store("PostgreSQL is not built yet".into()))
    }
}
