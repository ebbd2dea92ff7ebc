//! The web console in a real browser: Debian's Chromium, driven through chromedriver
//! (WebDriver), watches and steers a real `apiary run --ui` of the demo manifest.
//!
//! Needs `chromium` and `chromium-driver` (installed by `scripts/setup.sh test`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a child process when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo manifest with one change: `build` waits for approval (so the page is up before
/// anything runs, and the approval is given from it).
fn demo_with_approval(dir: &tempfile::TempDir) -> PathBuf {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let demo = std::fs::read_to_string(examples.join("quality-fleet.toml")).unwrap();
    let sample = examples.join("sample-crate").canonicalize().unwrap();
    let gated = demo
        .replace(
            "name = \"build\"\nkind = \"shell\"\n",
            "name = \"build\"\nkind = \"shell\"\napproval = \"build the sample crate?\"\n",
        )
        .replace(
            "dir = \"sample-crate\"",
            &format!("dir = \"{}\"", sample.display()),
        );
    assert!(
        gated.contains("approval = "),
        "the demo manifest changed shape"
    );
    let path = dir.path().join("quality-fleet-approval.toml");
    std::fs::write(&path, gated).unwrap();
    path
}

async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn state(base: &str) -> Value {
    reqwest::get(format!("{base}/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn attr(client: &Client, css: &str, name: &str) -> Option<String> {
    let element = client.find(Locator::Css(css)).await.ok()?;
    element.attr(name).await.ok().flatten()
}

/// Records, in the page, when the `smoke` agent's breaker events arrive on an event stream
/// of its own and when the drawn node's `data-breaker` changes.
const PROBE: &str = r#"
window.__probe = { events: [], dom: [] };
const es = new EventSource('/events');
es.onmessage = (m) => {
  try {
    const e = JSON.parse(m.data);
    if (e.event === 'breaker_changed' && e.agent === 'smoke') {
      window.__probe.events.push({ t: performance.now(), transition: e.transition });
    }
  } catch (_) {}
};
let last = null;
const look = () => {
  const g = document.querySelector('g.agent[data-agent="smoke"]');
  const v = g ? g.getAttribute('data-breaker') : null;
  if (v !== last) { last = v; window.__probe.dom.push({ t: performance.now(), value: v }); }
};
new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
look();
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_watches_and_steers_a_real_demo_run() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver (scripts/setup.sh test)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = demo_with_approval(&dir);

    // The run, with its console on a port of its own.
    let ui = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{ui}");
    let mut run = Command::new(env!("CARGO_BIN_EXE_apiary"))
        .arg("run")
        .arg(&manifest)
        .args(["--json", "--ui", &ui, "--linger", "5m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = run.stdout.take().unwrap();
    let _run = Reaped(run);
    let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    lines.lock().unwrap().push(v);
                }
            }
        });
    }
    let printed = |pred: &dyn Fn(&Value) -> bool| lines.lock().unwrap().iter().any(pred);

    // The browser.
    let driver_port = free_port();
    let _driver = Reaped(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let client = wait_until("chromedriver", Duration::from_secs(30), async || {
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&driver_url)
            .await
            .ok()
    })
    .await;

    // The console comes up once the run started its swarm.
    wait_until("the console", Duration::from_secs(120), async || {
        reqwest::get(format!("{base}/state")).await.ok()
    })
    .await;
    client.goto(&format!("{base}/")).await.unwrap();
    client.execute(PROBE, vec![]).await.unwrap();

    // Every agent appears.
    for agent in ["fmt", "build", "lint", "test", "docs", "smoke", "report"] {
        wait_until(
            &format!("agent {agent} drawn"),
            Duration::from_secs(10),
            async || {
                client
                    .find(Locator::Css(&format!("g.agent[data-agent=\"{agent}\"]")))
                    .await
                    .ok()
            },
        )
        .await;
    }

    // Pause `smoke` from the page: the swarm pauses it (its state and its event say so).
    client
        .find(Locator::Css(
            "button[data-action=\"pause\"][data-agent=\"smoke\"]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        "smoke paused in /state",
        Duration::from_secs(5),
        async || {
            let s = state(&base).await;
            let smoke = s["agents"]
                .as_array()?
                .iter()
                .find(|a| a["name"] == "smoke")?
                .clone();
            (smoke["paused"] == true && smoke["state"] == "paused").then_some(())
        },
    )
    .await;
    wait_until(
        "the swarm's agent_paused event",
        Duration::from_secs(5),
        async || printed(&|v| v["event"] == "agent_paused" && v["agent"] == "smoke").then_some(()),
    )
    .await;
    wait_until(
        "smoke paused on the page",
        Duration::from_secs(5),
        async || {
            (attr(&client, "g.agent[data-agent=\"smoke\"]", "data-state")
                .await
                .as_deref()
                == Some("paused"))
            .then_some(())
        },
    )
    .await;
    client
        .find(Locator::Css(
            "button[data-action=\"resume\"][data-agent=\"smoke\"]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until("smoke resumed", Duration::from_secs(5), async || {
        printed(&|v| v["event"] == "agent_resumed" && v["agent"] == "smoke").then_some(())
    })
    .await;

    // `build` waits for approval: the page lists it; a picture of the page now.
    let approve = "li[data-approval=\"build\"] button[data-action=\"approve\"]";
    wait_until("the approval listed", Duration::from_secs(10), async || {
        client.find(Locator::Css(approve)).await.ok()
    })
    .await;
    let shot = client.screenshot().await.unwrap();
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console.png");
    std::fs::write(&png, shot).unwrap();
    eprintln!(
        "screenshot of the page waiting for approval: {}",
        png.display()
    );
    client
        .find(Locator::Css(approve))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until("the approval decided", Duration::from_secs(5), async || {
        printed(&|v| {
            v["event"] == "approval_decided" && v["id"] == "build" && v["approved"] == true
        })
        .then_some(())
    })
    .await;

    // Mid-run, the flaky step's breaker opens (recorded in the page, so no poll from here
    // can miss its second): a picture of the page then too.
    wait_until(
        "smoke's breaker drawn open",
        Duration::from_secs(600),
        async || {
            let probe = client
                .execute("return window.__probe.dom;", vec![])
                .await
                .ok()?;
            probe
                .as_array()?
                .iter()
                .any(|d| d["value"] == "open")
                .then_some(())
        },
    )
    .await;
    let shot = client.screenshot().await.unwrap();
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-breaker.png");
    std::fs::write(&png, shot).unwrap();
    eprintln!(
        "screenshot of the page around the breaker's opening: {}",
        png.display()
    );

    // The run goes on to its end; the page shows the summary.
    wait_until(
        "the summary on the page",
        Duration::from_secs(600),
        async || {
            let summary = client.find(Locator::Id("summary")).await.ok()?;
            let text = summary.text().await.ok()?;
            (summary.is_displayed().await.ok()? && text.contains("succeeded")).then_some(text)
        },
    )
    .await;
    assert!(
        printed(&|v| v["type"] == "summary" && v["ok"] == true),
        "the run succeeded"
    );

    // The flaky step's breaker opened and closed, and the page showed each within a second
    // of the event reaching it.
    let probe = client
        .execute("return window.__probe;", vec![])
        .await
        .unwrap();
    let events = probe["events"].as_array().unwrap();
    let dom = probe["dom"].as_array().unwrap();
    let event_at = |transition: &str| {
        events
            .iter()
            .find(|e| e["transition"] == transition)
            .and_then(|e| e["t"].as_f64())
            .unwrap_or_else(|| panic!("no `{transition}` event for smoke: {probe}"))
    };
    let shown_after = |value: &str, after: f64| {
        dom.iter()
            .find(|d| d["value"] == value && d["t"].as_f64().unwrap() >= after - 1000.0)
            .and_then(|d| d["t"].as_f64())
            .unwrap_or_else(|| panic!("the page never showed breaker `{value}`: {probe}"))
    };
    let opened = event_at("opened");
    let shown_open = shown_after("open", opened);
    assert!(
        shown_open - opened < 1000.0,
        "open shown {} ms after the event",
        shown_open - opened
    );
    let closed = event_at("closed");
    let shown_closed = shown_after("closed", closed.max(shown_open));
    assert!(
        shown_closed - closed < 1000.0,
        "closed shown {} ms after the event",
        shown_closed - closed
    );
    client.close().await.unwrap();
}
