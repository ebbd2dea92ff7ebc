//! One span per task, and a task sent from inside another task is traced as its child.

mod agents;

use std::sync::{Arc, Mutex};

use agents::{worker, workers, Job};
use apiary::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A task span's agent and its parent task span's agent.
type Edge = (String, Option<String>);

/// Remembers every task span as an edge to its parent.
#[derive(Clone, Default)]
struct SpanTree(Arc<Mutex<Vec<Edge>>>);

struct AgentField(String);

impl Visit for AgentField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "agent" {
            self.0 = format!("{value:?}");
        }
    }
}

struct Agent(String);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanTree {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "apiary.task" {
            return;
        }
        let mut agent = AgentField(String::new());
        attrs.record(&mut agent);
        let span = ctx.span(id).unwrap();
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Agent>().map(|a| a.0.clone()));
        span.extensions_mut().insert(Agent(agent.0.clone()));
        self.0.lock().unwrap().push((agent.0, parent));
    }
}

#[tokio::test]
async fn a_task_sent_by_an_agent_is_traced_as_a_child_of_the_sending_task() {
    let tree = SpanTree::default();
    let subscriber = tracing_subscriber::registry().with(tree.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let (make, _) = workers();
    let make = Arc::new(make);
    let m = make.clone();
    let swarm = Swarm::builder()
        .agent(AgentSpec::new("sum"), move || m())
        .agent(AgentSpec::new("relay"), move || make())
        .start()
        .await
        .unwrap();
    let job = Job::Relay {
        to: "sum".into(),
        job: Box::new(Job::Sum(vec![1, 2])),
    };
    let relay = worker(&swarm, "relay");
    assert_eq!(relay.submit(job).await.unwrap().await.unwrap(), 4);
    swarm.shutdown().await;

    let spans = tree.0.lock().unwrap().clone();
    assert_eq!(
        spans,
        [
            ("relay".to_string(), None),
            ("sum".to_string(), Some("relay".to_string()))
        ]
    );
}
