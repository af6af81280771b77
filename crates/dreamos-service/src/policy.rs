//! The policy table: what a principal may do. Pure functions over a principal and what it asks
//! for, so the same answer holds whichever edge asked; the service's operations call them
//! before they touch the store.

use dreamos_core::ErrorCode;
use dreamos_queue::{KindRegistry, SubmitRequest};
use serde_json::Value;

use crate::{Principal, Role, ServiceError};

/// The task kinds that read a code workspace (named by their payload's `workspace`).
pub const CODE_KINDS: [&str; 3] = ["index", "search", "analyze"];

/// The kind whose payload carries further tasks, submitted when it runs.
pub const FANOUT: &str = "fanout";

/// How deep `fanout` tasks may nest inside each other.
pub const MAX_FANOUT_DEPTH: usize = 8;

/// `who` needs at least `role` to do `what`.
pub fn require(who: &Principal, role: Role, what: &str) -> Result<(), ServiceError> {
    if who.role.allows(role) { Ok(()) } else { Err(ServiceError::forbidden(what)) }
}

/// The workspace a task concerns, if any (the code kinds name one in their payload).
pub fn task_workspace(payload: &Value) -> Option<&str> {
    payload.get("workspace").and_then(|w| w.as_str())
}

/// The tasks a `fanout` payload will submit: (kind, payload) pairs, as far as they parse.
fn fanout_children(payload: &Value) -> impl Iterator<Item = (&str, &Value)> {
    static EMPTY: Value = Value::Null;
    payload.get("tasks").and_then(|t| t.as_array()).into_iter().flatten().map(|t| {
        (t.get("kind").and_then(|k| k.as_str()).unwrap_or(""), t.get("payload").unwrap_or(&EMPTY))
    })
}

/// Whether `who` may see a task of `kind` with `payload`: scoped callers see only tasks of
/// their workspaces, and tasks that concern no workspace but the code kinds. A `fanout` is seen
/// only if every task it carries would be.
pub fn sees_task(who: &Principal, kind: &str, payload: &Value) -> bool {
    sees_task_at(who, kind, payload, 0)
}

fn sees_task_at(who: &Principal, kind: &str, payload: &Value, depth: usize) -> bool {
    if who.workspaces.is_none() {
        return true;
    }
    if kind == FANOUT {
        return depth < MAX_FANOUT_DEPTH
            && fanout_children(payload).all(|(k, p)| sees_task_at(who, k, p, depth + 1));
    }
    match task_workspace(payload) {
        Some(w) => who.sees(w),
        None => !CODE_KINDS.contains(&kind),
    }
}

/// Who a submission is checked as.
#[derive(Debug, Clone, Copy)]
pub enum Submitter<'a> {
    /// A person or program with an API token: operators and admins submit; `exec` and other
    /// admin-only kinds need an admin.
    User(&'a Principal),
    /// An agent spawning children of a task it holds: it may spawn only the kinds its
    /// credential was granted (`granted`: its capability names; none listed, an open grant:
    /// every kind but the admin-only ones), whatever the parent's submitter could do.
    Agent { agent: &'a Principal, granted: &'a [String] },
}

/// May this submitter submit a task of `kind` with `payload`? The same check holds for the
/// tasks a `fanout` carries, at any depth, since they are submitted under the same rights.
pub fn may_submit(
    who: Submitter<'_>,
    kinds: &KindRegistry,
    kind: &str,
    payload: &Value,
) -> Result<(), ServiceError> {
    may_submit_at(who, kinds, kind, payload, 0)
}

fn may_submit_at(
    who: Submitter<'_>,
    kinds: &KindRegistry,
    kind: &str,
    payload: &Value,
    depth: usize,
) -> Result<(), ServiceError> {
    let principal = match who {
        Submitter::User(p) => {
            // Kinds that only read (a search, an analysis) are reads: viewers may submit them.
            if kinds.get(kind).is_some_and(|k| k.read_only) {
                require(p, Role::Viewer, &format!("submit `{kind}` tasks"))?;
            } else {
                require(p, Role::Operator, "submit tasks")?;
            }
            if kinds.get(kind).is_some_and(|k| k.admin_only) && !p.role.allows(Role::Admin) {
                return Err(ServiceError::forbidden(&format!(
                    "submit `{kind}` tasks (admin only)"
                )));
            }
            p
        }
        Submitter::Agent { agent, granted } => {
            if agent.role != Role::Agent {
                return Err(ServiceError::forbidden("spawn child tasks (agents only)"));
            }
            // An open grant (none listed) is no explicit grant of an admin-only kind.
            let admin_only = kinds.get(kind).is_some_and(|k| k.admin_only);
            let allowed =
                if granted.is_empty() { !admin_only } else { granted.iter().any(|g| g == kind) };
            if !allowed {
                return Err(ServiceError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "this agent was not granted `{kind}`: an agent spawns only the kinds its credential grants"
                    ),
                ));
            }
            agent
        }
    };
    if kind == FANOUT {
        if depth >= MAX_FANOUT_DEPTH {
            return Err(ServiceError::bad_request(format!(
                "`fanout` tasks nest at most {MAX_FANOUT_DEPTH} deep"
            )));
        }
        for (k, p) in fanout_children(payload) {
            may_submit_at(who, kinds, k, p, depth + 1)?;
        }
        return Ok(());
    }
    if !sees_task(principal, kind, payload) {
        return Err(match task_workspace(payload) {
            Some(w) => ServiceError::unseen_workspace(w),
            None => ServiceError::new(
                ErrorCode::Forbidden,
                format!("this token is limited to some workspaces: name one in the `{kind}` task"),
            ),
        });
    }
    Ok(())
}

/// Checks a whole submission as `who`.
pub fn may_submit_all(
    who: Submitter<'_>,
    kinds: &KindRegistry,
    requests: &[SubmitRequest],
) -> Result<(), ServiceError> {
    requests.iter().try_for_each(|r| may_submit(who, kinds, &r.kind, &r.payload))
}

/// May `who` issue a token with `role` and `scope`? Only admins issue tokens, never one with a
/// higher role than their own, never an agent credential (agents get theirs from `agent
/// create`), and never a wider scope than their own.
pub fn may_mint(who: &Principal, role: Role, scope: Option<&[String]>) -> Result<(), ServiceError> {
    require(who, Role::Admin, "create tokens")?;
    if role == Role::Agent {
        return Err(ServiceError::bad_request(
            "agent credentials belong to agents: use `dreamos agent create`",
        ));
    }
    if !who.role.allows(role) {
        return Err(ServiceError::forbidden(&format!("issue `{role}` tokens")));
    }
    if !Principal::scope_within(scope, who.workspaces.as_deref()) {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            "a token limited to some workspaces issues only tokens limited to some of them",
        ));
    }
    Ok(())
}

/// May `who` see (list, revoke) a token scoped to `scope`? Unscoped admins see every token;
/// a scoped admin only those within its own scope.
pub fn sees_token(who: &Principal, scope: Option<&[String]>) -> bool {
    who.role.allows(Role::Admin) && Principal::scope_within(scope, who.workspaces.as_deref())
}

/// Requires an admin whose token is not limited to some workspaces, for an operation that
/// spans them all (`what`, and `why` it spans them, for the refusal).
fn unscoped_admin(who: &Principal, what: &str, why: &str) -> Result<(), ServiceError> {
    require(who, Role::Admin, what)?;
    if who.workspaces.is_some() {
        return Err(ServiceError::new(
            ErrorCode::Forbidden,
            format!("{why}: a token limited to some workspaces cannot {what}"),
        ));
    }
    Ok(())
}

/// May `who` delete an agent? Agents serve every workspace, and deleting one revokes its
/// credential, so only an unscoped admin.
pub fn may_delete_agent(who: &Principal) -> Result<(), ServiceError> {
    unscoped_admin(who, "delete agents", "agents serve every workspace")
}

/// May `who` read the node's configuration? It names every workspace root and the node's
/// files, so only an unscoped admin (secrets are never shown to anyone).
pub fn may_read_config(who: &Principal) -> Result<(), ServiceError> {
    unscoped_admin(who, "read the node's configuration", "the configuration spans every workspace")
}

/// May `who` read the audit log? It spans every workspace, so only an unscoped admin.
pub fn may_read_audit(who: &Principal) -> Result<(), ServiceError> {
    unscoped_admin(who, "read the audit log", "the audit log spans every workspace")
}

/// Idempotency keys belong to their submitter: the key stored is the caller's own key inside
/// its credential's namespace, so nobody else's key (and no key the node makes itself, such
/// as a fan-out child's) can ever match it.
pub fn own_idempotency_key(who: &Principal, key: &str) -> String {
    format!("{KEY_PREFIX}{}/{key}", who.token_id)
}

const KEY_PREFIX: &str = "tok_";

/// The key as its submitter gave it (the namespace stripped); node-made keys as they are.
pub fn shown_idempotency_key(stored: &str) -> &str {
    stored.strip_prefix(KEY_PREFIX).and_then(|rest| rest.split_once('/')).map_or(stored, |(_, k)| k)
}
