//! Accepting connections for a router: HTTP/1.1 on every accepted socket, under the
//! listener's connection cap and timeouts (see [`super::connections`]), with the
//! client's address handed to the handlers as `ConnectInfo`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use super::connections::{Admitted, Phase, Registry, Timeouts, Watched};

/// File descriptors kept out of both listeners' caps, for the database, the blob
/// store, transfers and outbound connections.
const RESERVED_FILES: u64 = 128;

/// What bounds one listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub timeouts: Timeouts,
}

/// Serves `router` on `listener` until the task is aborted.
pub fn serve(name: &'static str, listener: TcpListener, router: Router, limits: ListenerLimits) -> JoinHandle<()> {
    let registry = Registry::new(name, limits.max_connections);
    tokio::spawn(async move {
        let mut out_of_files_logged = false;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (or a passing network error): wait for
                    // connections to close rather than spin on the error.
                    if !out_of_files_logged {
                        tracing::error!(listener = name, error = %e, "accepting a connection failed; retrying");
                        out_of_files_logged = is_out_of_files(&e);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            out_of_files_logged = false;
            let Some(admitted) = registry.admit() else {
                // Every connection is being worked on: refuse this one at once.
                drop(stream);
                continue;
            };
            tokio::spawn(serve_connection(stream, peer, admitted, router.clone(), limits.timeouts));
        }
    })
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::EMFILE || code == libc::ENFILE)
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, admitted: Admitted, router: Router, timeouts: Timeouts) {
    let _ = stream.set_nodelay(true);
    let connection = admitted.connection.clone();
    let io = TokioIo::new(Watched::new(stream, connection.clone()));
    let tracked = connection.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        tracked.enter(Phase::Body);
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(Activity(tracked.clone()));
        let answer = router.clone().oneshot(request.map(Body::new));
        let tracked = tracked.clone();
        async move {
            let response = answer.await;
            tracked.enter(Phase::Idle);
            response
        }
    });
    // Header and idle deadlines are the watchdog's (hyper's own header timer would
    // also run while a kept-alive connection is idle); the body's is the reader's.
    let serving = hyper::server::conn::http1::Builder::new().header_read_timeout(None).serve_connection(io, service);
    tokio::select! {
        _ = serving => {}
        _ = connection.watch(timeouts) => {}
    }
    drop(admitted);
}

/// The connection a request came on, so that its reader can say when the body is in.
#[derive(Clone)]
pub struct Activity(Arc<super::connections::Connection>);

impl Activity {
    /// The request is read: from now on it is work, not waiting.
    pub fn working(&self) {
        self.0.enter(Phase::Busy);
    }
}

/// Raises the soft open-file limit to the hard limit, and returns it.
pub fn raise_open_files_limit() -> u64 {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur
    }
}

/// The two listeners' caps, lowered to fit `open_files` (the process's limit) with
/// room left for everything else; each keeps its own share, so a full public
/// listener never takes the admin listener's sockets.
pub fn fit_caps(public: usize, admin: usize, open_files: u64) -> (usize, usize) {
    let budget = open_files.saturating_sub(RESERVED_FILES) as usize;
    if public + admin <= budget {
        return (public, admin);
    }
    let admin = admin.min((budget / 8).max(4));
    let public = public.min(budget.saturating_sub(admin)).max(8);
    tracing::warn!(
        open_files,
        public_max_connections = public,
        admin_max_connections = admin,
        "the open-file limit is low: connection caps lowered to fit it"
    );
    (public, admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_open_file_limit_and_keep_a_share_for_the_admin_listener() {
        assert_eq!(fit_caps(1024, 64, 1 << 20), (1024, 64), "a high limit leaves the caps alone");
        let (public, admin) = fit_caps(1024, 64, 256);
        assert_eq!((public, admin), (112, 16));
        assert!(public as u64 + admin as u64 + RESERVED_FILES <= 256);
        assert_eq!(fit_caps(1024, 64, 100), (8, 4), "never below the minimums");
    }
}
