//! The local code commands (`index`, `search`, `symbols`, `metrics`, `graph`): they work on
//! the data dir's workspaces directly, with no node running, like ripgrep.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use dreamos_scan::{Hit, Index, Registry, SearchOptions, Workspace};
use serde_json::json;

#[derive(Args)]
pub struct IndexArgs {
    /// The tree to index (default: the current directory). It becomes a workspace.
    path: Option<PathBuf>,
    /// The workspace's name (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Keep running, and keep the index fresh as files change (Ctrl-C stops).
    #[arg(long)]
    watch: bool,
    /// Also index vendored directories (vendor/, node_modules/, third_party/ ...).
    /// Remembered for this workspace, like the other scan options below.
    #[arg(long)]
    include_vendored: bool,
    /// Also index generated files (files marked "generated", *.pb.go, *_pb2.py ...).
    #[arg(long)]
    include_generated: bool,
    /// Skip files larger than this many bytes.
    #[arg(long, value_name = "BYTES")]
    max_file_bytes: Option<u64>,
    /// Skip paths matching this glob (repeatable; replaces the workspace's saved list).
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
}

impl IndexArgs {
    /// The scan options given on the command line, if any.
    fn overrides(&self) -> Option<dreamos_scan::ScanConfigEntry> {
        let e = dreamos_scan::ScanConfigEntry {
            max_file_bytes: self.max_file_bytes,
            include_vendored: self.include_vendored.then_some(true),
            include_generated: self.include_generated.then_some(true),
            exclude_globs: (!self.exclude.is_empty()).then(|| self.exclude.clone()),
        };
        (e != dreamos_scan::ScanConfigEntry::default()).then_some(e)
    }
}

#[derive(Args)]
pub struct SearchArgs {
    /// Words, "exact phrases", /regexes/, sym:NAME, lang:L, path:GLOB, kind:K, -path:GLOB ...
    #[arg(required = true, num_args = 1..)]
    query: Vec<String>,
    /// Only this language (same as lang:L in the query).
    #[arg(long)]
    lang: Option<String>,
    /// Only paths matching this glob (same as path:GLOB).
    #[arg(long)]
    path: Option<String>,
    /// Results per page (at most 100000).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Results to skip (the page's start).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Search this workspace only (default: all of them).
    #[arg(long)]
    workspace: Option<String>,
}

#[derive(Args)]
pub struct MetricsArgs {
    /// A directory or file inside a workspace (default: the workspace around the current
    /// directory, or the data dir's only one). A PATH outside every workspace is indexed
    /// first; the current directory never is unless named.
    path: Option<PathBuf>,
    /// How many hotspots (most complex functions) to show.
    #[arg(long, default_value_t = 20)]
    top: usize,
}

#[derive(Args)]
pub struct GraphArgs {
    /// A directory inside a workspace (default: the workspace around the current directory,
    /// or the data dir's only one). A PATH outside every workspace is indexed first.
    path: Option<PathBuf>,
    /// Print the graph as json, dot (Graphviz) or mermaid.
    #[arg(long)]
    format: Option<String>,
    /// List the import cycles: each group of files that import each other, with a real path
    /// of imports around it.
    #[arg(long)]
    cycles: bool,
    /// List what depends on this file (path, or the end of one), nearest first.
    #[arg(long)]
    dependents: Option<String>,
    /// With --dependents: how many steps to follow (default: all).
    #[arg(long)]
    depth: Option<usize>,
    /// Group files by directory (module/package level).
    #[arg(long)]
    modules: bool,
}

#[derive(Args)]
pub struct SymbolsArgs {
    /// Only paths matching this glob.
    #[arg(long)]
    path: Option<String>,
    /// Only definitions with exactly this name.
    #[arg(long)]
    name: Option<String>,
    /// Only this kind: function, method, class, struct, enum, interface, trait, module, ...
    #[arg(long)]
    kind: Option<String>,
    /// Only this workspace (default: all of them).
    #[arg(long)]
    workspace: Option<String>,
}

/// Query negations (`-path:tests`, `-word`) look like flags to the argument parser, so
/// [`mark_negations`] hides their dash before parsing and this restores it.
const NEGATION: &str = "\u{1}";

/// Rewrites the arguments of `dreamos search` so that query words starting with a single
/// dash (`-path:tests`, `-deprecated`) reach the query instead of being read as flags.
pub fn mark_negations(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(at) = args.iter().position(|a| a == "search") else { return args };
    args.into_iter()
        .enumerate()
        .map(|(i, a)| match a.to_str() {
            Some(s) if i > at && s.len() > 2 && s.starts_with('-') && !s.starts_with("--") => {
                format!("{NEGATION}{}", &s[1..]).into()
            }
            _ => a,
        })
        .collect()
}

fn unmark_negation(word: &str) -> String {
    match word.strip_prefix(NEGATION) {
        Some(rest) => format!("-{rest}"),
        None => word.to_string(),
    }
}

fn registry(data_dir: &Path) -> Registry {
    Registry::new(data_dir)
}

/// The workspaces a command works on: the named one, or all of them.
fn workspaces(data_dir: &Path, only: Option<&str>) -> Result<Vec<Workspace>> {
    let r = registry(data_dir);
    let all = match only {
        // Name the workspaces there are, here: `workspace list` would ask a node.
        Some(name) => vec![r.get(name).map_err(|e| match e {
            dreamos_scan::ScanError::UnknownWorkspace(_) => {
                let names: Vec<String> =
                    r.list().unwrap_or_default().into_iter().map(|w| w.name).collect();
                match names.as_slice() {
                    [] => anyhow::anyhow!(
                        "{e}: none is indexed in {} yet (dreamos index PATH)",
                        data_dir.display()
                    ),
                    _ => anyhow::anyhow!("{e}: this data dir has {}", names.join(", ")),
                }
            }
            other => other.into(),
        })?],
        None => r.list()?,
    };
    if all.is_empty() {
        bail!("no workspace indexed yet: run `dreamos index PATH` first");
    }
    Ok(all)
}

/// One line saying what an update did: the same after `dreamos index` and after a node's
/// `index` task (`workspace index --wait`).
pub fn summary_line(workspace: &str, s: &dreamos_scan::UpdateSummary) -> String {
    if s.added + s.changed + s.deleted == 0 {
        return format!(
            "{workspace}: unchanged ({} files, {} skipped), checked in {:.2} s",
            s.files,
            s.skipped.len(),
            s.seconds
        );
    }
    let mb = s.bytes_read as f64 / 1e6;
    format!(
        "{workspace}: {} files indexed ({} added, {} changed, {} unchanged, {} deleted, {} skipped), \
         {} definitions in the files read, {mb:.1} MB in {:.2} s ({:.1} MB/s)",
        s.files,
        s.added,
        s.changed,
        s.unchanged,
        s.deleted,
        s.skipped.len(),
        s.symbols,
        s.seconds,
        mb / s.seconds.max(1e-9)
    )
}

pub fn index(data_dir: &Path, args: &IndexArgs, json_out: bool) -> Result<i32> {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let ws = registry(data_dir)
        .add(args.name.as_deref(), &path)
        .with_context(|| format!("cannot index {}", path.display()))?;
    let ws = match args.overrides() {
        Some(o) => registry(data_dir).set_config(&ws.name, &o)?,
        None => ws,
    };
    let index = registry(data_dir).open_index(&ws)?;
    let show = !json_out && std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        if show {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} files ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("indexing {}", ws.name));
    let started = std::time::Instant::now();
    let mut bytes_seen = 0u64;
    let summary = index.update(&mut |p| {
        bar.set_length(p.files_total as u64);
        bar.set_position(p.files_done as u64);
        bytes_seen = p.bytes_done;
        // The bar counts files; bytes and their rate go in the message, in their own unit.
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "indexing {}: {:.1} MB, {:.1} MB/s",
            ws.name,
            p.bytes_done as f64 / 1e6,
            p.bytes_done as f64 / 1e6 / secs
        ));
    })?;
    bar.finish_and_clear();
    let mb = bytes_seen as f64 / 1e6;
    if json_out {
        println!(
            "{}",
            json!({ "workspace": ws.name, "root": ws.root, "summary": summary, "mb": mb })
        );
    } else {
        println!("{}", summary_line(&ws.name, &summary));
        for s in summary.skipped.iter().filter(|s| s.reason.contains("symlink")).take(20) {
            eprintln!("skipped {}: {}", s.path, s.reason);
        }
    }
    if args.watch {
        let index = std::sync::Arc::new(index);
        let _watch = dreamos_scan::watch(index, move |result| match result {
            Ok(s) if json_out => println!("{}", json!({ "summary": s })),
            Ok(s) => eprintln!(
                "updated: {} added, {} changed, {} deleted in {:.0} ms",
                s.added,
                s.changed,
                s.deleted,
                s.seconds * 1e3
            ),
            Err(e) => eprintln!("update failed: {e}"),
        })?;
        if !json_out {
            eprintln!("watching {} (Ctrl-C stops)", ws.root.display());
        }
        // Until interrupted (Ctrl-C ends the process; every update is committed when it
        // is applied). The watch works on its own thread.
        loop {
            std::thread::park();
        }
    }
    Ok(0)
}

fn open(data_dir: &Path, ws: &Workspace) -> Result<Index> {
    registry(data_dir)
        .open_index(ws)
        .with_context(|| format!("cannot open workspace `{}`", ws.name))
}

pub fn search(data_dir: &Path, args: &SearchArgs, json_out: bool) -> Result<i32> {
    let words: Vec<String> = args.query.iter().map(|w| unmark_negation(w)).collect();
    let mut query = dreamos_scan::query::parse(&words.join(" "))?;
    if let Some(l) = &args.lang {
        query.add_lang(l)?;
    }
    if let Some(p) = &args.path {
        query.add_path(p)?;
    }
    if args.limit == 0 || args.limit > dreamos_scan::MAX_LIMIT {
        bail!("--limit must be between 1 and {}", dreamos_scan::MAX_LIMIT);
    }
    let spaces = workspaces(data_dir, args.workspace.as_deref())?;
    let per_space =
        SearchOptions { limit: args.offset + args.limit, offset: 0, ..Default::default() };
    let mut all: Vec<(String, Hit)> = Vec::new();
    let mut more = false;
    let mut grep = false;
    for ws in &spaces {
        let results = open(data_dir, ws)?.search_query(&query, &per_space)?;
        more |= results.more;
        grep = results.mode == "grep";
        all.extend(results.hits.into_iter().map(|h| (ws.name.clone(), h)));
    }
    if !grep {
        all.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    }
    more |= all.len() > args.offset + args.limit;
    let page: Vec<(String, Hit)> = all.into_iter().skip(args.offset).take(args.limit).collect();
    print_hits(&page, spaces.len() > 1, more, args, json_out)
}

/// `dreamos search` against a node (`--server`): the node's `/api/v1/search`, with the
/// caller's token and its workspace scope, printed as a local search prints.
pub async fn search_remote(
    client: &crate::client::Client,
    args: &SearchArgs,
    json_out: bool,
) -> Result<i32> {
    let mut words: Vec<String> = args.query.iter().map(|w| unmark_negation(w)).collect();
    // Checked here as the node would, so that a mistake reads the same either way.
    dreamos_scan::query::parse(&words.join(" "))?;
    words.extend(args.lang.iter().map(|l| format!("lang:{l}")));
    words.extend(args.path.iter().map(|p| format!("path:{p}")));
    let mut url = reqwest::Url::parse("http://node/api/v1/search").expect("a fixed URL");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("q", &words.join(" "));
        query.append_pair("limit", &args.limit.to_string());
        query.append_pair("offset", &args.offset.to_string());
        if let Some(w) = &args.workspace {
            query.append_pair("workspace", w);
        }
    }
    let answer = client.get(&format!("{}?{}", url.path(), url.query().unwrap_or_default())).await?;
    let mut page = Vec::new();
    let mut spaces = std::collections::BTreeSet::new();
    for hit in answer["hits"].as_array().into_iter().flatten() {
        let ws = hit["workspace"].as_str().unwrap_or_default().to_string();
        let parsed: Hit = serde_json::from_value(hit.clone())
            .with_context(|| format!("the node answered a hit this client cannot read: {hit}"))?;
        spaces.insert(ws.clone());
        page.push((ws, parsed));
    }
    let more = answer["more"].as_bool().unwrap_or(false);
    print_hits(&page, spaces.len() > 1, more, args, json_out)
}

fn print_hits(
    page: &[(String, Hit)],
    several: bool,
    more: bool,
    args: &SearchArgs,
    json_out: bool,
) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    for (ws, hit) in page {
        if json_out {
            let snippet: Vec<String> =
                hit.snippet.iter().map(|l| format!("{:>5} | {}", l.line, l.text)).collect();
            let line = json!({
                "workspace": ws,
                "path": hit.path,
                "line": hit.line,
                "end_line": hit.end_line,
                "column": hit.column,
                "symbol": hit.symbol,
                "kind": hit.kind,
                "lang": hit.lang,
                "score": hit.score,
                "snippet": snippet.join("\n"),
                "lines": hit.snippet,
            });
            writeln!(out, "{line}")?;
        } else {
            let what = match (&hit.symbol, &hit.kind) {
                (Some(s), Some(k)) => format!("  {s} ({k})"),
                _ => String::new(),
            };
            let prefix = if several { format!("{ws}:") } else { String::new() };
            writeln!(
                out,
                "{prefix}{}:{}:{}{what}  [{:.2}]",
                hit.path, hit.line, hit.column, hit.score
            )?;
            for l in &hit.snippet {
                writeln!(out, "{:>6} | {}", l.line, l.text)?;
            }
        }
    }
    if !json_out {
        if page.is_empty() {
            writeln!(out, "no results")?;
        } else if more {
            writeln!(out, "more results: --offset {}", args.offset + args.limit)?;
        }
    }
    Ok(0)
}

pub fn symbols(data_dir: &Path, args: &SymbolsArgs, json_out: bool) -> Result<i32> {
    let kind = args
        .kind
        .as_deref()
        .map(str::parse::<dreamos_scan::SymbolKind>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout().lock();
    for ws in workspaces(data_dir, args.workspace.as_deref())? {
        let index = open(data_dir, &ws)?;
        for row in index.symbols(args.name.as_deref(), kind, args.path.as_deref())? {
            let s = &row.symbol;
            if json_out {
                let line = json!({
                    "workspace": ws.name,
                    "path": row.path,
                    "lang": row.lang,
                    "line": s.name_line,
                    "start_line": s.line,
                    "end_line": s.end_line,
                    "column": s.column,
                    "name": s.name,
                    "qualified_name": s.qualified_name,
                    "kind": s.kind,
                    "signature": s.signature,
                    "doc": s.doc,
                    "metrics": s.metrics,
                });
                writeln!(out, "{line}")?;
            } else {
                writeln!(
                    out,
                    "{}:{}  {:<9} {}  {}",
                    row.path,
                    s.name_line,
                    s.kind.as_str(),
                    s.qualified_name,
                    s.signature
                )?;
            }
        }
    }
    Ok(0)
}

/// The workspace around `path`, brought up to date (registered and indexed first if it is
/// new), and the glob of `path` inside it (`None` for the whole workspace).
fn workspace_at(
    data_dir: &Path,
    path: Option<&Path>,
    json_out: bool,
) -> Result<(Index, Option<String>)> {
    let explicit = path.is_some();
    let path = path.unwrap_or(Path::new("."));
    let mut target =
        path.canonicalize().with_context(|| format!("cannot read {}", path.display()))?;
    let r = registry(data_dir);
    let all = r.list()?;
    let around = all
        .iter()
        .filter(|w| target.starts_with(&w.root))
        .max_by_key(|w| w.root.as_os_str().len())
        .cloned();
    let ws = match around {
        Some(ws) => ws,
        // A tree named on the command line is indexed first; the current directory never is
        // without being asked (from `/tmp` that would be thousands of files).
        None if explicit => r.add(None, &target)?,
        None => match all.as_slice() {
            [only] => {
                if !json_out {
                    eprintln!(
                        "(the current directory is in no workspace: showing workspace {})",
                        only.name
                    );
                }
                target = only.root.clone();
                only.clone()
            }
            [] => bail!(
                "no workspace is indexed in {} yet: give a PATH (it is indexed first), or run `dreamos index PATH`",
                data_dir.display()
            ),
            many => bail!(
                "the current directory is in no workspace: give a PATH inside one of {}",
                many.iter().map(|w| w.root.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let index = open(data_dir, &ws)?;
    let summary = match index.update(&mut |_| {}) {
        Ok(s) => s,
        // A running node writes this index (and keeps it fresh): read it as it is.
        Err(dreamos_scan::ScanError::Conflict(_)) => dreamos_scan::UpdateSummary::default(),
        Err(e) => return Err(e.into()),
    };
    if !json_out && summary.added + summary.changed + summary.deleted > 0 {
        eprintln!(
            "{}: indexed {} new and {} changed files, removed {}",
            ws.name, summary.added, summary.changed, summary.deleted
        );
    }
    let rel = target.strip_prefix(&ws.root).ok().filter(|r| !r.as_os_str().is_empty());
    let glob = rel.map(|r| {
        let r = r.to_string_lossy().replace('\\', "/");
        if target.is_dir() { format!("{r}/**") } else { r }
    });
    Ok((index, glob))
}

pub fn metrics(data_dir: &Path, args: &MetricsArgs, json_out: bool) -> Result<i32> {
    let (index, glob) = workspace_at(data_dir, args.path.as_deref(), json_out)?;
    let report = index.metrics(glob.as_deref(), args.top)?;
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} files, {} functions; lines: {} code, {} comment, {} blank",
        report.files, report.functions, report.lines.code, report.lines.comment, report.lines.blank
    )?;
    writeln!(
        out,
        "\n{:<12} {:>7} {:>9} {:>9} {:>7} {:>9} {:>7} {:>9} {:>7}",
        "LANGUAGE", "FILES", "CODE", "COMMENT", "BLANK", "FUNCTIONS", "CC AVG", "CC MAX", "COG AVG"
    )?;
    for l in &report.languages {
        writeln!(
            out,
            "{:<12} {:>7} {:>9} {:>9} {:>7} {:>9} {:>7.2} {:>9} {:>7.2}",
            l.lang,
            l.files,
            l.lines.code,
            l.lines.comment,
            l.lines.blank,
            l.functions,
            l.cyclomatic_avg,
            l.cyclomatic_max,
            l.cognitive_avg
        )?;
    }
    if !report.hotspots.is_empty() {
        writeln!(out, "\nhotspots (by cognitive, then cyclomatic complexity):")?;
        writeln!(
            out,
            "{:>5} {:>5} {:>7} {:>6} {:>5}  FUNCTION",
            "COG", "CC", "NESTING", "PARAMS", "LINES"
        )?;
        for h in &report.hotspots {
            let m = &h.metrics;
            writeln!(
                out,
                "{:>5} {:>5} {:>7} {:>6} {:>5}  {} ({}:{})",
                m.cognitive,
                m.cyclomatic,
                m.max_nesting,
                m.params,
                m.lines.total(),
                h.qualified_name,
                h.path,
                h.line
            )?;
        }
    }
    Ok(0)
}

pub fn graph(data_dir: &Path, args: &GraphArgs, json_out: bool) -> Result<i32> {
    let (index, glob) = workspace_at(data_dir, args.path.as_deref(), json_out)?;
    let mut graph = index.graph()?;
    if let Some(glob) = &glob {
        let prefix = glob.trim_end_matches("/**");
        let inside = |p: &str| p == prefix || p.starts_with(&format!("{prefix}/"));
        graph.edges.retain(|e| inside(&e.from) || inside(&e.to));
        graph.nodes.retain(|n| graph.edges.iter().any(|e| &e.from == n || &e.to == n));
    }
    if args.modules {
        graph = graph.by_directory();
    }
    let mut out = std::io::stdout().lock();
    if let Some(target) = &args.dependents {
        let deps = graph.dependents(target, args.depth.unwrap_or(usize::MAX));
        if !graph.nodes.iter().any(|n| n == target || n.ends_with(&format!("/{target}"))) {
            bail!(
                "`{target}` is not in the import graph (no file imports it, and it imports nothing)"
            );
        }
        for d in &deps {
            if json_out {
                writeln!(out, "{}", json!({ "path": d.path, "depth": d.depth }))?;
            } else {
                writeln!(out, "{:>3}  {}", d.depth, d.path)?;
            }
        }
        if !json_out {
            let direct = deps.iter().filter(|d| d.depth == 1).count();
            writeln!(out, "{} dependents ({direct} direct)", deps.len())?;
        }
        return Ok(0);
    }
    if args.cycles {
        let cycles = graph.cycles();
        for c in &cycles {
            // The group's files, and one real path of imports around it.
            let path = graph.cycle_path(c);
            if json_out {
                writeln!(out, "{}", json!({ "size": c.len(), "nodes": c, "path": path }))?;
            } else if path.len() == c.len() + 1 {
                writeln!(out, "cycle of {}: {}", c.len(), path.join(" -> "))?;
            } else {
                writeln!(out, "{} files import each other: {}", c.len(), c.join(", "))?;
                writeln!(out, "  for example: {}", path.join(" -> "))?;
            }
        }
        if !json_out && cycles.is_empty() {
            writeln!(out, "no import cycles")?;
        }
        return Ok(0);
    }
    match args.format.as_deref().or(json_out.then_some("json")) {
        Some("json") => {
            let cycles = graph.cycles();
            writeln!(
                out,
                "{}",
                json!({
                    "nodes": graph.nodes, "edges": graph.edges, "external": graph.external,
                    "packages": graph.packages, "cycles": cycles,
                })
            )?;
        }
        Some("dot") => write!(out, "{}", graph.to_dot())?,
        Some("mermaid") => write!(out, "{}", graph.to_mermaid())?,
        Some(other) => bail!("unknown --format `{other}`: use json, dot or mermaid"),
        None => {
            let cycles = graph.cycles();
            writeln!(
                out,
                "{} nodes, {} import edges, {} external imports, {} packages, {} cycles",
                graph.nodes.len(),
                graph.edges.len(),
                graph.external.len(),
                graph.packages.len(),
                cycles.len()
            )?;
            let mut fan_in: std::collections::BTreeMap<&str, usize> = Default::default();
            for e in &graph.edges {
                *fan_in.entry(e.to.as_str()).or_default() += 1;
            }
            let mut top: Vec<(&str, usize)> = fan_in.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            writeln!(out, "\nmost imported:")?;
            for (path, n) in top.into_iter().take(15) {
                writeln!(out, "{n:>6}  {path}")?;
            }
            let mut by_eco: std::collections::BTreeMap<&str, usize> = Default::default();
            for p in &graph.packages {
                *by_eco.entry(p.ecosystem.as_str()).or_default() += 1;
            }
            for (eco, n) in by_eco {
                writeln!(out, "packages ({eco}): {n}")?;
            }
            writeln!(out, "\n(--format json|dot|mermaid exports it; --cycles, --dependents FILE)")?;
        }
    }
    Ok(0)
}
