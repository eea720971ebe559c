use std::time::Duration;

use crate::session::store::{RedisStore, SessionStore};
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
