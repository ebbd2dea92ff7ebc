//! Hierarchical: a tree of coordinators over skilled workers. Tasks enter at the root and are
//! delegated down by the capability they need to the least-loaded worker; a worker's failure
//! comes back up through each coordinator, which adds what it knows.
//!
//! Run: `cargo run --example hierarchical`

use apiary::prelude::*;
use apiary::topology::Hierarchy;
use apiary::BoxError;

/// A piece of work: the skill it needs and what to do.
type Work = (String, String);

struct Lead;

impl Agent for Lead {
    type Task = Work;
    type Output = String;
    type Error = BoxError;

    async fn handle(&mut self, (skill, what): Work, ctx: &Ctx<Self>) -> Result<String, BoxError> {
        // Waiting down the tree holds this lead, which is fine in a tree: nothing below ever
        // sends work back up to wait on it. (A lead with nothing to add would hand the task
        // on instead: `ctx.hand_off(&ctx.delegate_target(..)?, task)`.)
        let handle = ctx
            .delegate::<Work, String>((skill.clone(), what), Some(skill.as_str()))
            .await?;
        let worker = handle.agent().clone();
        match handle.await {
            Ok(done) => Ok(format!("{} -> {worker}: {done}", ctx.name())),
            Err(e) => Err(format!("{} (via {worker}): {e}", ctx.name()).into()),
        }
    }
}

struct Worker;

impl Agent for Worker {
    type Task = Work;
    type Output = String;
    type Error = BoxError;

    async fn handle(&mut self, (_, what): Work, _: &Ctx<Self>) -> Result<String, BoxError> {
        if what.contains("impossible") {
            return Err(format!("cannot do `{what}`").into());
        }
        Ok(format!(
            "did `{what}` ({} words)",
            what.split_whitespace().count()
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let workers = [
        ("rustacean", "rust"),
        ("gopher", "go"),
        ("scribe", "docs"),
        ("editor", "docs"),
    ];
    let tree = Hierarchy::new()
        .lead("cto", ["platform", "content"])
        .lead("platform", ["rustacean", "gopher"])
        .lead("content", ["scribe", "editor"]);
    let mut builder = Swarm::builder().topology(tree);
    for (name, skill) in workers {
        builder = builder.agent(AgentSpec::new(name).capabilities([skill]), || Worker);
    }
    builder = builder
        .agent(
            AgentSpec::new("platform").depends_on(["rustacean", "gopher"]),
            || Lead,
        )
        .agent(
            AgentSpec::new("content").depends_on(["scribe", "editor"]),
            || Lead,
        )
        .agent(
            AgentSpec::new("cto").depends_on(["platform", "content"]),
            || Lead,
        );
    let swarm = builder.start().await?;

    let jobs = [
        ("rust", "write the parser"),
        ("docs", "explain the parser"),
        ("go", "port the client"),
        ("docs", "write the changelog"),
        ("rust", "prove the impossible theorem"),
    ];
    for (skill, what) in jobs {
        let handle = swarm
            .route::<Work, String>((skill.to_string(), what.to_string()))
            .await?;
        match handle.await {
            Ok(path) => println!("[{skill}] {path}"),
            Err(e) => println!("[{skill}] failed, escalated to the top: {e}"),
        }
    }
    swarm.shutdown().await;
    Ok(())
}
