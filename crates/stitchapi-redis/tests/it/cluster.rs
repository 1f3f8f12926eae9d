//! The Redis store on a real local 3-node Redis Cluster.
#![cfg(feature = "cluster")]

use crate::support;

use stitchapi::store::{StitchStore, StitchStoreExt};
use stitchapi::testing::store_conformance;
use stitchapi_redis::RedisStore;
use support::RedisCluster;

#[tokio::test]
async fn a_cluster_passes_the_conformance_kit_with_and_without_a_prefix() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = RedisStore::cluster(&nodes).await.unwrap();
    let report = store_conformance(&store, support::kit_options()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");
    let prefixed = RedisStore::cluster(&nodes).await.unwrap().prefixed("app:");
    let report = store_conformance(&prefixed, support::kit_options()).await;
    report.assert_ok();
    assert!(report.skipped.is_empty(), "{report}");

    // Keys spread over the three masters, and every verb works wherever its key lands.
    for i in 0..30 {
        assert_eq!(
            store.increment(&format!("spread:{i}"), None).await.unwrap(),
            1
        );
    }
    let mut masters_used = 0;
    for node in &cluster.nodes {
        let mut connection = redis::Client::open(format!("redis://127.0.0.1:{}", node.port))
            .unwrap()
            .get_connection()
            .unwrap();
        let keys: i64 = redis::cmd("DBSIZE").query(&mut connection).unwrap();
        if keys > 0 {
            masters_used += 1;
        }
    }
    assert_eq!(masters_used, 3, "keys should land on every master");
}
