//! The connections a listener holds, and what each is doing, so that none can hold
//! a socket for nothing: an idle keep-alive connection, a header sent a byte at a
//! time, and a stalled body each have a deadline, and at the listener's cap a new
//! connection closes the one that has waited longest without work being done for it.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Waiting for a request (new, or kept alive after one).
    Idle = 0,
    /// Part of a request's header has arrived.
    Header = 1,
    /// The header is in; the body is being read.
    Body = 2,
    /// The request is being worked on or answered.
    Busy = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Idle,
            1 => Phase::Header,
            2 => Phase::Body,
            _ => Phase::Busy,
        }
    }
}

/// How long a connection may wait in each phase.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// One connection's state, shared by its socket wrapper, its requests and its watchdog.
pub struct Connection {
    phase: AtomicU8,
    /// When the phase last changed, in milliseconds since the registry's start.
    since_ms: AtomicU64,
    epoch: Instant,
    close: Notify,
    /// Wakes the watchdog when a header starts, whose deadline may be sooner than the idle one.
    header_started: Notify,
}

impl Connection {
    fn new(epoch: Instant) -> Connection {
        let connection =
            Connection {
            phase: AtomicU8::new(Phase::Idle as u8),
            since_ms: AtomicU64::new(0),
            epoch,
            close: Notify::new(),
            header_started: Notify::new(),
        };
        connection.enter(Phase::Idle);
        connection
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Moves the connection to `phase`, from now.
    pub fn enter(&self, phase: Phase) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The phase, and how long the connection has been in it.
    pub fn phase(&self) -> (Phase, Duration) {
        let since = self.since_ms.load(Ordering::Relaxed);
        (Phase::from_u8(self.phase.load(Ordering::Relaxed)), Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Bytes arrived: an idle connection has started sending a request.
    fn bytes_arrived(&self) {
        if self.phase.compare_exchange(Phase::Idle as u8, Phase::Header as u8, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.header_started.notify_one();
        }
    }

    /// Returns when the connection has overstayed its phase or was evicted: the
    /// caller then drops it, closing the socket.
    pub async fn watch(&self, timeouts: Timeouts) {
        // Re-checked at least this often, as a request starting or ending moves the deadline.
        const RECHECK: Duration = Duration::from_secs(1);
        loop {
            let (phase, elapsed) = self.phase();
            let limit = match phase {
                Phase::Idle => Some(timeouts.idle),
                Phase::Header => Some(timeouts.header),
                // A body's deadline is kept by whoever reads it; ours to answer, then.
                Phase::Body | Phase::Busy => None,
            };
            let wait = match limit {
                Some(limit) if elapsed >= limit => return,
                Some(limit) => (limit - elapsed).min(RECHECK),
                None => RECHECK,
            };
            tokio::select! {
                _ = self.close.notified() => return,
                _ = self.header_started.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The connections of one listener, capped.
pub struct Registry {
    name: &'static str,
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    /// Set while the listener is at its cap, so that it is logged once per episode.
    at_cap: AtomicBool,
}

/// A connection admitted by the registry; it leaves the registry when dropped.
pub struct Admitted {
    pub connection: Arc<Connection>,
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.open.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl Registry {
    /// A registry for the listener `name`, holding at most `max` connections.
    pub fn new(name: &'static str, max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            name,
            max,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            at_cap: AtomicBool::new(false),
        })
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Admits a new connection. At the cap, the connection that has waited longest
    /// without being worked on (idle, or sending its header or body) is closed to
    /// make room; `None` when every connection is being worked on.
    pub fn admit(self: &Arc<Registry>) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= self.max {
            if !self.at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    listener = self.name,
                    max_connections = self.max,
                    "connection cap reached: new connections now close the longest-waiting idle ones"
                );
            }
            let victim = open
                .iter()
                .filter_map(|(id, c)| {
                    let (phase, waited) = c.phase();
                    (phase != Phase::Busy).then_some((waited, *id))
                })
                .max();
            let (_, id) = victim?;
            if let Some(evicted) = open.remove(&id) {
                evicted.close.notify_one();
            }
        } else if open.len() < self.max / 2 && self.at_cap.swap(false, Ordering::Relaxed) {
            tracing::info!(listener = self.name, "connections back under half the cap");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new(self.epoch));
        open.insert(id, connection.clone());
        Some(Admitted { connection, id, registry: self.clone() })
    }
}

/// A socket that tells its connection when request bytes arrive.
pub struct Watched<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, connection: Arc<Connection>) -> Watched<S> {
        Watched { inner, connection }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.bytes_arrived();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Timeouts = Timeouts { header: Duration::from_millis(150), idle: Duration::from_millis(300) };

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout() {
        let registry = Registry::new("test", 8);
        let admitted = registry.admit().unwrap();
        let started = Instant::now();
        admitted.connection.watch(QUICK).await;
        let waited = started.elapsed();
        assert!(waited >= QUICK.idle && waited < QUICK.idle * 3, "{waited:?}");
    }

    #[tokio::test]
    async fn a_started_header_has_the_shorter_header_timeout() {
        let registry = Registry::new("test", 8);
        let admitted = registry.admit().unwrap();
        admitted.connection.bytes_arrived();
        let started = Instant::now();
        admitted.connection.watch(QUICK).await;
        let waited = started.elapsed();
        assert!(waited >= QUICK.header && waited < QUICK.idle, "{waited:?}");
    }

    #[tokio::test]
    async fn a_busy_connection_is_not_timed_out() {
        let registry = Registry::new("test", 8);
        let admitted = registry.admit().unwrap();
        admitted.connection.enter(Phase::Busy);
        let watched = tokio::time::timeout(QUICK.idle * 2, admitted.connection.watch(QUICK)).await;
        assert!(watched.is_err(), "the watchdog left a busy connection alone");
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_waiting_connection_that_is_not_busy_is_evicted() {
        let registry = Registry::new("test", 3);
        let busy = registry.admit().unwrap();
        busy.connection.enter(Phase::Busy);
        let oldest_idle = registry.admit().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let newer = registry.admit().unwrap();
        newer.connection.bytes_arrived();
        assert_eq!(registry.len(), 3);

        let fourth = registry.admit().expect("room is made");
        assert_eq!(registry.len(), 3, "one was evicted for it");
        // The evicted connection's watchdog returns at once; the others' do not.
        tokio::time::timeout(Duration::from_millis(50), oldest_idle.connection.watch(QUICK)).await.expect("evicted");
        assert!(tokio::time::timeout(Duration::from_millis(50), newer.connection.watch(QUICK)).await.is_err());

        // With every connection busy, a new one is refused rather than evicting work.
        for admitted in [&busy, &newer, &fourth] {
            admitted.connection.enter(Phase::Busy);
        }
        assert!(registry.admit().is_none());
        drop(fourth);
        assert_eq!(registry.len(), 2, "a dropped connection leaves the registry");
    }
}
