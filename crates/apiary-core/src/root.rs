//! The swarm's own supervisor: the parent every agent actor is linked to. It restarts what
//! fails, by the swarm's strategy, restart intensity and each agent's restart type and
//! backoff, and gives up (stopping the swarm) when failures come faster than the intensity
//! allows.
//!
//! An agent with several replicas, or with an intensity of its own, is supervised as a pool
//! of workers: its restarts count against its own intensity (by default the swarm's
//! `max_restarts` per replica, within `restart_window`), and past it the supervisor gives up
//! on that agent alone; everything refused or ended for it from then on says so. One
//! crashing replica among many is not the swarm failing, and with one window for the whole
//! swarm, a busy pool of replicas would use it up in milliseconds.
//!
//! A replica that completed a task since it last started has its backoff start over when it
//! crashes: the crash was the task's, not a crash loop, and a growing backoff would keep a
//! healthy replica out of work for seconds.
//!
//! It sees the swarm only through [`Supervised`]: the agents that have started, who
//! supervises whom, the events and settings, and a way to close the swarm.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use apiary_supervisor::{BackoffState, RestartIntensity, RestartWindow, Strategy};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::time::Instant;

use crate::entry::{ErasedEntry, ReplicaStatus};
use crate::events::EventBus;
use crate::registry::Child;
use crate::telemetry;
use crate::{AgentName, EventKind, StopReason, SwarmSettings};

/// What the supervisor needs of the swarm it supervises.
pub(crate) trait Supervised: Send + Sync + 'static {
    /// The agents that have started, in start order.
    fn agents(&self) -> Vec<Arc<dyn ErasedEntry>>;
    /// A started agent by name.
    fn agent(&self, name: &AgentName) -> Option<Arc<dyn ErasedEntry>>;
    /// The started agent and replica whose actor `actor` was, which has stopped (forgotten
    /// from then on); `None` for an actor that is not a member's replica.
    fn exited(&self, actor: ractor::ActorId) -> Option<Child>;
    /// A replica runs in a new actor.
    fn replaced(&self, child: Child, actor: ractor::ActorId);
    /// The coordinator that supervises `agent`, if the topology nests supervision.
    fn supervisor_of(&self, agent: &AgentName) -> Option<AgentName>;
    fn bus(&self) -> &EventBus;
    fn settings(&self) -> &SwarmSettings;
    /// Refuses new work from outside.
    fn close(&self);
}

pub(crate) struct Root;

/// The root's own messages.
pub(crate) enum RootMsg {
    /// Start a new actor for a replica whose backoff has passed.
    Restart {
        agent: AgentName,
        replica: usize,
        delay: Duration,
    },
}

#[cfg(feature = "cluster")]
impl ractor::Message for RootMsg {}

/// Set once the swarm exists (the root starts first, so agents can be linked under it).
pub(crate) type SwarmSlot = Arc<OnceLock<Weak<dyn Supervised>>>;

pub(crate) struct RootState {
    swarm: SwarmSlot,
    // Restart intensity per supervisor: `None` is the swarm's own, `Some(c)` coordinator c's.
    windows: HashMap<Option<AgentName>, RestartWindow<Duration>>,
    // Restart intensity of agents supervised as pools of their own (see the module docs).
    pools: HashMap<AgentName, RestartWindow<Duration>>,
    backoff: HashMap<(AgentName, usize), BackoffState>,
    restarts: HashMap<(AgentName, usize), u32>,
    // Restarts waiting out their backoff (ractor timers), cancelled if the root stops.
    timers: Vec<Timer>,
    // Replicas whose actor is already down, to restart without backoff right after the
    // event that decided it: not through the root's own mailbox, one hop less per crash.
    due: Vec<(AgentName, usize)>,
    epoch: Instant,
}

/// A ractor timer that sends the root a restart.
type Timer = JoinHandle<Result<(), ractor::MessagingErr<RootMsg>>>;

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = SwarmSlot;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        swarm: SwarmSlot,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RootState {
            swarm,
            windows: HashMap::new(),
            pools: HashMap::new(),
            backoff: HashMap::new(),
            restarts: HashMap::new(),
            timers: Vec::new(),
            due: Vec::new(),
            epoch: Instant::now(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let RootMsg::Restart {
            agent,
            replica,
            delay,
        } = msg;
        state.timers.retain(|t| !t.is_finished());
        state.restart(&myself, agent, replica, delay).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, _) => state.on_exit(&myself, &cell, true),
            SupervisionEvent::ActorTerminated(cell, _, _) => state.on_exit(&myself, &cell, false),
            _ => {}
        }
        for (agent, replica) in std::mem::take(&mut state.due) {
            state.restart(&myself, agent, replica, Duration::ZERO).await;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for timer in state.timers.drain(..) {
            timer.abort();
        }
        Ok(())
    }
}

impl RootState {
    fn swarm(&self) -> Option<Arc<dyn Supervised>> {
        self.swarm.get()?.upgrade()
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Every started replica, in start order: the supervisor's children.
    fn children(swarm: &dyn Supervised) -> Vec<Child> {
        swarm
            .agents()
            .into_iter()
            .flat_map(|e| (0..e.replicas().len()).map(move |r| (e.clone(), r)))
            .collect()
    }

    /// A child actor stopped: decide its fate. (A crashed agent actor has already published
    /// its own `AgentStopped`.)
    fn on_exit(&mut self, myself: &ActorRef<RootMsg>, cell: &ActorCell, failed: bool) {
        let Some(swarm) = self.swarm() else { return };
        let id = cell.get_id();
        // During shutdown the swarm marks each replica dead before stopping it, so those
        // exits are ignored below; a crash while queues drain is still restarted, so the
        // drain can finish.
        let Some((entry, r)) = swarm.exited(id) else {
            // A pooled agent, or an older actor of a replica: not this supervisor's to
            // restart.
            return;
        };
        let replica = &entry.replicas()[r];
        if replica.status() != ReplicaStatus::Running {
            // One this supervisor stopped on purpose.
            return;
        }
        if !entry.spec().restart.restarts_after(!failed) {
            replica.set_status(ReplicaStatus::Dead);
            entry.flush_parked();
            return;
        }
        // The supervisor of this agent: its coordinator if the topology nests supervision,
        // else the swarm itself. Strategy and intensity apply among its children only.
        let group = swarm.supervisor_of(entry.name());
        if !self.admit_restart(myself, &*swarm, &entry, r) {
            return;
        }
        // One-for-one restarts the failed replica alone: no need to list its siblings.
        let (children, failed_at): (Vec<Child>, usize) = match swarm.settings().strategy {
            Strategy::OneForOne => (vec![(entry.clone(), r)], 0),
            Strategy::OneForAll | Strategy::RestForOne => {
                let children: Vec<Child> = Self::children(&*swarm)
                    .into_iter()
                    .filter(|(e, _)| swarm.supervisor_of(e.name()) == group)
                    .collect();
                let Some(at) = children
                    .iter()
                    .position(|(e, i)| e.name() == entry.name() && *i == r)
                else {
                    return;
                };
                (children, at)
            }
        };
        let restart: Vec<usize> = match swarm.settings().strategy {
            Strategy::OneForOne => vec![failed_at],
            Strategy::OneForAll => (0..children.len()).collect(),
            Strategy::RestForOne => (failed_at..children.len()).collect(),
        };
        let delay = self.next_delay(&*entry, r);
        for i in restart {
            let (child, cr) = &children[i];
            let replica = &child.replicas()[*cr];
            if replica.status() == ReplicaStatus::Dead {
                continue;
            }
            if i != failed_at {
                if replica.status() != ReplicaStatus::Running {
                    continue;
                }
                // Stopped after its current task; what is left in its mailbox waits for it.
                replica.set_status(ReplicaStatus::Restarting);
                replica
                    .actor()
                    .stop(Some("restarted with a failed sibling".into()));
            } else {
                replica.set_status(ReplicaStatus::Restarting);
                if delay.is_zero() {
                    self.due.push((child.name().clone(), *cr));
                    continue;
                }
            }
            self.schedule(myself, child.name().clone(), *cr, delay);
        }
        // Tasks parked for the failed replica may find another replica now.
        if swarm.settings().strategy == Strategy::OneForOne {
            entry.flush_parked();
        }
    }

    /// Counts a restart of `entry`'s replica `r` against the intensity it answers to: its own
    /// (a pool's) or its supervisor's. False if that supervisor gave up (and has acted on it).
    fn admit_restart(
        &mut self,
        myself: &ActorRef<RootMsg>,
        swarm: &dyn Supervised,
        entry: &Arc<dyn ErasedEntry>,
        r: usize,
    ) -> bool {
        if let Some(limit) = pool_intensity(entry.spec(), swarm.settings()) {
            let now = self.now();
            let window = self
                .pools
                .entry(entry.name().clone())
                .or_insert_with(|| limit.window());
            if window.admit(now) {
                return true;
            }
            let reason = gave_up_reason("its supervisor", window, now);
            give_up_agent(swarm, entry, reason);
            return false;
        }
        let group = swarm.supervisor_of(entry.name());
        if self.admit(swarm, &group) {
            return true;
        }
        self.escalate(myself, swarm, group, entry, r);
        false
    }

    /// Counts a restart against `group`'s intensity.
    fn admit(&mut self, swarm: &dyn Supervised, group: &Option<AgentName>) -> bool {
        let now = self.now();
        let intensity = swarm.settings().intensity();
        self.windows
            .entry(group.clone())
            .or_insert_with(|| intensity.window())
            .admit(now)
    }

    /// A supervisor's intensity is exceeded: it gives up. The swarm's own supervisor stops the
    /// swarm; a coordinator's subtree (the coordinator and everything under it) is restarted
    /// by the coordinator's supervisor, counted against that one's intensity in turn.
    fn escalate(
        &mut self,
        myself: &ActorRef<RootMsg>,
        swarm: &dyn Supervised,
        group: Option<AgentName>,
        failed: &Arc<dyn ErasedEntry>,
        failed_replica: usize,
    ) {
        let now = self.now();
        let window = self
            .windows
            .entry(group.clone())
            .or_insert_with(|| swarm.settings().intensity().window());
        let who = match &group {
            None => "the swarm's supervisor".to_owned(),
            Some(c) => format!("coordinator `{c}`"),
        };
        let reason = gave_up_reason(&who, window, now);
        let Some(coordinator) = group else {
            self.give_up(swarm, reason);
            return;
        };
        telemetry::gave_up(coordinator.as_str());
        swarm.bus().publish(|| EventKind::SupervisorGaveUp {
            supervisor: coordinator.to_string(),
            reason: reason.clone(),
        });
        let up = swarm.supervisor_of(&coordinator);
        if !self.admit(swarm, &up) {
            self.escalate(myself, swarm, up, failed, failed_replica);
            return;
        }
        let delay = self.next_delay(&**failed, failed_replica);
        for (child, r) in Self::children(swarm) {
            if *child.name() != coordinator && !is_under(swarm, child.name(), &coordinator) {
                continue;
            }
            let replica = &child.replicas()[r];
            match replica.status() {
                ReplicaStatus::Dead => continue,
                ReplicaStatus::Restarting => {}
                ReplicaStatus::Running => {
                    replica.set_status(ReplicaStatus::Restarting);
                    replica
                        .actor()
                        .stop(Some("its coordinator's subtree is restarted".into()));
                }
            }
            self.schedule(myself, child.name().clone(), r, delay);
        }
        // The failed replica itself is already down; make sure it comes back with the rest.
        if let Some(replica) = failed.replicas().get(failed_replica)
            && replica.status() == ReplicaStatus::Running
        {
            replica.set_status(ReplicaStatus::Restarting);
            self.schedule(myself, failed.name().clone(), failed_replica, delay);
        }
    }

    fn next_delay(&mut self, entry: &dyn ErasedEntry, replica: usize) -> Duration {
        let now = self.now();
        let served = entry
            .replicas()
            .get(replica)
            .is_some_and(|r| r.take_served());
        let key = (entry.name().clone(), replica);
        let state = self.backoff.entry(key.clone()).or_insert_with(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            entry.spec().backoff.state(h.finish())
        });
        if served {
            state.reset();
        }
        state.next_delay(now)
    }

    /// Restarts a replica once its backoff has passed, through a ractor timer (aborted if
    /// the root stops first).
    fn schedule(
        &mut self,
        myself: &ActorRef<RootMsg>,
        agent: AgentName,
        replica: usize,
        delay: Duration,
    ) {
        let msg = move || RootMsg::Restart {
            agent,
            replica,
            delay,
        };
        if delay.is_zero() {
            // The root may be stopping (shutdown); then so is the need to restart.
            let _ = myself.send_message(msg());
        } else {
            self.timers.push(myself.send_after(delay, msg));
        }
    }

    /// Starts a new actor for a replica whose backoff has passed.
    async fn restart(
        &mut self,
        myself: &ActorRef<RootMsg>,
        agent: AgentName,
        replica: usize,
        delay: Duration,
    ) {
        let Some(swarm) = self.swarm() else { return };
        let Some(entry) = swarm.agent(&agent) else {
            return;
        };
        let Some(slot) = entry.replicas().get(replica) else {
            return;
        };
        if slot.status() != ReplicaStatus::Restarting {
            return;
        }
        match entry.clone().respawn(replica).await {
            Ok(actor) => {
                swarm.replaced((entry.clone(), replica), actor.get_id());
                slot.replace(actor);
                let count = self.restarts.entry((agent.clone(), replica)).or_insert(0);
                *count += 1;
                let restarts = *count;
                telemetry::restarted(&agent);
                swarm.bus().publish(|| EventKind::AgentRestarted {
                    agent: agent.clone(),
                    replica,
                    restarts,
                    delay,
                });
                entry.flush_parked();
            }
            Err(reason) => {
                swarm.bus().publish(|| EventKind::AgentStopped {
                    agent: agent.clone(),
                    replica,
                    reason: StopReason::Failed(reason.to_string()),
                });
                // A restart that fails counts like any other, against the same supervisor.
                if self.admit_restart(myself, &*swarm, &entry, replica) {
                    let delay = self.next_delay(&*entry, replica);
                    self.schedule(myself, agent, replica, delay);
                }
            }
        }
    }

    /// Restart intensity exceeded: stop every agent, end what waits, refuse new work.
    fn give_up(&mut self, swarm: &dyn Supervised, reason: String) {
        for entry in swarm.agents() {
            entry.give_up(reason.clone());
        }
        swarm.close();
        for (entry, r) in Self::children(swarm) {
            let replica = &entry.replicas()[r];
            replica.set_status(ReplicaStatus::Dead);
            replica.actor().stop(Some("supervisor gave up".into()));
        }
        for entry in swarm.agents() {
            entry.queue().close();
            entry.flush_parked();
        }
        telemetry::gave_up("swarm");
        swarm.bus().publish(|| EventKind::SupervisorGaveUp {
            supervisor: "swarm".into(),
            reason,
        });
    }
}

/// The intensity an agent answers to on its own, if it is supervised as a pool: its spec's,
/// or for several replicas the swarm's `max_restarts` per replica within `restart_window`.
fn pool_intensity(
    spec: &crate::AgentSpec,
    settings: &crate::SwarmSettings,
) -> Option<RestartIntensity> {
    spec.intensity.or_else(|| {
        (spec.replicas > 1).then(|| {
            RestartIntensity::new(
                settings.max_restarts.saturating_mul(spec.replicas),
                settings.restart_window,
            )
        })
    })
}

/// "`who` gave up after N restarts in T (at most N within P)": the cause every refusal and
/// failed task carries once a supervisor gave up.
fn gave_up_reason(who: &str, window: &RestartWindow<Duration>, now: Duration) -> String {
    let limit = window.limit();
    // Rounded to the millisecond: the figure is for people.
    let span = Duration::from_millis(u64::try_from(window.span(now).as_millis()).unwrap_or(0));
    format!(
        "{who} gave up after {} restarts in {} (at most {} within {})",
        window.len(),
        humantime::format_duration(span),
        limit.max_restarts(),
        humantime::format_duration(limit.within())
    )
}

/// A pool's intensity is exceeded: its supervisor gives up on that agent alone. Its replicas
/// stop for good, what waits for it ends with the reason, and it refuses new work.
fn give_up_agent(swarm: &dyn Supervised, entry: &Arc<dyn ErasedEntry>, reason: String) {
    entry.give_up(reason.clone());
    for replica in entry.replicas() {
        replica.set_status(ReplicaStatus::Dead);
        replica.actor().stop(Some("supervisor gave up".into()));
    }
    entry.queue().close();
    entry.clone().flush_parked();
    telemetry::gave_up(entry.name().as_str());
    swarm.bus().publish(|| EventKind::SupervisorGaveUp {
        supervisor: entry.name().to_string(),
        reason,
    });
}

/// Whether `agent` is somewhere below `coordinator` in the supervision tree.
fn is_under(swarm: &dyn Supervised, agent: &AgentName, coordinator: &AgentName) -> bool {
    let mut at = swarm.supervisor_of(agent);
    let mut steps = 0;
    while let Some(up) = at {
        if up == *coordinator {
            return true;
        }
        // A topology's tree is validated acyclic; the bound only guards a custom one.
        steps += 1;
        if steps > 1024 {
            return false;
        }
        at = swarm.supervisor_of(&up);
    }
    false
}
