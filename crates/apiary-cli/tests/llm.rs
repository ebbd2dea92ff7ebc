//! `kind = "llm"` steps in manifests, run by the binary against the scripted server: prompts
//! with the outputs of earlier steps, a shell step called as a tool through the topology,
//! usage and cost on `--json` lines and in the table, and a `[budget]` that stops a step
//! before a call it could not afford (counted at the server).

use apiary_llm_scripted::{Reply, Script, ScriptedServer, SCRIPTED};
use assert_cmd::Command;
use serde_json::{json, Value};

fn apiary() -> Command {
    Command::cargo_bin("apiary").unwrap()
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn steps(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["type"] == "step").collect()
}

/// A planner, a reviewer that may run the `tests` shell step as a tool (a star with the
/// reviewer as hub), and the budget given.
fn review_manifest(server: &ScriptedServer, budget: &str) -> String {
    let base = server.openai_base_url();
    format!(
        r#"
[swarm]
name = "review"

{budget}

[topology]
kind = "star"
hub = "reviewer"

[[agents]]
name = "tests"
kind = "shell"
[agents.config]
command = "echo 'test result: ok. 3 passed'"

[[agents]]
name = "planner"
kind = "llm"
[agents.config]
provider = "openai"
base_url = "{base}"
model = "scripted-model"
prompt = "Plan a review of the crate."
max_tokens = 200
price = {{ input = 1000.0, output = 1000.0 }}

[[agents]]
name = "reviewer"
kind = "llm"
depends_on = ["planner", "tests"]
[agents.config]
provider = "openai"
base_url = "{base}"
model = "scripted-model"
system = "You review Rust crates."
prompt = "Review following this plan:\n{{{{planner}}}}"
max_tokens = 1000
tools = ["tests"]
price = {{ input = 1000.0, output = 1000.0 }}
"#
    )
}

fn review_script() -> Script {
    Script::new()
        .on(
            "Plan a review",
            [Reply::text("1. run the tests 2. read lib.rs")],
        )
        .on(
            "Review following",
            [
                Reply::tool_call("tests", json!({})),
                Reply::text("approve: the tests pass"),
            ],
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_steps_run_with_inputs_tools_and_usage() {
    let server = ScriptedServer::start(review_script()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.toml");
    std::fs::write(&path, review_manifest(&server, "")).unwrap();
    let out = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            apiary()
                .args(["run", "--json"])
                .arg(&path)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = json_lines(&out.stdout);
    let steps = steps(&lines);
    let reviewer = steps.iter().find(|s| s["agent"] == "reviewer").unwrap();
    assert_eq!(reviewer["status"], "succeeded");
    assert_eq!(
        reviewer["output"],
        format!("{SCRIPTED} approve: the tests pass")
    );
    let usage = &reviewer["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{reviewer}");
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    let tokens = usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap();
    // $1,000 per million tokens: a thousandth of a dollar each.
    let cost = usage["cost"].as_f64().unwrap();
    assert!(
        (cost - tokens as f64 * 1e-3).abs() < 1e-9,
        "{cost} for {tokens} tokens"
    );
    let shell = steps.iter().find(|s| s["agent"] == "tests").unwrap();
    assert!(
        shell.get("usage").is_none(),
        "a shell step spends no tokens: {shell}"
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 3, "planner 1 call, reviewer 2");
    let review_calls: Vec<String> = requests
        .iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("Review following"))
        .collect();
    // The planner's answer is in the reviewer's prompt; the tool's output in its second call.
    assert!(
        review_calls[0].contains("1. run the tests 2. read lib.rs"),
        "{}",
        review_calls[0]
    );
    assert!(
        review_calls[1].contains("test result: ok. 3 passed"),
        "{}",
        review_calls[1]
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());

    // The table shows tokens and cost too.
    let out = tokio::task::spawn_blocking(move || apiary().arg("run").arg(&path).output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tokens") && text.contains("cost"), "{text}");
    assert!(
        text.contains(&format!("{SCRIPTED} approve")),
        "the answer is shown: {text}"
    );
    assert!(text.contains("models:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_the_step_that_cannot_afford_its_next_call() {
    let server = ScriptedServer::start(review_script()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.toml");
    // Enough for the planner's call (200 + its prompt reserved, a few dozen used) but not
    // for the reviewer's first (1,000 + its prompt reserved).
    std::fs::write(&path, review_manifest(&server, "[budget]\ntokens = 600")).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        apiary()
            .args(["run", "--json"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "a stopped step fails the run");
    let lines = json_lines(&out.stdout);
    let steps = steps(&lines);
    let planner = steps.iter().find(|s| s["agent"] == "planner").unwrap();
    assert_eq!(planner["status"], "succeeded");
    let reviewer = steps.iter().find(|s| s["agent"] == "reviewer").unwrap();
    assert_eq!(reviewer["status"], "stopped", "{reviewer}");
    let detail = reviewer["detail"].as_str().unwrap();
    assert!(detail.contains("budget `swarm` of 600 tokens"), "{detail}");
    // Only the planner's call reached the server.
    assert_eq!(server.requests().len(), 1);
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    assert_eq!(summary["stopped_by_budget"], 1);
}

#[test]
fn bad_llm_configs_are_errors_naming_agent_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.toml");
    let cases = [
        (
            "[[agents]]\nname = \"a\"\nkind = \"llm\"\n[agents.config]\nprovider = \"gemini\"\nbase_url = \"http://x\"\nmodel = \"m\"\nprompt = \"p\"\n",
            "unknown variant `gemini`",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"llm\"\n[agents.config]\nprovider = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\nprompt = \"use {{b}}\"\n",
            "`b` is not in depends_on",
        ),
        (
            "[[agents]]\nname = \"a\"\nkind = \"llm\"\n[agents.config]\nprovider = \"openai\"\nbase_url = \"http://x\"\nmodel = \"m\"\nprompt = \"p\"\napi_key_env = \"APIARY_TEST_NO_SUCH_KEY\"\n",
            "APIARY_TEST_NO_SUCH_KEY",
        ),
        (
            "[budget.agents.ghost]\ntokens = 5\n[[agents]]\nname = \"a\"\nkind = \"shell\"\n[agents.config]\ncommand = \"true\"\n",
            "`ghost`, which is not an agent",
        ),
    ];
    for (toml, expected) in cases {
        std::fs::write(&path, toml).unwrap();
        let out = apiary().arg("run").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "missing {expected:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Unknown kinds list the known ones, `llm` among them.
    std::fs::write(&path, "[[agents]]\nname = \"a\"\nkind = \"gpt\"\n").unwrap();
    let out = apiary().arg("validate").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("known kinds: llm, memory, shell"), "{err}");
}
