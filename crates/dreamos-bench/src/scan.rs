//! Scanner benchmarks that print their figures beside a reference measured in the same run:
//!
//! - `dreamos-bench index PATH`: a cold index (seconds, MB/s, peak memory, index size) beside
//!   universal-ctags (`ctags -R`) on the same tree, and how many of the function, method,
//!   class and struct definitions ctags finds are found too.
//! - `dreamos-bench search PATH`: latency of identifier, phrase and regex queries on an index
//!   of the tree, beside ripgrep on the same files for the phrase and regex ones, with a check
//!   that both return the same lines.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dreamos_scan::{Index, SearchOptions};
use rand::prelude::*;
use serde_json::Value;

#[derive(Args, Clone)]
pub struct IndexBench {
    /// The tree to index.
    path: PathBuf,
    /// The reference tagger (universal-ctags); `none` skips it.
    #[arg(long, default_value = "ctags")]
    ctags: String,
}

#[derive(Args, Clone)]
pub struct SearchBench {
    /// The tree to search (indexed first, into a temporary data dir).
    path: PathBuf,
    /// Queries of each type.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// The reference searcher (ripgrep); `none` skips it.
    #[arg(long, default_value = "rg")]
    rg: String,
    /// Reuse the index in this directory (made by an earlier run) instead of indexing.
    #[arg(long)]
    index_dir: Option<PathBuf>,
}

/// Peak resident memory of this process so far, in bytes (Linux).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() { dir_size(&entry.path()) } else { meta.len() };
    }
    total
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub fn index(args: &IndexBench) -> Result<()> {
    let root =
        args.path.canonicalize().with_context(|| format!("cannot read {}", args.path.display()))?;
    let corpus = dir_size(&root);
    println!("dreamos-bench index {}: {:.1} MB in the tree", root.display(), mb(corpus));
    let data = tempfile::tempdir()?;
    let started = Instant::now();
    let index = Index::open(data.path(), &root, Default::default())?;
    let summary = index.update(&mut |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let size = dir_size(data.path());
    let peak = peak_memory().unwrap_or(0);
    println!(
        "  dreamos: {} files, {:.1} MB read, {} definitions in {:.2} s: {:.1} MB/s; peak memory {:.0} MB; index {:.1} MB = {:.2}x the tree ({:.2}x the bytes indexed)",
        summary.files,
        mb(summary.bytes_read),
        summary.symbols,
        seconds,
        mb(summary.bytes_read) / seconds,
        mb(peak),
        mb(size),
        size as f64 / corpus.max(1) as f64,
        size as f64 / summary.bytes_read.max(1) as f64,
    );
    if args.ctags == "none" {
        return Ok(());
    }
    // ctags over the same tree, into a file (its JSON gives long kind names and lines).
    let tags = data.path().join("ctags.json");
    let started = Instant::now();
    let status = Command::new(&args.ctags)
        .args(["-R", "--output-format=json", "--fields=+n", "-f"])
        .arg(&tags)
        .arg(&root)
        .status()
        .with_context(|| format!("cannot run {}", args.ctags))?;
    let ctags_seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{} failed: {status}", args.ctags);
    }
    println!(
        "  ctags -R: {:.2} s: {:.1} MB/s (one thread); dreamos / ctags time: {:.2}x",
        ctags_seconds,
        mb(corpus) / ctags_seconds,
        seconds / ctags_seconds
    );
    // Which of ctags' definitions we found, on the files both indexed.
    // The files we parse (a language of ours): other files are searched, not parsed.
    let indexed: HashSet<String> =
        index.files()?.into_iter().filter(|f| f.lang.is_some()).map(|f| f.path).collect();
    let mut by_file: HashMap<String, Vec<(String, u32, u32, u32)>> = HashMap::new();
    for s in index.symbols(None, None, None)? {
        by_file.entry(s.path).or_default().push((
            s.symbol.name,
            s.symbol.line,
            s.symbol.end_line,
            s.symbol.name_line,
        ));
    }
    let text = std::fs::read_to_string(&tags)?;
    let (mut wanted, mut found, mut anonymous) = (0u64, 0u64, 0u64);
    let mut per_kind: HashMap<String, (u64, u64)> = HashMap::new();
    let mut missed_examples = Vec::new();
    for line in text.lines() {
        let Ok(tag) = serde_json::from_str::<Value>(line) else { continue };
        let (Some(name), Some(path), Some(kind), Some(tag_line)) = (
            tag["name"].as_str(),
            tag["path"].as_str(),
            tag["kind"].as_str(),
            tag["line"].as_u64(),
        ) else {
            continue;
        };
        let Ok(rel) = Path::new(path).strip_prefix(&root) else { continue };
        let rel = rel.to_string_lossy().to_string();
        let python_method = kind == "member" && rel.ends_with(".py");
        if !(matches!(kind, "function" | "method" | "class" | "struct") || python_method) {
            continue;
        }
        // ctags names anonymous structs and unions `__anon...`: nothing to search for.
        if name.starts_with("__anon") {
            anonymous += 1;
            continue;
        }
        if !indexed.contains(&rel) {
            continue; // a file we do not index (a language we do not parse, or skipped)
        }
        wanted += 1;
        let tag_line = tag_line as u32;
        let hit = by_file.get(&rel).is_some_and(|defs| {
            defs.iter().any(|(n, start, end, at)| {
                n == name && (*at == tag_line || (*start <= tag_line && tag_line <= *end))
            })
        });
        let entry = per_kind.entry(kind.to_string()).or_default();
        entry.0 += 1;
        if hit {
            found += 1;
            entry.1 += 1;
        } else if missed_examples
            .iter()
            .filter(|m: &&String| m.ends_with(&format!("({kind})")))
            .count()
            < 4
        {
            missed_examples.push(format!("{rel}:{tag_line} {name} ({kind})"));
        }
    }
    println!(
        "  definitions: {found} of the {wanted} function/method/class/struct definitions ctags finds in the files we parse: {:.1}%",
        100.0 * found as f64 / wanted.max(1) as f64
    );
    println!(
        "    ({anonymous} anonymous structs and classes that ctags tags as __anon... are left out)"
    );
    let mut kinds: Vec<_> = per_kind.into_iter().collect();
    kinds.sort();
    for (kind, (w, f)) in kinds {
        println!("    {kind:<9} {f:>8} / {w:<8} {:.1}%", 100.0 * f as f64 / w.max(1) as f64);
    }
    if !missed_examples.is_empty() {
        println!("    missed, for example: {}", missed_examples.join(", "));
    }
    Ok(())
}

struct Case {
    kind: &'static str,
    query: String,
    /// For ripgrep: the pattern and whether it is fixed.
    rg: Option<(String, bool)>,
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1));
    samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Queries drawn from the index itself, with a fixed seed.
fn cases(index: &Index, n: usize) -> Result<Vec<Case>> {
    let mut rng = StdRng::seed_from_u64(20261125);
    let functions: Vec<_> = index
        .symbols(None, None, None)?
        .into_iter()
        .filter(|s| s.symbol.kind.is_callable() && s.symbol.name.len() >= 6)
        .collect();
    if functions.is_empty() {
        bail!("the tree has no functions to ask for");
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let f = &functions[rng.random_range(0..functions.len())];
        out.push(Case { kind: "identifier", query: f.symbol.name.clone(), rg: None });
    }
    // Phrases: a piece of a real line (a definition's header), 12 to 30 characters.
    let mut tries = 0;
    while out.iter().filter(|c| c.kind == "phrase").count() < n && tries < n * 20 {
        tries += 1;
        let f = &functions[rng.random_range(0..functions.len())];
        let sig = &f.symbol.signature;
        if sig.len() < 16 || !sig.is_ascii() || sig.contains('"') || sig.contains('\\') {
            continue;
        }
        let start = rng.random_range(0..sig.len().saturating_sub(12));
        let len = rng.random_range(12..=30).min(sig.len() - start);
        let phrase = sig[start..start + len].trim().to_string();
        if phrase.len() < 10 || phrase.starts_with(' ') {
            continue;
        }
        out.push(Case { kind: "phrase", query: format!("\"{phrase}\""), rg: Some((phrase, true)) });
    }
    // Regexes: calls of a function, and names built on one.
    for i in 0..n {
        let f = &functions[rng.random_range(0..functions.len())];
        let name = regex::escape(&f.symbol.name);
        let pattern =
            if i % 2 == 0 { format!(r"\b{name}\s*\(") } else { format!(r"{name}\w*\s*[=,;)]") };
        out.push(Case { kind: "regex", query: format!("/{pattern}/"), rg: Some((pattern, false)) });
    }
    Ok(out)
}

/// Matching lines as (path, line number).
type Lines = HashSet<(String, u32)>;

/// ripgrep's time, matching lines, and how many lines it printed, for one pattern.
fn ripgrep(rg: &str, root: &Path, pattern: &str, fixed: bool) -> Result<(Duration, Lines, usize)> {
    let mut cmd = Command::new(rg);
    cmd.args(["--no-config", "--no-heading", "-n", "--with-filename", "--color", "never"]);
    if fixed {
        cmd.arg("-F");
    }
    cmd.arg("-e").arg(pattern).arg(".").current_dir(root);
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("cannot run {rg}"))?;
    let took = started.elapsed();
    let mut lines = HashSet::new();
    let mut all = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(path), Some(n)) = (parts.next(), parts.next()) else { continue };
        let Ok(n) = n.parse() else { continue };
        all += 1;
        lines.insert((path.trim_start_matches("./").to_string(), n));
    }
    Ok((took, lines, all))
}

pub fn search(args: &SearchBench) -> Result<()> {
    let root =
        args.path.canonicalize().with_context(|| format!("cannot read {}", args.path.display()))?;
    let temp = tempfile::tempdir()?;
    let dir = args.index_dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let index = Index::open(&dir, &root, Default::default())?;
    let started = Instant::now();
    let summary = index.update(&mut |_| {})?;
    println!(
        "dreamos-bench search {}: index of {} files ready in {:.1} s",
        root.display(),
        summary.files,
        started.elapsed().as_secs_f64()
    );
    let indexed: HashSet<String> = index.files()?.into_iter().map(|f| f.path).collect();
    let cases = cases(&index, args.queries)?;
    // What a user waits for: the first page (20 results, as the CLI shows). Phrase and
    // regex queries are also run for all their results, to compare with ripgrep, which
    // always prints everything.
    let page = SearchOptions { limit: 20, offset: 0, snippet_lines: 1 };
    let all = SearchOptions { limit: dreamos_scan::MAX_LIMIT, offset: 0, snippet_lines: 1 };
    // Warm the page cache and the index once, as a running node would be.
    for case in &cases {
        index.search(&case.query, &page)?;
        if case.rg.is_some() {
            index.search(&case.query, &all)?;
        }
    }
    let mut page_times: HashMap<&str, Vec<Duration>> = HashMap::new();
    let mut slowest: Vec<(Duration, String)> = Vec::new();
    let mut full_times: HashMap<&str, Vec<Duration>> = HashMap::new();
    let mut rg_times: HashMap<&str, Vec<Duration>> = HashMap::new();
    let (mut same, mut compared, mut skipped_hits) = (0usize, 0usize, 0usize);
    let mut differences = Vec::new();
    for case in &cases {
        let started = Instant::now();
        index.search(&case.query, &page)?;
        let took = started.elapsed();
        page_times.entry(case.kind).or_default().push(took);
        slowest.push((took, case.query.clone()));
        let Some((pattern, fixed)) = &case.rg else { continue };
        let started = Instant::now();
        let results = index.search(&case.query, &all)?;
        full_times.entry(case.kind).or_default().push(started.elapsed());
        if args.rg == "none" {
            continue;
        }
        let (took, theirs, printed) = ripgrep(&args.rg, &root, pattern, *fixed)?;
        rg_times.entry(case.kind).or_default().push(took);
        let theirs: Lines = theirs.into_iter().filter(|(p, _)| indexed.contains(p)).collect();
        skipped_hits += printed - theirs.len();
        let ours: Lines = results.hits.iter().map(|h| (h.path.clone(), h.line)).collect();
        compared += 1;
        if ours == theirs {
            same += 1;
        } else if differences.len() < 5 {
            let only_ours: Vec<_> = ours.difference(&theirs).take(2).collect();
            let only_theirs: Vec<_> = theirs.difference(&ours).take(2).collect();
            differences.push(format!(
                "{}: ours {} lines, ripgrep {} (only ours e.g. {only_ours:?}, only ripgrep e.g. {only_theirs:?})",
                case.query,
                ours.len(),
                theirs.len(),
            ));
        }
    }
    let mean = |v: &[Duration]| {
        v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len().max(1) as f64 * 1e3
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\n{:<11} {:>6} {:>10} {:>10} {:>13} {:>11} {:>9}",
        "query", "count", "page p50", "page p95", "all results", "rg (all)", "speedup"
    )?;
    for kind in ["identifier", "phrase", "regex"] {
        let Some(t) = page_times.get_mut(kind) else { continue };
        let n = t.len();
        let (p50, p95) = (percentile(t, 0.5), percentile(t, 0.95));
        match (full_times.get(kind), rg_times.get(kind)) {
            (Some(full), Some(rg)) => {
                let (ours, theirs) = (mean(full), mean(rg));
                writeln!(
                    out,
                    "{kind:<11} {n:>6} {p50:>8.2}ms {p95:>8.2}ms {ours:>8.1}ms avg {theirs:>7.1}ms avg {:>7.1}x",
                    theirs / ours
                )?;
            }
            _ => writeln!(
                out,
                "{kind:<11} {n:>6} {p50:>8.2}ms {p95:>8.2}ms {:>13} {:>11} {:>9}",
                "-", "-", "-"
            )?,
        }
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let names: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|(d, q)| format!("{q} ({:.1} ms)", d.as_secs_f64() * 1e3))
        .collect();
    writeln!(out, "slowest first pages: {}", names.join(", "))?;
    if compared > 0 {
        writeln!(
            out,
            "\nsame lines as ripgrep: {same} of {compared} phrase and regex queries ({skipped_hits} ripgrep lines were in files the index leaves out: vendored, generated or over the size cap)"
        )?;
        for d in differences {
            writeln!(out, "  differs: {d}")?;
        }
    }
    Ok(())
}

#[derive(Args, Clone)]
pub struct WatchBench {
    /// A tree to copy into a temporary directory, index and edit there.
    path: PathBuf,
    /// How many edits to time.
    #[arg(long, default_value_t = 30)]
    edits: usize,
}

/// Copies the files of a tree (not hidden ones) into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            bytes += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            bytes += std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(bytes)
}

/// Time from saving an edit to finding it by search, with the index kept fresh by watch.
pub fn watch(args: &WatchBench) -> Result<()> {
    let tree = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    let copied = copy_tree(&args.path, tree.path())?;
    let index = std::sync::Arc::new(Index::open(data.path(), tree.path(), Default::default())?);
    let summary = index.update(&mut |_| {})?;
    println!(
        "dreamos-bench watch: a copy of {} ({} files, {:.1} MB), {} edits",
        args.path.display(),
        summary.files,
        mb(copied),
        args.edits
    );
    let files: Vec<String> = index
        .files()?
        .into_iter()
        .filter(|f| f.lang.is_some() && f.size < 200_000)
        .map(|f| f.path)
        .collect();
    if files.is_empty() {
        bail!("no source files to edit in {}", args.path.display());
    }
    // The bench waits for the watcher's updates (no busy polling: on two cores, polling
    // would take a core from the update it waits for) and searches after each one.
    let (updated, updates) = std::sync::mpsc::channel::<()>();
    let _watch = dreamos_scan::watch(index.clone(), move |_| {
        let _ = updated.send(());
    })?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut samples = Vec::with_capacity(args.edits);
    let options = SearchOptions { limit: 1, offset: 0, snippet_lines: 1 };
    for i in 0..args.edits {
        let rel = &files[rng.random_range(0..files.len())];
        let path = tree.path().join(rel);
        let token = format!("dreamosprobe{i}x{}", rng.random::<u32>());
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        text.push_str(&format!("\n{token} = 1\n"));
        std::fs::write(&path, text)?;
        let saved = Instant::now();
        loop {
            if updates.recv_timeout(Duration::from_secs(10)).is_err() {
                bail!("edit {i} of {rel} was not searchable after 10 s");
            }
            let found =
                index.search(&token, &options)?.hits.first().is_some_and(|h| &h.path == rel);
            if found {
                samples.push(saved.elapsed());
                break;
            }
        }
        // Let the watcher go idle between edits, as between saves.
        std::thread::sleep(Duration::from_millis(100));
        while updates.try_recv().is_ok() {}
    }
    let (p50, p95) = (percentile(&mut samples, 0.5), percentile(&mut samples, 0.95));
    let max = samples.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!("  save -> searchable: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms");
    Ok(())
}
