//! The `apiary` binary as a user runs it: each subcommand, each bad input, `--json` output.

use std::{net::TcpListener, path::PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn apiary() -> Command {
    Command::cargo_bin("apiary").unwrap()
}

fn demo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/quality-fleet.toml")
}

fn manifest(dir: &tempfile::TempDir, toml: &str) -> PathBuf {
    let path = dir.path().join("swarm.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn validate_plan_and_graph_the_demo() {
    apiary()
        .args(["validate"])
        .arg(demo())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "ok: swarm `quality-fleet`, 7 agents in 3 batches, topology hierarchical",
        ));
    apiary()
        .arg("plan")
        .arg(demo())
        .assert()
        .success()
        .stdout("batch 1 (level 0): build, fmt\nbatch 2 (level 1): lint, test, docs, smoke\nbatch 3 (level 2): report\n");
    let out = apiary()
        .arg("graph")
        .arg(demo())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let dot = String::from_utf8(out).unwrap();
    assert!(dot.starts_with("digraph \"quality-fleet\" {"), "{dot}");
    assert!(dot.contains("subgraph cluster_batch_2"), "{dot}");
    assert!(dot.contains("\"build\" -> \"lint\";"), "{dot}");
    assert!(
        dot.contains("\"report\" -> \"build\" [style=dashed"),
        "{dot}"
    );
    assert!(dot.trim_end().ends_with('}'));
    rendered_labels_break_lines(&dot);
}

/// Renders the DOT with Graphviz (installed by `scripts/setup.sh test`) and checks the picture:
/// each node label is two lines of text, name then kind, with no escape printed literally.
fn rendered_labels_break_lines(dot: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz's `dot` is installed by scripts/setup.sh test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8(out.stdout).unwrap();
    let texts: Vec<&str> = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| {
            t.split_once('>')
                .and_then(|(_, rest)| rest.split_once("</text>"))
        })
        .map(|(text, _)| text)
        .collect();
    assert!(
        !texts.iter().any(|t| t.contains("\\n")),
        "a literal \\n in {texts:?}"
    );
    // Node `build` of kind `shell`: its two lines follow each other.
    let at = texts
        .iter()
        .position(|t| *t == "build")
        .expect("a text line `build`");
    assert_eq!(texts[at + 1], "shell", "{texts:?}");
    let at = texts
        .iter()
        .position(|t| *t == "report")
        .expect("a text line `report`");
    assert_eq!(texts[at + 1], "memory", "{texts:?}");
}

#[test]
fn bad_inputs_exit_non_zero_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    apiary()
        .args(["validate", "no/such/swarm.toml"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("no/such/swarm.toml")
                .and(predicate::str::contains("cannot read")),
        );

    let invalid = manifest(&dir, "[[agents]]\nname = \"a\"\nkind = \"shell\"\nreplicas = 0\nconfig = { command = \"true\" }\n");
    apiary()
        .arg("validate")
        .arg(&invalid)
        .assert()
        .failure()
        .stderr(predicate::str::contains("agent `a`").and(predicate::str::contains("replicas")));

    let cycle = manifest(
        &dir,
        "[[agents]]\nname = \"a\"\nkind = \"shell\"\ndepends_on = [\"b\"]\nconfig = { command = \"true\" }\n\
         [[agents]]\nname = \"b\"\nkind = \"shell\"\ndepends_on = [\"a\"]\nconfig = { command = \"true\" }\n",
    );
    for cmd in ["validate", "plan", "graph", "run"] {
        apiary()
            .arg(cmd)
            .arg(&cycle)
            .assert()
            .failure()
            .stderr(predicate::str::contains("cycle").and(predicate::str::contains("a -> b -> a")));
    }

    let unknown_kind = manifest(&dir, "[[agents]]\nname = \"a\"\nkind = \"python\"\n");
    apiary()
        .arg("validate")
        .arg(&unknown_kind)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "agent `a`: unknown kind \"python\"",
        ));

    let bad_config = manifest(
        &dir,
        "[[agents]]\nname = \"a\"\nkind = \"shell\"\nconfig = { cmd = \"true\" }\n",
    );
    apiary()
        .arg("validate")
        .arg(&bad_config)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("agent `a`: invalid shell config")
                .and(predicate::str::contains("cmd")),
        );

    let bad_topology = manifest(
        &dir,
        "[topology]\nkind = \"star\"\nhub = \"nobody\"\n[[agents]]\nname = \"a\"\nkind = \"shell\"\nconfig = { command = \"true\" }\n",
    );
    apiary()
        .arg("validate")
        .arg(&bad_topology)
        .assert()
        .failure()
        .stderr(predicate::str::contains("nobody").and(predicate::str::contains("topology.hub")));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        "[[agents]]\nname = \"a\"\nkind = \"shell\"\nconfig = { command = \"true\" }\n",
    );
    apiary()
        .arg("run")
        .arg(&path)
        .args(["--metrics", &addr])
        .assert()
        .failure()
        .stderr(predicate::str::contains(format!(
            "cannot serve metrics on {addr}"
        )));
}

#[test]
fn run_json_reports_every_step_and_skips_what_depends_on_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        r#"
        [swarm]
        name = "small"

        [[agents]]
        name = "hello"
        kind = "shell"
        config = { command = "echo hello from $APIARY_AGENT", store = "results/hello" }

        [[agents]]
        name = "broken"
        kind = "shell"
        max_retries = 1
        config = { command = "echo nope >&2; exit 3" }

        [[agents]]
        name = "after-broken"
        kind = "shell"
        depends_on = ["broken"]
        config = { command = "true" }

        [[agents]]
        name = "recall"
        kind = "memory"
        depends_on = ["hello"]
        config = { action = "report", prefix = "results/" }
        "#,
    );
    let out = apiary()
        .arg("run")
        .arg(&path)
        .arg("--json")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    let step = |agent: &str| {
        lines
            .iter()
            .find(|l| l["type"] == "step" && l["agent"] == agent)
            .unwrap_or_else(|| panic!("no step line for {agent}"))
            .clone()
    };
    assert_eq!(step("hello")["status"], "succeeded");
    assert_eq!(step("hello")["output"], "hello from hello\n");
    assert_eq!(step("broken")["status"], "failed");
    assert_eq!(step("broken")["attempts"], 2);
    assert!(step("broken")["detail"]
        .as_str()
        .unwrap()
        .contains("exit 3: nope"));
    assert_eq!(step("after-broken")["status"], "skipped");
    assert_eq!(step("recall")["status"], "succeeded");
    assert!(step("recall")["output"]
        .as_str()
        .unwrap()
        .contains("results/hello: passed on attempt 1"));
    assert_eq!(lines.iter().filter(|l| l["type"] == "retry").count(), 1);
    // Swarm events come through as JSON too, e.g. one TaskFinished per attempt that ran.
    let finished = lines
        .iter()
        .filter(|l| l["type"] == "event" && l["event"] == "task_finished")
        .count();
    assert_eq!(finished, 1 + 2 + 1, "{lines:#?}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (
            summary["ok"].clone(),
            summary["succeeded"].clone(),
            summary["failed"].clone(),
            summary["skipped"].clone()
        ),
        (false.into(), 2.into(), 1.into(), 1.into())
    );
}

#[test]
fn the_demo_runs_green_with_retry_and_breaker() {
    let out = apiary()
        .arg("run")
        .arg(demo())
        .args(["--json", "--metrics", "127.0.0.1:0"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    let smoke = lines
        .iter()
        .find(|l| l["type"] == "step" && l["agent"] == "smoke")
        .unwrap();
    assert_eq!(
        (smoke["status"].clone(), smoke["attempts"].clone()),
        ("succeeded".into(), 3.into())
    );
    let transitions: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "breaker_changed")
        .map(|l| l["transition"].as_str().unwrap())
        .collect();
    assert_eq!(transitions, ["opened", "half_opened", "closed"]);
    let report = lines
        .iter()
        .find(|l| l["type"] == "step" && l["agent"] == "report")
        .unwrap();
    assert_eq!(report["detail"], "6/6 stored results passed");
    assert_eq!(lines.last().unwrap()["ok"], true);
}

#[test]
fn every_topology_kind_builds_from_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let agents = "[[agents]]\nname = \"a\"\nkind = \"shell\"\nconfig = { command = \"true\" }\n\
                  [[agents]]\nname = \"b\"\nkind = \"shell\"\nconfig = { command = \"true\" }\n\
                  [[agents]]\nname = \"c\"\nkind = \"shell\"\nconfig = { command = \"true\" }\n";
    for (topology, edge) in [
        ("kind = \"mesh\"", None),
        (
            "kind = \"star\"\nhub = \"a\"",
            Some("\"a\" -> \"b\" [style=dashed, color=blue, constraint=false, label=\"hub\"]"),
        ),
        (
            "kind = \"ring\"\norder = [\"c\", \"b\", \"a\"]",
            Some("\"a\" -> \"c\" [style=dashed, color=blue, constraint=false, label=\"next\"]"),
        ),
        (
            "kind = \"hierarchical\"\nleads = { a = [\"b\", \"c\"] }",
            Some("\"a\" -> \"c\" [style=dashed, color=blue, constraint=false, label=\"leads\"]"),
        ),
    ] {
        let path = manifest(&dir, &format!("[topology]\n{topology}\n{agents}"));
        let out = apiary()
            .arg("graph")
            .arg(&path)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        if let Some(edge) = edge {
            assert!(String::from_utf8_lossy(&out).contains(edge), "{topology}");
        }
        // The swarm starts under it (the topology validates its members) and runs.
        apiary()
            .arg("run")
            .arg(&path)
            .arg("--json")
            .assert()
            .success();
    }
    // A cycle of coordinators is refused when the swarm starts, naming the topology.
    let path = manifest(
        &dir,
        &format!(
            "[topology]\nkind = \"hierarchical\"\nleads = {{ a = [\"b\"], b = [\"a\"] }}\n{agents}"
        ),
    );
    apiary().arg("run").arg(&path).assert().code(2).stderr(
        predicate::str::contains("hierarchical")
            .and(predicate::str::contains("no root coordinator")),
    );
}

#[test]
fn a_manifest_runs_across_two_node_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest(
        &dir,
        r#"
        [swarm]
        name = "spread"

        [topology]
        kind = "star"
        hub = "hub"

        [[agents]]
        name = "hub"
        kind = "shell"
        config = { command = "echo hub on $APIARY_NODE" }

        [[agents]]
        name = "far"
        kind = "shell"
        node = "b"
        depends_on = ["hub"]
        config = { command = "echo far on $APIARY_NODE" }
        "#,
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = std::process::Command::new(assert_cmd::cargo::cargo_bin("apiary"))
        .arg("serve")
        .arg(&path)
        .args([
            "--node",
            "b",
            "--listen",
            &listen,
            "--cookie",
            "spread-cookie",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(serve.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("node `b` serving on"), "{first}");

    let out = apiary()
        .arg("run")
        .arg(&path)
        .args([
            "--json",
            "--node",
            "a",
            "--peer",
            &listen,
            "--cookie",
            "spread-cookie",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines_out = json_lines(&out);
    let step = |agent: &str| {
        lines_out
            .iter()
            .find(|l| l["type"] == "step" && l["agent"] == agent)
            .unwrap()
            .clone()
    };
    assert_eq!(step("hub")["output"], "hub on a\n");
    assert_eq!(step("far")["output"], "far on b\n");

    // The same manifest without cluster flags, and with the wrong cookie, is refused clearly.
    apiary()
        .arg("run")
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "agent `far` is placed on node `b`",
        ));
    apiary()
        .arg("run")
        .arg(&path)
        .args(["--node", "a", "--peer", &listen, "--cookie", "wrong"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{listen} refused the connection"
        )));
    let _ = serve.kill();
    let _ = serve.wait();
}
