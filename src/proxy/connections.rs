//! The cap on client connections of the proxy listener
//! (`server.max_connections`), so a flood of idle connections cannot use up
//! the process's file descriptors.
//!
//! Pingora 0.9 has no such limit, so [`ConnectionLimit`] wraps the proxy
//! application: Pingora calls `process_new` once per accepted connection,
//! and the call returns when the connection ends. A connection over the cap
//! is closed before anything is read from it.
//!
//! The wrapper also bounds the time a request head may take
//! (`server.request_header_timeout`). Pingora's own limit applies to each
//! read, so a client that sends one header byte at a time keeps a
//! connection, and with it a slot under the cap, for as long as it likes.
//! The proxy marks, through a task-local [`HeadClock`], when a request head
//! was read and when its response ended. The wrapper closes a connection
//! that has waited for a head longer than allowed.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

/// File descriptors for listeners, Redis, the database and logs: an
/// estimate for the start-up warning, not a measured need.
const OTHER_DESCRIPTORS: u64 = 256;

/// A server application whose client connections are capped.
pub struct ConnectionLimit<A> {
    inner: Arc<A>,
    /// The cap; 0 means none.
    max: usize,
    open: AtomicUsize,
    head_limits: HeadLimits,
}

/// Maximum waits for a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// From the connection's start to its first complete head.
    pub first: Duration,
    /// From the end of a response to the next complete head on the same
    /// connection: the keep-alive timeout plus the time to send a head.
    pub next: Duration,
}

impl HeadLimits {
    /// Limits for `request_header_timeout` on connections kept alive for
    /// `keepalive_timeout`.
    pub fn new(request_header_timeout: Duration, keepalive_timeout: Duration) -> Self {
        HeadLimits {
            first: request_header_timeout,
            next: keepalive_timeout.saturating_add(request_header_timeout),
        }
    }
}

tokio::task_local! {
    /// The head clock of the connection the current task serves.
    static HEAD_CLOCK: Arc<HeadClock>;
}

/// The time from which a connection has waited for a request head, in
/// milliseconds after its start, or [`HeadClock::SERVING`] while a request
/// is served.
#[derive(Debug)]
pub struct HeadClock {
    started: Instant,
    waiting_since_ms: AtomicU64,
    /// Whether a head was ever read on the connection.
    served_any: AtomicBool,
}

impl HeadClock {
    const SERVING: u64 = u64::MAX;

    fn new() -> Self {
        HeadClock {
            started: Instant::now(),
            waiting_since_ms: AtomicU64::new(0),
            served_any: AtomicBool::new(false),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Returns how long the connection has waited for a head and the limit
    /// that applies, or `None` while a request is served.
    fn waiting(&self, limits: HeadLimits) -> Option<(Duration, Duration)> {
        let since = self.waiting_since_ms.load(Ordering::Acquire);
        if since == Self::SERVING {
            return None;
        }
        let waited = Duration::from_millis(self.elapsed_ms().saturating_sub(since));
        let limit = if self.served_any.load(Ordering::Acquire) {
            limits.next
        } else {
            limits.first
        };
        Some((waited, limit))
    }
}

/// Records that the current connection has read a request head. Called by
/// the proxy for every request; does nothing outside a wrapped connection.
pub fn request_head_read() {
    let _ = HEAD_CLOCK.try_with(|clock| {
        clock.served_any.store(true, Ordering::Release);
        clock
            .waiting_since_ms
            .store(HeadClock::SERVING, Ordering::Release);
    });
}

/// Records that the current connection has finished a response and waits
/// for the next head.
pub fn response_finished() {
    let _ = HEAD_CLOCK.try_with(|clock| {
        clock
            .waiting_since_ms
            .store(clock.elapsed_ms(), Ordering::Release);
    });
}

/// Returns once the connection has waited for a request head longer than
/// its limit. While a request is served it checks again after the first
/// limit, so an idle connection wakes it once per limit at most.
async fn head_overdue(clock: &HeadClock, limits: HeadLimits) {
    loop {
        let pause = match clock.waiting(limits) {
            Some((waited, limit)) if waited >= limit => return,
            Some((waited, limit)) => limit - waited,
            None => limits.first,
        };
        tokio::time::sleep(pause).await;
    }
}

impl<A> ConnectionLimit<A> {
    /// Wraps `inner`, allowing at most `max` open connections (0: no cap).
    pub fn new(inner: A, max: usize, head_limits: HeadLimits) -> Self {
        let metrics = crate::metrics::metrics();
        metrics
            .connections_max
            .set(i64::try_from(max).unwrap_or(i64::MAX));
        ConnectionLimit {
            inner: Arc::new(inner),
            max,
            open: AtomicUsize::new(0),
            head_limits,
        }
    }

    /// Takes a slot for a new connection, or returns `None` at the cap.
    fn acquire(&self) -> Option<Slot<'_>> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (self.max == 0 || open < self.max).then_some(open + 1)
            });
        taken.ok()?;
        crate::metrics::metrics().connections_open.inc();
        Some(Slot { open: &self.open })
    }
}

/// One open connection; dropping it frees its slot.
struct Slot<'a> {
    open: &'a AtomicUsize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::metrics().connections_open.dec();
    }
}

#[async_trait]
impl<A> ServerApp for ConnectionLimit<A>
where
    A: ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_slot) = self.acquire() else {
            crate::metrics::metrics().connections_rejected.inc();
            tracing::debug!(
                max = self.max,
                "connection closed: server.max_connections are open"
            );
            // Dropping the stream closes the socket.
            return None;
        };
        let clock = Arc::new(HeadClock::new());
        // The slot is held until the connection ends, so a connection
        // handed back for reuse is served here rather than returned.
        let serve = HEAD_CLOCK.scope(clock.clone(), async {
            let mut next = self.inner.process_new(stream, shutdown).await;
            while let Some(stream) = next {
                next = self.inner.process_new(stream, shutdown).await;
            }
        });
        tokio::select! {
            () = serve => {}
            () = head_overdue(&clock, self.head_limits) => {
                crate::metrics::metrics().request_header_timeouts.inc();
                tracing::debug!("connection closed: a request head took longer than server.request_header_timeout");
            }
        }
        // Dropping the serving future closes the connection.
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Warns when the soft limit on open files is below twice
/// `max_connections` (each client connection may hold one upstream
/// connection), plus `upstream_pool` and [`OTHER_DESCRIPTORS`], because
/// accepting would then fail with EMFILE before the cap is reached. Only
/// Linux is checked, through `/proc/self/limits`.
pub fn warn_if_descriptor_limit_low(max_connections: usize, upstream_pool: usize) {
    if max_connections == 0 {
        return;
    }
    let Some(soft_limit) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| open_files_soft_limit(&limits))
    else {
        return;
    };
    // Each client connection may hold one upstream connection.
    let needed = 2 * max_connections as u64 + upstream_pool as u64 + OTHER_DESCRIPTORS;
    if soft_limit < needed {
        tracing::warn!(
            soft_limit,
            needed,
            max_connections,
            "the open-file limit (RLIMIT_NOFILE) is below what server.max_connections needs; raise it (ulimit -n) or lower server.max_connections"
        );
    }
}

/// Reads the soft "Max open files" limit from the text of
/// `/proc/self/limits`; `None` when it is missing or "unlimited".
fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files_soft_limit(limits), Some(1024));
        assert_eq!(
            open_files_soft_limit("Max open files unlimited unlimited files"),
            None
        );
        assert_eq!(open_files_soft_limit("Max processes 10 10 processes"), None);
    }

    fn test_limits() -> HeadLimits {
        HeadLimits::new(Duration::from_secs(60), Duration::from_secs(620))
    }

    #[test]
    fn head_limits_add_keepalive() {
        let limits = test_limits();
        assert_eq!(limits.first, Duration::from_secs(60));
        assert_eq!(limits.next, Duration::from_secs(680));
    }

    #[test]
    fn slots_stop_at_the_cap() {
        let limit = ConnectionLimit::new(
            (),
            2,
            HeadLimits::new(Duration::from_secs(60), Duration::from_secs(60)),
        );
        let first = limit.acquire();
        let second = limit.acquire();
        assert!(first.is_some(), "first slot");
        assert!(second.is_some(), "second slot");
        assert!(limit.acquire().is_none(), "third slot over the cap of 2");
        drop(first);
        assert!(limit.acquire().is_some(), "a freed slot is taken again");
    }

    #[test]
    fn zero_means_no_cap() {
        let limit = ConnectionLimit::new((), 0, test_limits());
        let slots: Vec<_> = (0..100).map(|_| limit.acquire()).collect();
        assert!(slots.iter().all(Option::is_some));
    }
}
