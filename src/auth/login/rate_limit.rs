//! A per-client limit on new logins: one token bucket per client address,
//! kept in this process's memory.
//!
//! Every login start stores a login flow for 10 minutes, so without a limit a
//! client that requests pages without a session, in a loop, fills the session
//! store. Each bucket is one instant (the generic cell rate algorithm): the
//! moment at which the client's bucket is full again. A client whose bucket
//! is full is not tracked at all.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Maximum number of client addresses tracked at once. An address costs about 100 bytes
/// in the two maps (an estimate), so the limiter stays under about 10 MiB.
/// When the table is full, the address whose bucket is closest to full is
/// dropped, so that client gets a full bucket again.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Maximum number of clients with full buckets dropped per call, so one call
/// never does more than a few map operations.
const IDLE_DROPPED_PER_CALL: usize = 8;

/// The key of a client's bucket: an IPv4 address, or the /64 prefix of an
/// IPv6 address, because one IPv6 host is usually given a whole /64. `None`
/// is the bucket of peers without an IP address.
type ClientKey = Option<IpAddr>;

/// Token buckets of the client addresses that started logins recently.
pub struct LoginRateLimit {
    /// Login starts a client may make at once: the bucket size.
    burst: u32,
    /// Time in which a client earns one more login start; `None` turns the
    /// limit off.
    interval: Option<Duration>,
    max_clients: usize,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    /// When the bucket of each tracked client is full again.
    full_at: HashMap<ClientKey, Instant>,
    /// The same pairs ordered by that instant, so the clients whose buckets
    /// are full, or nearly full, are found first.
    by_full_at: BTreeSet<(Instant, ClientKey)>,
}

impl LoginRateLimit {
    /// Creates a limit of `per_minute` login starts per client address,
    /// earned evenly over the minute, of which up to `burst` may be spent at
    /// once. `per_minute == 0` turns the limit off.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_max_clients(per_minute, burst, MAX_TRACKED_CLIENTS)
    }

    /// Creates a limit that admits every login start.
    pub fn disabled() -> Self {
        Self::new(0, 0)
    }

    fn with_max_clients(per_minute: u32, burst: u32, max_clients: usize) -> Self {
        let interval = (per_minute > 0 && burst > 0).then(|| Duration::from_secs(60) / per_minute);
        LoginRateLimit {
            burst,
            interval,
            max_clients,
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes one login start from the bucket of `client`. Returns how long
    /// the client must wait when its bucket is empty; a rejected start
    /// takes nothing.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<(), Duration> {
        self.admit_at(client, Instant::now())
    }

    fn admit_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let key = client_key(client);
        let mut buckets = self.lock();
        buckets.drop_full(now, IDLE_DROPPED_PER_CALL);
        let full_at = buckets
            .full_at
            .get(&key)
            .copied()
            .filter(|full_at| *full_at > now)
            .unwrap_or(now);
        // A full bucket is `burst` intervals of time. Taking one start adds
        // `interval` to the time until the bucket is full again.
        let next_full_at = full_at + interval;
        let debt = next_full_at - now;
        let capacity = interval * self.burst;
        if debt > capacity {
            return Err(debt - capacity);
        }
        buckets.set(key, next_full_at, self.max_clients);
        Ok(())
    }

    /// Returns the number of client addresses tracked now.
    pub fn tracked_clients(&self) -> usize {
        self.lock().full_at.len()
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // Every update below keeps both maps consistent before it can
        // panic, so a poisoned lock still guards valid data.
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Buckets {
    /// Drops up to `max` clients whose buckets are full at `now`; they are
    /// the same as untracked ones.
    fn drop_full(&mut self, now: Instant, max: usize) {
        for _ in 0..max {
            let Some(&(full_at, key)) = self.by_full_at.first() else {
                return;
            };
            if full_at > now {
                return;
            }
            self.by_full_at.pop_first();
            self.full_at.remove(&key);
        }
    }

    /// Records that the bucket of `key` is full again at `full_at`. A new
    /// client in a full table first drops the client whose bucket is closest
    /// to full.
    fn set(&mut self, key: ClientKey, full_at: Instant, max_clients: usize) {
        match self.full_at.insert(key, full_at) {
            Some(previous) => {
                self.by_full_at.remove(&(previous, key));
            }
            None if self.full_at.len() > max_clients => {
                if let Some((_, dropped)) = self.by_full_at.pop_first() {
                    self.full_at.remove(&dropped);
                }
            }
            None => {}
        }
        self.by_full_at.insert((full_at, key));
    }
}

/// Returns the bucket key of `client`: IPv4-mapped IPv6 addresses count as
/// IPv4, and other IPv6 addresses by their /64 prefix.
fn client_key(client: Option<IpAddr>) -> ClientKey {
    let ip = match client? {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
    };
    Some(ip)
}

/// Returns `wait` in whole seconds, rounded up and at least 1, for a
/// `Retry-After` header.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("a valid IP address"))
    }

    #[test]
    fn bucket_admits_burst_then_rejects() {
        let limit = LoginRateLimit::new(60, 3);
        let start = Instant::now();
        for i in 0..3 {
            assert_eq!(
                limit.admit_at(ip("192.0.2.1"), start),
                Ok(()),
                "start {i} fits in the burst of 3"
            );
        }
        assert_eq!(
            limit.admit_at(ip("192.0.2.1"), start),
            Err(Duration::from_secs(1)),
            "the fourth start waits one refill interval"
        );
        assert_eq!(
            limit.admit_at(ip("192.0.2.2"), start),
            Ok(()),
            "another address has a bucket of its own"
        );
    }

    #[test]
    fn bucket_refills_one_per_interval() {
        let limit = LoginRateLimit::new(60, 2);
        let start = Instant::now();
        let client = ip("192.0.2.1");
        assert!(limit.admit_at(client, start).is_ok());
        assert!(limit.admit_at(client, start).is_ok());
        let at = |millis| start + Duration::from_millis(millis);
        assert_eq!(
            limit.admit_at(client, at(400)),
            Err(Duration::from_millis(600)),
            "the wait counts down"
        );
        assert_eq!(limit.admit_at(client, at(1000)), Ok(()), "one start earned");
        assert!(limit.admit_at(client, at(1000)).is_err(), "and only one");
        assert_eq!(limit.admit_at(client, at(3000)), Ok(()));
        assert_eq!(
            limit.admit_at(client, at(3000)),
            Ok(()),
            "a bucket refills up to its size"
        );
        assert!(
            limit.admit_at(client, at(3000)).is_err(),
            "but not beyond it"
        );
    }

    #[test]
    fn rejected_starts_take_nothing() {
        let limit = LoginRateLimit::new(60, 1);
        let start = Instant::now();
        let client = ip("192.0.2.1");
        assert!(limit.admit_at(client, start).is_ok());
        for millis in [100, 200, 900] {
            assert!(limit
                .admit_at(client, start + Duration::from_millis(millis))
                .is_err());
        }
        assert_eq!(
            limit.admit_at(client, start + Duration::from_secs(1)),
            Ok(()),
            "retrying while limited does not push the refill back"
        );
    }

    #[test]
    fn zero_per_minute_turns_limit_off() {
        let limit = LoginRateLimit::new(0, 60);
        let start = Instant::now();
        for _ in 0..1000 {
            assert_eq!(limit.admit_at(ip("192.0.2.1"), start), Ok(()));
        }
        assert_eq!(limit.tracked_clients(), 0, "nothing is tracked when off");
    }

    #[test]
    fn ipv6_shares_bucket_per_64() {
        let limit = LoginRateLimit::new(60, 1);
        let start = Instant::now();
        assert!(limit.admit_at(ip("2001:db8:1:2::1"), start).is_ok());
        assert!(
            limit.admit_at(ip("2001:db8:1:2:ffff::9"), start).is_err(),
            "an address in the same /64 shares the bucket"
        );
        assert!(
            limit.admit_at(ip("2001:db8:1:3::1"), start).is_ok(),
            "the next /64 has its own"
        );
        assert!(limit.admit_at(ip("192.0.2.7"), start).is_ok());
        assert!(
            limit.admit_at(ip("::ffff:192.0.2.7"), start).is_err(),
            "an IPv4-mapped address is the IPv4 address"
        );
    }

    #[test]
    fn full_buckets_are_not_tracked() {
        let limit = LoginRateLimit::new(60, 10);
        let start = Instant::now();
        for i in 0..50u8 {
            let client = Some(IpAddr::from([192, 0, 2, i]));
            assert!(limit.admit_at(client, start).is_ok());
        }
        assert_eq!(limit.tracked_clients(), 50);
        // Each bucket is full one interval after its only start; later calls
        // drop up to IDLE_DROPPED_PER_CALL of them each.
        let later = start + Duration::from_secs(2);
        for _ in 0..10 {
            assert!(limit.admit_at(ip("198.51.100.1"), later).is_ok());
        }
        assert_eq!(
            limit.tracked_clients(),
            1,
            "only the address still spending its bucket stays"
        );
    }

    #[test]
    fn table_never_exceeds_max_clients() {
        let limit = LoginRateLimit::with_max_clients(60, 2, 100);
        let start = Instant::now();
        let busy = ip("198.51.100.1");
        assert!(limit.admit_at(busy, start).is_ok());
        assert!(limit.admit_at(busy, start).is_ok());
        for i in 0..1000u16 {
            let [high, low] = i.to_be_bytes();
            let client = Some(IpAddr::from([10, 0, high, low]));
            // All at one instant, so no bucket is full yet and only the cap
            // removes clients.
            assert!(limit.admit_at(client, start).is_ok());
            assert!(limit.tracked_clients() <= 100, "after client {i}");
        }
        assert!(
            limit.admit_at(busy, start).is_err(),
            "the client with the emptiest bucket is dropped last"
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(12), 12),
        ];
        for (wait, expected) in cases {
            assert_eq!(retry_after_seconds(wait), expected, "wait {wait:?}");
        }
    }
}
