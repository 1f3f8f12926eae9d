//! The permit a grant hands back: it frees its concurrency slot when dropped.

use std::fmt;

use tokio::sync::OwnedSemaphorePermit;

use crate::runtime::spawn_detached;
use crate::store::DynStore;

/// Holds what a grant took (a concurrency slot, a fleet lease, or a chain of them) and gives
/// it back: awaited through [`release`](Self::release) on a call's normal path, so a fleet slot
/// is free for every process by the time the call returns (and a process that exits right
/// after its last call leaks nothing); in the background (a detached task) when the
/// permit is dropped instead, as when the call's future is cancelled. A lost release costs at
/// most one lease period, after which the slot expires on its own. A chain releases in
/// reverse order.
#[must_use = "dropping the permit releases the throttle slot at once"]
pub(crate) struct Permit {
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

    /// Forgets a lease the store refused: nothing to release.
    pub(crate) fn disarm(mut self) {
        self.inner = Inner::Empty;
    }

    #[cfg(test)]
    /// Whether this permit holds a concurrency slot (or a chain holding one).
    pub(crate) fn holds_slot(&self) -> bool {
        match &self.inner {
            Inner::Empty => false,
            Inner::Local(_) | Inner::Lease { .. } => true,
            Inner::Chain(permits) => permits.iter().any(Permit::holds_slot),
        }
    }
}

impl Permit {
    /// Gives the slot back now and waits until the store has taken it back. Store errors are
    /// swallowed (and traced): the lease expires on its own. If this future is dropped
    /// half-way, what it has not released yet is released in the background.
    pub(crate) async fn release(self) {
        let mut pending = vec![self];
        while let Some(mut permit) = pending.pop() {
            match &permit.inner {
                Inner::Lease { store, key, token } => {
                    if let Err(error) = store.release(key, token).await {
                        tracing::debug!(%error, key, "lease release failed; it expires on its own");
                    }
                    permit.inner = Inner::Empty;
                }
                Inner::Chain(_) => {
                    if let Inner::Chain(permits) =
                        std::mem::replace(&mut permit.inner, Inner::Empty)
                    {
                        // Popped last first: the chain releases in reverse order.
                        pending.extend(permits);
                    }
                }
                Inner::Empty | Inner::Local(_) => {}
            }
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
