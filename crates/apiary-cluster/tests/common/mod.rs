//! Node processes for the cluster tests: this test binary re-executed to run one ignored
//! test function as a separate OS process.

use std::{process::Stdio, time::Duration};

use tokio::io::{AsyncBufReadExt, BufReader};

/// A node process, killed (SIGKILL) when dropped.
pub(crate) struct NodeProcess(pub(crate) tokio::process::Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Runs the ignored test `test` of this binary in a new process with `env`, and returns once
/// it prints `ready`.
pub(crate) async fn start(test: &str, env: &[(&str, String)], ready: &str) -> NodeProcess {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let wait = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest prints `test <name> ... ` before the test's own output.
            if line.ends_with(ready) {
                return;
            }
        }
        panic!("{test} exited before printing {ready:?}");
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("{test} did not print {ready:?} within 60 s"));
    NodeProcess(child)
}
