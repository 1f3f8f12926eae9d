//! Heap allocations per uncached call of a stitch (retry, total and per-attempt timeouts, typed
//! output) against a bare reqwest call doing the same GET and serde_json decode, against the
//! same loopback server, in one run: `cargo bench -p stitchapi --bench allocations`.
//!
//! Counted on the client's thread only (a current-thread runtime: the client's connection
//! tasks run there too; the server runs on a thread of its own and is not counted), at 1, 32
//! and 128 concurrent calls: allocations, bytes and the largest single allocation per call.
//! Targets: at most bare reqwest + 5 allocations per call, none above 1 KB that bare reqwest
//! does not make.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use tracking_allocator::{AllocationGroupId, AllocationRegistry, AllocationTracker, Allocator};

mod support;

use stitchapi::{Input, Retry, Stitch, Timeout};
use support::{User, serve};

#[global_allocator]
static GLOBAL: Allocator<std::alloc::System> = Allocator::system();

thread_local! {
    /// Set on the thread whose allocations are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static OVER_1K: AtomicUsize = AtomicUsize::new(0);
static OVER_1K_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Counts the allocations of the thread marked [`COUNTED`].
struct Counter;

impl AllocationTracker for Counter {
    fn allocated(&self, _addr: usize, size: usize, _wrapped: usize, _group: AllocationGroupId) {
        if COUNTED.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(size, Ordering::Relaxed);
            LARGEST.fetch_max(size, Ordering::Relaxed);
            if size > 1024 {
                OVER_1K.fetch_add(1, Ordering::Relaxed);
                OVER_1K_BYTES.fetch_add(size, Ordering::Relaxed);
            }
        }
    }

    fn deallocated(
        &self,
        _addr: usize,
        _size: usize,
        _wrapped: usize,
        _source: AllocationGroupId,
        _current: AllocationGroupId,
    ) {
    }
}

/// Allocations, bytes and the largest allocation per call, over `calls` calls.
struct PerCall {
    allocations: f64,
    bytes: f64,
    largest: usize,
    /// Allocations over 1 KB per call, and their bytes.
    over_1k: f64,
    over_1k_bytes: f64,
}

/// Runs `concurrency` loops of `per_loop` calls of `call` on this thread, counted.
async fn count<F, Fut>(concurrency: usize, per_loop: usize, call: F) -> PerCall
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let run = || {
        join_all((0..concurrency).map(|_| {
            let call = &call;
            async move {
                for _ in 0..per_loop {
                    call().await;
                }
            }
        }))
    };
    // Warm-up: connections opened, pools and caches filled.
    run().await;
    ALLOCATIONS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    OVER_1K.store(0, Ordering::Relaxed);
    OVER_1K_BYTES.store(0, Ordering::Relaxed);
    COUNTED.with(|counted| counted.set(true));
    run().await;
    COUNTED.with(|counted| counted.set(false));
    let calls = (concurrency * per_loop) as f64;
    PerCall {
        allocations: ALLOCATIONS.load(Ordering::Relaxed) as f64 / calls,
        bytes: BYTES.load(Ordering::Relaxed) as f64 / calls,
        largest: LARGEST.load(Ordering::Relaxed),
        over_1k: OVER_1K.load(Ordering::Relaxed) as f64 / calls,
        over_1k_bytes: OVER_1K_BYTES.load(Ordering::Relaxed) as f64 / calls,
    }
}

fn main() {
    AllocationRegistry::set_global_tracker(Counter).expect("no other tracker");
    AllocationRegistry::enable_tracking();
    // The server, on a runtime of its own thread.
    let (base_tx, base_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        server.block_on(async move {
            base_tx.send(serve().await).unwrap();
            std::future::pending::<()>().await
        });
    });
    let base = base_rx.recv().unwrap();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async move {
        let stitch = Stitch::get(format!("{base}/users/{{id}}"))
            .output::<User>()
            .retry(Retry::attempts(3))
            .timeout(Timeout::total("10s").each("4s"))
            .build()
            .unwrap();
        let reqwest = reqwest::Client::new();
        let ours = || async {
            stitch.call(Input::new().param("id", 7)).await.unwrap();
        };
        let bare = || async {
            let response = reqwest
                .get(format!("{base}/users/{}", 7))
                .timeout(Duration::from_secs(4))
                .send()
                .await
                .unwrap();
            let body = response.bytes().await.unwrap();
            serde_json::from_slice::<User>(&body).unwrap();
        };
        println!("heap allocations per call (client thread), stitchapi vs bare reqwest:");
        println!(
            "  {:>11}  {:>17}  {:>21}  {:>19}  {:>33}",
            "concurrency", "allocations", "bytes", "largest allocation", "over 1 KB: count and bytes"
        );
        for concurrency in [1, 32, 128] {
            let per_loop = 4_000 / concurrency;
            let theirs = count(concurrency, per_loop, bare).await;
            let ours = count(concurrency, per_loop, ours).await;
            println!(
                "  {concurrency:>11}  {:>7.1} vs {:>6.1}  {:>9.0} vs {:>8.0} B  {:>7} vs {:>7} B  {:.2} ({:.0} B) vs {:.2} ({:.0} B)",
                ours.allocations,
                theirs.allocations,
                ours.bytes,
                theirs.bytes,
                ours.largest,
                theirs.largest,
                ours.over_1k,
                ours.over_1k_bytes,
                theirs.over_1k,
                theirs.over_1k_bytes,
            );
        }
    });
}
