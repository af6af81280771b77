//! Task operations. Every one takes the principal asking and checks it against the policy
//! before the store is touched, whichever edge it came from: the HTTP API, the agent protocol
//! (children of a held task), local agents (a `fanout` task's children) or Discord.

use dreamos_core::{Task, TaskId, TaskSummary};
use dreamos_queue::{Queue, SubmitRequest};
use dreamos_store::StoreError;

use crate::policy::{self, Submitter};
use crate::{Principal, Role, ServiceError};

/// The task operations; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tasks {
    queue: Queue,
}

impl Tasks {
    pub fn new(queue: Queue) -> Self {
        Self { queue }
    }

    /// Checks a submission as `who` without storing it (role, kinds, scopes, the tasks a
    /// `fanout` carries).
    pub fn authorize(
        &self,
        who: &Principal,
        requests: &[SubmitRequest],
    ) -> Result<(), ServiceError> {
        policy::may_submit_all(Submitter::User(who), self.queue.kinds(), requests)
    }

    /// Submits tasks as `who`. Idempotency keys are `who`'s own: another caller's equal key
    /// is another key.
    pub async fn submit(
        &self,
        who: &Principal,
        mut requests: Vec<SubmitRequest>,
    ) -> Result<Vec<TaskSummary>, ServiceError> {
        self.authorize(who, &requests)?;
        for r in &mut requests {
            if let Some(key) = &r.idempotency_key {
                r.idempotency_key = Some(policy::own_idempotency_key(who, key));
            }
        }
        Ok(self.queue.submit(&who.name(), requests).await?)
    }

    /// The task, if `who` may see it; one it may not see is `not_found`, like one that does
    /// not exist.
    pub async fn visible(&self, who: &Principal, id: TaskId) -> Result<Task, ServiceError> {
        policy::require(who, Role::Viewer, "read tasks")?;
        let task = self.queue.store().get(id).await?.ok_or(StoreError::NotFound(id))?;
        self.seen(who, task)
    }

    /// `task` if `who` may see it, `not_found` otherwise.
    pub fn seen(&self, who: &Principal, task: Task) -> Result<Task, ServiceError> {
        if policy::sees_task(who, &task.kind, &task.payload) {
            Ok(task)
        } else {
            Err(StoreError::NotFound(task.id).into())
        }
    }

    /// A task `who` may act on: it sees it, and may submit it (retrying or cancelling a task
    /// needs the right to submit that task: an operator cannot rerun an admin's `exec`).
    async fn actionable(
        &self,
        who: &Principal,
        id: TaskId,
        what: &str,
    ) -> Result<Task, ServiceError> {
        policy::require(who, Role::Operator, what)?;
        let task = self.visible(who, id).await?;
        policy::may_submit(Submitter::User(who), self.queue.kinds(), &task.kind, &task.payload)?;
        Ok(task)
    }

    /// Cancels a task (a running one is asked to stop).
    pub async fn cancel(&self, who: &Principal, id: TaskId) -> Result<Task, ServiceError> {
        self.actionable(who, id, "cancel tasks").await?;
        self.queue.store().cancel(id, &who.name()).await?;
        self.get(id).await
    }

    /// Runs a failed or cancelled task again.
    pub async fn retry(&self, who: &Principal, id: TaskId) -> Result<Task, ServiceError> {
        self.actionable(who, id, "retry tasks").await?;
        self.queue.store().retry(id, &who.name()).await?;
        self.get(id).await
    }

    async fn get(&self, id: TaskId) -> Result<Task, ServiceError> {
        Ok(self.queue.store().get(id).await?.ok_or(StoreError::NotFound(id))?)
    }

    /// An agent fans a task it holds out into children. They run with the agent's own rights
    /// (its credential's granted kinds), never with the parent submitter's, and are submitted
    /// under the agent's name.
    #[allow(clippy::too_many_arguments)]
    pub async fn agent_children(
        &self,
        agent: &Principal,
        granted: &[String],
        parent: TaskId,
        fence: i64,
        holder: &str,
        requests: Vec<SubmitRequest>,
    ) -> Result<Vec<TaskId>, ServiceError> {
        policy::may_submit_all(Submitter::Agent { agent, granted }, self.queue.kinds(), &requests)?;
        let children = self.queue.validate(&agent.name(), requests)?;
        Ok(self.queue.store().fan_out(parent, fence, holder, children).await?)
    }

    /// A local agent runs a `fanout` task: its children were checked against the submitter's
    /// rights when it was submitted (and on every retry, which needs the same rights), so here
    /// they are only re-checked against what the submitter's role may ever submit.
    pub async fn fanout_children(
        &self,
        task: &Task,
        holder: &str,
        fence: i64,
        requests: Vec<SubmitRequest>,
    ) -> Result<Vec<TaskId>, ServiceError> {
        let admin = task.submitter.starts_with("admin:");
        if let Some(r) = requests
            .iter()
            .find(|r| !admin && self.queue.kinds().get(&r.kind).is_some_and(|k| k.admin_only))
        {
            return Err(ServiceError::forbidden(&format!(
                "fan out `{}` tasks (admin only)",
                r.kind
            )));
        }
        let children = self.queue.validate(&task.submitter, requests)?;
        Ok(self.queue.store().fan_out(task.id, fence, holder, children).await?)
    }
}
