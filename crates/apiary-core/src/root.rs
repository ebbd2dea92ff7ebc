//! The swarm's own supervisor: the parent every agent actor is linked to. It restarts what
//! fails, by the swarm's strategy, restart intensity and each agent's restart type and
//! backoff, and gives up (stopping the swarm) when failures come faster than the intensity
//! allows.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use apiary_supervisor::{BackoffState, RestartWindow, Strategy};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::time::Instant;

use crate::actor::Members;
use crate::entry::{AgentEntry, ReplicaStatus};
use crate::events::EventBus;
use crate::swarm::SwarmInner;
use crate::telemetry;
use crate::{AgentName, EventKind, StopReason, SwarmSettings};

pub(crate) struct Root<T, O>(PhantomData<fn() -> (T, O)>);

impl<T, O> Root<T, O> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

/// The root's own messages.
pub(crate) enum RootMsg {
    /// Start a new actor for a replica whose backoff has passed.
    Restart {
        agent: AgentName,
        replica: usize,
        delay: Duration,
    },
}

impl ractor::Message for RootMsg {}

pub(crate) struct RootArgs<T, O> {
    pub(crate) members: Arc<Members>,
    pub(crate) bus: Arc<EventBus>,
    /// Set once the swarm exists (the root starts first).
    pub(crate) swarm: Arc<OnceLock<Weak<SwarmInner<T, O>>>>,
    pub(crate) settings: SwarmSettings,
}

pub(crate) struct RootState<T, O> {
    args: RootArgs<T, O>,
    // Restart intensity per supervisor: `None` is the swarm's own, `Some(c)` coordinator c's.
    windows: HashMap<Option<AgentName>, RestartWindow<Duration>>,
    backoff: HashMap<(AgentName, usize), BackoffState>,
    restarts: HashMap<(AgentName, usize), u32>,
    epoch: Instant,
}

impl<T: Send + 'static, O: Send + 'static> Actor for Root<T, O> {
    type Msg = RootMsg;
    type State = RootState<T, O>;
    type Arguments = RootArgs<T, O>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RootState {
            windows: HashMap::new(),
            args,
            backoff: HashMap::new(),
            restarts: HashMap::new(),
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
            SupervisionEvent::ActorFailed(cell, err) => {
                state.on_exit(&myself, &cell, Some(err.to_string()))
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => state.on_exit(&myself, &cell, None),
            _ => {}
        }
        Ok(())
    }
}

impl<T: Send + 'static, O: Send + 'static> RootState<T, O> {
    fn swarm(&self) -> Option<Arc<SwarmInner<T, O>>> {
        self.args.swarm.get()?.upgrade()
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// A child actor stopped: report it and decide its fate.
    fn on_exit(&mut self, myself: &ActorRef<RootMsg>, cell: &ActorCell, failure: Option<String>) {
        let member = self
            .args
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cell.get_id());
        let Some(member) = member else { return };
        if let Some(reason) = &failure {
            // A crashed actor never runs post_stop: its stop is counted here.
            telemetry::stopped();
            self.args.bus.publish(|| EventKind::AgentStopped {
                agent: member.agent.clone(),
                replica: member.replica,
                reason: StopReason::Failed(reason.clone()),
            });
        }
        // During shutdown the swarm marks each replica dead before stopping it, so those
        // exits are ignored below; a crash while queues drain is still restarted, so the
        // drain can finish.
        let Some(swarm) = self.swarm() else { return };
        let Ok(entry) = swarm.entry(member.agent.as_str()) else {
            return;
        };
        let Some(replica) = entry.replicas().get(member.replica) else {
            // A pooled agent or one still starting: not this supervisor's to restart.
            return;
        };
        if replica.actor().get_id() != cell.get_id() || replica.status() != ReplicaStatus::Running {
            // An older actor of this replica, or one this supervisor stopped on purpose.
            return;
        }
        if !entry.spec.restart.restarts_after(failure.is_none()) {
            replica.set_status(ReplicaStatus::Dead);
            entry.flush_parked();
            return;
        }
        // The supervisor of this agent: its coordinator if the topology nests supervision,
        // else the swarm itself. Strategy and intensity apply among its children only.
        let group = swarm.supervisor_of(&member.agent);
        if !self.admit(&group) {
            self.escalate(myself, &swarm, group, &entry, member.replica);
            return;
        }
        let children: Vec<_> = swarm
            .children()
            .into_iter()
            .filter(|(e, _)| swarm.supervisor_of(&e.name) == group)
            .collect();
        let Some(failed) = children
            .iter()
            .position(|(e, r)| e.name == member.agent && *r == member.replica)
        else {
            return;
        };
        let delay = self.next_delay(&entry, member.replica);
        for i in swarm.settings.strategy.affected(failed, children.len()) {
            let (child, r) = &children[i];
            let Some(replica) = child.replicas().get(*r) else {
                continue;
            };
            if replica.status() == ReplicaStatus::Dead {
                continue;
            }
            if i != failed {
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
            }
            schedule(myself, child.name.clone(), *r, delay);
        }
        // Tasks parked for the failed replica may find another replica now.
        if swarm.settings.strategy == Strategy::OneForOne {
            entry.flush_parked();
        }
    }

    /// Counts a restart against `group`'s intensity.
    fn admit(&mut self, group: &Option<AgentName>) -> bool {
        let now = self.now();
        let intensity = self.args.settings.intensity();
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
        swarm: &Arc<SwarmInner<T, O>>,
        group: Option<AgentName>,
        failed: &AgentEntry<T, O>,
        failed_replica: usize,
    ) {
        let intensity = swarm.settings.intensity();
        let reason = format!(
            "more than {} restarts within {}",
            intensity.max_restarts(),
            humantime::format_duration(intensity.within())
        );
        let Some(coordinator) = group else {
            self.give_up(swarm, reason);
            return;
        };
        telemetry::gave_up(coordinator.as_str());
        self.args.bus.publish(|| EventKind::SupervisorGaveUp {
            supervisor: coordinator.to_string(),
            reason: reason.clone(),
        });
        let up = swarm.supervisor_of(&coordinator);
        if !self.admit(&up) {
            self.escalate(myself, swarm, up, failed, failed_replica);
            return;
        }
        let delay = self.next_delay(failed, failed_replica);
        for (child, r) in swarm.children() {
            if child.name != coordinator && !swarm.is_under(&child.name, &coordinator) {
                continue;
            }
            let Some(replica) = child.replicas().get(r) else {
                continue;
            };
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
            schedule(myself, child.name.clone(), r, delay);
        }
        // The failed replica itself is already down; make sure it comes back with the rest.
        if let Some(replica) = failed.replicas().get(failed_replica) {
            if replica.status() == ReplicaStatus::Running {
                replica.set_status(ReplicaStatus::Restarting);
                schedule(myself, failed.name.clone(), failed_replica, delay);
            }
        }
    }

    fn next_delay(&mut self, entry: &AgentEntry<T, O>, replica: usize) -> Duration {
        let now = self.now();
        let key = (entry.name.clone(), replica);
        self.backoff
            .entry(key.clone())
            .or_insert_with(|| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                entry.spec.backoff.state(h.finish())
            })
            .next_delay(now)
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
        let Ok(entry) = swarm.entry(agent.as_str()) else {
            return;
        };
        let Some(slot) = entry.replicas().get(replica) else {
            return;
        };
        if slot.status() != ReplicaStatus::Restarting {
            return;
        }
        let Some(spawner) = entry.spawner.clone() else {
            return;
        };
        match spawner.spawn(&swarm, &entry, replica).await {
            Ok(actor) => {
                slot.replace(actor);
                let count = self.restarts.entry((agent.clone(), replica)).or_insert(0);
                *count += 1;
                let restarts = *count;
                telemetry::restarted(&agent);
                self.args.bus.publish(|| EventKind::AgentRestarted {
                    agent: agent.clone(),
                    replica,
                    restarts,
                    delay,
                });
                entry.flush_parked();
            }
            Err(reason) => {
                self.args.bus.publish(|| EventKind::AgentStopped {
                    agent: agent.clone(),
                    replica,
                    reason: StopReason::Failed(reason),
                });
                // A restart that fails counts like any other, against the same supervisor.
                let group = swarm.supervisor_of(&agent);
                if self.admit(&group) {
                    let delay = self.next_delay(&entry, replica);
                    schedule(myself, agent, replica, delay);
                } else {
                    self.escalate(myself, &swarm, group, &entry, replica);
                }
            }
        }
    }

    /// Restart intensity exceeded: stop every agent, end what waits, refuse new work.
    fn give_up(&mut self, swarm: &Arc<SwarmInner<T, O>>, reason: String) {
        swarm.close();
        for (entry, r) in swarm.children() {
            if let Some(replica) = entry.replicas().get(r) {
                replica.set_status(ReplicaStatus::Dead);
                replica.actor().stop(Some("supervisor gave up".into()));
            }
        }
        for entry in swarm.started_entries() {
            entry.queue.close();
            entry.flush_parked();
        }
        telemetry::gave_up("swarm");
        self.args.bus.publish(|| EventKind::SupervisorGaveUp {
            supervisor: "swarm".into(),
            reason,
        });
    }
}

fn schedule(myself: &ActorRef<RootMsg>, agent: AgentName, replica: usize, delay: Duration) {
    let msg = RootMsg::Restart {
        agent,
        replica,
        delay,
    };
    if delay.is_zero() {
        let _ = myself.send_message(msg);
    } else {
        let myself = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The root may be gone (shutdown); then so is the need to restart.
            let _ = myself.send_message(msg);
        });
    }
}
