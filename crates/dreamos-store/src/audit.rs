//! The audit log: an append-only, hash-chained record of mutating actions and security events.
//!
//! Each entry's `hash` covers its predecessor's hash and its own fields (id included), so
//! editing an entry breaks its hash, and deleting one breaks the next entry's link (and leaves
//! a gap in the ids). With an [`AuditKey`] (kept outside the store), hashes are HMAC-SHA256
//! under that key (`k1:` before the hex): someone who can write the database but lacks the key
//! cannot recompute the chain after an edit. Entries from before the key existed
//! (`legacy_until`) keep their plain SHA-256; every later entry must be keyed. Appends take the chain's head inside their transaction
//! (on PostgreSQL under an advisory lock, so concurrent nodes extend one chain).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::conn::{Conn, Dialect, RowLike, args, dynamic, fixed};
use crate::ops::Ctx;
use crate::{Result, StoreError};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub request_id: String,
    /// Who: a principal (`role:label`), an agent, or `anonymous@ADDRESS`.
    pub actor: String,
    /// What: e.g. `POST /api/v1/tasks`, `auth.failed`, `token.create`.
    pub action: String,
    /// On what: a path, a task or token id.
    pub target: String,
    /// `ok`, `denied`, `failed`, or an HTTP status.
    pub outcome: String,
    pub detail: Option<String>,
}

/// An entry as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries to read, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only entries with an id above this one.
    pub after: Option<i64>,
    /// Entries whose actor contains this text, ignoring case.
    pub actor: Option<String>,
    /// Entries whose action contains this text, ignoring case.
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: usize,
    /// The newest `limit` entries (still answered oldest first) instead of the oldest.
    pub newest: bool,
}

/// The secret that keys the audit chain, and the last entry written before it existed.
#[derive(Clone)]
pub struct AuditKey {
    secret: std::sync::Arc<ring::hmac::Key>,
    /// Entries up to this id may be unkeyed (they predate the key); `i64::MAX` until the node
    /// has read the chain's head when it made the key.
    legacy_until: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("legacy_until", &self.legacy_until()).finish()
    }
}

impl AuditKey {
    pub fn new(secret: &[u8], legacy_until: i64) -> Self {
        Self {
            secret: std::sync::Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret)),
            legacy_until: std::sync::Arc::new(legacy_until.into()),
        }
    }

    pub fn legacy_until(&self) -> i64 {
        self.legacy_until.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_legacy_until(&self, id: i64) {
        self.legacy_until.store(id, std::sync::atomic::Ordering::SeqCst);
    }
}

const KEYED: &str = "k1:";

/// The fields an entry's hash covers, length-prefixed so no two different entries alike.
fn hash_input(prev_hash: &str, id: i64, at_ms: i64, e: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [
        prev_hash,
        &id.to_string(),
        &at_ms.to_string(),
        &e.request_id,
        &e.actor,
        &e.action,
        &e.target,
        &e.outcome,
        e.detail.as_deref().unwrap_or("\u{0}"),
    ] {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// An entry's hash: keyed (HMAC-SHA256, `k1:`-prefixed) with a key, plain SHA-256 without.
pub fn keyed_hash(
    key: Option<&AuditKey>,
    prev_hash: &str,
    id: i64,
    at_ms: i64,
    e: &AuditEntry,
) -> String {
    match key {
        Some(k) => {
            let tag = ring::hmac::sign(&k.secret, &hash_input(prev_hash, id, at_ms, e));
            format!("{KEYED}{}", hex::encode(tag.as_ref()))
        }
        None => entry_hash(prev_hash, id, at_ms, e),
    }
}

/// The unkeyed hash of an entry: SHA-256 over the previous hash and every field,
/// length-prefixed so no two different entries hash alike.
pub fn entry_hash(prev_hash: &str, id: i64, at_ms: i64, e: &AuditEntry) -> String {
    hex::encode(Sha256::digest(hash_input(prev_hash, id, at_ms, e)))
}

/// Where a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub id: i64,
    pub reason: String,
}

/// Follows a chain (records in id order, starting after `prev` with the hash `prev_hash`)
/// and answers the new head or the first break.
pub fn verify_chain(
    records: &[AuditRecord],
    mut prev: (i64, String),
    key: Option<&AuditKey>,
) -> std::result::Result<(i64, String), ChainBreak> {
    for r in records {
        if r.id != prev.0 + 1 {
            return Err(ChainBreak {
                id: r.id,
                reason: format!("entries {} to {} are missing (deleted)", prev.0 + 1, r.id - 1),
            });
        }
        if r.prev_hash != prev.1 {
            return Err(ChainBreak {
                id: r.id,
                reason:
                    "its link to the previous entry does not match (an entry was deleted or edited)"
                        .into(),
            });
        }
        let expected = match (key, r.hash.starts_with(KEYED)) {
            (Some(k), true) => keyed_hash(Some(k), &r.prev_hash, r.id, r.at_ms, &r.entry),
            (Some(k), false) if r.id > k.legacy_until() => {
                return Err(ChainBreak {
                    id: r.id,
                    reason:
                        "it is not keyed, though written after the audit key existed (rewritten)"
                            .into(),
                });
            }
            (None, true) => {
                return Err(ChainBreak {
                    id: r.id,
                    reason: "it is keyed, and this node has no audit key to check it".into(),
                });
            }
            (_, false) => entry_hash(&r.prev_hash, r.id, r.at_ms, &r.entry),
        };
        if expected != r.hash {
            return Err(ChainBreak {
                id: r.id,
                reason: "its content does not match its hash (edited)".into(),
            });
        }
        prev = (r.id, r.hash.clone());
    }
    Ok(prev)
}

pub(crate) async fn append<C: Conn>(
    c: &mut C,
    ctx: &Ctx,
    entries: &[AuditEntry],
) -> Result<Vec<i64>> {
    if C::DIALECT == Dialect::Postgres {
        c.fetch_optional(fixed("SELECT pg_advisory_xact_lock(7242002)"), args![]).await?;
    }
    let head = c
        .fetch_optional(fixed("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"), args![])
        .await?;
    let (mut last_id, mut prev) = match head {
        Some(r) => (r.int("id")?, r.text("hash")?),
        None => (0, GENESIS.to_string()),
    };
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        // Ids are assigned here, not by the database, so that the hash can cover them and
        // a gap always means a deletion.
        let id = last_id + 1;
        let hash = keyed_hash(ctx.audit_key.as_ref(), &prev, id, ctx.now, e);
        c.execute(
            fixed(
                "INSERT INTO audit_log (id, at, request_id, actor, action, target, outcome, detail, \
                 prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            ),
            args![
                id,
                ctx.now,
                e.request_id.clone(),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                e.outcome.clone(),
                e.detail.clone(),
                prev.clone(),
                hash.clone()
            ],
        )
        .await?;
        ids.push(id);
        last_id = id;
        prev = hash;
    }
    Ok(ids)
}

fn record_from_row<R: RowLike>(r: &R) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.int("id")?,
        at_ms: r.int("at")?,
        entry: AuditEntry {
            request_id: r.text("request_id")?,
            actor: r.text("actor")?,
            action: r.text("action")?,
            target: r.text("target")?,
            outcome: r.text("outcome")?,
            detail: r.opt_text("detail")?,
        },
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

/// A LIKE pattern (escape character `!`) matching values that contain `text`: its `%`, `_`
/// and `!` match themselves. `!` rather than a backslash, whose meaning in a string literal
/// depends on PostgreSQL's `standard_conforming_strings`.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(crate) async fn read<C: Conn>(c: &mut C, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut values: Vec<crate::conn::Arg> = Vec::new();
    if let Some(after) = f.after {
        values.push(after.into());
        clauses.push(format!("id > ${}", values.len()));
    }
    // Both filters match text the field contains, ignoring case: each backend lowercases
    // both sides with the same function, so they agree with each other.
    for (column, text) in [("actor", &f.actor), ("action", &f.action)] {
        if let Some(text) = text {
            values.push(contains_pattern(text).into());
            clauses.push(format!("lower({column}) LIKE lower(${}) ESCAPE '!'", values.len()));
        }
    }
    if let Some(since) = f.since_ms {
        values.push(since.into());
        clauses.push(format!("at >= ${}", values.len()));
    }
    if f.limit == 0 || f.limit > 100_000 {
        return Err(StoreError::Conflict("limit must be between 1 and 100000".into()));
    }
    values.push((f.limit as i64).into());
    let order = if f.newest { "DESC" } else { "ASC" };
    let rows = c
        .fetch_all(
            dynamic(format!(
                "SELECT id, at, request_id, actor, action, target, outcome, detail, prev_hash, hash \
                 FROM audit_log WHERE {} ORDER BY id {order} LIMIT ${}",
                clauses.join(" AND "),
                values.len()
            )),
            values,
        )
        .await?;
    let mut out: Vec<AuditRecord> = rows.iter().map(record_from_row).collect::<Result<_>>()?;
    out.sort_by_key(|r| r.id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: Option<&AuditKey>, keyed_from: i64, n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let entry = AuditEntry {
                    request_id: format!("r{id}"),
                    actor: "admin:admin#x".into(),
                    action: "POST /api/v1/tasks".into(),
                    target: "/api/v1/tasks".into(),
                    outcome: "201".into(),
                    detail: None,
                };
                let k = if id >= keyed_from { key } else { None };
                let hash = keyed_hash(k, &prev, id, id, &entry);
                let r = AuditRecord {
                    id,
                    at_ms: id,
                    entry,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn entries_from_before_the_key_may_stay_unkeyed_later_ones_may_not() {
        let key = AuditKey::new(&[1u8; 32], 2);
        let records = chain(Some(&key), 3, 5);
        assert!(verify_chain(&records, (0, GENESIS.into()), Some(&key)).is_ok());
        // The boundary is the key's: an unkeyed entry after it is a rewrite.
        let strict = AuditKey::new(&[1u8; 32], 1);
        let broken = verify_chain(&records, (0, GENESIS.into()), Some(&strict)).unwrap_err();
        assert_eq!(broken.id, 2);
        // Without the key, keyed entries cannot be checked, and say so.
        let broken = verify_chain(&records, (0, GENESIS.into()), None).unwrap_err();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("no audit key"), "{broken:?}");
    }
}
