use std::time::{Duration, Instant};

use crate::session::store::{RedisStore, SessionStore, StoreError};
use crate::session::test_redis::cluster::TestCluster;

/// Each store's URL lists the nodes from another one, so each subscribes
/// on another node. One publish must reach all three: in Redis Cluster a
/// `PUBLISH` on one node is forwarded to every node.
#[tokio::test]
async fn publish_reaches_subscribers_on_every_node() {
    let cluster = TestCluster::start().await;
    let stores: Vec<RedisStore> = (0..3)
        .map(|first| {
            RedisStore::new(&cluster.url_from(first), Duration::from_secs(2)).expect("valid URL")
        })
        .collect();
    let mut subscriptions = Vec::new();
    for store in &stores {
        let subscription = store
            .subscribe("channel")
            .await
            .expect("subscribe")
            .expect("Redis supports subscriptions");
        subscriptions.push(subscription);
    }

    stores[0]
        .publish("channel", "revoked-key")
        .await
        .expect("publish");
    for (node, subscription) in subscriptions.iter_mut().enumerate() {
        let message = tokio::time::timeout(Duration::from_secs(2), subscription.next_message())
            .await
            .unwrap_or_else(|_| panic!("no message on node {node} within 2 s"));
        assert_eq!(
            message.as_deref(),
            Some("revoked-key"),
            "the subscriber on node {node} hears the publish"
        );
    }
}

#[tokio::test]
async fn cluster_store_answers_ping() {
    let cluster = TestCluster::start().await;
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(2)).expect("valid URL");
    store
        .ping()
        .await
        .expect("PING through the cluster connection");
}

/// Longest time a command may take to fail once the store knows that the
/// cluster is down; far below the 1 s command timeout.
const FAIL_FAST_LIMIT: Duration = Duration::from_millis(200);

/// With one of three masters gone and `cluster-require-full-coverage yes`
/// (the default), every command gets `CLUSTERDOWN`. `PING` on a live node
/// still succeeds, so readiness must read `CLUSTER INFO`, and commands must
/// fail at once instead of retrying until the timeout.
#[tokio::test]
async fn cluster_down_fails_ping_and_commands() {
    let mut cluster = TestCluster::start().await;
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(1)).expect("valid URL");
    store.ping().await.expect("ping while the cluster is up");

    cluster.kill_node(2, 0).await;
    let error = store
        .ping()
        .await
        .expect_err("ping fails while the cluster is down");
    let message = error.to_string();
    assert!(
        message.contains("cluster_state:fail"),
        "the ping error names the cluster state: {message}"
    );

    let started = Instant::now();
    let put = store
        .put("key", b"value".to_vec(), Duration::from_secs(60))
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(put, Err(StoreError::Unavailable(_))),
        "a put fails as unavailable: {put:?}"
    );
    assert!(
        elapsed < FAIL_FAST_LIMIT,
        "a put failed after {elapsed:?}, over {FAIL_FAST_LIMIT:?}"
    );
}

/// A store that never ran a readiness check learns from its first timeout
/// that the cluster is down, and fails later commands at once.
#[tokio::test]
async fn cluster_down_learned_from_timeout() {
    let mut cluster = TestCluster::start().await;
    cluster.kill_node(2, 0).await;
    let store = RedisStore::new(&cluster.url(), Duration::from_secs(1)).expect("valid URL");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = Instant::now();
        let put = store
            .put("key", b"value".to_vec(), Duration::from_secs(60))
            .await;
        let elapsed = started.elapsed();
        assert!(put.is_err(), "a put fails while the cluster is down");
        if elapsed < FAIL_FAST_LIMIT {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "puts still took {elapsed:?} 10 s after the first one"
        );
    }
}
