//! The serving end of task lines: single-use tickets, the listener, and one reader per
//! connection that runs each call on its own task and queues the answer for a batching
//! writer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::frame::{self, Hello, Token};
use super::write_batches;
use crate::node::Shared;
use crate::wire::Reply;

/// How long a ticket may wait for its connection.
const TICKET_LIFE: Duration = Duration::from_secs(30);

/// How long a new connection may take to say hello.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

/// An exported agent as a task line serves it.
pub(crate) trait Serve: Send + Sync {
    /// Runs a task that node `from` sent (postcard bytes) and answers.
    fn serve(&self, shared: &Shared, from: &str, task: &[u8]) -> BoxFuture<'static, Reply>;
}

struct Ticket {
    from: String,
    issued: Instant,
    serve: Arc<dyn Serve>,
}

/// Tickets handed out and not yet used.
#[derive(Default)]
pub(crate) struct Tickets(Mutex<HashMap<Token, Ticket>>);

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").finish_non_exhaustive()
    }
}

impl Tickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Token, Ticket>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new ticket for node `from` to reach `serve`, or why there is none.
    pub(crate) fn issue(&self, from: String, serve: Arc<dyn Serve>) -> Result<Token, String> {
        let mut token = Token::default();
        getrandom::fill(&mut token).map_err(|e| format!("no randomness for a ticket: {e}"))?;
        let mut tickets = self.lock();
        // Tickets nobody came for (their caller died between asking and connecting).
        tickets.retain(|_, t| t.issued.elapsed() < TICKET_LIFE);
        tickets.insert(
            token,
            Ticket {
                from,
                issued: Instant::now(),
                serve,
            },
        );
        Ok(token)
    }

    /// What `hello`'s ticket serves, once: `None` if it is unknown, used, expired, or was
    /// issued to another node.
    fn redeem(&self, hello: &Hello) -> Option<Arc<dyn Serve>> {
        let ticket = self.lock().remove(&hello.token)?;
        (ticket.from == hello.from && ticket.issued.elapsed() < TICKET_LIFE).then_some(ticket.serve)
    }
}

/// Serves task lines on `listener` until `stopping` is cancelled or the node is gone.
pub(crate) async fn listen(
    listener: TcpListener,
    shared: Weak<Shared>,
    stopping: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stopping.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was accepted: the
                // listener itself is fine. A pause keeps a persistent error from spinning.
                tracing::warn!(error = %e, "cluster: task line not accepted");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stopping.cancelled() => {}
                served = connection(tcp, addr, &shared, &stopping) => {
                    if let Err(e) = served {
                        tracing::warn!(node = %shared.name, peer = %addr, error = %e, "cluster: task line closed");
                    }
                }
            }
        });
    }
}

async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    stopping: &CancellationToken,
) -> Result<(), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    match &shared.lines.tls {
        Some(tls) => {
            let stream = tokio::time::timeout(HELLO_WITHIN, tls.acceptor.accept(tcp))
                .await
                .map_err(|_| "no TLS handshake in time".to_owned())?
                .map_err(|e| format!("TLS: {e}"))?;
            serve(stream, addr, shared, stopping).await
        }
        None => serve(tcp, addr, shared, stopping).await,
    }
}

async fn serve<S>(
    stream: S,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    stopping: &CancellationToken,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, frame::codec());
    let mut writer = FramedWrite::new(write, frame::codec());
    let hello = match tokio::time::timeout(HELLO_WITHIN, reader.next()).await {
        Ok(Some(Ok(hello))) => hello,
        Ok(Some(Err(e))) => return Err(e.to_string()),
        Ok(None) => return Err("closed before its hello".into()),
        Err(_) => return Err(format!("no hello within {} s", HELLO_WITHIN.as_secs())),
    };
    let hello: Hello =
        postcard::from_bytes(&hello).map_err(|e| format!("its hello does not decode: {e}"))?;
    let Some(served) = shared.lines.tickets.redeem(&hello) else {
        let why = format!(
            "node `{}` has no ticket of node `{}` (unknown, used, expired or issued to another node)",
            shared.name, hello.from
        );
        let _ = writer.send(Bytes::from(why.clone())).await;
        return Err(why);
    };
    writer.send(Bytes::new()).await.map_err(|e| e.to_string())?;
    let (answers, queued) = mpsc::unbounded_channel();
    // Stops with the node; otherwise once the reader and every call it started are done.
    tokio::spawn({
        let stopping = stopping.clone();
        async move {
            tokio::select! {
                () = stopping.cancelled() => {}
                written = write_batches(writer, queued) => {
                    if let Err(e) = written {
                        tracing::debug!(peer = %addr, error = %e, "cluster: task line answers not written");
                    }
                }
            }
        }
    });
    while let Some(call) = reader.next().await {
        let call = call.map_err(|e| format!("from `{}`: {e}", hello.from))?;
        let (id, task) =
            frame::split_id(&call).map_err(|e| format!("from `{}`: {e}", hello.from))?;
        let answer = served.serve(shared, &hello.from, task);
        let answers = answers.clone();
        tokio::spawn(async move {
            let reply = answer.await;
            // The line may have closed meanwhile: the caller then gave the task up.
            let _ = answers.send(frame::answer(id, &reply));
        });
    }
    Ok(())
}
