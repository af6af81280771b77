//! One pass over a file's syntax tree: definitions with their qualified names, signatures
//! and docs; references; imports; line classes; and per-function complexity.
//!
//! The walk uses a tree cursor (no recursion, so deep trees cannot overflow the stack).
//! Whatever must happen when the walk leaves a node (closing a container, finishing a
//! function's metrics, undoing a nesting level) is pushed on an exit stack with the node's
//! depth. Syntax errors do not stop it: tree-sitter recovers, and every definition that
//! parsed is still found.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tree_sitter::{Node, Parser, Tree};

use crate::Lang;
use crate::model::{
    FileFacts, FunctionMetrics, Import, ImportKind, LineCounts, RefKind, Reference, Symbol,
};
use crate::rules::{self, Complexity, Context, text};

/// Longest a single file may take to parse before it is given up (pathological inputs).
const PARSE_BUDGET: Duration = Duration::from_secs(10);

thread_local! {
    static PARSERS: RefCell<HashMap<Lang, Parser>> = RefCell::new(HashMap::new());
}

/// Parses `src` as `lang` and extracts its facts. `None` only when parsing was abandoned
/// (over the time budget).
pub fn extract(lang: Lang, src: &[u8]) -> Option<FileFacts> {
    let src: std::borrow::Cow<'_, [u8]> = match lang {
        Lang::C | Lang::Cpp => crate::cmacro::parenthesize_macro_conditions(src),
        _ => src.into(),
    };
    let tree = parse(lang, &src)?;
    // Rust items inside `cfg_*! { ... }` are parsed again as the items they are.
    if lang == Lang::Rust
        && let Some((opened, transparent)) = crate::rustmacro::open_item_macros(&src, &tree)
    {
        let tree = parse(lang, &opened)?;
        return Some(walk_tree(lang, &opened, &tree, transparent));
    }
    Some(extract_tree(lang, &src, &tree))
}

pub(crate) fn parse(lang: Lang, src: &[u8]) -> Option<Tree> {
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let parser = parsers.entry(lang).or_insert_with(|| {
            let mut p = Parser::new();
            p.set_language(&lang.grammar()).expect("bundled grammar matches tree-sitter");
            p
        });
        let started = Instant::now();
        let mut over_budget = |_: &tree_sitter::ParseState| {
            if started.elapsed() > PARSE_BUDGET {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let options = tree_sitter::ParseOptions::new().progress_callback(&mut over_budget);
        let mut input = |offset: usize, _| &src[offset.min(src.len())..];
        let tree = parser.parse_with_options(&mut input, None, Some(options));
        if tree.is_none() {
            parser.reset();
        }
        tree
    })
}

struct FnCtx {
    symbol: usize,
    cyclomatic: u32,
    cognitive: u32,
    nesting: u32,
    max_nesting: u32,
}

enum Exit {
    PopContainer,
    EndFunction,
    Unnest,
}

struct Walker<'a, 't> {
    lang: Lang,
    /// The ancestors of the node being visited, the parent last.
    up: Vec<Node<'t>>,
    src: &'a [u8],
    rules: &'static Complexity,
    symbols: Vec<Symbol>,
    references: Vec<Reference>,
    imports: Vec<Import>,
    code_lines: Vec<bool>,
    comment_lines: Vec<bool>,
    docstrings: Vec<(usize, usize)>,
    containers: Vec<usize>,
    fns: Vec<FnCtx>,
    exits: Vec<(usize, Exit)>,
    else_ifs: HashSet<usize>,
    /// Anonymous functions that are the value of a definition (`const f = () => ...`): their
    /// body is the function's own, not a nested lambda.
    own_lambdas: HashSet<usize>,
    /// Start bytes of the modules that stand for opened Rust macros (`rustmacro.rs`).
    transparent: HashSet<usize>,
    /// How many anonymous functions of their own each definition holds so far (Go).
    literals: HashMap<usize, u32>,
    syntax_errors: u32,
}

pub(crate) fn extract_tree(lang: Lang, src: &[u8], tree: &Tree) -> FileFacts {
    walk_tree(lang, src, tree, HashSet::new())
}

/// [`extract_tree`], with modules that stand for opened macros (by start byte): no
/// definitions of their own, their items belong to what encloses them.
fn walk_tree(lang: Lang, src: &[u8], tree: &Tree, transparent: HashSet<usize>) -> FileFacts {
    let rows = src.iter().filter(|b| **b == b'\n').count() + 1;
    let mut w = Walker {
        lang,
        up: Vec::new(),
        src,
        rules: rules::complexity(lang),
        symbols: Vec::new(),
        references: Vec::new(),
        imports: Vec::new(),
        code_lines: vec![false; rows],
        comment_lines: vec![false; rows],
        docstrings: Vec::new(),
        containers: Vec::new(),
        fns: Vec::new(),
        exits: Vec::new(),
        else_ifs: HashSet::new(),
        own_lambdas: HashSet::new(),
        transparent,
        literals: HashMap::new(),
        syntax_errors: 0,
    };
    let mut cursor = tree.walk();
    let mut depth = 0usize;
    'walk: loop {
        let node = cursor.node();
        let descend = w.enter(node, depth);
        if descend && cursor.goto_first_child() {
            w.up.push(node);
            depth += 1;
            continue;
        }
        loop {
            w.leave(depth);
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
            w.up.pop();
            depth -= 1;
        }
    }
    w.finish()
}

/// Last line of a node, 1-based: a node ending at column 0 ends on the line before.
fn end_line(node: Node<'_>) -> u32 {
    let (start, end) = (node.start_position(), node.end_position());
    if end.column == 0 && end.row > start.row { end.row as u32 } else { end.row as u32 + 1 }
}

impl<'t> Walker<'_, 't> {
    fn mark(lines: &mut [bool], node: Node<'_>) {
        let (a, b) = (node.start_position().row, node.end_position().row);
        for flag in lines.iter_mut().take(b + 1).skip(a) {
            *flag = true;
        }
    }

    /// Visits a node; `false` when its children hold nothing of interest (comments).
    fn enter(&mut self, node: Node<'t>, depth: usize) -> bool {
        let kind = rules::kind(self.lang, node);
        if node.is_error() || node.is_missing() {
            self.syntax_errors += 1;
        }
        if rules::is_comment(kind) {
            Self::mark(&mut self.comment_lines, node);
            return false;
        } else if node.child_count() == 0 {
            Self::mark(&mut self.code_lines, node);
        }
        self.definition(node, kind, depth);
        if !self.fns.is_empty() {
            self.complexity(node, kind, depth);
        }
        self.reference(node, kind);
        self.import(node, kind);
        true
    }

    fn leave(&mut self, depth: usize) {
        while self.exits.last().is_some_and(|(d, _)| *d == depth) {
            let Some((_, exit)) = self.exits.pop() else { break };
            match exit {
                Exit::PopContainer => {
                    self.containers.pop();
                }
                Exit::EndFunction => {
                    if let Some(f) = self.fns.pop() {
                        let metrics = self.symbols[f.symbol].metrics.get_or_insert_default();
                        metrics.cyclomatic = 1 + f.cyclomatic;
                        metrics.cognitive = f.cognitive;
                        metrics.max_nesting = f.max_nesting;
                    }
                }
                Exit::Unnest => {
                    if let Some(f) = self.fns.last_mut() {
                        f.nesting = f.nesting.saturating_sub(1);
                    }
                }
            }
        }
    }

    fn definition(&mut self, node: Node<'t>, kind: &str, depth: usize) {
        if self.transparent.contains(&node.start_byte()) && kind == "mod_item" {
            return;
        }
        let parent = self.containers.last().copied();
        let in_type = parent.is_some_and(|p| rules::is_type_container(self.symbols[p].kind));
        let cx = Context { lang: self.lang, up: &self.up };
        let def = match rules::definition(&cx, node, kind, self.src, in_type) {
            Some(def) => def,
            // Go's func literals are functions of their own: `TestX.func1`, `TestX.func2`,
            // numbered in their enclosing function as Go's runtime names them.
            None if self.rules.lambdas_are_functions
                && self.rules.lambdas.contains(&kind)
                && !self.own_lambdas.contains(&node.id())
                && let Some(p) = parent =>
            {
                let n = self.literals.entry(p).or_insert(0);
                *n += 1;
                self.own_lambdas.insert(node.id());
                let at = node.start_position();
                rules::Def {
                    kind: crate::SymbolKind::Function,
                    name: format!("func{n}"),
                    name_at: (at.row, at.column),
                    scope: Vec::new(),
                }
            }
            None => return,
        };
        let sep = self.lang.separator();
        let mut qualified = parent.map(|p| self.symbols[p].qualified_name.clone());
        for scope in &def.scope {
            qualified = Some(match qualified {
                Some(q) => format!("{q}{sep}{scope}"),
                None => scope.clone(),
            });
        }
        let qualified_name = match qualified {
            Some(q) => format!("{q}{sep}{}", def.name),
            None => def.name.clone(),
        };
        let doc = self.doc_comment(node);
        let metrics = def.kind.is_callable().then(|| FunctionMetrics {
            params: rules::parameter_count(self.lang, node, self.src),
            ..FunctionMetrics::default()
        });
        // The function a definition holds (`f = () => ...`) is the definition's own body,
        // not a closure inside it; through any parentheses around it.
        if def.kind.is_callable()
            && let Some(mut value) =
                node.child_by_field_name("value").or_else(|| node.child_by_field_name("right"))
        {
            while value.kind() == "parenthesized_expression"
                && let Some(inner) = value.named_child(0)
            {
                value = inner;
            }
            self.own_lambdas.insert(value.id());
        }
        let index = self.symbols.len();
        self.symbols.push(Symbol {
            name: def.name,
            qualified_name,
            kind: def.kind,
            line: node.start_position().row as u32 + 1,
            end_line: end_line(node),
            name_line: def.name_at.0 as u32 + 1,
            column: def.name_at.1 as u32 + 1,
            signature: self.signature(node),
            doc,
            metrics,
            parent,
        });
        self.containers.push(index);
        self.exits.push((depth, Exit::PopContainer));
        if def.kind.is_callable() {
            self.fns.push(FnCtx {
                symbol: index,
                cyclomatic: 0,
                cognitive: 0,
                nesting: 0,
                max_nesting: 0,
            });
            self.exits.push((depth, Exit::EndFunction));
        }
    }

    fn complexity(&mut self, node: Node<'t>, kind: &str, depth: usize) {
        let r = self.rules;
        let is = |list: &[&str]| list.contains(&kind);
        let src = self.src;
        let Some(f) = self.fns.last_mut() else { return };
        let mut nests = false;
        if is(r.ifs) {
            f.cyclomatic += 1;
            if self.else_ifs.contains(&node.id()) {
                f.cognitive += 1;
            } else {
                f.cognitive += 1 + f.nesting;
                nests = true;
            }
            // The branch taken otherwise: `else if` joins this chain, a plain `else` costs 1.
            if let Some(alt) = node.child_by_field_name("alternative") {
                let inner = if alt.kind() == "else_clause" { last_named(alt) } else { Some(alt) };
                match inner {
                    Some(i) if r.ifs.contains(&i.kind()) => {
                        self.else_ifs.insert(i.id());
                    }
                    Some(i) if i.kind() == "elif_clause" => {}
                    _ => f.cognitive += 1,
                }
            }
            // Python: every `else` after the `elif`s.
            if self.lang == crate::Lang::Python {
                let mut c = node.walk();
                let elses = node
                    .children_by_field_name("alternative", &mut c)
                    .filter(|a| a.kind() == "else_clause")
                    .count() as u32;
                if node
                    .child_by_field_name("alternative")
                    .is_some_and(|a| a.kind() == "elif_clause")
                {
                    f.cognitive += elses;
                }
            }
        } else if kind == "elif_clause" {
            f.cyclomatic += 1;
            f.cognitive += 1;
        } else if is(r.loops) || is(r.catches) || is(r.ternaries) {
            f.cyclomatic += 1;
            f.cognitive += 1 + f.nesting;
            nests = true;
        } else if is(r.switches) {
            f.cognitive += 1 + f.nesting;
            nests = true;
        } else if is(r.cases) {
            if !rules::is_default_case(node, src) {
                f.cyclomatic += 1;
            }
        } else if is(r.other_decisions) {
            f.cyclomatic += 1;
        } else if is(r.lambdas) {
            if !self.own_lambdas.contains(&node.id()) {
                f.nesting += 1;
                self.exits.push((depth, Exit::Unnest));
            }
        } else if kind == "goto_statement" {
            f.cognitive += 1;
        } else if let Some(op) = rules::logical_operator(self.lang, node, src) {
            f.cyclomatic += 1;
            // One per sequence of like operators: `a && b && c` costs 1, `a && b || c` 2.
            let continues = self
                .up
                .last()
                .and_then(|p| rules::logical_operator(self.lang, *p, src))
                .is_some_and(|p| p == op);
            if !continues {
                f.cognitive += 1;
            }
        }
        if nests {
            f.nesting += 1;
            f.max_nesting = f.max_nesting.max(f.nesting);
            self.exits.push((depth, Exit::Unnest));
        }
    }

    fn reference(&mut self, node: Node<'t>, kind: &str) {
        let cx = Context { lang: self.lang, up: &self.up };
        let (target, kind) = if let Some(t) = rules::call_target(self.lang, node, kind) {
            (t, RefKind::Call)
        } else if rules::is_type_use(&cx, node, kind) {
            (node, RefKind::Type)
        } else {
            return;
        };
        let name = text(target, self.src);
        if name.is_empty() {
            return;
        }
        let p = target.start_position();
        self.references.push(Reference {
            name: name.to_string(),
            kind,
            line: p.row as u32 + 1,
            column: p.column as u32 + 1,
        });
    }

    fn import(&mut self, node: Node<'t>, kind: &str) {
        if !matches!(
            kind,
            "use_declaration"
                | "mod_item"
                | "extern_crate_declaration"
                | "import_statement"
                | "import_from_statement"
                | "export_statement"
                | "call_expression"
                | "import_spec"
                | "import_declaration"
                | "preproc_include"
        ) {
            return;
        }
        let line = node.start_position().row as u32 + 1;
        let src = self.src;
        let mut push = |target: String, names: Vec<String>, kind: ImportKind| {
            let target = target.trim().to_string();
            if !target.is_empty() {
                self.imports.push(Import { target, names, kind, line });
            }
        };
        match (self.lang, kind) {
            (Lang::Rust, "use_declaration") => {
                if let Some(arg) = node.child_by_field_name("argument") {
                    let mut paths = Vec::new();
                    rust_use_paths(arg, src, "", &mut paths);
                    for path in paths {
                        push(path, Vec::new(), ImportKind::Import);
                    }
                }
            }
            (Lang::Rust, "mod_item") if node.child_by_field_name("body").is_none() => {
                if let Some(name) = node.child_by_field_name("name") {
                    push(text(name, src).to_string(), Vec::new(), ImportKind::ModDecl);
                }
            }
            (Lang::Rust, "extern_crate_declaration") => {
                if let Some(name) = node.child_by_field_name("name") {
                    push(text(name, src).to_string(), Vec::new(), ImportKind::Import);
                }
            }
            (Lang::Python, "import_statement") => {
                let mut c = node.walk();
                for name in node.children_by_field_name("name", &mut c) {
                    let module = name.child_by_field_name("name").unwrap_or(name);
                    push(text(module, src).to_string(), Vec::new(), ImportKind::Import);
                }
            }
            (Lang::Python, "import_from_statement") => {
                if let Some(module) = node.child_by_field_name("module_name") {
                    let mut c = node.walk();
                    let names = node
                        .children_by_field_name("name", &mut c)
                        .map(|n| text(n.child_by_field_name("name").unwrap_or(n), src).to_string())
                        .collect();
                    push(text(module, src).to_string(), names, ImportKind::Import);
                }
            }
            (
                Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
                "import_statement" | "export_statement",
            ) => {
                if let Some(source) = node.child_by_field_name("source") {
                    push(unquote(text(source, src)), Vec::new(), ImportKind::Import);
                }
            }
            (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "call_expression") => {
                let callee = node.child_by_field_name("function");
                let is_load = callee.is_some_and(|c| matches!(text(c, src), "require" | "import"));
                let first = node.child_by_field_name("arguments").and_then(|a| a.named_child(0));
                if let (true, Some(arg)) = (is_load, first)
                    && arg.kind() == "string"
                {
                    push(unquote(text(arg, src)), Vec::new(), ImportKind::Import);
                }
            }
            (Lang::Go, "import_spec") => {
                if let Some(path) = node.child_by_field_name("path") {
                    push(unquote(text(path, src)), Vec::new(), ImportKind::Import);
                }
            }
            (Lang::Java, "import_declaration") => {
                let raw = text(node, src);
                let target = raw
                    .trim_start_matches("import")
                    .trim()
                    .trim_start_matches("static ")
                    .trim_end_matches(';')
                    .replace(char::is_whitespace, "");
                push(target, Vec::new(), ImportKind::Import);
            }
            (Lang::C | Lang::Cpp, "preproc_include") => {
                if let Some(path) = node.child_by_field_name("path") {
                    let raw = text(path, src).trim();
                    let (target, kind) = if path.kind() == "system_lib_string" {
                        (
                            raw.trim_start_matches('<').trim_end_matches('>'),
                            ImportKind::SystemInclude,
                        )
                    } else {
                        (raw.trim_matches('"'), ImportKind::Include)
                    };
                    push(target.to_string(), Vec::new(), kind);
                }
            }
            _ => {}
        }
    }

    /// The definition's header on one line: from its start to its body.
    fn signature(&self, node: Node<'_>) -> String {
        let end = rules::body_of(node).map_or(node.end_byte(), |b| b.start_byte());
        let raw = std::str::from_utf8(&self.src[node.start_byte()..end]).unwrap_or("");
        let first_lines: String = raw.lines().take(6).collect::<Vec<_>>().join(" ");
        let collapsed = first_lines.split_whitespace().collect::<Vec<_>>().join(" ");
        let trimmed = collapsed.trim_end_matches(['{', ':', '=']).trim_end();
        truncate(trimmed, 160)
    }

    fn doc_comment(&mut self, node: Node<'t>) -> Option<String> {
        if self.lang == Lang::Python {
            let body = node.child_by_field_name("body")?;
            let first = body.named_child(0).filter(|s| s.kind() == "expression_statement")?;
            let string = first.named_child(0).filter(|s| s.kind() == "string")?;
            self.docstrings.push((first.start_position().row, first.end_position().row));
            let mut c = string.walk();
            let content: String = string
                .named_children(&mut c)
                .filter(|p| p.kind() == "string_content")
                .map(|p| text(p, self.src))
                .collect();
            return clean_doc(&content);
        }
        let mut target = node;
        for parent in self.up.iter().rev() {
            if !rules::is_wrapper(rules::kind(self.lang, *parent)) {
                break;
            }
            target = *parent;
        }
        let mut comments = Vec::new();
        let mut next_row = target.start_position().row;
        let mut sibling = target.prev_sibling();
        while let Some(s) = sibling {
            if rules::is_comment(s.kind()) && s.end_position().row + 1 >= next_row {
                comments.push(text(s, self.src));
                next_row = s.start_position().row;
            } else if !matches!(s.kind(), "attribute_item" | "decorator" | "annotation") {
                break;
            }
            sibling = s.prev_sibling();
        }
        comments.reverse();
        clean_doc(&comments.join("\n"))
    }

    fn finish(mut self) -> FileFacts {
        for (a, b) in std::mem::take(&mut self.docstrings) {
            for row in a..=b.min(self.code_lines.len().saturating_sub(1)) {
                self.code_lines[row] = false;
                self.comment_lines[row] = true;
            }
        }
        // Each line's class once, then prefix sums: a function's counts are a subtraction.
        let rows = self.code_lines.len();
        let mut sums = vec![LineCounts::default(); rows + 1];
        for (row, line) in self.src.split(|b| *b == b'\n').enumerate().take(rows) {
            let mut c = sums[row];
            if self.code_lines[row] {
                c.code += 1;
            } else if self.comment_lines[row] {
                c.comment += 1;
            } else if line.iter().all(u8::is_ascii_whitespace) {
                c.blank += 1;
            } else {
                // Inside a multi-line token that is neither (rare): count it as code.
                c.code += 1;
            }
            sums[row + 1] = c;
        }
        let counts = |from: usize, to: usize| {
            let (a, b) = (sums[from.min(rows)], sums[to.min(rows)]);
            LineCounts {
                code: b.code - a.code,
                comment: b.comment - a.comment,
                blank: b.blank - a.blank,
            }
        };
        // A trailing newline does not start a line of its own.
        let last = if self.src.last() == Some(&b'\n') { rows - 1 } else { rows };
        let lines = counts(0, last);
        for s in &mut self.symbols {
            if let Some(m) = s.metrics.as_mut() {
                m.lines = counts(s.line as usize - 1, s.end_line as usize);
            }
        }
        FileFacts {
            lang: self.lang,
            symbols: self.symbols,
            references: self.references,
            imports: self.imports,
            lines,
            syntax_errors: self.syntax_errors,
        }
    }
}

fn last_named(node: Node<'_>) -> Option<Node<'_>> {
    let mut c = node.walk();
    node.named_children(&mut c).filter(|n| !rules::is_comment(n.kind())).last()
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '"' || c == '\'' || c == '`').to_string()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Comment markers removed, lines joined; `None` when nothing is left.
fn clean_doc(raw: &str) -> Option<String> {
    let mut out = Vec::new();
    for line in raw.lines() {
        let mut l = line.trim();
        for prefix in ["///", "//!", "//", "/**", "/*!", "/*", "#"] {
            if let Some(rest) = l.strip_prefix(prefix) {
                l = rest;
                break;
            }
        }
        l = l.trim_end_matches("*/").trim();
        l = l.strip_prefix('*').unwrap_or(l).trim();
        if !l.is_empty() {
            out.push(l);
        }
    }
    let doc = out.join("\n");
    (!doc.is_empty()).then(|| truncate(&doc, 2_000))
}

/// Expands a Rust `use` tree into full paths: `a::{b, c::d}` -> `a::b`, `a::c::d`.
fn rust_use_paths(node: Node<'_>, src: &[u8], prefix: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| if p.is_empty() { s.to_string() } else { format!("{p}::{s}") };
    match node.kind() {
        "scoped_use_list" => {
            let path = node.child_by_field_name("path").map(|p| text(p, src)).unwrap_or("");
            let prefix = join(prefix, path);
            if let Some(list) = node.child_by_field_name("list") {
                rust_use_paths(list, src, &prefix, out);
            }
        }
        "use_list" => {
            let mut c = node.walk();
            for child in node.named_children(&mut c) {
                rust_use_paths(child, src, prefix, out);
            }
        }
        "use_as_clause" => {
            if let Some(path) = node.child_by_field_name("path") {
                out.push(join(prefix, text(path, src)));
            }
        }
        k if rules::is_comment(k) => {}
        _ => out.push(join(prefix, text(node, src))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_expand_and_docs_lose_their_markers() {
        let facts = extract(Lang::Rust, b"use a::{b, c::{d as e, f}};\n").unwrap();
        let targets: Vec<&str> = facts.imports.iter().map(|i| i.target.as_str()).collect();
        assert_eq!(targets, ["a::b", "a::c::d", "a::c::f"]);
        assert_eq!(clean_doc("/**\n * Hello\n * world.\n */").as_deref(), Some("Hello\nworld."));
        assert_eq!(clean_doc("/// One.\n/// Two.").as_deref(), Some("One.\nTwo."));
        assert_eq!(clean_doc("//"), None);
    }
}
