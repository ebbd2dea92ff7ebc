//! Approval gates: work that waits for a person's yes or no. See [`Approvals`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::watch;

use crate::events::EventBus;
use crate::{EventKind, TaskId};

/// What needs approval: which agent's work, why, and optionally under which id.
///
/// # Examples
///
/// ```
/// use apiary_core::ApprovalRequest;
///
/// let request = ApprovalRequest::new("report", "publish the report?").id("report#1");
/// assert_eq!(request.agent(), "report");
/// ```
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    id: Option<String>,
    agent: String,
    reason: String,
    task: Option<TaskId>,
}

impl ApprovalRequest {
    /// A request for `agent`'s work, explained by `reason` (shown to whoever decides).
    pub fn new(agent: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            id: None,
            agent: agent.into(),
            reason: reason.into(),
            task: None,
        }
    }

    /// Asks under this id instead of a generated one (`a1`, `a2`, ...): an id that survives a
    /// restart lets a journaled run ask the same question again.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The task this approval gates, if it has one already.
    pub fn task(mut self, task: TaskId) -> Self {
        self.task = Some(task);
        self
    }

    /// The agent whose work waits.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Why it needs approval.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// An approval waiting for a decision, as listed by [`Approvals::pending`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    /// Its id.
    pub id: String,
    /// The agent whose work waits.
    pub agent: String,
    /// Why it needs approval.
    pub reason: String,
    /// The task it gates, if any.
    pub task: Option<TaskId>,
    /// When it was asked.
    #[serde(skip)]
    pub requested_at: SystemTime,
}

/// A yes: who approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// The approval's id.
    pub id: String,
    /// Who approved (as given to [`Approvals::approve`]).
    pub by: String,
}

/// A no: the work that waited must not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("approval `{id}` for agent `{agent}` was rejected by {by}{}", reason_suffix(.reason))]
pub struct Rejected {
    /// The approval's id.
    pub id: String,
    /// The agent whose work was rejected.
    pub agent: String,
    /// Who rejected.
    pub by: String,
    /// Why, if they said.
    pub reason: Option<String>,
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

/// Why an approval could not be asked or answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No pending approval has this id (never asked, or already decided).
    #[error("no approval `{0}` is waiting (unknown, or already decided)")]
    Unknown(String),
    /// An approval with this id is already waiting.
    #[error("approval `{0}` is already waiting")]
    Duplicate(String),
    /// The id is empty or too long (at most 128 bytes).
    #[error("approval id `{0}` is empty or longer than 128 bytes")]
    BadId(String),
    /// The registry was closed (the swarm shut down) before anyone decided.
    #[error("approval `{0}` was withdrawn: the swarm shut down before anyone decided")]
    Withdrawn(String),
}

/// What an [`Approval`] resolves to: the yes, or why not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Decision {
    /// Someone rejected it.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// Nobody will decide any more.
    #[error(transparent)]
    Withdrawn(ApprovalError),
}

#[derive(Debug, Clone)]
enum Verdict {
    Approved {
        by: String,
    },
    Rejected {
        by: String,
        reason: Option<String>,
    },
    /// Nobody will decide: why.
    Withdrawn(&'static str),
}

struct Entry {
    info: PendingApproval,
    verdict: watch::Sender<Option<Verdict>>,
    /// Tells this request from a later one under the same id.
    serial: u64,
}

struct Inner {
    /// `None` once closed: nothing waits, and nothing more may ask.
    pending: Mutex<Option<BTreeMap<String, Entry>>>,
    next: AtomicU64,
    bus: Option<Arc<EventBus>>,
}

/// A swarm's approval gates: work that waits for a person's yes or no; cheap to clone.
///
/// A swarm keeps one [`Approvals`] registry ([`Swarm::approvals`](crate::Swarm::approvals),
/// [`Caller::approvals`](crate::Caller::approvals)). Whoever holds work that needs a human
/// decision asks with [`Approvals::request`] and awaits the returned [`Approval`]; someone
/// else, from a web page, the `apiary approve` command or code, answers with
/// [`Approvals::approve`] or [`Approvals::reject`]. The waiting is a parked future: ask
/// *before* submitting a task and no actor is held while nobody answers.
///
/// Every request and decision is published as a swarm event
/// ([`EventKind::ApprovalRequested`], [`EventKind::ApprovalDecided`]), so a dashboard sees
/// pending approvals appear and go. A rejection is a typed error, [`Rejected`], naming who
/// rejected and why.
///
/// Requests may carry an id of the caller's choosing ([`ApprovalRequest::id`]): a process
/// that journals its work can ask again under the same id after a restart, so the approval
/// a person was looking at is the one still waiting.
///
/// # Examples
///
/// ```
/// use apiary_core::{ApprovalRequest, Swarm};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder().start().await?;
/// let approvals = swarm.approvals().clone();
/// let gate = approvals.request(ApprovalRequest::new("deploy", "ship v2 to production?"))?;
/// let id = gate.id().to_owned();
/// // Someone else decides; here, the same code.
/// approvals.approve(&id, "ops")?;
/// let approved = gate.await?;
/// assert_eq!(approved.by, "ops");
/// # swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

impl fmt::Debug for Approvals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approvals")
            .field("pending", &self.lock().as_ref().map_or(0, BTreeMap::len))
            .finish()
    }
}

impl Default for Approvals {
    fn default() -> Self {
        Self::with_bus(None)
    }
}

impl Approvals {
    /// A registry that publishes to no swarm (a swarm makes its own; this one is for tests
    /// and tools of your own).
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_bus(bus: Option<Arc<EventBus>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pending: Mutex::new(Some(BTreeMap::new())),
                next: AtomicU64::new(0),
                bus,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<BTreeMap<String, Entry>>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, kind: impl FnOnce() -> EventKind) {
        if let Some(bus) = &self.inner.bus {
            bus.publish(kind);
        }
    }

    /// Asks for approval; the returned [`Approval`] resolves once someone decides.
    ///
    /// # Errors
    ///
    /// [`ApprovalError::Duplicate`] if an approval with the request's id is already
    /// waiting, [`ApprovalError::BadId`] for an empty or overlong id,
    /// [`ApprovalError::Withdrawn`] once the swarm is shutting down.
    pub fn request(&self, request: ApprovalRequest) -> Result<Approval, ApprovalError> {
        if let Some(id) = &request.id
            && (id.is_empty() || id.len() > 128)
        {
            return Err(ApprovalError::BadId(id.clone()));
        }
        let (tx, rx) = watch::channel(None);
        let serial = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = {
            let mut guard = self.lock();
            let Some(pending) = guard.as_mut() else {
                return Err(ApprovalError::Withdrawn(request.id.unwrap_or_default()));
            };
            let id = match request.id {
                Some(id) if pending.contains_key(&id) => return Err(ApprovalError::Duplicate(id)),
                Some(id) => id,
                // Generated ids skip any a caller chose.
                None => (serial..)
                    .map(|n| format!("a{n}"))
                    .find(|id| !pending.contains_key(id))
                    .unwrap_or_default(),
            };
            let info = PendingApproval {
                id: id.clone(),
                agent: request.agent,
                reason: request.reason,
                task: request.task,
                requested_at: SystemTime::now(),
            };
            pending.insert(
                id,
                Entry {
                    info: info.clone(),
                    verdict: tx,
                    serial,
                },
            );
            info
        };
        self.publish(|| EventKind::ApprovalRequested {
            id: info.id.clone(),
            agent: info.agent.clone(),
            reason: info.reason.clone(),
            task: info.task,
        });
        Ok(Approval {
            id: info.id,
            agent: info.agent,
            serial,
            registry: self.clone(),
            done: false,
            rx: Box::pin(wait(rx)),
        })
    }

    /// Approves a waiting approval; `by` names who decided.
    ///
    /// # Errors
    ///
    /// [`ApprovalError::Unknown`] if none with this id is waiting.
    pub fn approve(&self, id: &str, by: impl Into<String>) -> Result<(), ApprovalError> {
        self.decide(id, Verdict::Approved { by: by.into() })
    }

    /// Rejects a waiting approval; `by` names who decided, `reason` says why.
    ///
    /// # Errors
    ///
    /// [`ApprovalError::Unknown`] if none with this id is waiting.
    pub fn reject(
        &self,
        id: &str,
        by: impl Into<String>,
        reason: Option<String>,
    ) -> Result<(), ApprovalError> {
        self.decide(
            id,
            Verdict::Rejected {
                by: by.into(),
                reason,
            },
        )
    }

    fn decide(&self, id: &str, verdict: Verdict) -> Result<(), ApprovalError> {
        let entry = self
            .lock()
            .as_mut()
            .and_then(|pending| pending.remove(id))
            .ok_or_else(|| ApprovalError::Unknown(id.to_owned()))?;
        self.settle(entry, verdict);
        Ok(())
    }

    /// Tells the waiter and publishes the decision.
    fn settle(&self, entry: Entry, verdict: Verdict) {
        let (approved, by, reason) = match &verdict {
            Verdict::Approved { by } => (true, by.clone(), None),
            Verdict::Rejected { by, reason } => (false, by.clone(), reason.clone()),
            Verdict::Withdrawn(why) => (false, "nobody".to_owned(), Some((*why).to_owned())),
        };
        // A waiter that went away is fine: the decision is still published.
        let _ = entry.verdict.send(Some(verdict));
        self.publish(|| EventKind::ApprovalDecided {
            id: entry.info.id,
            agent: entry.info.agent,
            approved,
            by,
            reason,
        });
    }

    /// Withdraws one request if it is still the one waiting under its id.
    fn withdraw(&self, id: &str, serial: u64, why: &'static str) {
        let entry = {
            let mut guard = self.lock();
            let Some(pending) = guard.as_mut() else {
                return;
            };
            if pending.get(id).is_none_or(|e| e.serial != serial) {
                return;
            }
            pending.remove(id)
        };
        if let Some(entry) = entry {
            self.settle(entry, Verdict::Withdrawn(why));
        }
    }

    /// The approvals waiting now, oldest id first.
    pub fn pending(&self) -> Vec<PendingApproval> {
        let mut list: Vec<PendingApproval> = self
            .lock()
            .iter()
            .flat_map(|pending| pending.values())
            .map(|e| e.info.clone())
            .collect();
        list.sort_by_key(|p| p.requested_at);
        list
    }

    /// Withdraws every waiting approval (their waiters get [`ApprovalError::Withdrawn`]) and
    /// refuses new requests.
    pub(crate) fn close(&self) {
        let drained = self.lock().take().unwrap_or_default();
        for (_, entry) in drained {
            self.settle(entry, Verdict::Withdrawn("withdrawn: the swarm shut down"));
        }
    }
}

async fn wait(mut rx: watch::Receiver<Option<Verdict>>) -> Option<Verdict> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        // The registry entry was dropped without a verdict: treat as withdrawn.
        Err(_) => None,
    }
}

/// An approval being waited for: a future resolving to [`Approved`] or the [`Decision`] that
/// stops the work. Dropping it before the decision withdraws the request (a cancelled task
/// leaves nothing for a person to answer in vain).
pub struct Approval {
    id: String,
    agent: String,
    serial: u64,
    registry: Approvals,
    done: bool,
    rx: Pin<Box<dyn Future<Output = Option<Verdict>> + Send>>,
}

impl Drop for Approval {
    fn drop(&mut self) {
        if !self.done {
            self.registry.withdraw(
                &self.id,
                self.serial,
                "withdrawn: its waiter went away (cancelled or timed out)",
            );
        }
    }
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approval")
            .field("id", &self.id)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl Approval {
    /// The approval's id, to approve or reject it by.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Future for Approval {
    type Output = Result<Approved, Decision>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let verdict = std::task::ready!(self.rx.as_mut().poll(cx));
        self.done = true;
        let id = self.id.clone();
        Poll::Ready(match verdict {
            Some(Verdict::Approved { by }) => Ok(Approved { id, by }),
            Some(Verdict::Rejected { by, reason }) => Err(Decision::Rejected(Rejected {
                id,
                agent: self.agent.clone(),
                by,
                reason,
            })),
            Some(Verdict::Withdrawn(_)) | None => {
                Err(Decision::Withdrawn(ApprovalError::Withdrawn(id)))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn approve_resolves_the_waiter_and_forgets_the_id() {
        let approvals = Approvals::new();
        let gate = approvals
            .request(ApprovalRequest::new("deploy", "ship?").id("d1"))
            .unwrap();
        assert_eq!(approvals.pending().len(), 1);
        approvals.approve("d1", "ops").unwrap();
        let ok = gate.await.unwrap();
        assert_eq!(ok.by, "ops");
        assert!(approvals.pending().is_empty());
        assert_eq!(
            approvals.approve("d1", "ops"),
            Err(ApprovalError::Unknown("d1".into()))
        );
    }

    #[tokio::test]
    async fn reject_names_who_and_why() {
        let approvals = Approvals::new();
        let gate = approvals
            .request(ApprovalRequest::new("deploy", "ship?"))
            .unwrap();
        let id = gate.id().to_owned();
        approvals
            .reject(&id, "alice", Some("not on a Friday".into()))
            .unwrap();
        let err = gate.await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("approval `{id}` for agent `deploy` was rejected by alice: not on a Friday")
        );
    }

    #[tokio::test]
    async fn a_dropped_waiter_withdraws_its_request_and_generated_ids_skip_chosen_ones() {
        let approvals = Approvals::new();
        let chosen = approvals
            .request(ApprovalRequest::new("x", "y").id("a1"))
            .unwrap();
        let generated = approvals.request(ApprovalRequest::new("x", "y")).unwrap();
        assert_ne!(generated.id(), "a1");
        drop(generated);
        let ids: Vec<String> = approvals.pending().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["a1"]);
        approvals.approve("a1", "ops").unwrap();
        assert!(chosen.await.is_ok());
        assert!(approvals.pending().is_empty());
    }

    #[tokio::test]
    async fn duplicates_and_bad_ids_are_refused_and_close_withdraws() {
        let approvals = Approvals::new();
        let gate = approvals
            .request(ApprovalRequest::new("x", "y").id("same"))
            .unwrap();
        assert!(matches!(
            approvals.request(ApprovalRequest::new("x", "y").id("same")),
            Err(ApprovalError::Duplicate(_))
        ));
        assert!(matches!(
            approvals.request(ApprovalRequest::new("x", "y").id("")),
            Err(ApprovalError::BadId(_))
        ));
        approvals.close();
        assert!(matches!(gate.await, Err(Decision::Withdrawn(_))));
        assert!(matches!(
            approvals.request(ApprovalRequest::new("x", "late")),
            Err(ApprovalError::Withdrawn(_))
        ));
    }
}
