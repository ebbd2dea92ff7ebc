//! `apiary graph`: the topology and the dependency plan as one Graphviz DOT graph.

use std::fmt::Write as _;

use apiary::{planner::Plan, Manifest, TopologySpec};

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
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
                quoted(&format!("{agent}\\n{kind}"))
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for spec in &manifest.agents {
        for dep in &spec.depends_on {
            let _ = writeln!(out, "  {} -> {};", quoted(dep), quoted(&spec.name));
        }
    }
    let link = |out: &mut String, from: &str, to: &str, label: &str| {
        let _ = writeln!(
            out,
            "  {} -> {} [style=dashed, color=blue, constraint=false, label={}];",
            quoted(from),
            quoted(to),
            quoted(label)
        );
    };
    match &manifest.topology {
        Some(TopologySpec::Star { hub }) => {
            for spec in manifest.agents.iter().filter(|a| &a.name != hub) {
                link(&mut out, hub, &spec.name, "hub");
            }
        }
        Some(TopologySpec::Ring { order }) => {
            let names: Vec<&str> = if order.is_empty() {
                manifest.agents.iter().map(|a| a.name.as_str()).collect()
            } else {
                order.iter().map(String::as_str).collect()
            };
            for (i, from) in names.iter().enumerate() {
                link(&mut out, from, names[(i + 1) % names.len()], "next");
            }
        }
        Some(TopologySpec::Hierarchical { leads }) => {
            for (lead, members) in leads {
                for member in members {
                    link(&mut out, lead, member, "leads");
                }
            }
        }
        Some(TopologySpec::Mesh) | None => {}
    }
    out.push_str("}\n");
    out
}
