//! Which directories of the node's machine may become code workspaces. Registering a
//! workspace lets everyone who may see it read its files, so the root must lie under a
//! configured `workspace_roots` directory, must not hold the node's own data dir above it, and
//! must not be one of the system's sensitive trees unless that exact directory is configured.

use std::path::{Path, PathBuf};

use dreamos_core::ErrorCode;

use crate::ServiceError;

/// Trees that hold the system's configuration, secrets or kernel interfaces: refused as
/// workspace roots (as is any directory above one of them) unless listed exactly.
pub const SENSITIVE: [&str; 8] = ["/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var"];

/// Trees whose insides are refused too (a root inside them), unless listed exactly.
const SENSITIVE_INSIDE: [&str; 5] = ["/etc", "/proc", "/sys", "/dev", "/boot"];

/// Checks `root` (already resolved: absolute, no `..`, no symlinks) against the policy.
/// `explicit`: the roots were configured by the node's owner (not the defaults, the home and
/// starting directories), so a sensitive tree listed among them exactly is allowed.
pub fn may_register(
    root: &Path,
    roots: &[PathBuf],
    explicit: bool,
    data_dir: &Path,
) -> Result<(), ServiceError> {
    let refused = |why: String| {
        ServiceError::new(
            ErrorCode::Forbidden,
            format!("{} cannot be a workspace: {why}", root.display()),
        )
    };
    let data_dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    if root.starts_with(&data_dir) {
        return Err(refused("it lies in the node's data dir".into()));
    }
    let listed = explicit && roots.iter().any(|r| r == root);
    if !listed {
        if let Some(s) = SENSITIVE.iter().map(Path::new).find(|s| s.starts_with(root)) {
            return Err(refused(format!(
                "it is or holds {} (list it in workspace_roots to allow it)",
                s.display()
            )));
        }
        if let Some(s) = SENSITIVE_INSIDE.iter().map(Path::new).find(|s| root.starts_with(s)) {
            let explicitly =
                explicit && roots.iter().any(|r| r.starts_with(s) && root.starts_with(r));
            if !explicitly {
                return Err(refused(format!(
                    "it lies in {} (list it in workspace_roots to allow it)",
                    s.display()
                )));
            }
        }
    }
    if !roots.iter().any(|r| root.starts_with(r)) {
        let allowed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(refused(format!(
            "it is not under workspace_roots ({})",
            if allowed.is_empty() { "none configured".into() } else { allowed.join(", ") }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(root: &str, roots: &[&str]) -> Result<(), ServiceError> {
        let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
        may_register(Path::new(root), &roots, false, Path::new("/home/u/.dreamos"))
    }

    fn check_listed(root: &str, roots: &[&str]) -> Result<(), ServiceError> {
        let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
        may_register(Path::new(root), &roots, true, Path::new("/home/u/.dreamos"))
    }

    #[test]
    fn roots_confine_workspaces() {
        assert!(check("/home/u/src/app", &["/home/u"]).is_ok());
        assert!(check("/srv/app", &["/home/u"]).is_err(), "outside every root");
        assert!(check("/home/u/.dreamos", &["/home/u"]).is_err(), "the data dir");
        assert!(check("/home/u/.dreamos/workspaces", &["/home/u"]).is_err(), "inside it");
    }

    #[test]
    fn sensitive_trees_need_an_exact_listing() {
        // A node started in `/` has `/` as a default root: still no `/etc`, `/`, `/var`...
        for dir in ["/", "/etc", "/var", "/root", "/proc", "/etc/ssl", "/sys/kernel", "/boot/grub"]
        {
            assert!(check(dir, &["/"]).is_err(), "{dir}");
        }
        assert!(check_listed("/etc", &["/etc"]).is_ok(), "listed exactly");
        assert!(check_listed("/etc/nginx", &["/etc/nginx"]).is_ok(), "listed exactly");
        assert!(check_listed("/etc", &["/"]).is_err(), "`/` listed is not `/etc` listed");
        assert!(check("/var/lib/app", &["/"]).is_ok(), "inside /var is not refused");
        assert!(check("/root/src/app", &["/root"]).is_ok(), "a root user's home works");
    }
}
