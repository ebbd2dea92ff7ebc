//! The swarm's own supervising actor: the parent every agent actor is linked to.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::actor::Members;
use crate::events::EventBus;
use crate::{EventKind, StopReason};

/// Sees agents fail and reports it. A stop on request is reported by the agent itself, in
/// order with its last task.
pub(crate) struct Root;

pub(crate) struct RootState {
    pub(crate) members: Arc<Members>,
    pub(crate) bus: Arc<EventBus>,
}

/// The root takes no messages of its own; it only supervises.
pub(crate) enum RootMsg {}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            _ => return Ok(()),
        };
        let member = state
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cell.get_id());
        if let (Some(member), Some(reason)) = (member, reason) {
            state.bus.publish(|| EventKind::AgentStopped {
                agent: member.agent,
                replica: member.replica,
                reason: StopReason::Failed(reason),
            });
        }
        Ok(())
    }
}
