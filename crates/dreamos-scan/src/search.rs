//! Answering queries: ranked search over symbol and file documents, and grep-like search
//! through the trigram prefilter and a real regex engine.

use std::collections::HashSet;
use std::time::Instant;

use rayon::prelude::*;
use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query as TQuery, TermQuery, TermSetQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocSet, Searcher, Term};

use crate::index::{Fields, Index};
use crate::query::{self, Query};
use crate::trigram::{self, TriQuery};
use crate::{Lang, ScanError};
use crate::{bm25f, expand, tokenize};

/// Ranking parameters, tuned on the search-quality benchmark's development split (the
/// Python standard library: docstring first sentence -> function) and checked to move
/// MRR@10 smoothly rather than on a knife's edge. BENCHMARKS.md has the runs.
#[derive(Debug, Clone)]
struct Knobs {
    /// BM25F field weights: the symbol name weighs most, then the enclosing definition.
    fields: [(FieldName, f32); 5],
    /// Score factors by file class: source, test, vendored, generated.
    class: [f32; 4],
    /// Factor of file documents (module-level code: mentions rather than definitions), of
    /// containers (classes, structs, ...: a question is more often about what a function
    /// does), and of minor definitions (constants, macros, impl blocks, type aliases).
    file_doc: f32,
    container_kinds: f32,
    minor_kinds: f32,
    /// Weights of a question word's other forms and of its abbreviations.
    forms: f32,
    abbrev: f32,
    k1: f32,
    b_name: f32,
    b_text: f32,
}

const KNOBS: Knobs = Knobs {
    fields: [
        (FieldName::Name, 6.0),
        (FieldName::Container, 3.0),
        (FieldName::Doc, 1.0),
        (FieldName::Content, 1.0),
        (FieldName::PathWords, 0.5),
    ],
    class: [1.0, 0.5, 0.3, 0.3],
    file_doc: 0.3,
    container_kinds: 0.5,
    minor_kinds: 0.85,
    forms: 0.3,
    abbrev: 0.3,
    k1: 2.0,
    b_name: 0.75,
    b_text: 0.9,
};

impl Knobs {
    /// The factor of every rank code (see `index::rank_code`).
    fn factors(&self) -> std::sync::Arc<Vec<f32>> {
        use crate::SymbolKind as K;
        let mut out = vec![1.0; 64];
        for (class, class_factor) in self.class.iter().enumerate() {
            out[class * 16] = class_factor * self.file_doc;
            for (i, kind) in K::ALL.iter().enumerate() {
                let kind_factor = match kind {
                    K::Class
                    | K::Struct
                    | K::Enum
                    | K::Union
                    | K::Interface
                    | K::Trait
                    | K::Module => self.container_kinds,
                    K::Impl | K::Macro | K::Constant | K::Type => self.minor_kinds,
                    K::Function | K::Method => 1.0,
                };
                out[class * 16 + i + 1] = class_factor * kind_factor;
            }
        }
        std::sync::Arc::new(out)
    }
}

#[derive(Debug, Clone, Copy)]
enum FieldName {
    Name,
    Container,
    Doc,
    Content,
    PathWords,
}

impl FieldName {
    fn of(self, f: &Fields) -> tantivy::schema::Field {
        match self {
            FieldName::Name => f.name,
            FieldName::Container => f.container,
            FieldName::Doc => f.doc,
            FieldName::Content => f.content,
            FieldName::PathWords => f.path_words,
        }
    }
}

/// Paging and the filters the CLI offers as flags.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub limit: usize,
    pub offset: usize,
    /// Lines of context around grep matches and in ranked snippets.
    pub snippet_lines: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self { limit: 20, offset: 0, snippet_lines: 3 }
    }
}

/// Most results one page may hold.
pub const MAX_LIMIT: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnippetLine {
    pub line: u32,
    pub text: String,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Relative to the workspace root.
    pub path: String,
    pub line: u32,
    pub end_line: u32,
    pub column: u32,
    /// The qualified name of the definition (the match's innermost one, in grep mode).
    pub symbol: Option<String>,
    pub kind: Option<String>,
    pub lang: String,
    pub score: f32,
    pub snippet: Vec<SnippetLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResults {
    /// `ranked` or `grep`.
    pub mode: String,
    pub hits: Vec<Hit>,
    pub offset: usize,
    /// Whether there are results after this page.
    pub more: bool,
    pub elapsed_ms: f64,
}

fn lang_terms(field: tantivy::schema::Field, langs: &[Lang]) -> Vec<Term> {
    let mut names: Vec<&str> = Vec::new();
    for l in langs {
        names.push(l.as_str());
        if l.family() == "typescript" {
            names.extend(["typescript", "tsx"]);
        }
    }
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(|n| Term::from_field_text(field, n)).collect()
}

impl Index {
    /// Answers a query string (see [`crate::query`]).
    pub fn search(&self, input: &str, options: &SearchOptions) -> Result<SearchResults, ScanError> {
        let q = query::parse(input)?;
        self.search_query(&q, options)
    }

    pub fn search_query(
        &self,
        q: &Query,
        options: &SearchOptions,
    ) -> Result<SearchResults, ScanError> {
        if q.is_empty() {
            return Err(ScanError::Query(
                "nothing to search for: give words, a \"phrase\", a /regex/ or sym:NAME".into(),
            ));
        }
        if options.limit == 0 || options.limit > MAX_LIMIT {
            return Err(ScanError::Query(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let started = Instant::now();
        let (mode, (hits, more)) = if q.is_grep() {
            ("grep", self.grep(q, options)?)
        } else {
            ("ranked", self.ranked(&self.reader.searcher(), q, options)?)
        };
        Ok(SearchResults {
            mode: mode.into(),
            hits,
            offset: options.offset,
            more,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The filter clauses shared by both modes, over an index's own path and lang fields.
    fn filters(
        &self,
        q: &Query,
        id_field: tantivy::schema::Field,
        lang_field: tantivy::schema::Field,
        clauses: &mut Vec<(Occur, Box<dyn TQuery>)>,
    ) -> Result<(), ScanError> {
        if !q.langs.is_empty() {
            clauses
                .push((Occur::Must, Box::new(TermSetQuery::new(lang_terms(lang_field, &q.langs)))));
        }
        if !q.not_langs.is_empty() {
            clauses.push((
                Occur::MustNot,
                Box::new(TermSetQuery::new(lang_terms(lang_field, &q.not_langs))),
            ));
        }
        if !q.paths.is_empty() || !q.not_paths.is_empty() {
            // Globs are matched against the known paths; the index then filters by file id.
            let ids: Vec<Term> = self
                .facts()
                .ids(|path| q.path_ok(path))?
                .into_iter()
                .map(|id| Term::from_field_u64(id_field, id as u64))
                .collect();
            clauses.push((Occur::Must, Box::new(TermSetQuery::new(ids))));
        }
        Ok(())
    }

    fn ranked(
        &self,
        searcher: &Searcher,
        q: &Query,
        options: &SearchOptions,
    ) -> Result<(Vec<Hit>, bool), ScanError> {
        let f = &self.fields;
        let knobs = &KNOBS;
        let mut query_tokens = HashSet::new();
        let mut tokens: Vec<String> = Vec::new();
        for word in &q.words {
            let mut word_tokens = tokenize::tokens(word);
            // An identifier the index holds whole (`tcp_v4_connect`) is asked for as such:
            // its parts (`tcp`, `connect`) are common words that would only add noise and
            // time. One it does not hold is looked for by its parts.
            if word_tokens.len() > 1
                && searcher.doc_freq(&Term::from_field_text(f.name, &word_tokens[0])).unwrap_or(0)
                    + searcher
                        .doc_freq(&Term::from_field_text(f.content, &word_tokens[0]))
                        .unwrap_or(0)
                    > 0
            {
                word_tokens.truncate(1);
            }
            for token in word_tokens {
                if query_tokens.insert(token.clone()) {
                    tokens.push(token);
                }
            }
        }
        // A question drops its function words, unless nothing else is left.
        let meaningful: Vec<&String> =
            tokens.iter().filter(|t| !expand::is_stopword(t) && t.len() > 1).collect();
        let kept: Vec<&String> = if meaningful.is_empty() || tokens.len() < 3 {
            tokens.iter().collect()
        } else {
            meaningful
        };
        let exists = |t: &str| {
            searcher.doc_freq(&Term::from_field_text(f.content, t)).unwrap_or(0) > 0
                || searcher.doc_freq(&Term::from_field_text(f.name, t)).unwrap_or(0) > 0
        };
        let mut terms: Vec<bm25f::QueryTerm> = Vec::new();
        for token in kept {
            terms.push(bm25f::QueryTerm { text: token.clone(), weight: 1.0 });
            for form in expand::forms(token) {
                if !query_tokens.contains(&form) && exists(&form) {
                    terms.push(bm25f::QueryTerm { text: form, weight: knobs.forms });
                }
            }
            for abbrev in expand::abbreviations(token) {
                if !query_tokens.contains(abbrev) && exists(abbrev) {
                    terms.push(bm25f::QueryTerm { text: abbrev.to_string(), weight: knobs.abbrev });
                }
            }
        }
        // Filters decide which documents may appear; they do not score.
        let mut clauses: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
        for name in &q.sym {
            // `sym:tcp_connect` is that name when the index has it, else a name with all of
            // its parts (`tcp` and `connect`).
            let mut parts = tokenize::tokens(name);
            if parts.is_empty() {
                return Err(ScanError::Query(format!("sym:{name} has no name characters")));
            }
            if searcher.doc_freq(&Term::from_field_text(f.name, &parts[0])).unwrap_or(0) > 0 {
                parts.truncate(1);
            } else if parts.len() > 1 {
                parts.remove(0);
            }
            let mut required: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
            for token in parts {
                if query_tokens.insert(token.clone()) {
                    terms.push(bm25f::QueryTerm { text: token.clone(), weight: 1.0 });
                }
                let term = Term::from_field_text(f.name, &token);
                required
                    .push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(required))));
        }
        for word in &q.not_words {
            for token in tokenize::tokens(word).into_iter().take(1) {
                for field in [f.name, f.content, f.doc] {
                    let term = Term::from_field_text(field, &token);
                    clauses.push((
                        Occur::MustNot,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    ));
                }
            }
        }
        if !clauses.is_empty() && clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        // Kind, language and path filters are checked on each candidate's rank code and
        // file id, not with the index's terms.
        let only_symbols = !q.sym.is_empty() || !q.kinds.is_empty();
        let path_ids: Option<HashSet<u64>> = if q.paths.is_empty() && q.not_paths.is_empty() {
            None
        } else {
            Some(self.facts().ids(|p| q.path_ok(p))?.into_iter().map(|id| id as u64).collect())
        };
        let lang_ok = |lang: Option<Lang>, list: &[Lang]| {
            lang.is_some_and(|l| list.iter().any(|x| *x == l || x.family() == l.family()))
        };
        let accept = |code: u64, file_id: u64| {
            let (lang, kind) = crate::index::rank_parts(code);
            (!only_symbols || kind.is_some())
                && (q.kinds.is_empty() || kind.is_some_and(|k| q.kinds.contains(&k)))
                && !kind.is_some_and(|k| q.not_kinds.contains(&k))
                && (q.langs.is_empty() || lang_ok(lang, &q.langs))
                && !lang_ok(lang, &q.not_langs)
                && path_ids.as_ref().is_none_or(|ids| ids.contains(&file_id))
        };
        let filter = (!clauses.is_empty()).then(|| BooleanQuery::new(clauses));
        // Only symbol names count when only names were asked for.
        let fields: Vec<bm25f::FieldSpec> = if q.words.is_empty() {
            vec![bm25f::FieldSpec { field: f.name, weight: 1.0, b: knobs.b_name }]
        } else {
            knobs
                .fields
                .iter()
                .filter(|(_, w)| *w > 0.0)
                .map(|(name, w)| bm25f::FieldSpec {
                    field: name.of(f),
                    weight: *w,
                    // Container and path have no field norms: their length does not count.
                    b: match name {
                        FieldName::Name => knobs.b_name,
                        FieldName::Container | FieldName::PathWords => 0.0,
                        FieldName::Doc | FieldName::Content => knobs.b_text,
                    },
                })
                .collect()
        };
        let factors = knobs.factors();
        let wanted = options.offset + options.limit + 1;
        // A query for one name ranks the definitions named exactly so first.
        let asked = asked_name(q).and_then(|name| {
            let tokens = tokenize::tokens(name);
            let term = tokens.first()?.clone();
            let held = searcher.doc_freq(&Term::from_field_text(f.name, &term)).unwrap_or(0) > 0;
            held.then_some((name, term, tokens.len() as u32))
        });
        let names_checked =
            std::cell::RefCell::new((0usize, std::collections::HashMap::<u64, Vec<String>>::new()));
        // The facts stay locked from here to the end: hits are read from them below.
        let facts = self.facts();
        let is_exact = |address: DocAddress| -> bool {
            let Some((name, ..)) = &asked else { return false };
            let mut checked = names_checked.borrow_mut();
            let (count, names) = &mut *checked;
            let columns = searcher.segment_reader(address.segment_ord).fast_fields();
            let read = |column: &str| {
                columns.u64(column).ok().map(|c| c.first_or_default_col(0).get_val(address.doc_id))
            };
            let (Some(file_id), Some(idx)) = (read("file_id"), read("idx")) else { return false };
            let listed = match names.entry(file_id) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    // Reading a file's definitions is the cost; a query reads a bounded number.
                    *count += 1;
                    if *count > 500 {
                        return false;
                    }
                    slot.insert(
                        facts
                            .file_by_id(file_id as i64)
                            .ok()
                            .flatten()
                            .map(|(_, symbols)| symbols.into_iter().map(|s| s.name).collect())
                            .unwrap_or_default(),
                    )
                }
            };
            listed.get(idx as usize).is_some_and(|n: &String| n.eq_ignore_ascii_case(name))
        };
        let is_type = |code: u64| {
            use crate::SymbolKind as K;
            matches!(
                crate::index::rank_parts(code).1,
                Some(K::Class | K::Struct | K::Enum | K::Union | K::Interface | K::Trait | K::Type)
            )
        };
        let tiers = asked.as_ref().map(|(_, term, tokens)| bm25f::NameTiers {
            field: f.name,
            term: term.clone(),
            tokens: *tokens,
            is_type: &is_type,
            is_exact: &is_exact,
        });
        let params = bm25f::Params {
            fields: &fields,
            k1: knobs.k1,
            filter: filter.as_ref().map(|q| q as &dyn TQuery),
            accept: &accept,
            factors: &factors,
            limit: wanted,
            name: tiers.as_ref(),
        };
        let top = bm25f::top_docs(searcher, &terms, &params)?;
        let more = top.len() > options.offset + options.limit;
        let page: Vec<(f32, DocAddress)> =
            top.into_iter().skip(options.offset).take(options.limit).collect();
        let mut hits = Vec::with_capacity(page.len());
        for (score, address) in page {
            let columns = searcher.segment_reader(address.segment_ord).fast_fields();
            let read = |name: &str| -> Result<u64, ScanError> {
                Ok(columns.u64(name)?.first_or_default_col(0).get_val(address.doc_id))
            };
            let id = read("file_id")? as i64;
            let Some((file, symbols)) = facts.file_by_id(id)? else { continue };
            let symbol = symbols.get(read("idx")? as usize);
            let (line, end_line, column) = match symbol {
                Some(s) => (s.line, s.end_line, s.column),
                None => (1, file.lines.total().max(1), 1),
            };
            let snippet = self.ranked_snippet(
                &file.path,
                line,
                end_line,
                &query_tokens,
                options.snippet_lines,
            );
            hits.push(Hit {
                symbol: symbol.map(|s| s.qualified_name.clone()),
                kind: symbol.map(|s| s.kind.as_str().to_string()),
                lang: file.lang.map_or("text", |l| l.as_str()).to_string(),
                line,
                end_line,
                column,
                score,
                snippet,
                path: file.path,
            });
        }
        Ok((hits, more))
    }

    /// Reads a file of the workspace, refusing anything that escapes the root.
    pub(crate) fn read_file(&self, rel: &str) -> Option<Vec<u8>> {
        let rel = self.walker().confine(std::path::Path::new(rel)).ok()?;
        std::fs::read(self.root().join(rel)).ok()
    }

    /// The definition's first line, and the lines within it that hold most query words.
    fn ranked_snippet(
        &self,
        path: &str,
        line: u32,
        end_line: u32,
        tokens: &HashSet<String>,
        max_lines: usize,
    ) -> Vec<SnippetLine> {
        let Some(bytes) = self.read_file(path) else { return Vec::new() };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let first = (line.max(1) - 1) as usize;
        let last = (end_line as usize).min(lines.len());
        if first >= last {
            return Vec::new();
        }
        let mut scored: Vec<(usize, usize)> = (first..last)
            .map(|row| {
                let n = tokenize::tokens(lines[row]).iter().filter(|t| tokens.contains(*t)).count();
                (row, n)
            })
            .filter(|(row, n)| *n > 0 && *row != first)
            .collect();
        scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut rows: Vec<usize> = std::iter::once(first)
            .chain(scored.into_iter().map(|(row, _)| row))
            .take(max_lines.max(1))
            .collect();
        if rows.len() < max_lines {
            for row in first + 1..last {
                if rows.len() >= max_lines {
                    break;
                }
                if !rows.contains(&row) {
                    rows.push(row);
                }
            }
        }
        rows.sort_unstable();
        rows.into_iter()
            .map(|row| SnippetLine { line: row as u32 + 1, text: clip(lines[row]) })
            .collect()
    }

    fn grep(&self, q: &Query, options: &SearchOptions) -> Result<(Vec<Hit>, bool), ScanError> {
        let g = &self.gram_fields;
        // Patterns: every phrase, regex and free word must be on the line.
        let mut patterns: Vec<(String, bool)> = Vec::new();
        for p in &q.phrases {
            patterns.push((regex::escape(p), false));
        }
        patterns.extend(q.regexes.iter().cloned());
        for w in &q.words {
            patterns.push((regex::escape(w), true));
        }
        let mut plan = TriQuery::All;
        let mut line_regexes = Vec::new();
        for (pattern, ignore_case) in &patterns {
            let hir = regex_syntax::ParserBuilder::new()
                .case_insensitive(*ignore_case)
                .build()
                .parse(pattern)
                .map_err(|e| ScanError::Query(format!("bad regex /{pattern}/: {e}")))?;
            plan = TriQuery::And(vec![plan, trigram::plan(&hir)]);
            let regex = RegexBuilder::new(pattern)
                .case_insensitive(*ignore_case)
                .build()
                .map_err(|e| ScanError::Query(format!("bad regex /{pattern}/: {e}")))?;
            line_regexes.push(regex);
        }
        // The first pattern, in multi-line mode, tells quickly whether a file can match.
        let (first, first_ci) = &patterns[0];
        let file_filter = RegexBuilder::new(first)
            .case_insensitive(*first_ci)
            .multi_line(true)
            .build()
            .map_err(|e| ScanError::Query(e.to_string()))?;
        let mut clauses: Vec<(Occur, Box<dyn TQuery>)> =
            vec![(Occur::Must, self.trigram_query(&plan))];
        self.filters(q, g.file_id, g.lang, &mut clauses)?;
        let searcher = self.gram_reader.searcher();
        // Candidate files by id, read from a fast column (no stored documents to load).
        let query = BooleanQuery::new(clauses);
        let weight =
            query.weight(tantivy::query::EnableScoring::disabled_from_searcher(&searcher))?;
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().u64("file_id")?.first_or_default_col(0);
            let alive = segment.alive_bitset();
            let mut docs = weight.scorer(segment, 1.0)?;
            let mut doc = docs.doc();
            while doc != tantivy::TERMINATED {
                if !alive.is_some_and(|a| a.is_deleted(doc)) {
                    ids.push(column.get_val(doc) as i64);
                }
                doc = docs.advance();
            }
        }
        let mut files: Vec<(String, String, f32)> = Vec::with_capacity(ids.len());
        {
            let table = self.file_table()?;
            for id in ids {
                let Some(file) = table.get(&id).cloned() else { continue };
                let boost = match file.class {
                    crate::walk::FileClass::Source => 1.0,
                    crate::walk::FileClass::Test => 0.5,
                    _ => 0.3,
                };
                files.push((
                    file.path,
                    file.lang.map_or("text", |l| l.as_str()).to_string(),
                    boost,
                ));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let wanted = options.offset + options.limit + 1;
        let mut hits: Vec<Hit> = Vec::new();
        // Files are verified in parallel, in chunks, until the page is full.
        for chunk in files.chunks(64) {
            let found: Vec<Vec<Hit>> = chunk
                .par_iter()
                .map(|(path, lang, boost)| {
                    self.grep_file(path, lang, *boost, &file_filter, &line_regexes, options)
                })
                .collect();
            hits.extend(found.into_iter().flatten());
            if hits.len() >= wanted {
                break;
            }
        }
        let more = hits.len() > options.offset + options.limit;
        let mut page: Vec<Hit> =
            hits.into_iter().skip(options.offset).take(options.limit).collect();
        let facts = self.facts();
        let mut symbols: (String, Vec<crate::Symbol>) = (String::new(), Vec::new());
        for hit in &mut page {
            if symbols.0 != hit.path {
                symbols = (hit.path.clone(), facts.file_symbols(&hit.path)?);
            }
            if let Some(s) = crate::facts::innermost(&symbols.1, hit.line) {
                hit.symbol = Some(s.qualified_name.clone());
                hit.kind = Some(s.kind.as_str().to_string());
            }
        }
        Ok((page, more))
    }

    fn grep_file(
        &self,
        path: &str,
        lang: &str,
        boost: f32,
        file_filter: &Regex,
        line_regexes: &[Regex],
        options: &SearchOptions,
    ) -> Vec<Hit> {
        let Some(bytes) = self.read_file(path) else { return Vec::new() };
        if !file_filter.is_match(&bytes) {
            return Vec::new();
        }
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        // A final newline does not start another line.
        let count = if bytes.last() == Some(&b'\n') { lines.len() - 1 } else { lines.len() };
        let mut hits = Vec::new();
        for (row, line) in lines.iter().take(count).enumerate() {
            let Some(m) = line_regexes[0].find(line) else { continue };
            if !line_regexes[1..].iter().all(|r| r.is_match(line)) {
                continue;
            }
            let context = options.snippet_lines.saturating_sub(1) / 2;
            let from = row.saturating_sub(context);
            let to = (row + context + 1).min(count);
            hits.push(Hit {
                path: path.to_string(),
                line: row as u32 + 1,
                end_line: row as u32 + 1,
                column: m.start() as u32 + 1,
                symbol: None,
                kind: None,
                lang: lang.to_string(),
                score: boost,
                snippet: (from..to)
                    .map(|r| SnippetLine {
                        line: r as u32 + 1,
                        text: clip(&String::from_utf8_lossy(lines[r])),
                    })
                    .collect(),
            });
        }
        hits
    }

    fn trigram_query(&self, plan: &TriQuery) -> Box<dyn TQuery> {
        let field = self.gram_fields.trigram;
        fn build(field: tantivy::schema::Field, plan: &TriQuery) -> Option<Box<dyn TQuery>> {
            match plan {
                TriQuery::All => None,
                TriQuery::Tri(t) => Some(Box::new(TermQuery::new(
                    Term::from_field_u64(field, u64::from(*t)),
                    IndexRecordOption::Basic,
                ))),
                TriQuery::And(parts) => {
                    let clauses: Vec<(Occur, Box<dyn TQuery>)> = parts
                        .iter()
                        .filter_map(|p| build(field, p))
                        .map(|q| (Occur::Must, q))
                        .collect();
                    (!clauses.is_empty())
                        .then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn TQuery>)
                }
                TriQuery::Or(parts) => {
                    let mut clauses = Vec::new();
                    for p in parts {
                        // One unconstrained alternative makes the whole alternation so.
                        clauses.push((Occur::Should, build(field, p)?));
                    }
                    Some(Box::new(BooleanQuery::new(clauses)))
                }
            }
        }
        build(field, plan).unwrap_or_else(|| Box::new(AllQuery))
    }
}

/// Long lines are cut for display.
/// The one name a query asks for, if that is all it asks: `sym:NAME` alone, or a single
/// identifier-like word (filters aside).
fn asked_name(q: &Query) -> Option<&str> {
    let identifier = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_');
    match (q.sym.as_slice(), q.words.as_slice()) {
        ([name], []) => Some(name.as_str()),
        ([], [word]) if identifier(word) => Some(word.as_str()),
        _ => None,
    }
}

fn clip(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    if line.len() <= 300 {
        return line.to_string();
    }
    let mut end = 300;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}
