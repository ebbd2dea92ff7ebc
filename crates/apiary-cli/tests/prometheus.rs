//! End to end with a real Prometheus server: `apiary run --metrics` serves a running swarm's
//! metrics, Prometheus (Debian package `prometheus`, installed by scripts/setup.sh) scrapes
//! them, and its HTTP API returns apiary's series with the values the run produced.
//! `promtool check metrics` passes on the exposition.

use std::{
    io::{BufRead, BufReader, Write as _},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(binary: &str) -> String {
    let path = format!("/usr/bin/{binary}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: run scripts/setup.sh (it installs Debian's prometheus package)"
    );
    path
}

/// Kills the process when the test ends, pass or fail.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(url: &str) -> Option<String> {
    ureq::get(url).call().ok()?.body_mut().read_to_string().ok()
}

/// The value of an instant query's only sample, once Prometheus has one.
fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let url = format!("{prometheus}/api/v1/query?query={}", encode(promql));
    let body: Value = serde_json::from_str(&get(&url)?).ok()?;
    let result = body["data"]["result"].as_array()?;
    (result.len() == 1).then(|| result[0]["value"][1].as_str()?.parse().ok())?
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_scrapes_a_running_swarm() {
    let prometheus_bin = need("prometheus");
    let promtool = need("promtool");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("swarm.toml");
    std::fs::write(
        &manifest,
        r#"
        [swarm]
        name = "scraped"

        [[agents]]
        name = "first"
        kind = "shell"
        config = { command = "true" }

        [[agents]]
        name = "second"
        kind = "shell"
        depends_on = ["first"]
        config = { command = "sleep 0.2" }

        [[agents]]
        name = "flaky"
        kind = "shell"
        max_retries = 2
        config = { command = "exit 7" }
        "#,
    )
    .unwrap();

    // The swarm runs, then keeps serving its final metrics for the scrapes below.
    let apiary_port = free_port();
    let mut apiary = Killed(
        Command::new(env!("CARGO_BIN_EXE_apiary"))
            .arg("run")
            .arg(&manifest)
            .args([
                "--json",
                "--metrics",
                &format!("127.0.0.1:{apiary_port}"),
                "--linger",
                "120s",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(apiary.0.stdout.take().unwrap());
    let mut lines = stdout.lines();
    let summary: Value = loop {
        let line = lines
            .next()
            .expect("apiary exited before its summary")
            .unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        if value["type"] == "summary" {
            break value;
        }
    };
    assert_eq!(
        (summary["succeeded"].clone(), summary["failed"].clone()),
        (2.into(), 1.into())
    );

    let exposition =
        get(&format!("http://127.0.0.1:{apiary_port}/metrics")).expect("apiary serves /metrics");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: apiary\n    static_configs:\n      - targets: ['127.0.0.1:{apiary_port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new(&prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    eventually(
        "prometheus to scrape apiary",
        Duration::from_secs(60),
        || query(&prom, "up{job=\"apiary\"}").filter(|v| *v == 1.0),
    );
    let value = |promql: &str| eventually(promql, Duration::from_secs(30), || query(&prom, promql));
    assert_eq!(
        value(r#"apiary_tasks_total{agent="first",outcome="completed"}"#),
        1.0
    );
    assert_eq!(
        value(r#"apiary_tasks_total{agent="second",outcome="completed"}"#),
        1.0
    );
    assert_eq!(
        value(r#"apiary_tasks_total{agent="flaky",outcome="failed"}"#),
        3.0
    );
    assert_eq!(
        value(r#"apiary_task_duration_seconds_count{agent="flaky"}"#),
        3.0
    );
    // `sleep 0.2` ran: its one observation is at least 0.2 s.
    assert!(value(r#"apiary_task_duration_seconds_sum{agent="second"}"#) >= 0.2);
    assert_eq!(value(r#"apiary_queue_depth{agent="flaky"}"#), 0.0);
    // Three agents were spawned, and all stopped at shutdown.
    assert_eq!(
        value(r#"apiary_spawn_duration_seconds_count{agent="first"}"#),
        1.0
    );
    assert_eq!(value("apiary_agents"), 0.0);
    // The run's memory stored nothing (no `store` keys) and searched nothing.
    assert_eq!(value("apiary_memory_keys"), 0.0);
}
