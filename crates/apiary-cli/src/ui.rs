//! `--ui ADDR`: the web console of a run (or of a node's `apiary serve`), and the
//! `approve`/`reject` commands that answer its approval gates from a terminal.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use apiary::llm::{Budget, SwarmBudget};
use apiary::web::{serve_with, BudgetGauge, Console, ServeOptions, Served};
use apiary::{Manifest, Swarm};

use crate::graph;

/// `--ui`, `--ui-token`.
#[derive(Debug, Clone)]
pub(crate) struct UiOptions {
    pub(crate) addr: SocketAddr,
    pub(crate) token: Option<String>,
}

/// Starts the console of `swarm` and serves it.
pub(crate) async fn start(
    swarm: &Swarm,
    manifest: &Manifest,
    budget: Option<&SwarmBudget>,
    options: &UiOptions,
) -> anyhow::Result<(Console, Served)> {
    let mut builder = Console::builder(swarm);
    for (from, to, _) in graph::links(manifest) {
        builder = builder.link(from, to);
    }
    if let Some(budget) = budget {
        let budget: Arc<Budget> = budget.0.clone();
        builder = builder.budgets(move || gauges(&budget));
    }
    let console = builder.start();
    let mut serve_options = ServeOptions::default();
    if let Some(token) = &options.token {
        serve_options = serve_options.token(token.clone());
    }
    let served = serve_with(&console, options.addr, serve_options).await?;
    Ok((console, served))
}

fn gauges(budget: &Budget) -> Vec<BudgetGauge> {
    let limits = budget.limits();
    let (tokens, cost) = budget.spent();
    let mut out = Vec::new();
    if let Some(limit) = limits.tokens {
        out.push(BudgetGauge::new(
            budget.name(),
            "tokens",
            limit as f64,
            tokens as f64,
        ));
    }
    if let Some(limit) = limits.cost {
        out.push(BudgetGauge::new(
            budget.name(),
            "cost",
            limit.dollars(),
            cost.dollars(),
        ));
    }
    out
}

/// The URL a person opens (with the token, when there is one).
pub(crate) fn url(served: &Served, token: Option<&str>) -> String {
    match token {
        Some(_) => format!("http://{}/?token=<your --ui-token>", served.addr()),
        None => format!("http://{}/", served.addr()),
    }
}

/// `apiary approve` / `apiary reject`: decides an approval waiting in the run served on
/// `addr`.
pub(crate) async fn decide(
    addr: SocketAddr,
    token: Option<&str>,
    id: &str,
    approve: bool,
    by: &str,
    reason: Option<&str>,
) -> anyhow::Result<bool> {
    let decision = if approve { "approve" } else { "reject" };
    let url = format!("http://{addr}/approvals/{}/{decision}", encode(id));
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("X-Apiary-Request", "1")
        .json(&serde_json::json!({ "by": by, "reason": reason }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.with_context(|| {
        format!("cannot reach the console on {addr} (is `apiary run --ui {addr}` running?)")
    })?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"].as_str().unwrap_or("no reason given");
        bail!("the console on {addr} refused to {decision} `{id}` ({status}): {message}");
    }
    println!("{decision}d `{id}` as {by}");
    Ok(true)
}

/// Percent-encodes an approval id for a URL path segment.
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
