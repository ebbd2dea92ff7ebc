//! Learning from experience: an agent with `.learn(..)` stores each task's outcome in the
//! swarm's memory (a real FAISS-backed `Memory`), and the next similar task's request carries
//! it in the system prompt - seen in what the scripted server received.
#![cfg(feature = "memory")]

mod common;

use apiary_core::{AgentSpec, Swarm};
use apiary_llm::{Completion, LlmAgent, Prompt, Provider};
use apiary_llm_scripted::{Reply, Script};
use apiary_memory::{Memory, MemoryConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_of_similar_tasks_are_recalled_into_the_prompt() {
    let script = Script::new()
        .on(
            "openblas",
            [Reply::text(
                "install libopenblas-dev, then link with -lopenblas",
            )],
        )
        .on("tokio", [Reply::text("add the rt-multi-thread feature")]);
    let server = common::server(script).await;
    let memory = Memory::open(MemoryConfig::new(256).namespace("lessons"))
        .await
        .unwrap();
    let agent = LlmAgent::builder(common::endpoint(&server, Provider::OpenAi), "m")
        .system("You fix build errors.")
        .learn("lessons", 1)
        .build();
    let swarm = Swarm::builder()
        .resource(memory.clone())
        .agent(AgentSpec::new("fixer"), move || agent.clone())
        .start()
        .await
        .unwrap();
    let fixer = swarm.agent::<Prompt, Completion>("fixer").unwrap();
    let ask = |p: &'static str| {
        let fixer = fixer.clone();
        async move { fixer.submit(p.into()).await.unwrap().await.unwrap() }
    };
    ask("the linker cannot find openblas").await;
    ask("tokio says the multi-thread runtime is missing").await;
    ask("linking against openblas fails again").await;

    let systems: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.body["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(systems.len(), 3);
    assert_eq!(systems[0], "You fix build errors.", "nothing learnt yet");
    // The third task recalls the first (the most similar), not the second.
    assert!(
        systems[2].contains("install libopenblas-dev"),
        "{}",
        systems[2]
    );
    assert!(!systems[2].contains("rt-multi-thread"), "{}", systems[2]);
    swarm.shutdown().await;
    memory.close().await;
}
