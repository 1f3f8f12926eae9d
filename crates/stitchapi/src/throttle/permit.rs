//! The permit a grant hands back: it frees its concurrency slot when dropped.

use std::fmt;

use tokio::sync::OwnedSemaphorePermit;

use crate::runtime::spawn_detached;
use crate::store::DynStore;

/// Holds what a grant took (a concurrency slot, a fleet lease, or a chain of them) and gives
/// it back when dropped, including when the call's future is cancelled. A fleet lease is
/// released in the background through [`spawn_detached`]; a lost release costs at most one
/// lease period, after which the slot expires on its own. A chain releases in reverse order.
#[must_use = "dropping the permit releases the throttle slot at once"]
pub struct Permit {
    inner: Inner,
}

enum Inner {
    Empty,
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
    Lease {
        store: DynStore,
        key: String,
        token: String,
    },
    Chain(Vec<Permit>),
}

impl Permit {
    pub(crate) fn empty() -> Self {
        Permit {
            inner: Inner::Empty,
        }
    }

    pub(crate) fn local(permit: OwnedSemaphorePermit) -> Self {
        Permit {
            inner: Inner::Local(permit),
        }
    }

    pub(crate) fn lease(store: DynStore, key: String, token: String) -> Self {
        Permit {
            inner: Inner::Lease { store, key, token },
        }
    }

    pub(crate) fn chain(permits: Vec<Permit>) -> Self {
        Permit {
            inner: Inner::Chain(permits),
        }
    }

    /// Whether this permit holds a concurrency slot (or a chain holding one).
    pub fn holds_slot(&self) -> bool {
        match &self.inner {
            Inner::Empty => false,
            Inner::Local(_) | Inner::Lease { .. } => true,
            Inner::Chain(permits) => permits.iter().any(Permit::holds_slot),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.inner, Inner::Empty) {
            Inner::Empty | Inner::Local(_) => {}
            Inner::Lease { store, key, token } => spawn_detached(async move {
                // Errors are swallowed: the lease expires on its own.
                let _ = store.release(&key, &token).await;
            }),
            Inner::Chain(mut permits) => {
                while let Some(permit) = permits.pop() {
                    drop(permit);
                }
            }
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Empty => f.write_str("Permit(empty)"),
            Inner::Local(_) => f.write_str("Permit(local slot)"),
            Inner::Lease { key, .. } => write!(f, "Permit(lease {key:?})"),
            Inner::Chain(permits) => f.debug_tuple("Permit").field(permits).finish(),
        }
    }
}
