//! The console: one swarm's live picture, its replay buffer of encoded events, and the
//! controls a page may use.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiary_core::{EventStream, RecvError, Swarm, SwarmEvent, TaskCanceller, TaskHandle, TaskId};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::model::Model;
use crate::ring::{Frame, Ring};
use crate::snapshot::{self, Snapshot};

/// Events kept for clients that reconnect, by default.
pub const DEFAULT_BUFFER: usize = 4096;

/// The least time between two writes to one event-stream client, by default: a page redraws
/// at most every 100 ms, and waking every client for every event of a busy swarm would take
/// the swarm's cores.
pub const DEFAULT_PACE: Duration = Duration::from_millis(10);

/// A budget as a gauge on the page: how much of `limit` is spent.
///
/// # Examples
///
/// ```
/// use apiary_web::BudgetGauge;
///
/// let gauge = BudgetGauge::new("swarm", "tokens", 10_000.0, 8_100.0);
/// assert!(gauge.fraction() > 0.8);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetGauge {
    /// Which budget (`swarm`, `agent coder`, ...).
    pub name: String,
    /// What it limits (`tokens`, `cost`).
    pub resource: String,
    /// The limit.
    pub limit: f64,
    /// Spent so far.
    pub spent: f64,
}

impl BudgetGauge {
    /// A gauge.
    pub fn new(
        name: impl Into<String>,
        resource: impl Into<String>,
        limit: f64,
        spent: f64,
    ) -> Self {
        Self {
            name: name.into(),
            resource: resource.into(),
            limit,
            spent,
        }
    }

    /// Spent over limit (0 for a zero limit).
    pub fn fraction(&self) -> f64 {
        if self.limit > 0.0 {
            self.spent / self.limit
        } else {
            0.0
        }
    }
}

type Budgets = Box<dyn Fn() -> Vec<BudgetGauge> + Send + Sync>;

/// What the pump and the routes share.
pub(crate) struct Shared {
    pub(crate) ring: Ring,
    pub(crate) model: Mutex<Model>,
}

impl Shared {
    pub(crate) fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        // Folding an event never panics midway in practice; a poisoned model is still usable.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct Inner {
    pub(crate) swarm: Swarm,
    pub(crate) shared: Arc<Shared>,
    pub(crate) links: Vec<(String, String)>,
    pub(crate) pace: Duration,
    budgets: Option<Budgets>,
    tracked: Mutex<HashMap<u64, TaskCanceller>>,
    summary: Mutex<Option<serde_json::Value>>,
    finished: AtomicBool,
    /// Ends every open event stream (a server shutting down).
    pub(crate) closing: watch::Sender<bool>,
    pump: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// Watches and steers one running swarm: keeps its live picture and a replay buffer of its
/// events, and serves both, with a web page and controls, over HTTP
/// ([`serve`](crate::serve), or [`router`](Self::router) to mount it in your own axum app).
///
/// Build it before submitting work, so the picture misses nothing. Cheap to clone.
///
/// # Examples
///
/// ```
/// use apiary_core::Swarm;
/// use apiary_web::Console;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder().start().await?;
/// let console = Console::builder(&swarm).buffer(1024).start();
/// let served = apiary_web::serve(&console, "127.0.0.1:0".parse()?).await?;
/// println!("watch it on http://{}/", served.addr());
/// served.shutdown().await;
/// swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Console {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("swarm", &self.inner.swarm)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Console`]; from [`Console::builder`].
pub struct ConsoleBuilder {
    swarm: Swarm,
    buffer: usize,
    pace: Duration,
    links: Vec<(String, String)>,
    budgets: Option<Budgets>,
}

impl fmt::Debug for ConsoleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleBuilder")
            .field("buffer", &self.buffer)
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

impl ConsoleBuilder {
    /// Keeps this many events for clients that reconnect (default [`DEFAULT_BUFFER`]).
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// Writes to each event-stream client at most once per `pace` (default
    /// [`DEFAULT_PACE`]), each write carrying everything new (up to 512 events). Shorter
    /// lowers event latency; longer lowers what each client costs a busy swarm.
    pub fn pace(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }

    /// Draws a topology link from one agent to another (who leads or may reach whom).
    pub fn link(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.links.push((from.into(), to.into()));
        self
    }

    /// Shows budgets as gauges: called for each snapshot.
    pub fn budgets(mut self, read: impl Fn() -> Vec<BudgetGauge> + Send + Sync + 'static) -> Self {
        self.budgets = Some(Box::new(read));
        self
    }

    /// Subscribes to the swarm's events and starts folding them in.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(self) -> Console {
        let events = self.swarm.subscribe();
        let shared = Arc::new(Shared {
            ring: Ring::new(self.buffer),
            model: Mutex::new(Model::new(self.swarm.agents())),
        });
        let pump = tokio::spawn(pump(events, shared.clone()));
        Console {
            inner: Arc::new(Inner {
                swarm: self.swarm,
                shared,
                links: self.links,
                pace: self.pace,
                budgets: self.budgets,
                tracked: Mutex::new(HashMap::new()),
                summary: Mutex::new(None),
                finished: AtomicBool::new(false),
                closing: watch::Sender::new(false),
                pump,
            }),
        }
    }
}

/// Events taken from the swarm per batch, at most.
const PUMP_BATCH: usize = 1024;

/// Folds each event into the picture and keeps it for the clients. Never waits for a
/// client; takes whatever events are waiting at once, so a busy swarm costs one lock and one
/// wake-up per batch, not per event.
async fn pump(mut events: EventStream, shared: Arc<Shared>) {
    let mut batch: Vec<SwarmEvent> = Vec::with_capacity(PUMP_BATCH);
    let mut lagged = None;
    loop {
        match events.recv().await {
            Ok(event) => batch.push(event),
            Err(RecvError::Lagged(n)) => lagged = Some(n),
            Err(_) => break,
        }
        while batch.len() < PUMP_BATCH {
            match events.try_recv() {
                Some(Ok(event)) => batch.push(event),
                Some(Err(RecvError::Lagged(n))) => lagged = Some(lagged.unwrap_or(0) + n),
                _ => break,
            }
        }
        if let Some(n) = lagged.take() {
            // The swarm outran the console itself: say so in the picture (not in the ring, which
            // every client that connects later would read as its own lag).
            tracing::warn!(missed = n, "web console fell behind the swarm's events");
            let mut model = shared.model();
            let seq = model.last_seq;
            model.alert(
                seq,
                "warn",
                format!("the console fell behind the swarm and missed {n} events: counts are low"),
            );
            drop(model);
        }
        {
            let mut model = shared.model();
            for event in &batch {
                model.apply(event);
            }
        }
        shared.ring.push_all(batch.drain(..).map(Frame::event));
    }
}

/// A frame with an SSE event name of its own (`lagged`, `finished`), not a swarm event.
pub(crate) fn named(name: &str, data: &serde_json::Value) -> Frame {
    Frame::encoded(format!("event: {name}\ndata: {data}\n\n").into())
}

impl Console {
    /// Starts building a console for `swarm`.
    pub fn builder(swarm: &Swarm) -> ConsoleBuilder {
        ConsoleBuilder {
            swarm: swarm.clone(),
            buffer: DEFAULT_BUFFER,
            pace: DEFAULT_PACE,
            links: Vec::new(),
            budgets: None,
        }
    }

    /// The swarm watched.
    pub fn swarm(&self) -> &Swarm {
        &self.inner.swarm
    }

    /// Lets the page cancel this task (`POST /tasks/{id}/cancel`). Tasks are forgotten once
    /// they end.
    pub fn track<O: Send + 'static>(&self, handle: &TaskHandle<O>) {
        self.track_canceller(handle.id(), handle.canceller());
    }

    /// As [`track`](Self::track), for a task known by its number and canceller (a journaled
    /// task's handle gives both).
    pub fn track_canceller(&self, task: TaskId, canceller: TaskCanceller) {
        let mut tracked = self.tracked();
        // Forget what ended, so the map stays the size of the work in flight.
        tracked.retain(|_, c| !c.is_finished());
        tracked.insert(task.get(), canceller);
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, HashMap<u64, TaskCanceller>> {
        self.inner.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels a tracked task: `Some(true)` if it was cancelled now, `Some(false)` if it had
    /// already ended, `None` if no tracked task has this number.
    pub fn cancel(&self, task: u64) -> Option<bool> {
        let canceller = self.tracked().remove(&task)?;
        Some(canceller.cancel())
    }

    /// Marks the run as over, with a summary for the page to show (any JSON; the `apiary`
    /// binary gives `{"title", "steps": [...]}`), and tells every connected page.
    pub fn finish(&self, summary: serde_json::Value) {
        *self.inner.summary.lock().unwrap_or_else(|e| e.into_inner()) = Some(summary);
        self.inner.finished.store(true, Ordering::Release);
        self.inner
            .shared
            .ring
            .push(named("finished", &serde_json::json!({})));
    }

    /// A snapshot of the swarm now, as `/state` serves it.
    pub fn snapshot(&self) -> Snapshot {
        let inner = &self.inner;
        let budgets = inner.budgets.as_ref().map(|b| b()).unwrap_or_default();
        let summary = inner
            .summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let finished = inner.finished.load(Ordering::Acquire);
        snapshot::take(
            &inner.swarm,
            &inner.shared.model(),
            &inner.links,
            budgets,
            summary,
            finished,
            Instant::now(),
        )
    }
}
