//! Graceful shutdown. On SIGTERM readiness turns false at once, the proxy
//! keeps serving for `server.drain_delay` so load balancers stop sending
//! new requests, and then Pingora closes the listeners. The process exits as
//! soon as no proxied request is in flight, or when `server.grace_period`
//! ends, whichever comes first.
//!
//! Pingora 0.9 on its own sleeps the whole grace period even when nothing is
//! in flight, so every rollout would wait for it. Counting requests here lets
//! an idle replica stop in milliseconds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

/// How often the in-flight count is checked once shutdown has begun.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// Whether the process is shutting down, and how many proxied requests are
/// in flight. One per process, shared by the proxy, the admin listener and
/// the signal handler.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Lifecycle {
    /// Creates the state of a process that is serving normally.
    pub fn new() -> Arc<Self> {
        Arc::new(Lifecycle::default())
    }

    /// Counts one request as in flight until the returned guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Returns the number of requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Tells whether SIGTERM has arrived, so readiness must report false.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// A guard for one request in flight. Dropping it ends the count, however the
/// request ended.
#[derive(Debug)]
pub struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shutdown signals: SIGTERM drains then shuts down gracefully, SIGINT
/// stops at once, also during the drain delay.
pub struct ShutdownSignals {
    lifecycle: Arc<Lifecycle>,
    drain_delay: Duration,
}

impl ShutdownSignals {
    /// Creates the handler. Signals are listened for only once Pingora calls
    /// `recv`.
    pub fn new(lifecycle: Arc<Lifecycle>, drain_delay: Duration) -> Self {
        ShutdownSignals {
            lifecycle,
            drain_delay,
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for ShutdownSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // Without handlers the signals keep their default action, which
            // ends the process. Waiting forever here keeps it serving until then.
            tracing::error!(
                "cannot listen for SIGTERM and SIGINT; they will end the process at once"
            );
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => return ShutdownSignal::FastShutdown,
            _ = terminate.recv() => {}
        }
        self.lifecycle.start_draining();
        tracing::info!(
            drain_delay_ms = duration_ms(self.drain_delay),
            in_flight = self.lifecycle.in_flight(),
            "SIGTERM received: readiness reports not ready; new requests are served until the drain delay ends"
        );
        tokio::select! {
            _ = interrupt.recv() => return ShutdownSignal::FastShutdown,
            () = tokio::time::sleep(self.drain_delay) => {}
        }
        // Pingora stops listening for signals once this returns, but the
        // handler stays installed and would swallow SIGINT during the grace
        // period, so this task keeps honouring it.
        tokio::spawn(async move {
            if interrupt.recv().await.is_some() {
                tracing::info!("SIGINT received during the grace period; exiting at once");
                crate::logging::flush();
                std::process::exit(0);
            }
        });
        ShutdownSignal::GracefulTerminate
    }
}

/// Ends the process once shutdown has begun and no request is in flight,
/// instead of waiting out the whole grace period.
pub struct ExitWhenIdle {
    lifecycle: Arc<Lifecycle>,
}

impl ExitWhenIdle {
    /// Creates the task over the process's lifecycle.
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        ExitWhenIdle { lifecycle }
    }
}

#[async_trait]
impl BackgroundService for ExitWhenIdle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        // A connection accepted just before the listeners closed may still be
        // reading its request, so the count must stay at zero for two polls.
        let mut idle_polls = 0;
        loop {
            idle_polls = if self.lifecycle.in_flight() == 0 {
                idle_polls + 1
            } else {
                0
            };
            if idle_polls >= 2 {
                tracing::info!("no request in flight; exiting before the grace period ends");
                crate::logging::flush();
                std::process::exit(0);
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_live_guards() {
        let lifecycle = Lifecycle::new();
        let first = lifecycle.start_request();
        let second = lifecycle.start_request();
        assert_eq!(lifecycle.in_flight(), 2);
        drop(first);
        assert_eq!(lifecycle.in_flight(), 1);
        drop(second);
        assert_eq!(lifecycle.in_flight(), 0);
        assert!(!lifecycle.is_draining());
    }
}
