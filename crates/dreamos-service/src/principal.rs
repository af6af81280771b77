//! Who is calling: a role, the workspaces it may see, and the identity everything it does is
//! recorded under. Every edge (HTTP, the agent protocol, Discord, local agents) turns its
//! credential into a [`Principal`] and hands it to the service; nothing else carries rights.

use std::fmt;
use std::str::FromStr;

/// What a caller may do. Admin > operator > viewer; `agent` is for agent credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Agent, Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes everything `needed` may do (agents are a separate line).
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Agent, Role::Agent) => true,
            (Role::Agent, _) | (_, Role::Agent) => false,
            (have, need) => have >= need,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(Role::Agent),
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => {
                Err(format!("unknown role `{other}`: expected admin, operator, viewer or agent"))
            }
        }
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential's id: the identity that inboxes, idempotency keys and audit actors are
    /// keyed by (labels are for people and may repeat).
    pub token_id: String,
    pub role: Role,
    pub label: String,
    /// The workspaces this caller may see; `None`: all of them.
    pub workspaces: Option<Vec<String>>,
}

impl Principal {
    /// Whether this caller may see workspace `name`.
    pub fn sees(&self, name: &str) -> bool {
        self.workspaces.as_ref().is_none_or(|w| w.iter().any(|x| x == name))
    }

    /// The name recorded as a task's submitter: `role:label`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.role, self.label)
    }

    /// The name recorded in the audit log: `role:label#token_id`, distinct for every
    /// credential even where labels repeat.
    pub fn actor(&self) -> String {
        format!("{}:{}#{}", self.role, self.label, self.token_id)
    }

    /// The address replies to this caller are delivered to (one inbox per credential).
    pub fn inbox(&self) -> String {
        format!("user:{}", self.token_id)
    }

    /// Whether this caller's scope is within `other`'s (every workspace it may see, `other`
    /// may see too).
    pub fn scope_within(scope: Option<&[String]>, of: Option<&[String]>) -> bool {
        match (scope, of) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => mine.iter().all(|w| theirs.contains(w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_order_and_agents_apart() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Admin.allows(Role::Agent));
        assert!(!Role::Agent.allows(Role::Viewer));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }

    #[test]
    fn identities_are_keyed_by_credential_not_label() {
        let a = Principal {
            token_id: "aaa".into(),
            role: Role::Operator,
            label: "operator-by-admin".into(),
            workspaces: None,
        };
        let b = Principal { token_id: "bbb".into(), ..a.clone() };
        assert_eq!(a.name(), b.name(), "labels may repeat");
        assert_ne!(a.actor(), b.actor());
        assert_ne!(a.inbox(), b.inbox());
    }

    #[test]
    fn scopes_nest() {
        let all: Option<&[String]> = None;
        let alpha = vec!["alpha".to_string()];
        let both = vec!["alpha".to_string(), "beta".to_string()];
        assert!(Principal::scope_within(Some(&alpha), Some(&both)));
        assert!(!Principal::scope_within(Some(&both), Some(&alpha)));
        assert!(!Principal::scope_within(all, Some(&alpha)), "unscoped is wider than any scope");
        assert!(Principal::scope_within(all, all));
        assert!(Principal::scope_within(Some(&alpha), all));
    }
}
