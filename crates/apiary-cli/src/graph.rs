//! `apiary graph`: the topology and the dependency plan as one Graphviz DOT graph.

use std::fmt::Write as _;

use apiary::{planner::Plan, Manifest, TopologySpec};

/// Escapes text for inside a DOT quoted string.
fn escaped(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", escaped(s))
}

/// A label of several lines: each escaped on its own, joined by DOT's line break `\n`
/// (escaping the joined text would print a literal backslash-n).
fn lines(parts: &[&str]) -> String {
    let joined: Vec<String> = parts.iter().map(|p| escaped(p)).collect();
    format!("\"{}\"", joined.join("\\n"))
}

/// The topology's links as (from, to, what): a star's hub to each member, a ring's next,
/// a hierarchy's leads. A mesh links everyone and draws nothing.
pub(crate) fn links(manifest: &Manifest) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    match &manifest.topology {
        Some(TopologySpec::Star { hub }) => {
            for spec in manifest.agents.iter().filter(|a| &a.name != hub) {
                out.push((hub.clone(), spec.name.clone(), "hub"));
            }
        }
        Some(TopologySpec::Ring { order }) => {
            let names: Vec<&str> = if order.is_empty() {
                manifest.agents.iter().map(|a| a.name.as_str()).collect()
            } else {
                order.iter().map(String::as_str).collect()
            };
            for (i, from) in names.iter().enumerate() {
                out.push((
                    (*from).to_owned(),
                    names[(i + 1) % names.len()].to_owned(),
                    "next",
                ));
            }
        }
        Some(TopologySpec::Hierarchical { leads }) => {
            for (lead, members) in leads {
                for member in members {
                    out.push((lead.clone(), member.clone(), "leads"));
                }
            }
        }
        _ => {}
    }
    out
}

/// DOT with one cluster per spawn batch, solid edges for dependencies (dependency -> dependent)
/// and dashed blue edges for the topology's links. Render with `dot -Tsvg`.
pub(crate) fn dot(manifest: &Manifest, plan: &Plan) -> String {
    let mut out = String::new();
    let title = manifest.swarm.name.as_str();
    let topology = manifest
        .topology
        .as_ref()
        .map_or("none", TopologySpec::name);
    let _ = writeln!(out, "digraph {} {{", quoted(title));
    let _ = writeln!(
        out,
        "  label={};",
        quoted(&format!("{title} (topology: {topology})"))
    );
    let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box, style=rounded];");
    for (i, batch) in plan.batches().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_batch_{i} {{");
        let _ = writeln!(
            out,
            "    label={};",
            quoted(&format!("batch {} (level {})", i + 1, batch.level()))
        );
        for agent in batch.agents() {
            let kind = manifest.agent(agent).map_or("", |a| a.kind.as_str());
            let _ = writeln!(
                out,
                "    {} [label={}];",
                quoted(agent),
                lines(&[agent, kind])
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for spec in &manifest.agents {
        for dep in &spec.depends_on {
            let _ = writeln!(out, "  {} -> {};", quoted(dep), quoted(&spec.name));
        }
    }
    for (from, to, label) in links(manifest) {
        let _ = writeln!(
            out,
            "  {} -> {} [style=dashed, color=blue, constraint=false, label={}];",
            quoted(&from),
            quoted(&to),
            quoted(label)
        );
    }
    out.push_str("}\n");
    out
}
