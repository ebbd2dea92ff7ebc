//! Approval gates in manifests: a step marked `approval = "..."` waits for a person, who
//! answers on the console or with `apiary approve`/`apiary reject`; journaled, a waiting
//! approval survives a killed process.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn apiary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_apiary"))
}

/// Runs `apiary` with `args` to its end and checks it succeeded; gives its stdout.
fn apiary_ok(args: &[&str]) -> String {
    let out = apiary().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "apiary {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// `deploy` needs approval; `after` depends on it.
fn manifest(dir: &Path) -> PathBuf {
    let path = dir.join("gated.toml");
    std::fs::write(
        &path,
        r#"
[swarm]
name = "gated"

[[agents]]
name = "deploy"
kind = "shell"
approval = "deploy to production?"
config = { command = "echo deployed" }

[[agents]]
name = "after"
kind = "shell"
depends_on = ["deploy"]
config = { command = "echo after" }
"#,
    )
    .unwrap();
    path
}

/// A running `apiary run --json`, its JSON lines arriving on a channel.
struct Run {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Run {
    fn start(args: &[&str]) -> Self {
        let mut child = apiary()
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that `pred` accepts.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {what}; saw {:#?}", self.seen),
            }
        }
    }

    fn wait_approval_requested(&mut self) {
        self.wait_for("approval request", |v| {
            v["event"] == "approval_requested" && v["id"] == "deploy"
        });
    }

    fn finish(mut self) -> (bool, Vec<Value>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.try_iter());
        (status.success(), self.seen)
    }
}

fn step<'a>(lines: &'a [Value], agent: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["type"] == "step" && v["agent"] == agent)
        .unwrap_or_else(|| panic!("no step line for {agent}: {lines:#?}"))
}

#[test]
fn a_gated_step_needs_someone_who_can_answer() {
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path());
    let out = apiary().arg("run").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step `deploy` needs approval") && stderr.contains("--ui"),
        "{stderr}"
    );
    apiary_ok(&["run", file.to_str().unwrap(), "--auto-approve", "--json"]);
}

#[test]
fn approve_and_reject_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path());

    let ui = free_addr();
    let mut run = Run::start(&["run", file.to_str().unwrap(), "--ui", &ui]);
    run.wait_approval_requested();
    // Nothing ran while it waited.
    assert!(!run.seen.iter().any(|v| v["event"] == "task_started"));
    apiary_ok(&["approve", "deploy", "--ui", &ui, "--by", "ops"]);
    let (ok, lines) = run.finish();
    assert!(ok, "{lines:#?}");
    assert_eq!(step(&lines, "deploy")["status"], "succeeded");
    assert_eq!(step(&lines, "after")["status"], "succeeded");
    assert!(lines
        .iter()
        .any(|v| v["event"] == "approval_decided" && v["by"] == "ops" && v["approved"] == true));

    let ui = free_addr();
    let mut run = Run::start(&["run", file.to_str().unwrap(), "--ui", &ui]);
    run.wait_approval_requested();
    apiary_ok(&[
        "reject",
        "deploy",
        "--ui",
        &ui,
        "--by",
        "alice",
        "--reason",
        "freeze week",
    ]);
    let (ok, lines) = run.finish();
    assert!(!ok);
    let deploy = step(&lines, "deploy");
    assert_eq!(deploy["status"], "failed");
    let detail = deploy["detail"].as_str().unwrap();
    assert!(
        detail.contains("rejected by alice: freeze week"),
        "{detail}"
    );
    assert_eq!(step(&lines, "after")["status"], "skipped");

    // Deciding what is not waiting, or where nothing listens: errors that say so.
    let out = apiary()
        .args(["approve", "deploy", "--ui", &ui])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the console"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_waiting_approval_survives_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    let file = manifest(dir.path());
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();

    let ui = free_addr();
    let mut run = Run::start(&["run", file.to_str().unwrap(), "--state", state, "--ui", &ui]);
    run.wait_approval_requested();
    // SIGKILL: nothing is cleaned up.
    run.child.kill().unwrap();
    let _ = run.finish();

    // The resumed run asks again, under the same id; approved, it runs to the end.
    let ui = free_addr();
    let mut run = Run::start(&[
        "run",
        file.to_str().unwrap(),
        "--state",
        state,
        "--resume",
        "--ui",
        &ui,
    ]);
    run.wait_approval_requested();
    let body = ureq::get(&format!("http://{ui}/approvals"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let pending: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pending[0]["id"], "deploy", "{pending}");
    assert_eq!(pending[0]["reason"], "deploy to production?");
    apiary_ok(&["approve", "deploy", "--ui", &ui]);
    let (ok, lines) = run.finish();
    assert!(ok, "{lines:#?}");

    // A yes is journaled: resuming the same run again does not ask a second time (and the
    // finished steps answer from the journal).
    let stdout = apiary_ok(&[
        "run",
        file.to_str().unwrap(),
        "--state",
        state,
        "--resume",
        "--json",
    ]);
    assert!(stdout.contains("approved earlier in this run"), "{stdout}");
}
