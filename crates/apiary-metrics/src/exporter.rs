//! Serving the metrics to Prometheus over HTTP.

use std::net::{SocketAddr, TcpListener};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `_seconds` series: 10 µs (an actor round trip) to 5 min (a
/// test suite run by a shell agent).
const SECONDS_BUCKETS: &[f64] = &[
    1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExporterError {
    /// The address cannot be listened on (in use, not local, no permission).
    #[error("cannot serve metrics on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS's reason.
        reason: String,
    },
    /// This process already has a metrics recorder (the `metrics` facade takes one).
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
    /// Called outside a tokio runtime (the HTTP listener runs on it).
    #[error("the metrics exporter must be started inside a tokio runtime")]
    NoRuntime,
    /// The exporter refused its configuration.
    #[error("metrics exporter: {0}")]
    Build(String),
}

/// The installed Prometheus recorder and its `/metrics` listener.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), apiary_metrics::ExporterError> {
/// let exporter = apiary_metrics::Exporter::install("127.0.0.1:9464".parse().unwrap())?;
/// println!("scrape http://{}/metrics", exporter.addr());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Exporter {
    addr: SocketAddr,
    handle: PrometheusHandle,
}

impl Exporter {
    /// Installs the process-wide recorder and serves `/metrics` on `addr` (port 0 picks a
    /// free port; [`addr`](Self::addr) tells which). Start it before building swarms: their
    /// per-agent series bind to the recorder present when they start.
    pub fn install(addr: SocketAddr) -> Result<Self, ExporterError> {
        tokio::runtime::Handle::try_current().map_err(|_| ExporterError::NoRuntime)?;
        let bind_error = |e: &dyn std::fmt::Display| ExporterError::Bind {
            addr,
            reason: e.to_string(),
        };
        // The exporter cannot report the port it bound, so port 0 is resolved here first.
        let addr = if addr.port() == 0 {
            TcpListener::bind(addr)
                .and_then(|l| l.local_addr())
                .map_err(|e| bind_error(&e))?
        } else {
            addr
        };
        let (recorder, server) = PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .map_err(|e| ExporterError::Build(e.to_string()))?
            .build()
            .map_err(|e| match e {
                metrics_exporter_prometheus::BuildError::FailedToCreateHTTPListener(reason) => {
                    ExporterError::Bind { addr, reason }
                }
                other => ExporterError::Build(other.to_string()),
            })?;
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|_| ExporterError::AlreadyInstalled)?;
        crate::describe();
        tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("apiary metrics exporter stopped: {e:?}");
            }
        });
        Ok(Self { addr, handle })
    }

    /// The address `/metrics` is served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The exposition text a scrape would get now.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}
