//! The dependency graph of a workspace: which file imports which, resolved per language;
//! which packages the manifests declare; cycles (strongly connected components); and what
//! depends on a file, directly and transitively (the basis of impact analysis).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::manifest::{self, PackageDep};
use crate::model::{Import, ImportKind};
use crate::{Index, Lang, ScanError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `import` (use, import, include, require) or `mod` (a Rust module declaration: the
    /// parent contains the child rather than uses it; not counted in cycles).
    pub kind: String,
    /// The import as written.
    pub import: String,
    pub line: u32,
}

/// An import that names no file of the workspace: a package, the standard library, a
/// system header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    pub from: String,
    pub import: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Graph {
    /// Every file (or, at module level, directory) that imports or is imported.
    pub nodes: Vec<String>,
    pub edges: Vec<Edge>,
    pub external: Vec<External>,
    pub packages: Vec<PackageDep>,
}

/// One file's dependents at a distance (1: imports it directly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependent {
    pub path: String,
    pub depth: usize,
}

/// Paths of the workspace, indexed for resolution.
struct Files {
    all: BTreeSet<String>,
    /// Last path component -> paths with that name (for suffix lookups).
    by_name: HashMap<String, Vec<String>>,
}

impl Files {
    fn new(paths: impl IntoIterator<Item = String>) -> Self {
        let all: BTreeSet<String> = paths.into_iter().collect();
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for p in &all {
            by_name
                .entry(p.rsplit('/').next().unwrap_or(p).to_string())
                .or_default()
                .push(p.clone());
        }
        Self { all, by_name }
    }

    fn has(&self, p: &str) -> bool {
        self.all.contains(p)
    }

    fn first(&self, candidates: impl IntoIterator<Item = String>) -> Option<String> {
        candidates.into_iter().find(|c| self.has(c))
    }

    /// Files whose path ends with `/suffix` (or is `suffix`); the best one for `from`: in an
    /// `include/` directory, then sharing the longest prefix with `from`, then the shortest.
    fn by_suffix(&self, suffix: &str, from: &str) -> Option<String> {
        let name = suffix.rsplit('/').next().unwrap_or(suffix);
        let tail = format!("/{suffix}");
        let matches: Vec<&String> = self
            .by_name
            .get(name)?
            .iter()
            .filter(|p| p.as_str() == suffix || p.ends_with(&tail))
            .collect();
        matches
            .into_iter()
            .max_by_key(|p| {
                let shared = p.chars().zip(from.chars()).take_while(|(a, b)| a == b).count();
                (p.starts_with("include/") || p.contains("/include/"), shared, usize::MAX - p.len())
            })
            .cloned()
    }

    /// Files directly in a directory.
    fn in_dir(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        self.all
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .filter(|p| !p[prefix.len()..].contains('/'))
            .cloned()
            .collect()
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() { rel.to_string() } else { format!("{dir}/{rel}") }
}

/// `a/b/../c/./d` -> `a/c/d`; `None` if it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

struct Resolver<'a> {
    files: &'a Files,
    /// Rust definitions by name, to resolve `use crate::Item` to the file defining `Item`.
    rust_items: HashMap<String, Vec<String>>,
    /// Go module paths by the directory of their go.mod.
    go_modules: Vec<(String, String)>,
}

impl Resolver<'_> {
    fn resolve(&self, from: &str, lang: Lang, import: &Import) -> Vec<String> {
        let f = self.files;
        let dir = parent(from);
        let target = import.target.as_str();
        match lang {
            Lang::C | Lang::Cpp => {
                let local = (import.kind == ImportKind::Include)
                    .then(|| normalize(&join(dir, target)))
                    .flatten()
                    .filter(|p| f.has(p));
                local.or_else(|| f.by_suffix(target, from)).into_iter().collect()
            }
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
                if !target.starts_with('.') {
                    return Vec::new();
                }
                let Some(base) = normalize(&join(dir, target)) else { return Vec::new() };
                let exts = ["", ".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs"];
                let mut candidates: Vec<String> =
                    exts.iter().map(|e| format!("{base}{e}")).collect();
                candidates.extend(
                    ["ts", "tsx", "js", "jsx", "mjs"].iter().map(|e| format!("{base}/index.{e}")),
                );
                f.first(candidates).into_iter().collect()
            }
            Lang::Python => self.python(from, import),
            Lang::Rust => self.rust(from, import),
            Lang::Go => {
                for (mod_dir, module) in &self.go_modules {
                    if let Some(rest) = target.strip_prefix(module.as_str()) {
                        let sub = rest.trim_start_matches('/');
                        let pkg = join(mod_dir, sub);
                        return f
                            .in_dir(&pkg)
                            .into_iter()
                            .filter(|p| p.ends_with(".go") && !p.ends_with("_test.go"))
                            .collect();
                    }
                }
                Vec::new()
            }
            Lang::Java => {
                let path = target.replace('.', "/");
                if let Some(pkg) = path.strip_suffix("/*") {
                    // Every class of the package: files in any directory ending with it.
                    return f
                        .all
                        .iter()
                        .filter(|p| p.ends_with(".java") && parent(p).ends_with(pkg))
                        .cloned()
                        .collect();
                }
                f.by_suffix(&format!("{path}.java"), from)
                    .or_else(|| {
                        // `import static a.B.member`: the class is one segment up.
                        path.rsplit_once('/')
                            .and_then(|(cls, _)| f.by_suffix(&format!("{cls}.java"), from))
                    })
                    .into_iter()
                    .collect()
            }
        }
    }

    fn python(&self, from: &str, import: &Import) -> Vec<String> {
        let f = self.files;
        let target = import.target.as_str();
        let dots = target.chars().take_while(|c| *c == '.').count();
        let module = &target[dots..];
        let module_path = module.replace('.', "/");
        let as_module = |base: &str| -> Option<String> {
            f.first([format!("{base}.py"), format!("{base}/__init__.py"), format!("{base}.pyi")])
        };
        if dots > 0 {
            // Relative: one dot is the importing file's package.
            let mut pkg = parent(from).to_string();
            for _ in 1..dots {
                pkg = parent(&pkg).to_string();
            }
            // `from . import x` names the package itself: no empty path segment after it.
            let base = if module_path.is_empty() { pkg } else { join(&pkg, &module_path) };
            let mut out: Vec<String> = Vec::new();
            if !module.is_empty()
                && let Some(m) = as_module(&base)
            {
                out.push(m);
            }
            // `from . import sibling`: the names may be modules.
            for name in &import.names {
                if let Some(m) = as_module(&join(&base, name)) {
                    out.push(m);
                }
            }
            if out.is_empty()
                && let Some(init) = as_module(&base)
            {
                out.push(init);
            }
            return out;
        }
        // Absolute: from the roots that hold top-level packages.
        for root in python_roots(from, f) {
            let base = join(&root, &module_path);
            let names: Vec<String> =
                import.names.iter().filter_map(|n| as_module(&join(&base, n))).collect();
            if !names.is_empty() {
                return names;
            }
            if let Some(m) = as_module(&base) {
                return vec![m];
            }
            // `import a.b.c` where `c` is an attribute of module `a.b`.
            if let Some((head, _)) = module_path.rsplit_once('/')
                && let Some(m) = as_module(&join(&root, head))
            {
                return vec![m];
            }
        }
        Vec::new()
    }

    fn rust(&self, from: &str, import: &Import) -> Vec<String> {
        let f = self.files;
        let Some((src, module)) = rust_module_of(from) else { return Vec::new() };
        let module_dir = |segments: &[String]| -> Vec<String> {
            let path = segments.join("/");
            vec![join(&src, &format!("{path}.rs")), join(&src, &format!("{path}/mod.rs"))]
        };
        if import.kind == ImportKind::ModDecl {
            let mut child = module.clone();
            child.push(import.target.clone());
            // A `mod` in `foo.rs` lives in `foo/`; in `mod.rs`/`lib.rs` next to it.
            return f.first(module_dir(&child)).into_iter().collect();
        }
        let mut segments: Vec<String> = import.target.split("::").map(String::from).collect();
        segments.retain(|s| s != "*");
        let base: Vec<String> = match segments.first().map(String::as_str) {
            Some("crate") => {
                segments.remove(0);
                Vec::new()
            }
            Some("self") => {
                segments.remove(0);
                module.clone()
            }
            Some("super") => {
                let mut m = module.clone();
                while segments.first().map(String::as_str) == Some("super") {
                    m.pop();
                    segments.remove(0);
                }
                m
            }
            // Since the 2018 edition, `use child::x` names a child module of this one.
            Some(first) => {
                let mut child = module.clone();
                child.push(first.to_string());
                if f.first(module_dir(&child)).is_none() {
                    return Vec::new(); // another crate
                }
                module.clone()
            }
            None => return Vec::new(),
        };
        // The longest prefix of the path that is a module file.
        for n in (1..=segments.len()).rev() {
            let mut path = base.clone();
            path.extend(segments[..n].iter().cloned());
            if let Some(file) = f.first(module_dir(&path)) {
                return vec![file];
            }
        }
        // An item: the file of the crate that defines it (re-exports point elsewhere).
        if let Some(item) = segments.last()
            && let Some(defs) = self.rust_items.get(item)
        {
            let in_crate: Vec<String> = defs
                .iter()
                .filter(|p| p.starts_with(&format!("{src}/")) && p.as_str() != from)
                .cloned()
                .collect();
            if !in_crate.is_empty() && in_crate.len() <= 3 {
                return in_crate;
            }
        }
        // Otherwise the base module's own file.
        let file = if base.is_empty() {
            f.first([join(&src, "lib.rs"), join(&src, "main.rs")])
        } else {
            f.first(module_dir(&base))
        };
        file.filter(|p| p != from).into_iter().collect()
    }
}

/// The crate's `src` directory and the module path of a Rust file in it: `x/src/a/b.rs` ->
/// (`x/src`, [a, b]); `x/src/a/mod.rs` -> (`x/src`, [a]); `x/src/lib.rs` -> (`x/src`, []).
fn rust_module_of(path: &str) -> Option<(String, Vec<String>)> {
    let parts: Vec<&str> = path.split('/').collect();
    let src_at = parts.iter().rposition(|p| *p == "src")?;
    let src = parts[..=src_at].join("/");
    let mut module: Vec<String> = parts[src_at + 1..].iter().map(|s| s.to_string()).collect();
    let last = module.pop()?;
    match last.strip_suffix(".rs")? {
        "mod" => {}
        "lib" | "main" if module.is_empty() => {}
        stem => module.push(stem.to_string()),
    }
    Some((src, module))
}

/// Directories from which absolute Python imports are resolved: the workspace root, and the
/// directory above the importing file's outermost package.
fn python_roots(from: &str, f: &Files) -> Vec<String> {
    let mut dir = parent(from).to_string();
    while !dir.is_empty() && f.has(&join(&dir, "__init__.py")) {
        dir = parent(&dir).to_string();
    }
    let mut roots = vec![dir];
    if !roots.contains(&String::new()) {
        roots.push(String::new());
    }
    roots
}

impl Index {
    /// The file-level import graph, with the packages the manifests declare.
    pub fn graph(&self) -> Result<Graph, ScanError> {
        let facts = self.facts();
        let rows = facts.files()?;
        let imports = facts.imports()?;
        let mut rust_items: HashMap<String, Vec<String>> = HashMap::new();
        if rows.iter().any(|r| r.lang == Some(Lang::Rust)) {
            for s in facts.symbols(None, None, |p| p.ends_with(".rs"))? {
                use crate::SymbolKind as K;
                if s.symbol.parent.is_none() && !matches!(s.symbol.kind, K::Impl | K::Module) {
                    rust_items.entry(s.symbol.name).or_default().push(s.path);
                }
            }
        }
        drop(facts);
        let files = Files::new(rows.iter().map(|r| r.path.clone()));
        let mut packages = Vec::new();
        let mut go_modules = Vec::new();
        for row in &rows {
            let name = row.path.rsplit('/').next().unwrap_or(&row.path);
            if !manifest::is_manifest(name) {
                continue;
            }
            let Some(bytes) = self.read_file(&row.path) else { continue };
            let text = String::from_utf8_lossy(&bytes);
            packages.extend(manifest::parse(&row.path, &text));
            if name == "go.mod"
                && let Some(module) = text.lines().find_map(|l| l.trim().strip_prefix("module "))
            {
                go_modules.push((parent(&row.path).to_string(), module.trim().to_string()));
            }
        }
        // The most specific module first.
        go_modules.sort_by_key(|m| std::cmp::Reverse(m.1.len()));
        let resolver = Resolver { files: &files, rust_items, go_modules };
        let mut edges = Vec::new();
        let mut external = Vec::new();
        let mut nodes = BTreeSet::new();
        for (from, lang, import) in &imports {
            let Some(lang) = lang else { continue };
            let targets = resolver.resolve(from, *lang, import);
            if targets.is_empty() {
                external.push(External { from: from.clone(), import: import.target.clone() });
            }
            for to in targets {
                if &to == from {
                    continue;
                }
                nodes.insert(from.clone());
                nodes.insert(to.clone());
                let kind = if import.kind == ImportKind::ModDecl { "mod" } else { "import" };
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    kind: kind.to_string(),
                    import: import.target.clone(),
                    line: import.line,
                });
            }
        }
        edges.sort_by(|a, b| {
            (&a.from, &a.to, &a.kind, a.line).cmp(&(&b.from, &b.to, &b.kind, b.line))
        });
        edges.dedup_by(|a, b| a.from == b.from && a.to == b.to && a.kind == b.kind);
        Ok(Graph { nodes: nodes.into_iter().collect(), edges, external, packages })
    }
}

impl Graph {
    /// The graph between directories (modules, packages) instead of files.
    pub fn by_directory(&self) -> Graph {
        let dir = |p: &str| {
            let d = parent(p);
            if d.is_empty() { ".".to_string() } else { d.to_string() }
        };
        let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
        for e in &self.edges {
            let (a, b) = (dir(&e.from), dir(&e.to));
            if a != b {
                edges.entry((a.clone(), b.clone())).or_insert(Edge {
                    from: a,
                    to: b,
                    kind: e.kind.clone(),
                    import: e.import.clone(),
                    line: e.line,
                });
            }
        }
        let nodes: BTreeSet<String> = self.nodes.iter().map(|n| dir(n)).collect();
        Graph {
            nodes: nodes.into_iter().collect(),
            edges: edges.into_values().collect(),
            external: self.external.clone(),
            packages: self.packages.clone(),
        }
    }

    fn adjacency(&self, reverse: bool) -> HashMap<&str, Vec<&str>> {
        let mut adj: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in self.edges.iter().filter(|e| reverse || e.kind != "mod") {
            let (a, b) = if reverse { (&e.to, &e.from) } else { (&e.from, &e.to) };
            adj.entry(a.as_str()).or_default().push(b.as_str());
        }
        adj
    }

    /// A real import path around a group of [`Graph::cycles`]: the shortest cycle through its
    /// first node, along edges inside the group, ending where it began (`[a, c, b, a]`). A
    /// group's sorted list is not a path: `a -> b` need not be an edge.
    pub fn cycle_path(&self, group: &[String]) -> Vec<String> {
        let Some(start) = group.first() else { return Vec::new() };
        let inside: BTreeSet<&str> = group.iter().map(String::as_str).collect();
        let adj = self.adjacency(false);
        let next = |n: &str| -> Vec<&str> {
            let mut out: Vec<&str> = adj
                .get(n)
                .map(|v| v.iter().copied().filter(|t| inside.contains(t)).collect())
                .unwrap_or_default();
            out.sort_unstable();
            out.dedup();
            out
        };
        // Breadth first from the start's successors back to the start.
        let mut came_from: HashMap<&str, &str> = HashMap::new();
        let mut queue: VecDeque<&str> = VecDeque::new();
        queue.push_back(start.as_str());
        while let Some(node) = queue.pop_front() {
            for succ in next(node) {
                if succ == start.as_str() {
                    // Back from the last node to the start, then turned around.
                    let mut back = Vec::new();
                    let mut at = node;
                    while at != start.as_str() {
                        back.push(at.to_string());
                        at = came_from[at];
                    }
                    let mut path = vec![start.clone()];
                    path.extend(back.into_iter().rev());
                    path.push(start.clone());
                    return path;
                }
                if !came_from.contains_key(succ) {
                    came_from.insert(succ, node);
                    queue.push_back(succ);
                }
            }
        }
        Vec::new()
    }

    /// Groups of nodes that all reach each other (Tarjan's algorithm, iteratively), largest
    /// first; only groups of two or more.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let adj = self.adjacency(false);
        let ids: HashMap<&str, usize> =
            self.nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let succ: Vec<Vec<usize>> = self
            .nodes
            .iter()
            .map(|n| {
                adj.get(n.as_str()).map_or_else(Vec::new, |v| {
                    v.iter().filter_map(|t| ids.get(t).copied()).collect()
                })
            })
            .collect();
        let n = self.nodes.len();
        let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
        let (mut stack, mut next_index, mut out) = (Vec::new(), 0usize, Vec::new());
        for start in 0..n {
            if index[start] != usize::MAX {
                continue;
            }
            let mut work: Vec<(usize, usize)> = vec![(start, 0)];
            while let Some(&mut (v, ref mut child)) = work.last_mut() {
                if *child == 0 && index[v] == usize::MAX {
                    index[v] = next_index;
                    low[v] = next_index;
                    next_index += 1;
                    stack.push(v);
                    on_stack[v] = true;
                }
                if let Some(&w) = succ[v].get(*child) {
                    *child += 1;
                    if index[w] == usize::MAX {
                        work.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(u, _)) = work.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut group = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        group.push(self.nodes[w].clone());
                        if w == v {
                            break;
                        }
                    }
                    if group.len() > 1 {
                        group.sort();
                        out.push(group);
                    }
                }
            }
        }
        out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out
    }

    /// What depends on `target` (a node, or the nodes ending with it), nearest first, up to
    /// `max_depth` steps (1: direct importers only).
    pub fn dependents(&self, target: &str, max_depth: usize) -> Vec<Dependent> {
        let radj = self.adjacency(true);
        let starts: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.as_str() == target || n.ends_with(&format!("/{target}")))
            .map(String::as_str)
            .collect();
        let mut seen: HashMap<&str, usize> = starts.iter().map(|s| (*s, 0)).collect();
        let mut queue: VecDeque<(&str, usize)> = starts.iter().map(|s| (*s, 0)).collect();
        let mut out = Vec::new();
        while let Some((node, depth)) = queue.pop_front() {
            if depth >= max_depth {
                continue;
            }
            for &dep in radj.get(node).map_or(&[][..], |v| &v[..]) {
                if !seen.contains_key(dep) {
                    seen.insert(dep, depth + 1);
                    out.push(Dependent { path: dep.to_string(), depth: depth + 1 });
                    queue.push_back((dep, depth + 1));
                }
            }
        }
        out.sort_by(|a, b| (a.depth, &a.path).cmp(&(b.depth, &b.path)));
        out
    }

    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph dependencies {\n  rankdir=LR;\n  node [shape=box];\n");
        for n in &self.nodes {
            out.push_str(&format!("  {};\n", quote(n)));
        }
        for e in &self.edges {
            out.push_str(&format!("  {} -> {};\n", quote(&e.from), quote(&e.to)));
        }
        out.push_str("}\n");
        out
    }

    pub fn to_mermaid(&self) -> String {
        let ids: HashMap<&str, usize> =
            self.nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut out = String::from("graph LR\n");
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!("  n{i}[\"{}\"]\n", n.replace('"', "#quot;")));
        }
        for e in &self.edges {
            if let (Some(a), Some(b)) = (ids.get(e.from.as_str()), ids.get(e.to.as_str())) {
                out.push_str(&format!("  n{a} --> n{b}\n"));
            }
        }
        out
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut nodes = BTreeSet::new();
        let edges = edges
            .iter()
            .map(|(a, b)| {
                nodes.insert(a.to_string());
                nodes.insert(b.to_string());
                Edge {
                    from: a.to_string(),
                    to: b.to_string(),
                    kind: "import".into(),
                    import: String::new(),
                    line: 1,
                }
            })
            .collect();
        Graph { nodes: nodes.into_iter().collect(), edges, ..Graph::default() }
    }

    #[test]
    fn cycles_and_dependents() {
        let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d"), ("f", "e")]);
        assert_eq!(g.cycles(), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
        let direct: Vec<String> = g.dependents("d", 1).into_iter().map(|d| d.path).collect();
        assert_eq!(direct, ["c", "e"]);
        let all: Vec<(String, usize)> =
            g.dependents("d", usize::MAX).into_iter().map(|d| (d.path, d.depth)).collect();
        assert_eq!(
            all,
            [("c".into(), 1), ("e".into(), 1), ("b".into(), 2), ("f".into(), 2), ("a".into(), 3)]
        );
        assert!(g.to_dot().contains("\"a\" -> \"b\";"));
        assert!(g.to_mermaid().contains("n0 --> n1"));
    }

    #[test]
    fn rust_module_paths() {
        assert_eq!(rust_module_of("x/src/lib.rs"), Some(("x/src".into(), vec![])));
        assert_eq!(rust_module_of("x/src/main.rs"), Some(("x/src".into(), vec![])));
        assert_eq!(rust_module_of("x/src/a/mod.rs"), Some(("x/src".into(), vec!["a".into()])));
        assert_eq!(
            rust_module_of("x/src/a/b.rs"),
            Some(("x/src".into(), vec!["a".into(), "b".into()]))
        );
        assert_eq!(normalize("a/b/../c/./d"), Some("a/c/d".into()));
        assert_eq!(normalize("../x"), None);
    }
}
