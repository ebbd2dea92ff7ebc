//! The serving end of task lines: single-use tickets, the listener, and one task per
//! connection that reads calls, runs them side by side, and writes their answers as they
//! come, all ready ones in one write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::frame::{self, Hello, Token};
use crate::node::Shared;
use crate::wire::Reply;

/// How long a ticket may wait for its connection.
const TICKET_LIFE: Duration = Duration::from_secs(30);

/// The largest hello read: a node name and a token need far less.
const MAX_HELLO: usize = 64 << 10;

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
                served = connection(tcp, &shared) => {
                    if let Err(e) = served {
                        tracing::warn!(node = %shared.name, peer = %addr, error = %e, "cluster: task line closed");
                    }
                }
            }
        });
    }
}

async fn connection(tcp: TcpStream, shared: &Arc<Shared>) -> Result<(), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    match &shared.lines.tls {
        Some(tls) => {
            let stream = tokio::time::timeout(HELLO_WITHIN, tls.acceptor.accept(tcp))
                .await
                .map_err(|_| "no TLS handshake in time".to_owned())?
                .map_err(|e| format!("TLS: {e}"))?;
            serve(stream, shared).await
        }
        None => serve(tcp, shared).await,
    }
}

async fn serve<S>(stream: S, shared: &Arc<Shared>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    // Until a ticket is shown, nobody gets to make this node buffer a large frame.
    let mut before_hello = frame::codec();
    before_hello.set_max_frame_length(MAX_HELLO);
    let mut reader = FramedRead::new(read, before_hello);
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
    reader.decoder_mut().set_max_frame_length(frame::MAX_FRAME);
    let at = |e: std::io::Error| format!("with `{}`: {e}", hello.from);
    // The calls run here, not on tasks of their own, and their answers are written here:
    // an answer's way out is the agent waking this task, which writes it with every other
    // answer ready by then in one write.
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some((id, reply)) = running.next(), if !running.is_empty() => {
                writer.feed(Bytes::from(frame::answer(id, &reply))).await.map_err(at)?;
                while let Some(Some((id, reply))) = running.next().now_or_never() {
                    writer.feed(Bytes::from(frame::answer(id, &reply))).await.map_err(at)?;
                }
                SinkExt::<Bytes>::flush(&mut writer).await.map_err(at)?;
            }
            call = reader.next() => {
                let Some(call) = call else { break };
                let call = call.map_err(at)?;
                let (id, task) =
                    frame::split_id(&call).map_err(|e| format!("from `{}`: {e}", hello.from))?;
                let answer = served.serve(shared, &hello.from, task);
                running.push(async move { (id, answer.await) });
            }
        }
    }
    // The caller stopped sending (it shut its side): answer what is still running.
    while let Some((id, reply)) = running.next().await {
        writer
            .send(Bytes::from(frame::answer(id, &reply)))
            .await
            .map_err(at)?;
    }
    Ok(())
}
