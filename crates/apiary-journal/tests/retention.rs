//! A long-running journal keeps only what its retention says: finished tasks beyond it are
//! removed, and the file stops growing.

use apiary_core::{Agent, AgentContext, AgentSpec, Swarm};
use apiary_journal::{Journal, JournalConfig};

struct Echo;

impl Agent for Echo {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_retention_keeps_the_file_from_growing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(JournalConfig::new(dir.path(), "soak").keep_finished(1_000))
        .await
        .unwrap();
    let swarm = Swarm::builder()
        .resource(journal.clone())
        .agent(AgentSpec::new("echo").queue_capacity(2_000), || Echo)
        .start()
        .await
        .unwrap();
    let echo = journal.agent::<u64, u64>(&swarm, "echo").unwrap();
    let file = journal.path().to_owned();
    let mut sizes = Vec::new();
    for round in 0..8u64 {
        let submissions = (0..5_000u64).map(|i| echo.submit_keyed(format!("{round}-{i}"), i));
        for handle in futures::future::join_all(submissions).await {
            handle.unwrap().await.unwrap();
        }
        journal.compact().await.unwrap();
        let kept = journal.tasks().unwrap();
        assert!(
            kept.len() <= 1_000,
            "round {round}: {} tasks kept",
            kept.len()
        );
        assert!(kept.iter().all(|t| t.outcome.is_some()));
        sizes.push(std::fs::metadata(&file).unwrap().len());
    }
    // 40,000 tasks went through; after the first rounds the file reuses its free pages.
    let settled = sizes[2];
    assert!(
        sizes[7] <= settled + settled / 4,
        "the file kept growing: {sizes:?}"
    );
    // The newest keys still answer from the journal; the oldest are gone.
    assert!(journal.outcome_by_key::<u64>("7-4999").unwrap().is_some());
    assert!(journal.outcome_by_key::<u64>("0-0").unwrap().is_none());
    let stats = journal.stats();
    assert!(stats.transactions > 0 && stats.records >= 80_000);
    println!("file sizes after each round of 5,000: {sizes:?}; {stats:?}");
    swarm.shutdown().await;
}

/// Adds 1 to the tally `echoed` for each task, inside the task.
struct Counting;

impl Agent for Counting {
    type Task = u64;
    type Output = u64;
    type Error = apiary_journal::JournalError;

    async fn handle(&mut self, n: u64, ctx: &AgentContext<u64, u64>) -> Result<u64, Self::Error> {
        use apiary_journal::Steps;
        ctx.tally(&[("echoed", n)]).await?;
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tallies_outlive_retention_and_the_process() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(JournalConfig::new(dir.path(), "tally").keep_finished(10))
            .await
            .unwrap();
        let swarm = Swarm::builder()
            .resource(journal.clone())
            .agent(AgentSpec::new("count"), || Counting)
            .start()
            .await
            .unwrap();
        let count = journal.agent::<u64, u64>(&swarm, "count").unwrap();
        for n in 1..=100u64 {
            count.submit(n).await.unwrap().await.unwrap();
        }
        journal.add_to_tally("echoed", 1_000).await.unwrap();
        journal.compact().await.unwrap();
        assert!(journal.tasks().unwrap().len() <= 10, "retention ran");
        swarm.shutdown().await;
    }
    let journal = Journal::open(JournalConfig::new(dir.path(), "tally"))
        .await
        .unwrap();
    assert_eq!(journal.tally("echoed").unwrap(), 5_050 + 1_000);
    assert_eq!(journal.tally("never-added").unwrap(), 0);
}
