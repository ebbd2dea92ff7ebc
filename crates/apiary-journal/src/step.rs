//! Steps: side effects inside an agent, recorded so that a task delivered again after a crash
//! does not repeat the ones that had finished.

use std::future::Future;

use apiary_core::{AgentContext, Caller};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::agent::JournalTask;
use crate::journal::lock;
use crate::store::Write;
use crate::JournalError;

/// The name of one run of a step, unique in its journal: `<task>/<name>#<n>`. Hand it to the
/// service the step calls (as an idempotency key, a request id), so that the service can
/// recognise a step run again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepKey(String);

impl StepKey {
    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StepKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Named, recorded steps inside a journaled task. Implemented for every [`AgentContext`]
/// and for [`Caller`].
///
/// # What is guaranteed
///
/// A step's result is recorded durably before `step` returns it. When the task is delivered
/// again after a crash, each step that had recorded its result returns that result without
/// running. A step interrupted after its effect but before its record runs again: steps are
/// *at least once*. Give the [`StepKey`] to the service the effect calls so it can recognise
/// the second run.
///
/// Steps are told apart by name and by order: the second `step("fetch", ..)` of a task is
/// `fetch#2`. A task run again must call its steps in the same order (the usual case: same
/// task, same code). Outside a journaled task, a step just runs.
///
/// # Examples
///
/// ```
/// use apiary_core::{Agent, AgentContext, BoxError};
/// use apiary_journal::Steps;
///
/// /// Charges a card, then mails a receipt; after a crash, neither happens twice once done.
/// struct Checkout;
/// impl Agent for Checkout {
///     type Task = u64;
///     type Output = String;
///     type Error = BoxError;
///     async fn handle(&mut self, cents: u64, ctx: &AgentContext<u64, String>) -> Result<String, BoxError> {
///         let charge: String = ctx
///             .step("charge", |key| async move {
///                 // e.g. payments.charge(cents, idempotency_key = key)
///                 format!("charge-{key}-{cents}")
///             })
///             .await?;
///         ctx.step("receipt", |_| async { /* mail it */ }).await?;
///         Ok(charge)
///     }
/// }
/// ```
pub trait Steps {
    /// Runs `effect` once per task (see the trait docs), recording its result.
    ///
    /// # Errors
    ///
    /// [`JournalError`] if the result could not be recorded or a recorded one does not
    /// decode into `R`.
    fn step<R, F, Fut>(
        &self,
        name: &str,
        effect: F,
    ) -> impl Future<Output = Result<R, JournalError>> + Send
    where
        R: Serialize + DeserializeOwned + Send,
        F: FnOnce(StepKey) -> Fut + Send,
        Fut: Future<Output = R> + Send;

    /// Like [`step`](Self::step), for an effect that can fail: only a success is recorded,
    /// so an effect that failed runs again when the task is delivered again.
    ///
    /// # Errors
    ///
    /// [`TryStepError::Effect`] with the effect's error, or [`TryStepError::Journal`] as for
    /// `step`.
    fn try_step<R, E, F, Fut>(
        &self,
        name: &str,
        effect: F,
    ) -> impl Future<Output = Result<R, TryStepError<E>>> + Send
    where
        R: Serialize + DeserializeOwned + Send,
        E: Send,
        F: FnOnce(StepKey) -> Fut + Send,
        Fut: Future<Output = Result<R, E>> + Send;

    /// Adds each `(name, amount)` to the journal's running total `name`, in one write that
    /// is durable before it returns (see [`Journal::tally`](crate::Journal::tally)); outside
    /// a journaled task, does nothing. What a budget spent is kept this way, so that a
    /// resumed run does not get it back.
    ///
    /// # Errors
    ///
    /// [`JournalError`] if the write cannot be made durable.
    fn tally(
        &self,
        amounts: &[(&str, u64)],
    ) -> impl Future<Output = Result<(), JournalError>> + Send;
}

/// Why a fallible step ([`Steps::try_step`]) gave no result.
#[derive(Debug, thiserror::Error)]
pub enum TryStepError<E> {
    /// The effect failed; nothing was recorded.
    #[error("{0}")]
    Effect(E),
    /// The journal could not record the result, or a recorded one does not decode.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl<T: Send + 'static, O: Send + 'static> Steps for AgentContext<T, O> {
    async fn step<R, F, Fut>(&self, name: &str, effect: F) -> Result<R, JournalError>
    where
        R: Serialize + DeserializeOwned + Send,
        F: FnOnce(StepKey) -> Fut + Send,
        Fut: Future<Output = R> + Send,
    {
        self.caller().step(name, effect).await
    }

    async fn try_step<R, E, F, Fut>(&self, name: &str, effect: F) -> Result<R, TryStepError<E>>
    where
        R: Serialize + DeserializeOwned + Send,
        E: Send,
        F: FnOnce(StepKey) -> Fut + Send,
        Fut: Future<Output = Result<R, E>> + Send,
    {
        self.caller().try_step(name, effect).await
    }

    async fn tally(&self, amounts: &[(&str, u64)]) -> Result<(), JournalError> {
        self.caller().tally(amounts).await
    }
}

impl Steps for Caller {
    async fn step<R, F, Fut>(&self, name: &str, effect: F) -> Result<R, JournalError>
    where
        R: Serialize + DeserializeOwned + Send,
        F: FnOnce(StepKey) -> Fut + Send,
        Fut: Future<Output = R> + Send,
    {
        let infallible = |key| async move { Ok::<R, std::convert::Infallible>(effect(key).await) };
        self.try_step(name, infallible).await.map_err(|e| match e {
            TryStepError::Journal(e) => e,
            TryStepError::Effect(never) => match never {},
        })
    }

    async fn try_step<R, E, F, Fut>(&self, name: &str, effect: F) -> Result<R, TryStepError<E>>
    where
        R: Serialize + DeserializeOwned + Send,
        E: Send,
        F: FnOnce(StepKey) -> Fut + Send,
        Fut: Future<Output = Result<R, E>> + Send,
    {
        let Some(task) = self.attached::<JournalTask>() else {
            let key = StepKey(format!("{}/{name}", self.name()));
            return effect(key).await.map_err(TryStepError::Effect);
        };
        let occurrence = {
            let mut seen = lock(&task.occurrences);
            let n = seen.entry(name.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let step = format!("{name}#{occurrence}");
        let store = &task.journal.inner.store;
        if let Some(bytes) = store.step(task.id.get(), &step)? {
            return postcard::from_bytes(&bytes).map_err(|e| {
                TryStepError::Journal(JournalError::Undecodable {
                    path: task.journal.path().to_owned(),
                    record: format!("step {}/{step}", task.id.get()),
                    reason: e.to_string(),
                })
            });
        }
        let result = effect(StepKey(format!("{}/{step}", task.id.get())))
            .await
            .map_err(TryStepError::Effect)?;
        let bytes = postcard::to_allocvec(&result).map_err(|e| JournalError::Encode {
            what: format!("the result of step {step}"),
            reason: e.to_string(),
        })?;
        task.journal
            .write(vec![Write::Step {
                id: task.id.get(),
                name: step,
                result: bytes,
            }])
            .await?;
        Ok(result)
    }

    async fn tally(&self, amounts: &[(&str, u64)]) -> Result<(), JournalError> {
        match self.attached::<JournalTask>() {
            Some(task) => task.journal.add_to_tallies(amounts).await,
            None => Ok(()),
        }
    }
}
