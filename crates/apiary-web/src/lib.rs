//! Watch and steer a running swarm from a browser.
//!
//! A [`Console`] subscribes to a swarm's events, folds them into a live picture (each
//! agent's state, queue, task counts and rate, breakers, restarts, model usage, alerts) and
//! keeps the latest of them, encoded once, for the clients that stream them. [`serve`]
//! puts it on HTTP:
//!
//! - `GET /` a page that draws the swarm and updates as events arrive; its assets are built
//!   into the binary, so it works offline;
//! - `GET /events` the events as server-sent events, `id` = the event's number. A client
//!   that reconnects with `Last-Event-ID` gets everything it missed that is still buffered,
//!   and an `event: lagged` message with the count when it missed more. A client that
//!   stops reading never slows the swarm: it falls behind and is told so;
//! - `GET /state` a JSON [`Snapshot`];
//! - POST controls: pause and resume an agent, cancel a task the console
//!   [tracks](Console::track), approve or reject an [approval](apiary_core::Approvals).
//!
//! Access: loopback by default; any other address needs a token, checked on every request
//! (see [`access`]). Controls are guarded against cross-site requests.
//!
//! # Examples
//!
//! ```
//! use apiary_core::{ApprovalRequest, Swarm};
//! use apiary_web::{serve_with, Console, ServeOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let swarm = Swarm::builder().start().await?;
//! let console = Console::builder(&swarm).start();
//! let served = serve_with(&console, "127.0.0.1:0".parse()?, ServeOptions::default().token("s3cret")).await?;
//! // A page at http://{addr}/?token=s3cret now shows the swarm; an approval waits there:
//! let gate = swarm.approvals().request(ApprovalRequest::new("deploy", "ship it?"))?;
//! assert_eq!(console.snapshot().finished(), false);
//! # swarm.approvals().approve(gate.id(), "doc")?;
//! # gate.await?;
//! served.shutdown().await;
//! swarm.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod access;
mod console;
mod model;
mod ring;
mod routes;
mod serve;
mod snapshot;

pub use console::{BudgetGauge, Console, ConsoleBuilder, DEFAULT_BUFFER, DEFAULT_PACE};
pub use serve::{serve, serve_with, ServeError, ServeOptions, Served};
pub use snapshot::{AgentState, AgentStatus, Snapshot};
