//! The calling end of a task line: calls in flight by id, a writer that batches, a reader
//! that hands each answer to its call.
//!
//! A call alone on its line writes its own frame: handing every frame to the writer task
//! cost a wake-up of that task per call, on a path whose floor is a TCP round trip. Calls
//! that find others in flight queue their frames, and the writer task sends everything
//! queued in one write, so calls in flight together share a few syscalls (written one by
//! one, 64 calls in flight moved half as many tasks a second).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::frame::{self, Hello};
use crate::wire::Reply;
use crate::Tls;

/// How a call ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// No answer within the caller's timeout.
    Timeout,
    /// The line closed first, for this reason.
    Down(String),
}

type Answer = oneshot::Sender<Result<Reply, String>>;

/// The line's write half, whatever the stream (TCP or TLS).
type Sink = FramedWrite<Pin<Box<dyn AsyncWrite + Send>>, LengthDelimitedCodec>;

/// What the writer task is asked to do.
#[derive(Debug)]
enum Out {
    /// Send this frame.
    Frame(Vec<u8>),
    /// Finish a write a caller started and could not complete at once.
    Flush,
}

/// An open task line to one gateway of a peer.
#[derive(Debug)]
pub(crate) struct Line {
    state: Arc<State>,
    tasks: [AbortHandle; 2],
}

struct State {
    /// Locked by a caller writing its own frame, or by the writer task for a batch.
    sink: tokio::sync::Mutex<Sink>,
    frames: mpsc::UnboundedSender<Out>,
    calls: Mutex<Calls>,
    next: AtomicU64,
    /// The line, as its errors name it.
    at: String,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("at", &self.at)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Calls {
    waiting: HashMap<u64, Answer>,
    /// Why the line closed, once it has: no call is taken after.
    closed: Option<String>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` for the writer task. The writer only stops after the line closed, and
    /// closing ends every call, so a frame it never takes is answered anyway.
    fn queue(&self, frame: Vec<u8>) {
        let _ = self.frames.send(Out::Frame(frame));
    }

    /// Sends `frame`: written here if no write is under way and the socket takes it at once,
    /// else by the writer task.
    fn write(&self, frame: Vec<u8>) {
        let Ok(mut sink) = self.sink.try_lock() else {
            return self.queue(frame);
        };
        // Polled once, never waited on (the caller goes on to wait for its answer): what the
        // socket does not take now stays in the codec's buffer for the writer task to finish,
        // so no frame is ever left half written.
        let mut cx = Context::from_waker(Waker::noop());
        match SinkExt::<Bytes>::poll_ready_unpin(&mut *sink, &mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return self.fail(e),
            Poll::Pending => return self.queue(frame),
        }
        if let Err(e) = sink.start_send_unpin(Bytes::from(frame)) {
            return self.fail(e);
        }
        match SinkExt::<Bytes>::poll_flush_unpin(&mut *sink, &mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => self.fail(e),
            Poll::Pending => {
                let _ = self.frames.send(Out::Flush);
            }
        }
    }

    /// Closes the line over a write that failed, naming the line.
    fn fail(&self, e: std::io::Error) {
        self.close(&format!("{}: {e}", self.at));
    }

    /// Ends every waiting call with `cause`; the first cause sticks.
    fn close(&self, cause: &str) {
        let waiting = {
            let mut calls = self.lock();
            calls.closed.get_or_insert_with(|| cause.to_owned());
            std::mem::take(&mut calls.waiting)
        };
        for (_, answer) in waiting {
            let _ = answer.send(Err(cause.to_owned()));
        }
    }
}

/// Removes a call that ends without its answer (timed out, or its caller went away).
struct Waiting<'a> {
    state: &'a State,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.state.lock().waiting.remove(&self.id);
    }
}

impl Line {
    /// Connects to `addr` (through TLS if `tls`) and says `hello`; `peer` names the node in
    /// errors. Fails, with why, if the connection, the handshake or the ticket fails within
    /// `wait`.
    pub(crate) async fn open(
        peer: &str,
        addr: SocketAddr,
        hello: &Hello,
        tls: Option<&Tls>,
        wait: Duration,
    ) -> Result<Self, String> {
        let opened = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            match tls {
                Some(tls) => {
                    let stream = tls
                        .connector
                        .connect(tls.server_name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?;
                    Self::start(peer, addr, stream, hello).await
                }
                None => Self::start(peer, addr, tcp, hello).await,
            }
        };
        match tokio::time::timeout(wait, opened).await {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(format!("task line to `{peer}` at {addr}: {e}")),
            Err(_) => Err(format!(
                "task line to `{peer}` at {addr}: no answer within {} s",
                wait.as_secs()
            )),
        }
    }

    async fn start<S>(
        peer: &str,
        addr: SocketAddr,
        stream: S,
        hello: &Hello,
    ) -> Result<Self, String>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let mut reader = FramedRead::new(read, frame::codec());
        let mut writer: Sink = FramedWrite::new(Box::pin(write), frame::codec());
        let hello = postcard::to_allocvec(hello).map_err(|e| e.to_string())?;
        writer
            .send(Bytes::from(hello))
            .await
            .map_err(|e| e.to_string())?;
        match reader.next().await {
            Some(Ok(answer)) if answer.is_empty() => {}
            Some(Ok(refusal)) => {
                return Err(format!("refused: {}", String::from_utf8_lossy(&refusal)))
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed during the handshake".into()),
        }
        let (frames, queued) = mpsc::unbounded_channel();
        let at = format!("task line to `{peer}` at {addr}");
        let state = Arc::new(State {
            sink: tokio::sync::Mutex::new(writer),
            frames,
            calls: Mutex::default(),
            next: AtomicU64::new(0),
            at: at.clone(),
        });
        let writing = tokio::spawn({
            let state = state.clone();
            async move {
                if let Err(e) = write_queued(&state, queued).await {
                    state.fail(e);
                }
            }
        });
        let reading = tokio::spawn({
            let state = state.clone();
            async move {
                let cause = loop {
                    let frame = match reader.next().await {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) => break format!("{at}: {e}"),
                        None => break format!("{at}: closed by the peer"),
                    };
                    match frame::read_answer(&frame) {
                        Ok((id, reply)) => {
                            let answer = state.lock().waiting.remove(&id);
                            // Absent: the call timed out or its caller went away.
                            if let Some(answer) = answer {
                                let _ = answer.send(Ok(reply));
                            }
                        }
                        Err(e) => break format!("{at}: {e}"),
                    }
                };
                state.close(&cause);
            }
        });
        Ok(Self {
            state,
            tasks: [writing.abort_handle(), reading.abort_handle()],
        })
    }

    /// Sends a call frame made by [`frame::call`] and waits up to `timeout` for its answer.
    pub(crate) async fn call(
        &self,
        mut call: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Reply, Ended> {
        let id = self.state.next.fetch_add(1, Ordering::Relaxed);
        frame::set_id(&mut call, id);
        let (answer, answered) = oneshot::channel();
        let alone = {
            let mut calls = self.state.lock();
            if let Some(cause) = &calls.closed {
                return Err(Ended::Down(cause.clone()));
            }
            let alone = calls.waiting.is_empty();
            calls.waiting.insert(id, answer);
            alone
        };
        let _waiting = Waiting {
            state: &self.state,
            id,
        };
        if alone {
            self.state.write(call);
        } else {
            self.state.queue(call);
        }
        let answered = match timeout {
            Some(limit) => match tokio::time::timeout(limit, answered).await {
                Ok(answered) => answered,
                Err(_) => return Err(Ended::Timeout),
            },
            None => answered.await,
        };
        match answered {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(cause)) => Err(Ended::Down(cause)),
            Err(_) => Err(Ended::Down("the task line was dropped".into())),
        }
    }

    /// Whether the line has closed (a new one must be opened).
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed.is_some()
    }

    /// Closes the line: waiting calls end with `cause`, new ones are refused.
    pub(crate) fn close(&self, cause: &str) {
        self.state.close(cause);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Writes what callers queued until the line closes: everything queued when a write starts
/// goes out in that write.
async fn write_queued(
    state: &State,
    mut queued: mpsc::UnboundedReceiver<Out>,
) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(64);
    while queued.recv_many(&mut batch, 256).await > 0 {
        let mut sink = state.sink.lock().await;
        for out in batch.drain(..) {
            if let Out::Frame(frame) = out {
                sink.feed(Bytes::from(frame)).await?;
            }
        }
        SinkExt::<Bytes>::flush(&mut *sink).await?;
    }
    Ok(())
}

impl Drop for Line {
    fn drop(&mut self) {
        self.close("the task line was dropped");
    }
}
