//! A fleet store that cannot take owned locks (it declares only get/set, as Workers KV will):
//! the build says so, and single-flight (cache fills, token fetches) stays within the
//! process instead of taking a lock that cannot be correct.

use crate::support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use stitchapi::store::{Capabilities, Scope, StitchStore, StoreError};
use stitchapi::{Auth, Cache, Coalesce, Input, MemoryStore, OAuth2, Seam};
use support::{Answer, Upstream};

/// Shared by a "fleet", but with nothing beyond get, set and a non-atomic increment. Records
/// every key it is asked about.
#[derive(Debug, Default)]
struct GetSetOnly {
    inner: MemoryStore,
    keys: Mutex<BTreeSet<String>>,
}

impl GetSetOnly {
    fn saw(&self, key: &str) {
        self.keys.lock().unwrap().insert(key.to_owned());
    }
}

#[async_trait::async_trait]
impl StitchStore for GetSetOnly {
    fn name(&self) -> &'static str {
        "get-set-only"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.saw(key);
        self.inner.get(key).await
    }
    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.saw(key);
        self.inner.set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        self.saw(key);
        self.inner.increment(key, ttl).await
    }
}

/// Collects what the build logs.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn single_flight_stays_in_the_process_and_the_build_says_so() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/oauth/token",
        [
            Answer::json(200, json!({"access_token": "t1", "expires_in": 3600}))
                .delayed(Duration::from_millis(50)),
        ],
    );
    upstream.script(
        "/prices",
        [Answer::json(200, json!({"eur": 1.08})).delayed(Duration::from_millis(50))],
    );
    let store = Arc::new(GetSetOnly::default());
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .finish();
    let prices = tracing::subscriber::with_default(subscriber, || {
        let api = Seam::builder(upstream.url())
            .auth(Auth::oauth2(OAuth2::client_credentials(
                format!("{}/oauth/token", upstream.url()),
                "demo",
                "s3cret",
            )))
            .store(store.clone())
            .build()
            .unwrap();
        // Members that inherit the seam's auth (one built per request, say) say nothing more.
        for _ in 0..3 {
            api.as_principal("alice").get("/me").build().unwrap();
        }
        api.get("/prices")
            .cache(
                Cache::ttl("1m")
                    .coalesce(Coalesce::Fleet)
                    .tenancy(stitchapi::Tenancy::App),
            )
            .build()
            .unwrap()
    });
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    // The seam declares the auth, the member its cache: each reports once, where declared.
    let warnings: Vec<&str> = logged.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{logged}");
    assert!(
        warnings[0].contains("get-set-only store has no owned locks")
            && warnings[0]
                .contains("token refreshes and logins are single-flight within each process only"),
        "{logged}"
    );
    assert!(
        warnings[1].contains(
            "identical cache misses coalesce (cache.coalesce = \"fleet\") within each process only"
        ),
        "{logged}"
    );

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let prices = prices.clone();
            tokio::spawn(async move { prices.call(Input::new()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap()["eur"], 1.08);
    }
    let hits = upstream.hits();
    let count = |target: &str| hits.iter().filter(|hit| hit.target == target).count();
    assert_eq!(count("/oauth/token"), 1, "one token fetch in the process");
    assert_eq!(count("/prices"), 1, "one fill in the process");
    let keys = store.keys.lock().unwrap();
    assert!(
        !keys.iter().any(|key| key.contains("lock")),
        "no lock of any kind was written: {keys:?}"
    );
}
