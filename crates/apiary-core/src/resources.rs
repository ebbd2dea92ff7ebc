//! Resources: values a user hands the swarm (a memory, an HTTP client, a database pool) that
//! every agent reaches by type through its context.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// The swarm's resources, by type. Filled by the builder and read-only afterwards, so a read
/// takes no lock.
#[derive(Default)]
pub(crate) struct Resources {
    by_type: HashMap<TypeId, Entry>,
}

struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    name: &'static str,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.by_type.values().map(|e| e.name))
            .finish()
    }
}

impl Resources {
    /// Adds `value`, replacing any earlier value of the same type.
    pub(crate) fn insert<R: Send + Sync + 'static>(&mut self, value: R) {
        self.by_type.insert(
            TypeId::of::<R>(),
            Entry {
                value: Arc::new(value),
                name: std::any::type_name::<R>(),
            },
        );
    }

    pub(crate) fn get<R: Send + Sync + 'static>(&self) -> Result<&R, MissingResource> {
        self.by_type
            .get(&TypeId::of::<R>())
            .and_then(|e| e.value.downcast_ref::<R>())
            .ok_or(MissingResource {
                type_name: std::any::type_name::<R>(),
            })
    }
}

/// An agent asked for a resource of a type the swarm was not given.
///
/// # Examples
///
/// ```
/// # use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
/// # struct Probe;
/// # impl Agent for Probe {
/// #     type Task = (); type Output = (); type Error = std::convert::Infallible;
/// #     async fn handle(&mut self, _: (), _: &AgentContext<(), ()>) -> Result<(), Self::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let swarm = Swarm::builder().agent(AgentSpec::new("probe"), || Probe).start().await?;
/// let err = swarm.resource::<String>().unwrap_err();
/// assert_eq!(err.type_name(), "alloc::string::String");
/// # swarm.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the swarm has no resource of type `{type_name}` (give it one with `SwarmBuilder::resource`)"
)]
pub struct MissingResource {
    type_name: &'static str,
}

impl MissingResource {
    /// The type asked for.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}
