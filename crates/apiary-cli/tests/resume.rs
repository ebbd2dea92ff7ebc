//! `apiary run --state` killed with SIGKILL during step 3 of 5, then `--resume`: steps 1 and 2
//! do not run again, the killed run's step 3 still running is stopped, and the run finishes.
//! `apiary status` shows what happened.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;

const MANIFEST: &str = r#"
[swarm]
name = "resumable"

[[agents]]
name = "one"
kind = "shell"
[agents.config]
command = "echo one >> out.txt"

[[agents]]
name = "two"
kind = "shell"
depends_on = ["one"]
[agents.config]
command = "echo two >> out.txt"

[[agents]]
name = "three"
kind = "shell"
depends_on = ["two"]
[agents.config]
command = "echo three-started >> out.txt && sleep 3 && echo three >> out.txt"

[[agents]]
name = "four"
kind = "shell"
depends_on = ["three"]
[agents.config]
command = "echo four >> out.txt"

[[agents]]
name = "five"
kind = "shell"
depends_on = ["four"]
[agents.config]
command = "echo five >> out.txt"
"#;

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| *l == what).count()
}

/// Writes the manifest into `dir` and starts `apiary run --state`; returns once step three
/// has started, with the manifest's path, the state directory and the running process.
fn run_until_step_three(dir: &Path) -> (PathBuf, PathBuf, Child) {
    let manifest = dir.join("swarm.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let state = dir.join("state");
    let run = Command::new(cargo_bin("apiary"))
        .args(["run", manifest.to_str().unwrap(), "--json", "--state"])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !lines(dir).iter().any(|l| l == "three-started") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "step three never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (manifest, state, run)
}

#[test]
fn a_killed_run_resumes_without_running_finished_steps_again() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, state, mut run) = run_until_step_three(dir.path());
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    let before = lines(dir.path());
    assert_eq!(count(&before, "one"), 1);
    assert_eq!(count(&before, "two"), 1);
    assert_eq!(count(&before, "four"), 0, "killed during step three");

    // The status shows steps one and two completed, three unfinished.
    let status = Command::new(cargo_bin("apiary"))
        .args(["status", "--json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(status.status.success());
    let status = String::from_utf8(status.stdout).unwrap();
    let steps: Vec<serde_json::Value> = status
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcome = |step: &str| {
        steps
            .iter()
            .find(|s| s["step"] == step)
            .map(|s| s["outcome"].as_str().unwrap().to_owned())
    };
    assert_eq!(outcome("one").as_deref(), Some("completed"));
    assert_eq!(outcome("two").as_deref(), Some("completed"));
    assert_eq!(outcome("three").as_deref(), Some("unfinished"));
    assert_eq!(outcome("four"), None);

    let resumed = Command::new(cargo_bin("apiary"))
        .args([
            "run",
            manifest.to_str().unwrap(),
            "--json",
            "--resume",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(stdout.contains("recorded in an earlier run"), "{stdout}");
    // The killed run's `sh` of step three outlived it; the resumed run stopped it before
    // running step three again, so only the new run finished it.
    assert!(stdout.contains("left running by a killed run"), "{stdout}");
    let after = lines(dir.path());
    assert_eq!(count(&after, "one"), 1, "step one ran again: {after:?}");
    assert_eq!(count(&after, "two"), 1, "step two ran again: {after:?}");
    assert_eq!(count(&after, "three-started"), 2, "{after:?}");
    assert_eq!(
        count(&after, "three"),
        1,
        "the orphan finished too: {after:?}"
    );
    assert_eq!(count(&after, "four"), 1);
    assert_eq!(count(&after, "five"), 1);

    // Resuming a run with nothing journaled is refused, naming the directory.
    let empty = dir.path().join("empty-state");
    let refused = Command::new(cargo_bin("apiary"))
        .args(["run", manifest.to_str().unwrap(), "--resume", "--state"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("nothing to resume"), "{stderr}");
}

#[test]
fn a_changed_step_runs_again_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("swarm.toml");
    let state = dir.path().join("state");
    let once = r#"
[swarm]
name = "changing"

[[agents]]
name = "same"
kind = "shell"
[agents.config]
command = "echo same >> out.txt"

[[agents]]
name = "edited"
kind = "shell"
[agents.config]
command = "echo first-version >> out.txt"
"#;
    std::fs::write(&manifest, once).unwrap();
    let first = Command::new(cargo_bin("apiary"))
        .args(["run", manifest.to_str().unwrap(), "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(first.status.success());
    std::fs::write(&manifest, once.replace("first-version", "second-version")).unwrap();
    let second = Command::new(cargo_bin("apiary"))
        .args(["run", manifest.to_str().unwrap(), "--resume", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(second.status.success());
    let after = lines(dir.path());
    assert_eq!(count(&after, "same"), 1, "{after:?}");
    assert_eq!(count(&after, "first-version"), 1, "{after:?}");
    assert_eq!(count(&after, "second-version"), 1, "{after:?}");
}

#[test]
fn a_second_run_on_the_same_state_is_refused_and_leaves_the_first_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, state, mut first) = run_until_step_three(dir.path());
    // The journal is locked by the first run: the second is refused before it touches the
    // first one's running steps.
    let second = Command::new(cargo_bin("apiary"))
        .args(["run", manifest.to_str().unwrap(), "--resume", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("journal.redb"), "{stderr}");

    assert!(first.wait().unwrap().success());
    let after = lines(dir.path());
    assert_eq!(count(&after, "three"), 1, "{after:?}");
    assert_eq!(count(&after, "five"), 1, "{after:?}");
}
