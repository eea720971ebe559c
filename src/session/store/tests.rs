use super::*;
use crate::session::test_redis::cluster::TestCluster;
use crate::session::test_redis::sentinel::TestSentinel;
use crate::session::test_redis::TestRedis;

#[tokio::test]
async fn memory_store_take_is_single_use() {
    let store = MemoryStore::new();
    store
        .put("k", b"v".to_vec(), Duration::from_secs(60))
        .await
        .expect("memory put");
    assert_eq!(store.take("k").await.expect("take"), Some(b"v".to_vec()));
    assert_eq!(store.take("k").await.expect("take"), None);
}

#[tokio::test]
async fn memory_store_rejects_writes_when_full() {
    let store = MemoryStore::with_max_entries(2);
    let ttl = Duration::from_secs(60);
    store.put("a", b"1".to_vec(), ttl).await.expect("first put");
    store
        .put("b", b"2".to_vec(), ttl)
        .await
        .expect("second put");
    assert!(matches!(
        store.put("c", b"3".to_vec(), ttl).await,
        Err(StoreError::Full(2))
    ));
    store
        .put("a", b"updated".to_vec(), ttl)
        .await
        .expect("replacing an existing key still works");
    store.delete("b").await.expect("delete");
    store
        .put("c", b"3".to_vec(), ttl)
        .await
        .expect("room again");
}

#[tokio::test]
async fn memory_store_evicts_oldest_flow_when_full() {
    let store = MemoryStore::with_max_entries(3);
    let ttl = Duration::from_secs(60);
    let put_flow = |key: &'static str| store.put_evictable(key, b"flow".to_vec(), ttl);
    put_flow("flow-1").await.expect("first flow");
    put_flow("flow-2").await.expect("second flow");
    store
        .put("session-1", b"s".to_vec(), ttl)
        .await
        .expect("a session fits");

    store
        .put("session-2", b"s".to_vec(), ttl)
        .await
        .expect("a full store evicts a flow for a session");
    assert_eq!(
        store.get("flow-1").await.expect("get"),
        None,
        "oldest flow evicted"
    );
    assert!(
        store.get("flow-2").await.expect("get").is_some(),
        "newer flow kept"
    );

    put_flow("flow-3")
        .await
        .expect("a full store evicts a flow for a flow");
    assert_eq!(
        store.get("flow-2").await.expect("get"),
        None,
        "next oldest evicted"
    );
    assert!(store.get("flow-3").await.expect("get").is_some());

    store
        .put("session-3", b"s".to_vec(), ttl)
        .await
        .expect("the last flow makes room");
    assert!(matches!(
        store.put("session-4", b"s".to_vec(), ttl).await,
        Err(StoreError::Full(3))
    ));
    assert!(matches!(put_flow("flow-4").await, Err(StoreError::Full(3))));
    for key in ["session-1", "session-2", "session-3"] {
        assert!(
            store.get(key).await.expect("get").is_some(),
            "{key}: sessions are never evicted"
        );
    }
}

#[tokio::test]
async fn memory_store_eviction_skips_removed_flows() {
    let store = MemoryStore::with_max_entries(3);
    let ttl = Duration::from_secs(60);
    store
        .put_evictable("a", b"1".to_vec(), ttl)
        .await
        .expect("put");
    store
        .put_evictable("b", b"2".to_vec(), ttl)
        .await
        .expect("put");
    store
        .put_evictable("a", b"3".to_vec(), ttl)
        .await
        .expect("rewrite a");
    assert_eq!(store.take("b").await.expect("take"), Some(b"2".to_vec()));
    store.put("s1", b"s".to_vec(), ttl).await.expect("put");
    store.put("s2", b"s".to_vec(), ttl).await.expect("put");
    store
        .put("s3", b"s".to_vec(), ttl)
        .await
        .expect("the rewritten flow a makes room");
    assert_eq!(store.get("a").await.expect("get"), None);
    assert!(matches!(
        store.put("s4", b"s".to_vec(), ttl).await,
        Err(StoreError::Full(3))
    ));
}

#[tokio::test]
async fn memory_store_removes_expired_first() {
    let store = MemoryStore::with_max_entries(2);
    store
        .put_evictable("flow", b"f".to_vec(), Duration::from_secs(60))
        .await
        .expect("put");
    store
        .put("short", b"s".to_vec(), Duration::from_millis(20))
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(40)).await;
    store
        .put("session", b"s".to_vec(), Duration::from_secs(60))
        .await
        .expect("the expired record makes room");
    assert!(
        store.get("flow").await.expect("get").is_some(),
        "a live flow is not evicted while an expired record can go"
    );
}

#[tokio::test]
async fn memory_store_extended_expiry_holds() {
    let store = MemoryStore::with_max_entries(2);
    let short = Duration::from_millis(20);
    let long = Duration::from_secs(60);
    store
        .put("session", b"old".to_vec(), short)
        .await
        .expect("put");
    assert!(store
        .put_existing("session", b"new".to_vec(), long)
        .await
        .expect("put_existing"));
    assert!(store.try_lock("lock", "t", short).await.expect("try_lock"));
    assert!(store
        .extend_lock("lock", "t", long)
        .await
        .expect("extend_lock"));
    tokio::time::sleep(Duration::from_millis(40)).await;
    store
        .put("other", b"x".to_vec(), long)
        .await
        .expect_err("both records outlive their first expiry, so the store is full");
    assert_eq!(
        store.get("session").await.expect("get"),
        Some(b"new".to_vec())
    );
    assert!(
        !store.try_lock("lock", "u", long).await.expect("try_lock"),
        "the extended lock is still held"
    );
}

#[tokio::test]
async fn memory_store_expires_entries() {
    let store = MemoryStore::new();
    store
        .put("k", b"v".to_vec(), Duration::from_millis(20))
        .await
        .expect("memory put");
    assert!(store.get("k").await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(store.get("k").await.expect("get"), None);
}

/// The Redis deployments behind [`all_stores`], kept running as long as
/// this guard lives.
struct RedisServers {
    _standalone: TestRedis,
    _sentinel: TestSentinel,
    _cluster: TestCluster,
}

/// Every store, each as a trait object, with a name for assertion messages:
/// memory, one Redis server, Redis behind one sentinel, and a three-master
/// Redis Cluster.
async fn all_stores() -> (Vec<(&'static str, Box<dyn SessionStore>)>, RedisServers) {
    let (standalone, sentinel, cluster) = tokio::join!(
        TestRedis::start(),
        TestSentinel::start(1),
        TestCluster::start()
    );
    let timeout = Duration::from_secs(2);
    let stores: Vec<(&'static str, Box<dyn SessionStore>)> = vec![
        ("memory", Box::new(MemoryStore::new())),
        (
            "redis",
            Box::new(RedisStore::new(&standalone.url(), timeout).expect("valid Redis URL")),
        ),
        (
            "sentinel",
            Box::new(RedisStore::new(&sentinel.url(), timeout).expect("valid Sentinel URL")),
        ),
        (
            "cluster",
            Box::new(RedisStore::new(&cluster.url(), timeout).expect("valid Cluster URL")),
        ),
    ];
    let servers = RedisServers {
        _standalone: standalone,
        _sentinel: sentinel,
        _cluster: cluster,
    };
    (stores, servers)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test]
async fn take_index_removes_listed_records() {
    let (stores, _servers) = all_stores().await;
    let ttl = Duration::from_secs(60);
    for (name, store) in stores {
        store
            .put_indexed("s1", b"1".to_vec(), ttl, &names(&["i:a", "i:b"]))
            .await
            .expect("put_indexed");
        store
            .put_indexed("s2", b"2".to_vec(), ttl, &names(&["i:a"]))
            .await
            .expect("put_indexed");
        store
            .put_indexed("s3", b"3".to_vec(), ttl, &names(&["i:c"]))
            .await
            .expect("put_indexed");
        let mut taken = store.take_index("i:a").await.expect("take_index");
        taken.sort();
        assert_eq!(taken, ["s1", "s2"], "{name}: both records listed under i:a");
        assert_eq!(
            store.get("s1").await.expect("get"),
            None,
            "{name}: s1 deleted"
        );
        assert_eq!(
            store.get("s2").await.expect("get"),
            None,
            "{name}: s2 deleted"
        );
        assert_eq!(
            store.get("s3").await.expect("get"),
            Some(b"3".to_vec()),
            "{name}: a record of another index stays"
        );
        assert!(
            store
                .take_index("i:b")
                .await
                .expect("take_index")
                .is_empty(),
            "{name}: a record already deleted is not reported again"
        );
        assert!(
            store
                .take_index("i:a")
                .await
                .expect("take_index")
                .is_empty(),
            "{name}: the index set itself is gone"
        );
        assert!(
            store
                .take_index("i:never")
                .await
                .expect("take_index")
                .is_empty(),
            "{name}: a missing index set lists nothing"
        );
    }
}

#[tokio::test]
async fn put_existing_never_recreates() {
    let (stores, _servers) = all_stores().await;
    let ttl = Duration::from_secs(60);
    for (name, store) in stores {
        let written = store
            .put_existing("gone", b"x".to_vec(), ttl)
            .await
            .expect("put_existing");
        assert!(!written, "{name}: a missing record is not written");
        assert_eq!(
            store.get("gone").await.expect("get"),
            None,
            "{name}: still missing"
        );
        store.put("here", b"old".to_vec(), ttl).await.expect("put");
        let written = store
            .put_existing("here", b"new".to_vec(), ttl)
            .await
            .expect("put_existing");
        assert!(written, "{name}: an existing record is replaced");
        assert_eq!(
            store.get("here").await.expect("get"),
            Some(b"new".to_vec()),
            "{name}: the new value is stored"
        );
    }
}

/// Logins and a revocation of their index set, run at the same time, never
/// leave a record stored that the index set does not list. That is the
/// guarantee revocation needs; Cluster keeps it without one atomic step.
#[tokio::test]
async fn index_race_leaves_no_unlisted_record() {
    let (stores, _servers) = all_stores().await;
    let ttl = Duration::from_secs(60);
    let index = names(&["i:race", "i:other"]);
    for (name, store) in stores {
        for round in 0..20 {
            let keys: Vec<String> = (0..4).map(|i| format!("race:{round}:{i}")).collect();
            let puts = keys
                .iter()
                .map(|key| store.put_indexed(key, b"x".to_vec(), ttl, &index));
            let (puts, taken) = tokio::join!(
                futures_util::future::join_all(puts),
                store.take_index("i:race")
            );
            for put in puts {
                put.expect("put_indexed");
            }
            taken.expect("take_index");

            let mut stored = Vec::new();
            for key in &keys {
                if store.get(key).await.expect("get").is_some() {
                    stored.push(key.clone());
                }
            }
            let listed = store.take_index("i:race").await.expect("take_index");
            for key in &stored {
                assert!(
                    listed.contains(key),
                    "{name}, round {round}: {key} is stored but i:race does not list it"
                );
            }
        }
    }
}

#[tokio::test]
async fn redis_index_outlives_its_records() {
    let (redis, cluster) = tokio::join!(TestRedis::start(), TestCluster::start());
    for (name, url) in [("redis", redis.url()), ("cluster", cluster.url())] {
        let store = RedisStore::new(&url, Duration::from_secs(2)).expect("valid Redis URL");
        let index = names(&["i:user"]);
        store
            .put_indexed("long", b"1".to_vec(), Duration::from_secs(600), &index)
            .await
            .expect("put_indexed");
        store
            .put_indexed("short", b"2".to_vec(), Duration::from_secs(5), &index)
            .await
            .expect("put_indexed");
        let pttl = |key: &str| {
            let mut command = redis::cmd("PTTL");
            command.arg(key);
            let (redis, cluster) = (&redis, &cluster);
            async move {
                if name == "cluster" {
                    cluster.query::<i64>(&command).await
                } else {
                    redis.query::<i64>(&command).await
                }
            }
        };
        let index_ttl = pttl("i:user").await;
        assert!(
            index_ttl > 500_000,
            "{name}: a shorter record must not shorten the index set's expiry, got {index_ttl} ms"
        );
        let record_ttl = pttl("short").await;
        assert!(
            (1..=5_000).contains(&record_ttl),
            "{name}: the record keeps its own expiry, got {record_ttl} ms"
        );
    }
}

#[tokio::test]
async fn redis_subscription_receives_and_ends() {
    let mut redis = TestRedis::start().await;
    let store = RedisStore::new(&redis.url(), Duration::from_secs(2)).expect("valid Redis URL");
    let mut subscription = store
        .subscribe("channel")
        .await
        .expect("subscribe")
        .expect("Redis supports subscriptions");
    store.publish("channel", "a\nb").await.expect("publish");
    let message = tokio::time::timeout(Duration::from_secs(2), subscription.next_message())
        .await
        .expect("a message within 2 s");
    assert_eq!(
        message.as_deref(),
        Some("a\nb"),
        "the published message arrives"
    );
    redis.kill();
    let ended = tokio::time::timeout(Duration::from_secs(2), subscription.next_message())
        .await
        .expect("the end of the subscription is noticed within 2 s");
    assert_eq!(ended, None, "a killed server ends the subscription");
}

#[tokio::test]
async fn memory_store_has_no_subscription() {
    let store = MemoryStore::new();
    assert!(
        store
            .subscribe("channel")
            .await
            .expect("subscribe")
            .is_none(),
        "a process-private store has no other replicas to hear from"
    );
}

/// The redis crate's message for a refused connection has no address.
#[tokio::test]
async fn connection_error_names_the_server() {
    let mut server = TestRedis::start().await;
    let url = server.url();
    server.kill();
    let store = RedisStore::new(&url, Duration::from_secs(1)).expect("valid URL");
    let message = store
        .get("key")
        .await
        .expect_err("the server is gone")
        .to_string();
    let address = url.trim_start_matches("redis://");
    assert!(
        message.contains(address),
        "expected {address} in: {message}"
    );
}

#[tokio::test]
async fn expiring_set_counts_live_members() {
    let (stores, _servers) = all_stores().await;
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(300);
    for (name, store) in stores {
        let count = |set: &'static str| store.count_expiring(set);
        assert_eq!(count("live").await.expect("count"), 0, "{name}: no set yet");
        store.add_expiring("live", "a", long).await.expect("add a");
        store.add_expiring("live", "b", long).await.expect("add b");
        store.add_expiring("live", "c", short).await.expect("add c");
        store.add_expiring("other", "d", long).await.expect("add d");
        assert_eq!(
            count("live").await.expect("count"),
            3,
            "{name}: three added"
        );
        store
            .add_expiring("live", "a", long)
            .await
            .expect("add a again");
        assert_eq!(
            count("live").await.expect("count"),
            3,
            "{name}: a member added twice counts once"
        );

        store
            .remove_expiring("live", &names(&["b", "never-added"]))
            .await
            .expect("remove");
        store
            .remove_expiring("live", &[])
            .await
            .expect("removing nothing succeeds");
        assert_eq!(count("live").await.expect("count"), 2, "{name}: b removed");

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            count("live").await.expect("count"),
            1,
            "{name}: c left the set at its expiry"
        );
        store
            .add_expiring("live", "a", short)
            .await
            .expect("shorten a");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            count("live").await.expect("count"),
            0,
            "{name}: adding again moved a's expiry"
        );
        assert_eq!(
            count("other").await.expect("count"),
            1,
            "{name}: another set keeps its member"
        );
    }
}

#[tokio::test]
async fn redis_expiring_set_expires_with_members() {
    let redis = TestRedis::start().await;
    let store = RedisStore::new(&redis.url(), Duration::from_secs(1)).expect("valid URL");
    store
        .add_expiring("live", "a", Duration::from_millis(300))
        .await
        .expect("add");
    let mut exists = redis::cmd("EXISTS");
    exists.arg("live");
    assert_eq!(redis.query::<i64>(&exists).await, 1, "the set is stored");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        redis.query::<i64>(&exists).await,
        0,
        "the set is gone after its last member expired, without a count"
    );
}
