//! What every bench compares against, and the runtime they all run on.
#![allow(dead_code, unreachable_pub)] // each bench uses the part it needs

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The raw baseline: a ractor actor that adds one to a number and answers through an
/// `RpcReplyPort` (`ActorRef::call`).
pub struct RawAdder;

pub struct RawMsg(u64, RpcReplyPort<u64>);

// Needed only when ractor's `cluster` feature is on (the facade's `cluster`), which removes
// ractor's blanket impl.
#[cfg(feature = "cluster")]
impl ractor::Message for RawMsg {}

impl Actor for RawAdder {
    type Msg = RawMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<RawMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RawMsg>,
        RawMsg(n, reply): RawMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(n + 1);
        Ok(())
    }
}

/// One raw round trip: `n` in, `n + 1` back.
pub async fn raw_call(actor: &ActorRef<RawMsg>, n: u64) -> u64 {
    match actor.call(|reply| RawMsg(n, reply), None).await {
        Ok(ractor::rpc::CallResult::Success(v)) => v,
        _ => panic!("raw call failed"),
    }
}

/// A multi-thread tokio runtime with as many workers as the machine has cores (2).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The same work as [`RawAdder`] (add one, the smallest real work, so the round trip is what
/// is measured) as an apiary agent.
pub struct Adder;

impl apiary::prelude::Agent for Adder {
    type Task = u64;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(&mut self, n: u64, _: &apiary::prelude::Ctx<Self>) -> Result<u64, Self::Error> {
        Ok(n + 1)
    }
}

/// The raw baseline for starting an actor: no state, no work.
pub struct RawIdle;

impl Actor for RawIdle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// A task for [`Echo`]: answered, or a deliberate crash.
#[derive(Clone)]
pub enum Job {
    Echo(u64),
    Crash,
}

/// An agent that answers `Echo(n)` with `n` and panics on `Crash`: the supervision benches'
/// agent.
pub struct Echo;

impl apiary::prelude::Agent for Echo {
    type Task = Job;
    type Output = u64;
    type Error = std::convert::Infallible;

    async fn handle(
        &mut self,
        job: Job,
        _: &apiary::prelude::Ctx<Self>,
    ) -> Result<u64, Self::Error> {
        match job {
            Job::Echo(n) => Ok(n),
            Job::Crash => panic!("a deliberate crash"),
        }
    }
}

/// Writes 64 bytes and `fdatasync`s, `n` times, in `dir`: the disk's floor for durable
/// acknowledgements, one after another.
pub fn fsyncs_per_second(dir: &std::path::Path, n: usize) -> f64 {
    use std::io::Write as _;
    let mut file = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..n {
        file.write_all(&[7u8; 64]).unwrap();
        file.sync_data().unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}
