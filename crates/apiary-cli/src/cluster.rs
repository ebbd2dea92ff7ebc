//! Running a manifest across nodes: `apiary serve` hosts the agents placed on a node;
//! `apiary run --node` drives the manifest, reaching placed agents on their nodes.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{bail, Context as _};
use apiary::{
    cluster::{Node, NodeConfig},
    Manifest,
};

use crate::{
    kinds::{self, Kinds, Placement},
    memory,
    step::{Step, StepOutput},
};

/// How long the driver waits for every placed agent's node to export it.
const PLACED_WAIT: Duration = Duration::from_secs(60);

/// This process as a cluster node.
#[derive(Debug, Clone)]
pub(crate) struct ClusterOptions {
    pub(crate) node: String,
    pub(crate) listen: SocketAddr,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) cookie: String,
}

/// Starts the node and connects to every peer.
pub(crate) async fn join(options: &ClusterOptions) -> anyhow::Result<Node> {
    let node =
        Node::start(NodeConfig::new(&options.node, &options.cookie).listen(options.listen)).await?;
    for peer in &options.peers {
        node.connect(*peer)
            .await
            .with_context(|| format!("node `{}` joining the cluster", options.node))?;
    }
    Ok(node)
}

/// Exports every agent of the swarm that runs on this node.
pub(crate) async fn export(
    node: &Node,
    manifest: &Manifest,
    placement: Placement<'_>,
    swarm: &apiary::Swarm,
) -> anyhow::Result<()> {
    for spec in manifest.agents.iter().filter(|s| placement.runs_here(s)) {
        node.export(&swarm.agent::<Step, StepOutput>(&spec.name)?)
            .await?;
    }
    Ok(())
}

/// Waits until every agent placed on another node is exported by that node.
pub(crate) async fn await_placed(node: &Node, manifest: &Manifest) -> anyhow::Result<()> {
    for spec in &manifest.agents {
        let Some(at) = spec.node.as_deref().filter(|at| *at != node.name()) else {
            continue;
        };
        let remote = node.remote::<Step, StepOutput>(&spec.name);
        let wait = async {
            while !remote.nodes().iter().any(|n| n == at) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(PLACED_WAIT, wait).await.is_err() {
            bail!(
                "agent `{}` is placed on node `{at}`, which has not exported it within {}s (is `apiary serve --node {at}` running and connected?)",
                spec.name,
                PLACED_WAIT.as_secs()
            );
        }
    }
    Ok(())
}

/// `apiary serve`: hosts this node's agents until interrupted, printing membership events.
pub(crate) async fn serve(
    kinds: &Kinds,
    path: &Path,
    options: &ClusterOptions,
    ui: Option<&crate::ui::UiOptions>,
) -> anyhow::Result<bool> {
    let manifest = Manifest::load(path)?;
    kinds.check(&manifest)?;
    if !manifest
        .agents
        .iter()
        .any(|a| a.node.as_deref() == Some(options.node.as_str()))
    {
        bail!(
            "no agent of {} is placed on node `{}`",
            path.display(),
            options.node
        );
    }
    let base = kinds::base_dir(path)?;
    let node = join(options).await?;
    let mut events = node.subscribe();
    let placement = Placement::Host(&node);
    // This node's own memory: its `shell` steps store here, its `memory` steps read here.
    let memory = memory::open(None, &manifest.memory, &base).await?;
    let swarm = kinds::builder(kinds, &manifest, &base, placement, None)?
        .resource(memory.clone())
        .start()
        .await?;
    export(&node, &manifest, placement, &swarm).await?;
    println!("node `{}` serving on {}", node.name(), node.addr());
    let console = match ui {
        Some(ui) => {
            let (console, served) = crate::ui::start(&swarm, &manifest, None, ui).await?;
            println!(
                "web console of node `{}` on {}",
                node.name(),
                crate::ui::url(&served, ui.token.as_deref())
            );
            Some((console, served))
        }
        None => None,
    };
    loop {
        tokio::select! {
            Ok(event) = events.recv() => println!("{}", serde_json::to_string(&event)?),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if let Some((_console, served)) = console {
        served.shutdown().await;
    }
    swarm.shutdown().await;
    memory.close().await;
    node.shutdown().await;
    Ok(true)
}
