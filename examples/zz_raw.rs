//! Profiling scratch (not committed).
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
struct RawAdder;
struct RawMsg(u64, RpcReplyPort<u64>);
impl Actor for RawAdder {
    type Msg = RawMsg; type State = (); type Arguments = ();
    async fn pre_start(&self, _: ActorRef<RawMsg>, _: ()) -> Result<(), ActorProcessingErr> { Ok(()) }
    async fn handle(&self, _: ActorRef<RawMsg>, RawMsg(n, reply): RawMsg, _: &mut ()) -> Result<(), ActorProcessingErr> { let _ = reply.send(n + 1); Ok(()) }
}
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (raw, _) = Actor::spawn(None, RawAdder, ()).await.unwrap();
        for _ in 0..50 {
            let calls = (0..1000u64).map(|i| { let raw = raw.clone(); async move { raw.call(|r| RawMsg(i, r), None).await.unwrap() } });
            futures::future::join_all(calls).await;
        }
        raw.stop(None);
    });
}
