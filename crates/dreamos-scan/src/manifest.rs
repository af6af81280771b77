//! Package dependencies declared in manifests: `Cargo.toml`, `package.json`,
//! `pyproject.toml`, `requirements*.txt` and `go.mod`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDep {
    /// The manifest, relative to the workspace root.
    pub manifest: String,
    /// `cargo`, `npm`, `python` or `go`.
    pub ecosystem: String,
    pub name: String,
    /// The version requirement as written (empty if none).
    pub requirement: String,
    /// Development-only (dev-dependencies, devDependencies, optional groups).
    pub dev: bool,
}

/// Whether a file name is a manifest this module reads.
pub fn is_manifest(name: &str) -> bool {
    matches!(name, "Cargo.toml" | "package.json" | "pyproject.toml" | "go.mod")
        || (name.starts_with("requirements") && name.ends_with(".txt"))
}

/// The dependencies a manifest declares; a manifest that does not parse declares none.
pub fn parse(rel: &str, text: &str) -> Vec<PackageDep> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let mut out = Vec::new();
    let mut push = |ecosystem: &str, name: &str, requirement: String, dev: bool| {
        out.push(PackageDep {
            manifest: rel.to_string(),
            ecosystem: ecosystem.to_string(),
            name: name.to_string(),
            requirement,
            dev,
        });
    };
    match name {
        "Cargo.toml" => {
            let Ok(doc) = text.parse::<toml::Table>() else { return out };
            let mut tables: Vec<(&toml::Table, bool)> = Vec::new();
            for (key, dev) in
                [("dependencies", false), ("dev-dependencies", true), ("build-dependencies", true)]
            {
                if let Some(t) = doc.get(key).and_then(|v| v.as_table()) {
                    tables.push((t, dev));
                }
            }
            if let Some(t) =
                doc.get("workspace").and_then(|w| w.get("dependencies")).and_then(|v| v.as_table())
            {
                tables.push((t, false));
            }
            for (table, dev) in tables {
                for (dep, spec) in table {
                    let requirement = match spec {
                        toml::Value::String(v) => v.clone(),
                        toml::Value::Table(t) => t
                            .get("version")
                            .and_then(|v| v.as_str())
                            .map(String::from)
                            .or_else(|| {
                                t.get("path").and_then(|v| v.as_str()).map(|p| format!("path:{p}"))
                            })
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    push("cargo", dep, requirement, dev);
                }
            }
        }
        "package.json" => {
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else { return out };
            for (key, dev) in [
                ("dependencies", false),
                ("peerDependencies", false),
                ("devDependencies", true),
                ("optionalDependencies", true),
            ] {
                if let Some(deps) = doc.get(key).and_then(|d| d.as_object()) {
                    for (dep, v) in deps {
                        push("npm", dep, v.as_str().unwrap_or_default().to_string(), dev);
                    }
                }
            }
        }
        "pyproject.toml" => {
            let Ok(doc) = text.parse::<toml::Table>() else { return out };
            if let Some(list) =
                doc.get("project").and_then(|p| p.get("dependencies")).and_then(|d| d.as_array())
            {
                for spec in list.iter().filter_map(|s| s.as_str()) {
                    let (n, r) = split_requirement(spec);
                    push("python", &n, r, false);
                }
            }
            if let Some(groups) = doc
                .get("project")
                .and_then(|p| p.get("optional-dependencies"))
                .and_then(|d| d.as_table())
            {
                for spec in groups.values().filter_map(|g| g.as_array()).flatten() {
                    if let Some(spec) = spec.as_str() {
                        let (n, r) = split_requirement(spec);
                        push("python", &n, r, true);
                    }
                }
            }
            if let Some(deps) = doc
                .get("tool")
                .and_then(|t| t.get("poetry"))
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_table())
            {
                for (dep, v) in deps {
                    if dep != "python" {
                        push("python", dep, v.as_str().unwrap_or_default().to_string(), false);
                    }
                }
            }
        }
        "go.mod" => {
            let mut in_block = false;
            for line in text.lines() {
                let line = line.split("//").next().unwrap_or("").trim();
                if line.starts_with("require (") {
                    in_block = true;
                    continue;
                }
                if in_block && line == ")" {
                    in_block = false;
                    continue;
                }
                let spec = if in_block {
                    line
                } else if let Some(r) = line.strip_prefix("require ") {
                    r
                } else {
                    continue;
                };
                let mut parts = spec.split_whitespace();
                if let (Some(n), Some(v)) = (parts.next(), parts.next()) {
                    push("go", n, v.to_string(), false);
                }
            }
        }
        _ if is_manifest(name) => {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() || line.starts_with('-') {
                    continue;
                }
                let (n, r) = split_requirement(line);
                push("python", &n, r, name.contains("dev") || name.contains("test"));
            }
        }
        _ => {}
    }
    out
}

/// `requests[socks]>=2.0; python_version>"3"` -> (`requests`, `>=2.0`).
fn split_requirement(spec: &str) -> (String, String) {
    let spec = spec.split(';').next().unwrap_or(spec).trim();
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let name = spec[..end].to_string();
    let rest = spec[end..].trim();
    let rest = if rest.starts_with('[') {
        rest.split_once(']').map_or("", |(_, r)| r).trim()
    } else {
        rest
    };
    (name, rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(deps: &[PackageDep]) -> Vec<(String, String, bool)> {
        deps.iter().map(|d| (d.name.clone(), d.requirement.clone(), d.dev)).collect()
    }

    #[test]
    fn each_ecosystem() {
        let cargo = "[dependencies]\nserde = \"1\"\nlocal = { path = \"../l\" }\n[dev-dependencies]\ntempfile = { version = \"3\" }\n";
        assert_eq!(
            names(&parse("Cargo.toml", cargo)),
            [
                ("local".into(), "path:../l".into(), false),
                ("serde".into(), "1".into(), false),
                ("tempfile".into(), "3".into(), true)
            ]
        );
        let npm = r#"{"dependencies":{"react":"^18"},"devDependencies":{"jest":"29"}}"#;
        assert_eq!(
            names(&parse("web/package.json", npm)),
            [("react".into(), "^18".into(), false), ("jest".into(), "29".into(), true)]
        );
        let py =
            "[project]\ndependencies = [\"requests[socks]>=2.0; python_version>'3'\", \"click\"]\n";
        assert_eq!(
            names(&parse("pyproject.toml", py)),
            [("requests".into(), ">=2.0".into(), false), ("click".into(), "".into(), false)]
        );
        let req = "# pinned\nflask==2.3\n-r other.txt\n";
        assert_eq!(
            names(&parse("requirements.txt", req)),
            [("flask".into(), "==2.3".into(), false)]
        );
        let gomod = "module example.com/m\nrequire (\n\tgithub.com/a/b v1.2.0 // indirect\n)\nrequire golang.org/x/c v0.1.0\n";
        assert_eq!(
            names(&parse("go.mod", gomod)),
            [
                ("github.com/a/b".into(), "v1.2.0".into(), false),
                ("golang.org/x/c".into(), "v0.1.0".into(), false)
            ]
        );
        assert!(parse("Cargo.toml", "not [ toml").is_empty());
    }
}
