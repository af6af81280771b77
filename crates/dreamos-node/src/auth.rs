//! API tokens and roles.
//!
//! A token reads `dros_<id>_<secret>`: the id finds the stored record, and the secret (256
//! random bits) is checked against the stored SHA-256 hash in constant time. The secret
//! itself is shown once and never stored.

use dreamos_store::{ApiToken, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use dreamos_service::{Principal, Role};

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A freshly issued token: the record to store and the secret to show once.
pub struct Issued {
    pub record: ApiToken,
    pub token: String,
}

pub fn issue(role: Role, label: &str, now_ms: i64, expires_at_ms: Option<i64>) -> Issued {
    let id = random_hex(6);
    let secret = random_hex(32);
    Issued {
        record: ApiToken {
            id: id.clone(),
            hash: hash(&secret),
            role: role.as_str().into(),
            label: label.into(),
            created_at_ms: now_ms,
            expires_at_ms,
            revoked_at_ms: None,
            workspaces: None,
        },
        token: format!("dros_{id}_{secret}"),
    }
}

/// Why a token was refused. Callers answer every case with the same 401; the reason is for
/// the audit log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unknown,
    WrongSecret,
    Expired,
    Revoked,
}

/// Token records recently read from the store, so that a busy client does not cost a store
/// read per request. An entry is trusted for [`TokenCache::TTL`]; revoking through this node
/// drops it at once, revoking through another node takes effect here within the TTL.
#[derive(Default)]
pub struct TokenCache {
    map: std::sync::Mutex<std::collections::HashMap<String, (ApiToken, std::time::Instant)>>,
}

impl TokenCache {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(1);

    fn get(&self, id: &str) -> Option<ApiToken> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|(_, at)| at.elapsed() < Self::TTL).map(|(t, _)| t.clone())
    }

    fn put(&self, record: ApiToken) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < Self::TTL);
        }
        map.insert(record.id.clone(), (record, std::time::Instant::now()));
    }

    pub fn forget(&self, id: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// Checks a bearer token against the store.
pub async fn authenticate(
    store: &dyn Store,
    token: &str,
    now_ms: i64,
) -> Result<Result<Principal, Refusal>, dreamos_store::StoreError> {
    authenticate_cached(store, None, token, now_ms).await
}

/// [`authenticate`], reading the token's record through `cache` when given.
pub async fn authenticate_cached(
    store: &dyn Store,
    cache: Option<&TokenCache>,
    token: &str,
    now_ms: i64,
) -> Result<Result<Principal, Refusal>, dreamos_store::StoreError> {
    let Some((id, secret)) = token.strip_prefix("dros_").and_then(|rest| rest.split_once('_'))
    else {
        return Ok(Err(Refusal::Malformed));
    };
    let cached = cache.and_then(|c| c.get(id));
    let record = match cached {
        Some(r) => r,
        None => {
            let Some(record) = store.find_token(id).await? else {
                return Ok(Err(Refusal::Unknown));
            };
            if let Some(c) = cache {
                c.put(record.clone());
            }
            record
        }
    };
    let presented = hash(secret);
    if !bool::from(presented.as_bytes().ct_eq(record.hash.as_bytes())) {
        return Ok(Err(Refusal::WrongSecret));
    }
    if record.revoked_at_ms.is_some() {
        return Ok(Err(Refusal::Revoked));
    }
    if record.expires_at_ms.is_some_and(|at| at <= now_ms) {
        return Ok(Err(Refusal::Expired));
    }
    let Ok(role) = record.role.parse() else {
        return Ok(Err(Refusal::Unknown));
    };
    Ok(Ok(Principal {
        token_id: record.id,
        role,
        label: record.label,
        workspaces: record.workspaces,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_long_random_and_stored_hashed() {
        let a = issue(Role::Admin, "x", 0, None);
        let b = issue(Role::Admin, "x", 0, None);
        assert_ne!(a.token, b.token);
        let secret = a.token.rsplit('_').next().unwrap();
        assert_eq!(secret.len(), 64, "256 bits of secret");
        assert!(!a.record.hash.contains(secret));
        assert_eq!(a.record.hash, hash(secret));
    }
}
