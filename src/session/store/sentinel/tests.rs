use std::time::{Duration, Instant};

use super::*;
use crate::session::store::{RedisStore, SessionStore};
use crate::session::test_redis::sentinel::{TestSentinel, MASTER_NAME};
use crate::session::test_redis::{query_port, try_query_port, TestRedis};

/// Longest accepted time from a master's death (or demotion) to the first
/// write the store completes on the new master. Sentinel needs the 1 s of
/// `down-after-milliseconds` plus an election; on the 2-core test machine a
/// failover took 2 to 4 s.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);

/// Sends one command on an open connection to the server at `port` and
/// returns its error.
async fn command_error(connection: &mut MultiplexedConnection, command: &redis::Cmd) -> RedisError {
    command
        .query_async::<redis::Value>(connection)
        .await
        .expect_err("the command fails")
}

async fn connect(port: u16) -> MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test server accepts connections")
}

#[tokio::test]
async fn needs_new_master_reads_real_errors() {
    let group = TestSentinel::start(1).await;
    let mut replica = connect(group.replica_port()).await;
    let read_only = command_error(&mut replica, redis::cmd("SET").arg("k").arg("v")).await;
    assert!(
        needs_new_master(&read_only),
        "READONLY from a replica asks for the master again: {read_only}"
    );

    let mut master = connect(group.master_port()).await;
    query_port::<()>(group.master_port(), redis::cmd("SET").arg("s").arg("v")).await;
    let wrong_type = command_error(&mut master, redis::cmd("LPUSH").arg("s").arg("x")).await;
    assert!(
        !needs_new_master(&wrong_type),
        "WRONGTYPE keeps the connection: {wrong_type}"
    );

    let mut server = TestRedis::start().await;
    let mut lost = redis::Client::open(server.url())
        .expect("valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the test server accepts connections");
    server.kill();
    let dropped = command_error(&mut lost, &redis::cmd("PING")).await;
    assert!(
        needs_new_master(&dropped),
        "a lost connection asks for the master again: {dropped}"
    );
}

/// Writes a probe key through `store` until one write lands on the new
/// master (the group's old replica), for at most `limit` after `since`, and returns the time from `since`. Failed writes must be
/// `Unavailable` or `Timeout`, which the proxy answers with 503.
///
/// A write can also succeed on the old master: after `SENTINEL FAILOVER`
/// the old master accepts writes until Sentinel reconfigures it, and those
/// writes are lost when it resyncs from the new master. Redis Sentinel
/// gives no stronger guarantee, so the probe is written again until it
/// reaches the new master.
async fn write_until_on_new_master(
    group: &TestSentinel,
    store: &RedisStore,
    since: Instant,
    limit: Duration,
) -> Duration {
    for attempt in 0u64.. {
        let value = attempt.to_string();
        match store
            .put("probe", value.clone().into_bytes(), Duration::from_secs(60))
            .await
        {
            Ok(()) => {
                let on_new_master: Option<String> =
                    try_query_port(group.replica_port(), redis::cmd("GET").arg("probe"))
                        .await
                        .ok()
                        .flatten();
                if on_new_master == Some(value) {
                    return since.elapsed();
                }
            }
            Err(StoreError::Unavailable(_) | StoreError::Timeout(_)) => {}
            Err(other) => panic!("unexpected store error during the failover: {other}"),
        }
        assert!(
            since.elapsed() < limit,
            "no write reached the new master within {limit:?} of the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("the loop returns or fails")
}

/// Checks what both failover tests share once the store writes to the new
/// master: the sentinels name it, the key written before the failover
/// survived, and a new subscription hears a publish.
async fn assert_on_new_master(group: &TestSentinel, store: &RedisStore, case: &str) {
    assert_eq!(
        group.named_master_port().await,
        Some(group.replica_port()),
        "{case}: the sentinels name the old replica as master"
    );
    assert_eq!(
        store.get("before").await.expect("get"),
        Some(b"kept".to_vec()),
        "{case}: a key replicated before the failover is read back"
    );
    let mut subscription = store
        .subscribe("channel")
        .await
        .expect("subscribe to the new master")
        .expect("Redis supports subscriptions");
    store.publish("channel", "hello").await.expect("publish");
    let message = tokio::time::timeout(Duration::from_secs(2), subscription.next_message())
        .await
        .expect("a message within 2 s");
    assert_eq!(
        message.as_deref(),
        Some("hello"),
        "{case}: a subscription opened after the failover hears the new master"
    );
}

#[tokio::test]
async fn store_follows_failover_after_master_dies() {
    let mut group = TestSentinel::start(3).await;
    group.wait_until_failover_ready().await;
    let store = RedisStore::new(&group.url(), Duration::from_secs(1)).expect("valid URL");
    store
        .put("before", b"kept".to_vec(), Duration::from_secs(60))
        .await
        .expect("put before the failover");
    group.sync_replica().await;
    let mut old_subscription = store
        .subscribe("channel")
        .await
        .expect("subscribe")
        .expect("Redis supports subscriptions");

    group.kill_master();
    let killed_at = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(2), old_subscription.next_message())
        .await
        .expect("the end of the subscription is noticed within 2 s");
    assert_eq!(ended, None, "the dead master's subscription ends");
    let recovered = write_until_on_new_master(&group, &store, killed_at, RECOVERY_LIMIT).await;
    println!(
        "Sentinel failover after a master kill: the store wrote to the new master {} ms after the kill",
        recovered.as_millis()
    );
    assert_on_new_master(&group, &store, "killed master").await;
}

/// `SENTINEL FAILOVER` demotes a master that keeps running, and Sentinel
/// reconfigures it (closing its connections) only at its next `INFO` poll,
/// up to 10 s later. The watcher must move the store to the new master, and
/// end the subscription on the old one, well before that.
#[tokio::test]
async fn store_follows_failover_of_demoted_master() {
    let group = TestSentinel::start(1).await;
    group.wait_until_failover_ready().await;
    let store = RedisStore::new(&group.url(), Duration::from_secs(1)).expect("valid URL");
    store
        .put("before", b"kept".to_vec(), Duration::from_secs(60))
        .await
        .expect("put before the failover");
    group.sync_replica().await;
    let mut old_subscription = store
        .subscribe("channel")
        .await
        .expect("subscribe")
        .expect("Redis supports subscriptions");

    let mut failover = redis::cmd("SENTINEL");
    failover.arg("FAILOVER").arg(MASTER_NAME);
    query_port::<()>(group.sentinel_port(), &failover).await;
    let started_at = Instant::now();
    let switched = group
        .wait_for_master(group.replica_port(), RECOVERY_LIMIT)
        .await;
    let switched_at = Instant::now();
    let recovered = write_until_on_new_master(&group, &store, switched_at, RECOVERY_LIMIT).await;
    println!(
        "Sentinel failover of a running master: the sentinels switched {} ms after SENTINEL FAILOVER, and the store wrote to the new master {} ms after that",
        switched.as_millis(),
        recovered.as_millis()
    );
    let limit = MASTER_CHECK_INTERVAL * 3;
    assert!(
        recovered <= limit,
        "writes reached the new master {recovered:?} after the switch, over {limit:?}"
    );
    let ended = tokio::time::timeout(limit, old_subscription.next_message())
        .await
        .expect("the subscription on the old master ends after the switch");
    assert_eq!(ended, None, "the subscription on the old master ends");
    assert!(
        started_at.elapsed() < Duration::from_secs(8),
        "the store followed the switch before Sentinel's next INFO poll of the old master would have"
    );
    assert_on_new_master(&group, &store, "demoted master").await;
}

/// Longest accepted time from the master's kill to the first write on the
/// new master while the first sentinel of the URL hangs. The two live
/// sentinels still form the quorum of two, so the failover itself takes as
/// long as with all three (2 to 4 s on the 2-core test machine). A lookup
/// adds at most half the store's timeout to that.
const HUNG_SENTINEL_RECOVERY_LIMIT: Duration = Duration::from_secs(8);

/// A sentinel that accepts connections but never replies, listed first in
/// the URL, must not keep the store on a dead master: the other sentinels
/// are queried at the same time, and the first valid reply wins.
#[tokio::test]
async fn store_follows_failover_past_hung_sentinel() {
    let mut group = TestSentinel::start(3).await;
    group.wait_until_failover_ready().await;
    let store = RedisStore::new(&group.url(), Duration::from_secs(1)).expect("valid URL");
    store
        .put("before", b"kept".to_vec(), Duration::from_secs(60))
        .await
        .expect("put before the failover");
    group.sync_replica().await;

    let _paused = group.pause_sentinel(0);
    group.kill_master();
    let killed_at = Instant::now();
    let recovered =
        write_until_on_new_master(&group, &store, killed_at, HUNG_SENTINEL_RECOVERY_LIMIT).await;
    println!(
        "Sentinel failover with the first sentinel stopped: the store wrote to the new master {} ms after the kill",
        recovered.as_millis()
    );
    assert_eq!(
        store.get("before").await.expect("get"),
        Some(b"kept".to_vec()),
        "a key replicated before the failover is read back through the live sentinels"
    );
}

/// A rejected password must say whether a sentinel or the master rejected
/// it, and at which address, without showing the password.
#[tokio::test]
async fn rejected_credentials_name_the_node() {
    let group = TestSentinel::start(1).await;
    let sentinel = format!("127.0.0.1:{}", group.sentinel_port());
    let master = format!("127.0.0.1:{}", group.master_port());
    let cases = [
        (
            format!("redis+sentinel://{sentinel}/{MASTER_NAME}?sentinel_password=hunter2"),
            format!("sentinel {sentinel}"),
        ),
        (
            format!("redis+sentinel://:hunter2@{sentinel}/{MASTER_NAME}"),
            format!("master {master} named by sentinel {sentinel}"),
        ),
    ];
    for (url, expected) in cases {
        let store = RedisStore::new(&url, Duration::from_secs(1)).expect("valid URL");
        let message = store
            .get("key")
            .await
            .expect_err("the servers have no password, so AUTH fails")
            .to_string();
        assert!(
            message.contains(&expected),
            "expected {expected:?} in: {message}"
        );
        assert!(
            !message.contains("hunter2"),
            "the message shows the password: {message}"
        );
    }
}
