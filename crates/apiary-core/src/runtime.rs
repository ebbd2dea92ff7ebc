//! What every part of a running swarm shares: its settings, events, task numbers, resources
//! and the registry of its agents.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ractor::ActorCell;
use tokio::time::Instant;

use crate::events::EventBus;
use crate::registry::Registry;
use crate::resources::Resources;
use crate::{Approvals, SwarmSettings, TaskId};

/// The state a swarm's handles, agents and supervisor share. It owns no actor: stopping them
/// is the swarm's (`Swarm`'s drop or shutdown).
pub(crate) struct Runtime {
    pub(crate) bus: Arc<EventBus>,
    pub(crate) settings: SwarmSettings,
    /// Start of the swarm's clock (breakers count milliseconds from it).
    pub(crate) epoch: Instant,
    pub(crate) resources: Resources,
    /// Work waiting for a person's decision.
    pub(crate) approvals: Approvals,
    pub(crate) registry: Registry,
    /// The supervising actor every agent actor is linked under.
    pub(crate) root: ActorCell,
    next_task: AtomicU64,
    closed: AtomicBool,
}

impl Runtime {
    pub(crate) fn new(
        bus: Arc<EventBus>,
        settings: SwarmSettings,
        resources: Resources,
        root: ActorCell,
    ) -> Self {
        Self {
            approvals: Approvals::with_bus(Some(bus.clone())),
            bus,
            settings,
            epoch: Instant::now(),
            resources,
            registry: Registry::default(),
            root,
            next_task: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn next_task_id(&self) -> TaskId {
        TaskId(self.next_task.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Refuses submissions from outside the swarm from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
