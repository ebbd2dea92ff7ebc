//! A cluster across real network hosts: three nodes in three network namespaces of the
//! test's own, joined by veth pairs to a bridge in a fourth, each listening on its own
//! address of the test's subnet (10.231.0.0/24), not loopback. Mid-run one host's link goes
//! down and comes back; then `tc netem` delays a host's packets by 1 ms and the remote round
//! trip is measured before and after.
//!
//! Needs root and iproute2 (CI runs as root); elsewhere it prints why and passes without
//! running. Every node is this test binary re-executed inside its namespace
//! (`ip netns exec`), running the ignored `netns_node` test; the driving node takes
//! commands on stdin and reports on stdout, one line each.

use std::{
    collections::HashSet,
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[path = "common/sieve.rs"]
mod sieve;

use apiary_cluster::{MembershipEvent, Node, NodeConfig};
use apiary_core::{AgentSpec, Swarm};
use futures::StreamExt;
use sieve::{primes_below, sieve_swarm, Done, Job};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const COOKIE: &str = "apiary-netns-cookie";
const PORT: u16 = 7400;
const LIMIT: u64 = 5_000;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three hosts (`a`, `b`, `c`) on one bridge; removed when dropped.
struct Hosts {
    prefix: String,
}

impl Hosts {
    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn addr(host: &str) -> SocketAddr {
        let last = match host {
            "a" => 1,
            "b" => 2,
            _ => 3,
        };
        SocketAddr::from(([10, 231, 0, last], PORT))
    }

    fn create() -> Result<Self, String> {
        let hosts = Self {
            prefix: format!("apiary{}", std::process::id()),
        };
        let br = hosts.ns("br");
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for host in ["a", "b", "c"] {
            let ns = hosts.ns(host);
            let port = format!("v{host}");
            let addr = format!("{}/24", Self::addr(host).ip());
            ip(&["netns", "add", &ns])?;
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Takes `host`'s link (its bridge port) down or up.
    fn link(&self, host: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.ns("br"),
            "link",
            "set",
            &format!("v{host}"),
            state,
        ])
        .unwrap();
    }

    /// Delays every packet `host` sends by `delay` (netem). `Err` with tc's complaint if
    /// the kernel has no netem (`sch_netem`).
    fn delay(&self, host: &str, delay: &str) -> Result<(), String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args([
                "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", delay,
            ])
            .output()
            .map_err(|e| format!("tc: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth pair, and so the pair.
        for host in ["a", "b", "c", "br"] {
            let _ = ip(&["netns", "del", &self.ns(host)]);
        }
    }
}

/// Why the test cannot run here, if it cannot.
fn unsupported() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("it needs root to create network namespaces".into());
    }
    if Command::new("tc").arg("-V").output().is_err() {
        return Some("`tc` (iproute2) is not installed".into());
    }
    None
}

/// A node process in a namespace: its lines on a channel, its stdin for commands.
struct Host {
    name: &'static str,
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<String>,
    stdin: tokio::process::ChildStdin,
}

impl Host {
    async fn start(hosts: &Hosts, name: &'static str, env: &[(&str, String)]) -> Self {
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &hosts.ns(name)])
            .arg(std::env::current_exe().unwrap())
            .args([
                "netns_node",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("APIARY_NETNS_NAME", name)
            .env("APIARY_NETNS_LISTEN", Hosts::addr(name).to_string())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut host = Self {
            name,
            child,
            lines,
            stdin,
        };
        host.expect(60, |l| l == format!("ready {name}")).await;
        host
    }

    /// Waits up to `secs` for a line after which `wanted` holds, counting every line in
    /// `tally` on the way.
    async fn expect_tallying(
        &mut self,
        secs: u64,
        tally: &mut Tally,
        wanted: impl Fn(&Tally, &str) -> bool,
    ) -> String {
        let name = self.name;
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                tally.see(&line);
                if wanted(tally, &line) {
                    return line;
                }
            }
            panic!("node {name} exited");
        };
        tokio::time::timeout(Duration::from_secs(secs), wait)
            .await
            .unwrap_or_else(|_| panic!("node {name}: no expected line within {secs} s"))
    }

    async fn expect(&mut self, secs: u64, wanted: impl Fn(&str) -> bool) -> String {
        self.expect_tallying(secs, &mut Tally::default(), |_, l| wanted(l))
            .await
    }

    async fn command(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
}

/// What the driving node reports: tasks done per node, in order, and failures.
#[derive(Default)]
struct Tally {
    done: Vec<(u64, String)>,
    failed: Vec<String>,
}

impl Tally {
    fn see(&mut self, line: &str) {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("done"), Some(id), Some(node)) => {
                self.done.push((id.parse().unwrap(), node.to_owned()));
            }
            (Some("failed"), _, _) => self.failed.push(line.to_owned()),
            _ => {}
        }
    }

    fn on(&self, node: &str) -> usize {
        self.done.iter().filter(|(_, n)| n == node).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_survive_a_cut_link_and_measure_a_delayed_round_trip() {
    if let Some(why) = unsupported() {
        println!("skipped: {why}");
        return;
    }
    let hosts = Hosts::create().expect("setting up the namespaces");
    let mut b = Host::start(&hosts, "b", &[("APIARY_NETNS_ECHO", "1".into())]).await;
    let mut c = Host::start(&hosts, "c", &[]).await;
    let peers = format!("{},{}", Hosts::addr("b"), Hosts::addr("c"));
    let mut a = Host::start(&hosts, "a", &[("APIARY_NETNS_PEERS", peers)]).await;
    let mut t = Tally::default();

    // Work flows to both b and c.
    a.command("run").await;
    a.expect_tallying(60, &mut t, |t, _| t.on("b") >= 50 && t.on("c") >= 50)
        .await;

    // c's link goes down: both sides see the other go, and the work goes on on b.
    hosts.link("c", false);
    let cut = Instant::now();
    a.expect_tallying(20, &mut t, |_, l| l == "event down c")
        .await;
    let detected = cut.elapsed();
    c.expect(20, |l| l == "event down a").await;
    let before = t.on("b");
    a.expect_tallying(20, &mut t, |t, _| t.on("b") >= before + 50)
        .await;

    // The link comes back: a dials c again, both see it, and c takes work again.
    hosts.link("c", true);
    a.expect_tallying(30, &mut t, |_, l| l == "event up c")
        .await;
    c.expect(30, |l| l == "event up a").await;
    let on_c = t.on("c");
    a.expect_tallying(30, &mut t, |t, _| t.on("c") >= on_c + 20)
        .await;

    // Stop and count: every task submitted ended with its output, each once.
    a.command("stop").await;
    let summary = a
        .expect_tallying(60, &mut t, |_, l| l.starts_with("summary "))
        .await;
    let n: Vec<u64> = summary
        .split(' ')
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let (submitted, completed, failed) = (n[0], n[1], n[2]);
    assert!(t.failed.is_empty(), "tasks failed: {:?}", t.failed);
    assert_eq!((completed, failed), (submitted, 0), "{summary}");
    let ids: HashSet<u64> = t.done.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        (ids.len(), t.done.len()),
        (submitted as usize, submitted as usize),
        "each task answered once"
    );

    println!(
        "cut detected after {detected:?}; {submitted} tasks, {} on b, {} on c",
        t.on("b"),
        t.on("c")
    );

    // The remote round trip on this link, then with 1 ms of netem delay on a's packets.
    let p50 = |l: &str| -> f64 { l.split(' ').nth(1).unwrap().parse().unwrap() };
    a.command("rtt 300").await;
    let plain = a.expect(60, |l| l.starts_with("rtt ")).await;
    println!("round trip a -> b, p50 and p99 in us: {}", &plain[4..]);
    assert!(p50(&plain) > 0.0);
    match hosts.delay("a", "1ms") {
        Ok(()) => {
            a.command("rtt 300").await;
            let delayed = a.expect(60, |l| l.starts_with("rtt ")).await;
            println!("with netem delay 1ms on a: {}", &delayed[4..]);
            assert!(
                p50(&delayed) - p50(&plain) >= 900.0,
                "netem's 1 ms does not show: {plain} vs {delayed}"
            );
        }
        // Some kernels (this project's CI machine's among them) are built without it.
        Err(e) if e.contains("qdisc kind is unknown") => {
            println!("not measured with delay: this kernel has no netem qdisc ({e})");
        }
        Err(e) => panic!("tc netem: {e}"),
    }
    for host in [&mut a, &mut b, &mut c] {
        let _ = host.child.start_kill();
    }
}

/// A node inside a namespace: serves `sieve` (and `echo`, if asked), connects to its peers,
/// prints membership events; if it has peers, it drives: `run` submits tasks, 8 at a time,
/// until `stop`; `rtt N` times N round trips to `echo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "node process of three_hosts_survive_a_cut_link_and_measure_a_delayed_round_trip"]
async fn netns_node() {
    let (Ok(name), Ok(listen)) = (
        std::env::var("APIARY_NETNS_NAME"),
        std::env::var("APIARY_NETNS_LISTEN"),
    ) else {
        return;
    };
    // End libtest's `test netns_node ... ` line: every line from here on is the node's.
    println!();
    let node = Node::start(NodeConfig::new(&name, COOKIE).listen(listen.parse().unwrap()))
        .await
        .unwrap();
    let mut events = node.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                MembershipEvent::Up { node, .. } => println!("event up {node}"),
                MembershipEvent::Down { node, .. } => println!("event down {node}"),
                MembershipEvent::DecodeFailed { .. } => println!("event {event:?}"),
            }
        }
    });
    let peers: Vec<SocketAddr> = std::env::var("APIARY_NETNS_PEERS")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    let _swarms = if peers.is_empty() {
        let swarm = sieve_swarm(&name).await;
        node.export(&swarm.agent::<Job, Done>("sieve").unwrap())
            .await
            .unwrap();
        let echo = Swarm::builder()
            .agent(AgentSpec::new("echo"), || Echo)
            .start()
            .await
            .unwrap();
        if std::env::var("APIARY_NETNS_ECHO").is_ok() {
            node.export(&echo.agent::<u64, u64>("echo").unwrap())
                .await
                .unwrap();
        }
        Some((swarm, echo))
    } else {
        None
    };
    for peer in &peers {
        node.connect(*peer).await.unwrap();
    }
    println!("ready {name}");
    if peers.is_empty() {
        std::future::pending::<()>().await;
    }
    drive(&node).await;
}

/// The driving node's command loop.
async fn drive(node: &Node) {
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(command)) = commands.next_line().await {
        let mut words = command.split(' ');
        match words.next() {
            Some("run") => run_until_stop(node, &mut commands).await,
            Some("rtt") => {
                let n: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(100);
                let echo = node.remote::<u64, u64>("echo");
                let mut us = Vec::with_capacity(n);
                for i in 0..n as u64 {
                    let start = Instant::now();
                    assert_eq!(echo.submit(&i).await.unwrap(), i);
                    us.push(start.elapsed().as_secs_f64() * 1e6);
                }
                us.sort_by(f64::total_cmp);
                println!("rtt {:.0} {:.0}", us[n / 2], us[n * 99 / 100]);
            }
            _ => println!("unknown command {command:?}"),
        }
    }
}

/// Submits tasks, 8 in flight, until `stop` arrives; then waits for the rest and prints
/// `summary submitted completed failed`.
async fn run_until_stop(node: &Node, commands: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>) {
    let sieve = node.remote::<Job, Done>("sieve");
    let expected = primes_below(LIMIT);
    let (mut submitted, mut completed, mut failed) = (0u64, 0u64, 0u64);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut stopping = false;
    loop {
        while !stopping && in_flight.len() < 8 {
            let (id, sieve) = (submitted, &sieve);
            submitted += 1;
            in_flight.push(async move { (id, sieve.submit(&Job { id, limit: LIMIT }).await) });
        }
        tokio::select! {
            // Cancel-safe: a line is never half read.
            line = commands.next_line(), if !stopping => {
                stopping = !matches!(line, Ok(Some(l)) if l != "stop");
            }
            next = in_flight.next() => match next {
                Some((id, Ok(done))) if (done.id, done.primes) == (id, expected) => {
                    println!("done {id} {}", done.node);
                    completed += 1;
                }
                Some((id, Ok(done))) => {
                    println!("failed {id} wrong answer {done:?}");
                    failed += 1;
                }
                Some((id, Err(e))) => {
                    println!("failed {id} {e}");
                    failed += 1;
                }
                // Only once stopping: otherwise the line is kept full.
                None => break,
            }
        }
    }
    println!("summary {submitted} {completed} {failed}");
}

/// Answers with its task: the round trip's floor.
struct Echo;

impl apiary_core::Agent for Echo {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        n: u64,
        _ctx: &apiary_core::AgentContext<u64, u64>,
    ) -> Result<u64, Self::Error> {
        Ok(n)
    }
}
