//! `ExpiringSet`: the memory store's form of a Redis sorted set of members
//! scored by their expiry.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// Members with an expiry each, ordered by expiry so that removing the
/// expired ones costs nothing per member that stays.
#[derive(Default)]
pub(super) struct ExpiringSet {
    expiries: HashMap<Arc<str>, Instant>,
    by_expiry: BTreeSet<(Instant, Arc<str>)>,
}

impl ExpiringSet {
    /// Adds `member` with its expiry, or moves the expiry of a listed one.
    pub(super) fn insert(&mut self, member: &str, expires_at: Instant) {
        self.remove(member);
        let member: Arc<str> = Arc::from(member);
        self.by_expiry.insert((expires_at, member.clone()));
        self.expiries.insert(member, expires_at);
    }

    /// Removes `member`, listed or not.
    pub(super) fn remove(&mut self, member: &str) {
        if let Some((member, expires_at)) = self.expiries.remove_entry(member) {
            self.by_expiry.remove(&(expires_at, member));
        }
    }

    /// Removes every member whose expiry is at or before `now`.
    pub(super) fn remove_expired(&mut self, now: Instant) {
        while self.by_expiry.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, member)) = self.by_expiry.pop_first() {
                self.expiries.remove(&member);
            }
        }
    }

    /// Returns the number of members, expired ones included until
    /// [`remove_expired`](Self::remove_expired) runs.
    pub(super) fn len(&self) -> usize {
        self.expiries.len()
    }
}
