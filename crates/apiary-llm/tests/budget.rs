//! Budgets enforced by the runtime: a call that would exceed one is never sent (counted at
//! the server), concurrent agents cannot overspend together, a task's own budget can end in
//! a finishing step, money needs prices, and a journaled budget is not given back on resume.

mod common;

use std::sync::Arc;

use apiary_core::{AgentSpec, Swarm};
use apiary_journal::{Journal, JournalConfig};
use apiary_llm::{
    Budget, Completion, Limits, LlmAgent, LlmError, Money, Price, Prices, Prompt, Provider,
    Resource, SwarmBudget,
};
use apiary_llm_scripted::{Reply, Script};
use common::{endpoint, server, PROVIDERS};
use serde_json::json;

/// A script answering every prompt with the same sentence.
fn chatty() -> Script {
    Script::new().on(
        "",
        [Reply::text(
            "a scripted answer of about fifty bytes, give or take",
        )],
    )
}

fn budget_error(r: Result<Completion, apiary_core::TaskError>) -> apiary_llm::BudgetExceeded {
    let e = r.expect_err("the budget refuses");
    match e.agent_error::<LlmError>() {
        Some(LlmError::Budget(stop)) => stop.clone(),
        _ => panic!("not a budget refusal: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_budget_stops_the_run_at_the_first_call_that_would_exceed_it() {
    for provider in PROVIDERS {
        let server = server(chatty()).await;
        let limit = 1_000;
        let budget = SwarmBudget::new(Limits::none().tokens(limit));
        let spent = Arc::clone(&budget.0);
        let agent = LlmAgent::builder(endpoint(&server, provider), "m")
            .max_tokens(100)
            .build();
        let swarm = Swarm::builder()
            .resource(budget)
            .agent(AgentSpec::new("assistant"), move || agent.clone())
            .start()
            .await
            .unwrap();
        let assistant = swarm.agent::<Prompt, Completion>("assistant").unwrap();
        let mut used = 0;
        let mut completed = 0;
        let stop = loop {
            let r = assistant
                .submit(format!("task {completed}").into())
                .await
                .unwrap()
                .await;
            match r {
                Ok(c) => {
                    used += c.usage.total();
                    completed += 1;
                    assert!(
                        completed < 100,
                        "{provider}: the budget never stopped the run"
                    );
                }
                Err(_) => break budget_error(r),
            }
        };
        assert_eq!(stop.budget, "swarm");
        assert_eq!(stop.resource, Resource::Tokens);
        assert_eq!(stop.limit, limit);
        assert_eq!(stop.spent, used, "{provider}: spent is what the calls used");
        assert!(
            stop.spent + stop.wanted > limit,
            "refused only because it would exceed"
        );
        assert!(used <= limit, "{provider}: never over the limit");
        assert_eq!(spent.spent().0, used);
        // The refused call was not sent: one request per completed task.
        assert_eq!(server.requests().len(), completed, "{provider}");
        let message = stop.to_string();
        assert!(
            message.contains("budget `swarm` of 1000 tokens"),
            "{message}"
        );
        swarm.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_agents_cannot_overspend_together() {
    let server = server(chatty()).await;
    let limit = 2_000;
    let budget = SwarmBudget::new(Limits::none().tokens(limit));
    let spent = Arc::clone(&budget.0);
    let mut builder = Swarm::builder().resource(budget);
    for i in 0..4 {
        let agent = LlmAgent::builder(endpoint(&server, Provider::OpenAi), "m")
            .max_tokens(100)
            .build();
        builder = builder.agent(
            AgentSpec::new(format!("agent-{i}"))
                .replicas(3)
                .queue_capacity(100),
            move || agent.clone(),
        );
    }
    let swarm = builder.start().await.unwrap();
    let mut handles = Vec::new();
    for i in 0..4 {
        let agent = swarm
            .agent::<Prompt, Completion>(&format!("agent-{i}"))
            .unwrap();
        for n in 0..50 {
            handles.push(agent.submit(format!("task {i}-{n}").into()).await.unwrap());
        }
    }
    let (mut used, mut completed, mut refused) = (0, 0, 0);
    for h in handles {
        match h.await {
            Ok(c) => {
                used += c.usage.total();
                completed += 1;
            }
            r @ Err(_) => {
                let stop = budget_error(r);
                assert_eq!(stop.budget, "swarm");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0 && completed > 0,
        "{completed} completed, {refused} refused"
    );
    assert!(used <= limit, "{used} tokens used of {limit}");
    assert_eq!(spent.spent().0, used);
    assert_eq!(
        server.requests().len(),
        completed,
        "no refused call was sent"
    );
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_budget_ends_in_the_finishing_step() {
    // The model keeps calling a tool; the task's budget ends the loop, and the finisher
    // says what was done instead of the task failing.
    let script = Script::new().on(
        "count",
        // One reply, repeated on every turn.
        [Reply::tool_call("tick", json!({}))],
    );
    let server = server(script).await;
    let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = Arc::clone(&ticks);
    let tick = apiary_llm::tool_fn(
        "tick",
        "Counts one.",
        json!({ "type": "object" }),
        move |_| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { Ok(n.to_string()) }
        },
    );
    let agent = LlmAgent::builder(endpoint(&server, Provider::Anthropic), "m")
        .max_tokens(50)
        .max_turns(100)
        .tool(tick)
        .on_budget_exceeded(|stop, messages| {
            format!(
                "stopped by {} after {} messages",
                stop.budget,
                messages.len()
            )
        });
    let swarm = common::swarm_of("assistant", agent).await;
    let c = swarm
        .agent::<Prompt, Completion>("assistant")
        .unwrap()
        .submit(Prompt::with_budget(
            "count for me",
            Limits::none().tokens(600),
        ))
        .await
        .unwrap()
        .await
        .unwrap();
    let stop = c.stopped_by.as_ref().expect("stopped by the task budget");
    assert!(stop.budget.starts_with("task"), "{}", stop.budget);
    assert!(c.text.starts_with("stopped by task"), "{}", c.text);
    assert!(c.calls >= 2, "some calls were made: {}", c.calls);
    assert_eq!(c.calls as usize, server.requests().len());
    assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), c.calls);
    assert!(c.usage.total() <= 600);
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_budgets_need_prices_and_count_cost() {
    let server = server(chatty()).await;
    // Unpriced model, money budget: a configuration error naming both, before any request.
    let agent =
        LlmAgent::builder(endpoint(&server, Provider::OpenAi), "unpriced").budget(Arc::new(
            Budget::new("reviewer", Limits::none().cost(Money::from_dollars(1.0))),
        ));
    let swarm = common::swarm_of("assistant", agent).await;
    let e = swarm
        .agent::<Prompt, Completion>("assistant")
        .unwrap()
        .submit("hi".into())
        .await
        .unwrap()
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("unpriced") && text.contains("reviewer"),
        "{text}"
    );
    assert!(server.requests().is_empty());
    swarm.shutdown().await;

    // Priced: $1,000 per million tokens in and out; a $0.10 budget.
    let prices = Prices::new().with("priced", Price::per_million(1_000.0, 1_000.0));
    let budget = Arc::new(Budget::new(
        "reviewer",
        Limits::none().cost(Money::from_dollars(0.10)),
    ));
    let agent = LlmAgent::builder(endpoint(&server, Provider::OpenAi), "priced")
        .max_tokens(20)
        .prices(prices)
        .budget(Arc::clone(&budget));
    let swarm = common::swarm_of("assistant", agent).await;
    let assistant = swarm.agent::<Prompt, Completion>("assistant").unwrap();
    let mut cost = Money::ZERO;
    let stop = loop {
        let r = assistant.submit("hi".into()).await.unwrap().await;
        match r {
            Ok(c) => {
                let c_cost = c.cost.expect("priced");
                assert_eq!(
                    c_cost.nanos(),
                    c.usage.total() * 1_000_000,
                    "$1e-3 per token"
                );
                cost = cost.saturating_add(c_cost);
            }
            Err(_) => break budget_error(r),
        }
    };
    assert_eq!(stop.resource, Resource::Cost);
    assert_eq!(stop.budget, "reviewer");
    assert_eq!(budget.spent().1, cost);
    assert!(cost <= Money::from_dollars(0.10));
    swarm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_budget_is_not_given_back_on_resume() {
    let server = server(chatty()).await;
    let dir = tempfile::tempdir().unwrap();
    let limit = 1_000;
    let run = |budget: SwarmBudget| {
        let agent = LlmAgent::builder(endpoint(&server, Provider::OpenAi), "m")
            .max_tokens(100)
            .build();
        let dir = dir.path().to_owned();
        async move {
            // The first run's actors may still be letting go of the file just after its
            // shutdown (a new process would not wait): retry while redb says it is open.
            let mut tries = 0;
            let journal = loop {
                match Journal::open(JournalConfig::new(&dir, "budgeted")).await {
                    Ok(j) => break j,
                    Err(e) if tries < 100 && format!("{e:?}").contains("AlreadyOpen") => {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            budget.0.restore_from(&journal).unwrap();
            let swarm = Swarm::builder()
                .configure(|s| s.name = "budgeted".into())
                .resource(journal.clone())
                .resource(budget)
                .agent(AgentSpec::new("assistant"), move || agent.clone())
                .start()
                .await
                .unwrap();
            (journal, swarm)
        }
    };
    // First run: three calls, then the process "ends".
    let first = SwarmBudget::new(Limits::none().tokens(limit));
    let (journal, swarm) = run(first.clone()).await;
    let assistant = journal
        .agent::<Prompt, Completion>(&swarm, "assistant")
        .unwrap();
    for n in 0..3 {
        assistant
            .submit(format!("task {n}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let spent_first = first.0.spent().0;
    assert!(spent_first > 0);
    swarm.shutdown().await;
    // The swarm holds the journal as a resource: all of it goes, as with a process.
    drop((journal, assistant, swarm));

    // Second run: a fresh budget restored from the journal starts where the first ended.
    let second = SwarmBudget::new(Limits::none().tokens(limit));
    let (journal, swarm) = run(second.clone()).await;
    assert_eq!(
        second.0.spent().0,
        spent_first,
        "the spending came back from the journal"
    );
    let assistant = journal
        .agent::<Prompt, Completion>(&swarm, "assistant")
        .unwrap();
    let mut completed = 3;
    loop {
        let r = assistant
            .submit(format!("task {completed}").into())
            .await
            .unwrap()
            .await;
        match r {
            Ok(_) => completed += 1,
            Err(e) => {
                assert!(e.to_string().contains("budget `swarm`"), "{e}");
                break;
            }
        }
    }
    assert!(second.0.spent().0 <= limit);
    // Both runs together sent no more than one budget allows.
    assert_eq!(server.requests().len(), completed);
    swarm.shutdown().await;
}
