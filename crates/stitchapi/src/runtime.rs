//! Send-ness across targets: one set of traits for native (`Send`) and wasm32 (`?Send`).
//!
//! Public because the traits an integrator implements use these items in their bounds and
//! signatures: [`MaybeSend`]/[`MaybeSync`] bound [`Clock`](crate::time::Clock),
//! [`StitchStore`](crate::StitchStore), [`Transport`](crate::transport::Transport),
//! [`AuthStrategy`](crate::AuthStrategy) and [`OutputValidator`](crate::OutputValidator), and
//! [`Clock::sleep`](crate::time::Clock::sleep) returns a [`BoxFuture`].
//!
//! On native targets every future and trait object the library hands around is `Send`, so a
//! stitch can be called from any tokio task. On `wasm32` the platform futures (`fetch`, timers)
//! are not `Send`, and there is only one thread, so the bound disappears. Implement
//! [`MaybeSend`] and [`MaybeSync`] by doing nothing: they are blanket-implemented.

use std::future::Future;
use std::pin::Pin;

/// `Send` on native targets, no bound on `wasm32`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` on native targets, no bound on `wasm32`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` on native targets, no bound on `wasm32`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}

/// `Sync` on native targets, no bound on `wasm32`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// A boxed future that is `Send` on native targets and not on `wasm32`: what
/// [`Clock::sleep`](crate::time::Clock::sleep) returns.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed future that is `Send` on native targets and not on `wasm32`: what
/// [`Clock::sleep`](crate::time::Clock::sleep) returns.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `future` in the background, detached: a tokio task on native targets (when a runtime
/// is running; otherwise the future is dropped), a microtask on wasm32. Used for work no caller
/// waits for, such as giving a throttle slot back when a call's future is dropped.
pub(crate) fn spawn_detached<F>(future: F)
where
    F: Future<Output = ()> + MaybeSend + 'static,
{
    #[cfg(not(target_arch = "wasm32"))]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        drop(handle.spawn(future));
    }
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(future);
}
