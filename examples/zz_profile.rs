//! Profiling scratch (not committed).
use apiary::prelude::*;
struct Adder;
impl Agent for Adder {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;
    async fn handle(&mut self, n: u64, _: &Ctx<Self>) -> Result<u64, Self::Error> {
        Ok(n + 1)
    }
}
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let swarm = Swarm::builder().agent(AgentSpec::new("adder").queue_capacity(4096), || Adder).start().await.unwrap();
        let adder = swarm.agent::<u64, u64>("adder").unwrap();
        for _ in 0..50 {
            let mut hs = Vec::with_capacity(1000);
            for i in 0..1000 { hs.push(adder.submit(i).await.unwrap()); }
            futures::future::join_all(hs).await;
        }
        swarm.shutdown().await;
    });
}
