//! Steps marked `approval = "..."` in the manifest wait for a person before they run.
//!
//! The question is asked through the swarm's approval registry under the step's name, so
//! the web console (`--ui`) lists it and `apiary approve <step>` answers it. With
//! `--state`, a yes is journaled (a tally `approval/r<run>/<step>`): a resumed run does not
//! ask again for a step already approved, and asks again for one still waiting when the
//! process died.

use apiary::journal::Journal;
use apiary::{ApprovalRequest, Approvals, Decision};

use crate::printer::Printer;

/// Asks for approval of steps.
pub(crate) struct Gate {
    pub(crate) approvals: Approvals,
    /// Approve everything at once (`--auto-approve`).
    pub(crate) auto: bool,
    /// The journal and run a yes is recorded in.
    pub(crate) journal: Option<(Journal, u64)>,
    /// Where a person can answer, for the note (`http://...`).
    pub(crate) where_: Option<String>,
}

impl Gate {
    fn tally(run: u64, step: &str) -> String {
        format!("approval/r{run}/{step}")
    }

    /// Whether `step` was approved in an earlier process of this journaled run.
    ///
    /// # Errors
    ///
    /// The journal's, if it cannot be read.
    pub(crate) fn approved_earlier(
        journal: &Journal,
        run: u64,
        step: &str,
    ) -> Result<bool, apiary::journal::JournalError> {
        Ok(journal.tally(&Self::tally(run, step))? > 0)
    }

    /// Waits until `step` may run: `Ok` with who approved, `Err` saying who rejected and
    /// why (or that nobody can answer any more).
    pub(crate) async fn ask(
        &self,
        step: &str,
        reason: &str,
        printer: &Printer,
    ) -> Result<String, String> {
        if let Some((journal, run)) = &self.journal {
            let earlier = Self::approved_earlier(journal, *run, step)
                .map_err(|e| format!("cannot read the journal for an earlier approval: {e}"))?;
            if earlier {
                printer.note(
                    "approval",
                    &format!("`{step}` was approved earlier in this run"),
                );
                return Ok("an earlier process of this run".to_owned());
            }
        }
        let by = if self.auto {
            printer.note(
                "approval",
                &format!("`{step}` approved by --auto-approve: {reason}"),
            );
            "--auto-approve".to_owned()
        } else {
            let gate = self
                .approvals
                .request(ApprovalRequest::new(step, reason).id(step))
                .map_err(|e| e.to_string())?;
            printer.note(
                "approval",
                &format!(
                    "`{step}` waits for approval: {reason} (approve on {} or with `apiary approve {step} --ui ADDR`)",
                    self.where_.as_deref().unwrap_or("the web console")
                ),
            );
            match gate.await {
                Ok(approved) => {
                    printer.note("approval", &format!("`{step}` approved by {}", approved.by));
                    approved.by
                }
                Err(Decision::Rejected(rejected)) => return Err(rejected.to_string()),
                Err(e) => return Err(e.to_string()),
            }
        };
        if let Some((journal, run)) = &self.journal {
            journal
                .add_to_tally(&Self::tally(*run, step), 1)
                .await
                .map_err(|e| format!("approved, but the approval could not be journaled: {e}"))?;
        }
        Ok(by)
    }
}
