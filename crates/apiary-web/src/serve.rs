//! Serving a console over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::console::Console;
use crate::routes;

/// Why a console could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address was asked for without an access token.
    #[error("refusing to serve the console on {addr} without an access token: anyone who can reach it could steer the swarm (give a token, or bind to 127.0.0.1)")]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot serve the console on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Options of [`serve_with`].
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    token: Option<String>,
}

impl ServeOptions {
    /// Requires this access token on every request (see [`access`](crate::access)). An
    /// empty token counts as none.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }
}

/// A console being served; [`shutdown`](Self::shutdown) stops it.
#[derive(Debug)]
pub struct Served {
    addr: SocketAddr,
    /// Ends this server's event streams.
    closing: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// How long a shutdown waits for connections to finish before it drops them: a client that
/// stopped reading holds its connection until its socket buffer drains, which may be never.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Served {
    /// The address it listens on (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: open event streams end, the listener closes.
    pub async fn shutdown(mut self) {
        self.closing.send_replace(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.closing.send_replace(true);
        self.task.abort();
    }
}

/// Serves `console` on `addr` (loopback only; see [`serve_with`] for a token).
///
/// # Errors
///
/// As [`serve_with`].
pub async fn serve(console: &Console, addr: SocketAddr) -> Result<Served, ServeError> {
    serve_with(console, addr, ServeOptions::default()).await
}

/// Serves `console` on `addr` with `options`.
///
/// # Errors
///
/// [`ServeError::TokenRequired`] for a non-loopback address without a token,
/// [`ServeError::Bind`] if the address cannot be bound.
pub async fn serve_with(
    console: &Console,
    addr: SocketAddr,
    options: ServeOptions,
) -> Result<Served, ServeError> {
    if !addr.ip().is_loopback() && options.token.is_none() {
        return Err(ServeError::TokenRequired { addr });
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let (closing, closed) = watch::channel(false);
    let app = routes::router(console.clone(), options.token, closed);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Small event frames must leave at once, not wait out Nagle's algorithm against the
        // client's delayed acknowledgement (40 ms on Linux).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::warn!(error = %e, "web console server stopped");
        }
    });
    Ok(Served {
        addr: local,
        closing,
        stop: Some(stop),
        task,
    })
}

impl Console {
    /// The console's routes as an axum [`Router`](axum::Router), to mount in an app of your
    /// own; `token` as in [`ServeOptions::token`]. Its event streams end at
    /// [`close`](Self::close) (call it before a graceful shutdown of your server: open
    /// streams would hold it up).
    pub fn router(&self, token: Option<String>) -> axum::Router {
        routes::router(
            self.clone(),
            token.filter(|t| !t.is_empty()),
            self.inner.closing.subscribe(),
        )
    }

    /// Ends the event streams of routers made by [`router`](Self::router), and those they
    /// open later.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }
}
