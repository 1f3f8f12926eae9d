//! The embedded backend (feature `sqlite`, native targets): `denokv_sqlite` on one worker
//! thread, a file path or `:memory:`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use denokv_proto::{
    AtomicWrite, AtomicWriteOutcome, Check, Consistency as KvConsistency, KvValue, Mutation,
    MutationKind, ReadRange, SnapshotReadOptions,
};
use denokv_sqlite::{Sqlite, SqliteConfig, SqliteNotifier};
use rand::SeedableRng;
use stitchapi::store::{StoreError, StoreErrorKind};
use stitchapi::time::Clock;

use crate::store::{Entry, KvBackend, NAME};

/// The embedded backend: `denokv_sqlite` on one worker thread.
pub(crate) struct SqliteBackend {
    sqlite: Sqlite,
    closed: AtomicBool,
    /// `sqlite <path>` or `sqlite :memory:`, for `Debug`.
    label: String,
}

impl SqliteBackend {
    pub(crate) fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let label = match path {
            Some(path) => format!("sqlite {}", path.display()),
            None => "sqlite :memory:".to_owned(),
        };
        let path = path.map(Path::to_path_buf);
        let conn_gen = move || {
            let conn = match &path {
                Some(path) => rusqlite::Connection::open(path),
                None => rusqlite::Connection::open_in_memory(),
            }
            .map_err(|e| deno_error_box(e.to_string()))?;
            // Processes sharing the file wait for each other's write locks.
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| deno_error_box(e.to_string()))?;
            let rng: Box<dyn rand::RngCore + Send> = Box::new(rand::rngs::StdRng::from_entropy());
            Ok((conn, rng))
        };
        // One worker: with `:memory:` each worker would open its own empty database, and one
        // connection serialises reads and writes of a file too.
        let config = SqliteConfig {
            num_workers: 1,
            batch_timeout: None,
        };
        let sqlite = Sqlite::new(conn_gen, SqliteNotifier::default(), config).map_err(|e| {
            StoreError::new(
                NAME,
                "open",
                StoreErrorKind::Unavailable,
                format!("could not open the SQLite database: {e}"),
            )
        })?;
        Ok(SqliteBackend {
            sqlite,
            closed: AtomicBool::new(false),
            label,
        })
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.sqlite.close();
        }
    }
}

/// How often one write is sent again while the file is busy (about 1.4 s in all).
const MAX_BUSY_RETRIES: u32 = 500;

/// A copy of the mutation kinds this store writes (`Set` of bytes, `Delete`).
fn clone_kind(kind: &MutationKind) -> MutationKind {
    match kind {
        MutationKind::Set(value) => MutationKind::Set(clone_value(value)),
        MutationKind::Delete => MutationKind::Delete,
        MutationKind::Sum {
            value,
            min_v8,
            max_v8,
            clamp,
        } => MutationKind::Sum {
            value: clone_value(value),
            min_v8: min_v8.clone(),
            max_v8: max_v8.clone(),
            clamp: *clamp,
        },
        MutationKind::Min(value) => MutationKind::Min(clone_value(value)),
        MutationKind::Max(value) => MutationKind::Max(clone_value(value)),
        MutationKind::SetSuffixVersionstampedKey(value) => {
            MutationKind::SetSuffixVersionstampedKey(clone_value(value))
        }
    }
}

fn clone_value(value: &KvValue) -> KvValue {
    match value {
        KvValue::V8(bytes) => KvValue::V8(bytes.clone()),
        KvValue::Bytes(bytes) => KvValue::Bytes(bytes.clone()),
        KvValue::U64(n) => KvValue::U64(*n),
    }
}

fn deno_error_box(message: String) -> deno_error::JsErrorBox {
    deno_error::JsErrorBox::generic(message)
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.close();
    }
}

/// A `denokv_sqlite` failure as a store error (`Unavailable` once the database is closed).
fn backend_error(operation: &'static str, message: String) -> StoreError {
    let kind = if message.contains("closed") {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Backend
    };
    StoreError::new(NAME, operation, kind, message)
}

#[async_trait::async_trait]
impl KvBackend for SqliteBackend {
    async fn read(
        &self,
        operation: &'static str,
        _clock: &dyn Clock,
        key: &[u8],
    ) -> Result<Option<Entry>, StoreError> {
        let mut end = key.to_vec();
        end.push(0);
        let range = ReadRange {
            start: key.to_vec(),
            end,
            limit: std::num::NonZeroU32::MIN,
            reverse: false,
        };
        let options = SnapshotReadOptions {
            consistency: KvConsistency::Strong,
        };
        let outputs = self
            .sqlite
            .snapshot_read(vec![range], options)
            .await
            .map_err(|e| backend_error(operation, e.to_string()))?;
        Ok(outputs
            .into_iter()
            .next()
            .and_then(|output| output.entries.into_iter().next())
            .map(|entry| (entry.value, entry.versionstamp)))
    }

    async fn write(
        &self,
        operation: &'static str,
        clock: &dyn Clock,
        write: AtomicWrite,
    ) -> Result<bool, StoreError> {
        // `denokv_sqlite` does not retry SQLITE_BUSY inside a write (another connection, such
        // as another process, holds the file's write lock): nothing was written, so the same
        // checked write is sent again, a bounded number of times.
        let mut busy = 0u32;
        loop {
            let attempt = AtomicWrite {
                checks: write
                    .checks
                    .iter()
                    .map(|check| Check {
                        key: check.key.clone(),
                        versionstamp: check.versionstamp,
                    })
                    .collect(),
                mutations: write
                    .mutations
                    .iter()
                    .map(|mutation| Mutation {
                        key: mutation.key.clone(),
                        kind: clone_kind(&mutation.kind),
                        expire_at: mutation.expire_at,
                    })
                    .collect(),
                enqueues: Vec::new(),
            };
            match self.sqlite.atomic_write(attempt).await {
                Ok(AtomicWriteOutcome::Committed(_)) => return Ok(true),
                Ok(AtomicWriteOutcome::CheckFailed { .. }) => return Ok(false),
                Err(denokv_sqlite::SqliteBackendError::SqliteError(e))
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && busy < MAX_BUSY_RETRIES =>
                {
                    busy += 1;
                    let pause = Duration::from_micros(fastrand::u64(500..=5_000));
                    clock.sleep(pause).await;
                }
                Err(e) => return Err(backend_error(operation, e.to_string())),
            }
        }
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}
