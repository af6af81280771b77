//! A workspace's index: tantivy documents for ranked and trigram search, SQLite facts for
//! listings, metrics and graphs, and the incremental update that keeps both in step.
//!
//! Every file gets one *file document* (its trigrams for regex search, and the lines that
//! belong to no definition) and one *symbol document* per definition (its name, containers,
//! doc comment and the lines it owns: a class owns its header and fields, its methods own
//! their bodies). Each line is thus indexed once, in the innermost definition around it.
//!
//! An update walks the tree, skips files whose size and mtime are unchanged, hashes the
//! rest, and re-parses only those whose content changed (in parallel). tantivy commits
//! before the facts do: after a crash between the two, the facts still hold the old hashes,
//! so the next update redoes those files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::facts::{self, Facts, NewFile};
use crate::model::{FileFacts, LineCounts, SymbolKind};
use crate::tokenize::CodeTokenizer;
use crate::walk::{self, Candidate, FileClass, ScanConfig, Skipped, Walker};
use crate::{ScanError, trigram};

/// The tokenizer name registered on every index.
const CODE: &str = "code";
/// Memory for tantivy's indexing buffers, shared by its threads.
const WRITER_MEMORY: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub doc_kind: Field,
    pub path: Field,
    pub path_words: Field,
    pub lang: Field,
    pub class: Field,
    pub sym_kind: Field,
    pub name: Field,
    pub qualified: Field,
    pub doc: Field,
    pub content: Field,
    pub calls: Field,
    pub trigram: Field,
    pub line: Field,
    pub end_line: Field,
    pub column: Field,
    pub signature: Field,
    pub boost: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = |stored: bool| {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(CODE)
            .set_index_option(IndexRecordOption::WithFreqs);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored { options.set_stored() } else { options }
    };
    let fields = Fields {
        doc_kind: b.add_text_field("doc_kind", STRING | STORED),
        path: b.add_text_field("path", STRING | STORED),
        path_words: b.add_text_field("path_words", words(false)),
        lang: b.add_text_field("lang", STRING | STORED),
        class: b.add_text_field("class", STRING | STORED),
        sym_kind: b.add_text_field("sym_kind", STRING | STORED),
        name: b.add_text_field("name", words(true)),
        qualified: b.add_text_field("qualified", words(true)),
        doc: b.add_text_field("doc", words(false)),
        content: b.add_text_field("content", words(false)),
        calls: b.add_text_field("calls", STRING),
        trigram: b.add_u64_field("trigram", INDEXED),
        line: b.add_u64_field("line", STORED),
        end_line: b.add_u64_field("end_line", STORED),
        column: b.add_u64_field("column", STORED),
        signature: b.add_text_field("signature", STORED),
        boost: b.add_u64_field("boost", FAST),
    };
    (b.build(), fields)
}

/// How far a document's score is scaled, in percent: definitions above mentions, and test,
/// vendored and generated code down.
fn boost(class: FileClass, kind: Option<SymbolKind>) -> u64 {
    let by_class = match class {
        FileClass::Source => 100,
        FileClass::Test => 50,
        FileClass::Vendored | FileClass::Generated => 30,
    };
    let by_kind = match kind {
        None => 60,
        Some(SymbolKind::Macro | SymbolKind::Constant | SymbolKind::Impl) => 85,
        Some(_) => 100,
    };
    by_class * by_kind / 100
}

/// How an update is going.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What an update did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateSummary {
    /// Files in the index after the update.
    pub files: usize,
    pub added: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub skipped: Vec<Skipped>,
    /// Bytes read and hashed (unchanged files with the same mtime are not read).
    pub bytes_read: u64,
    /// Definitions in the added and changed files.
    pub symbols: usize,
    pub seconds: f64,
}

enum Outcome {
    /// Same size and mtime: not even read.
    Unchanged,
    /// Read, same content: only its mtime is recorded.
    Touched,
    Indexed {
        hash: String,
        class: FileClass,
        facts: Option<FileFacts>,
        lines: LineCounts,
        docs: Vec<TantivyDocument>,
    },
    Skipped(String),
}

pub struct Index {
    root: PathBuf,
    dir: PathBuf,
    walker: Walker,
    pub(crate) tantivy: tantivy::Index,
    pub(crate) fields: Fields,
    pub(crate) reader: IndexReader,
    pub(crate) facts: Mutex<Facts>,
    writer: Mutex<Option<IndexWriter>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("root", &self.root).field("dir", &self.dir).finish()
    }
}

impl Index {
    /// Opens (creating if needed) the index kept in `dir` for the tree at `root`.
    pub fn open(dir: &Path, root: &Path, config: ScanConfig) -> Result<Index, ScanError> {
        let root = root.canonicalize().map_err(|e| ScanError::io(root, e))?;
        if !root.is_dir() {
            return Err(ScanError::Config(format!("{} is not a directory", root.display())));
        }
        let text_dir = dir.join("text");
        std::fs::create_dir_all(&text_dir).map_err(|e| ScanError::io(&text_dir, e))?;
        let (schema, fields) = schema();
        let tantivy = match tantivy::Index::open_in_dir(&text_dir) {
            Ok(index) if index.schema() == schema => index,
            Ok(_) => {
                return Err(ScanError::Config(format!(
                    "the index in {} was made by another version; remove it and index again",
                    dir.display()
                )));
            }
            Err(_) => tantivy::Index::create_in_dir(&text_dir, schema)?,
        };
        tantivy
            .tokenizers()
            .register(CODE, TextAnalyzer::builder(CodeTokenizer::default()).build());
        let reader = tantivy.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let facts = Facts::open(&dir.join("facts.db"))?;
        Ok(Index {
            walker: Walker::new(&root, &config)?,
            root,
            dir: dir.to_path_buf(),
            tantivy,
            fields,
            reader,
            facts: Mutex::new(facts),
            writer: Mutex::new(None),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Definitions from the index, optionally only those with this exact name, of this kind,
    /// or in paths matching a glob; in path order.
    pub fn symbols(
        &self,
        name: Option<&str>,
        kind: Option<SymbolKind>,
        path_glob: Option<&str>,
    ) -> Result<Vec<crate::SymbolRow>, ScanError> {
        let glob = path_glob.map(crate::query::path_glob).transpose()?;
        self.facts().symbols(name, kind.map(|k| k.as_str()), |path| {
            glob.as_ref().is_none_or(|g| g.is_match(path))
        })
    }

    pub(crate) fn walker(&self) -> &Walker {
        &self.walker
    }

    pub(crate) fn facts(&self) -> std::sync::MutexGuard<'_, Facts> {
        self.facts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the index up to date with the whole tree.
    pub fn update(&self, progress: &mut dyn FnMut(&Progress)) -> Result<UpdateSummary, ScanError> {
        let (candidates, skipped) = self.walker.walk();
        let known = self.facts().known()?;
        let present: std::collections::HashSet<&str> =
            candidates.iter().map(|c| c.rel.as_str()).collect();
        let gone: Vec<String> =
            known.keys().filter(|p| !present.contains(p.as_str())).cloned().collect();
        let mut summary = self.apply(candidates, gone, &known, progress)?;
        summary.skipped.extend(skipped);
        Ok(summary)
    }

    /// Brings the given paths up to date (what changed on disk, as a watcher reports it):
    /// each is re-read, or removed from the index if it no longer exists or is no longer
    /// indexable. A path outside the root is refused.
    pub fn update_paths(&self, paths: &[PathBuf]) -> Result<UpdateSummary, ScanError> {
        let known = self.facts().known()?;
        let mut candidates = Vec::new();
        let mut gone = Vec::new();
        let mut skipped = Vec::new();
        for path in paths {
            let rel = self.walker.confine(path)?;
            let abs = self.root.join(&rel);
            let ignored = self.is_ignored(&abs);
            let is_symlink = abs.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
            match (ignored, abs.exists()) {
                (false, true) => match self.walker.admit(&abs, &rel, is_symlink) {
                    Ok(Some(c)) => candidates.push(c),
                    Ok(None) => gone.push(rel),
                    Err(reason) => {
                        skipped.push(Skipped { path: rel.clone(), reason });
                        gone.push(rel);
                    }
                },
                _ => gone.push(rel),
            }
        }
        gone.retain(|p| known.contains_key(p));
        let mut summary = self.apply(candidates, gone, &known, &mut |_| {})?;
        summary.skipped.extend(skipped);
        Ok(summary)
    }

    /// Whether ignore rules, hidden names or exclusions keep a path out of the index.
    fn is_ignored(&self, abs: &Path) -> bool {
        let Some(rel) = self.walker.relative(abs) else { return true };
        if rel.split('/').any(|part| part.starts_with('.')) {
            return true;
        }
        // Ask the walker's own rules: walk the parent directory for this one entry.
        let Some(parent) = abs.parent() else { return true };
        let mut builder = ignore::WalkBuilder::new(parent);
        builder
            .max_depth(Some(1))
            .hidden(true)
            .require_git(false)
            .parents(true)
            .follow_links(false);
        let found = builder.build().flatten().any(|e| e.path() == abs);
        !found && abs.exists()
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Option<IndexWriter>>, ScanError> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let threads = self.walker.config().threads().clamp(1, 8);
            let writer = self.tantivy.writer_with_num_threads(threads, WRITER_MEMORY).map_err(
                |e| match e {
                    tantivy::TantivyError::LockFailure(..) => ScanError::Conflict(format!(
                        "the index in {} is being written by another process (a running node?)",
                        self.dir.display()
                    )),
                    other => ScanError::Index(other),
                },
            )?;
            *guard = Some(writer);
        }
        Ok(guard)
    }

    fn apply(
        &self,
        candidates: Vec<Candidate>,
        gone: Vec<String>,
        known: &HashMap<String, facts::Known>,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<UpdateSummary, ScanError> {
        let started = Instant::now();
        let mut summary = UpdateSummary::default();
        let mut state = Progress {
            files_total: candidates.len(),
            bytes_total: candidates.iter().map(|c| c.size).sum(),
            ..Progress::default()
        };
        progress(&state);
        let mut guard = self.writer()?;
        let writer = guard.as_mut().ok_or_else(|| ScanError::Config("no index writer".into()))?;
        let mut facts_guard = self.facts();
        let tx = facts_guard.begin()?;
        let threads = self.walker.config().threads();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| ScanError::Config(e.to_string()))?;
        let (send, receive) = sync_channel::<(Candidate, Outcome)>(256);
        let result = std::thread::scope(|scope| -> Result<(), ScanError> {
            scope.spawn(|| {
                pool.install(|| {
                    candidates.into_par_iter().for_each_with(send, |send, candidate| {
                        let outcome = self.process(&candidate, known.get(&candidate.rel));
                        let _ = send.send((candidate, outcome));
                    })
                })
            });
            for (candidate, outcome) in receive {
                let old = known.get(&candidate.rel);
                state.files_done += 1;
                state.bytes_done += candidate.size;
                match outcome {
                    Outcome::Unchanged => summary.unchanged += 1,
                    Outcome::Touched => {
                        summary.unchanged += 1;
                        summary.bytes_read += candidate.size;
                        if let Some(old) = old {
                            facts::touch_file(&tx, old.id, candidate.size, candidate.mtime_ns)?;
                        }
                    }
                    Outcome::Indexed { hash, class, facts, lines, docs } => {
                        summary.bytes_read += candidate.size;
                        if old.is_some() {
                            summary.changed += 1;
                            writer.delete_term(Term::from_field_text(
                                self.fields.path,
                                &candidate.rel,
                            ));
                        } else {
                            summary.added += 1;
                        }
                        summary.symbols += facts.as_ref().map_or(0, |f| f.symbols.len());
                        for doc in docs {
                            writer.add_document(doc)?;
                        }
                        let file = NewFile {
                            path: &candidate.rel,
                            hash: &hash,
                            size: candidate.size,
                            mtime_ns: candidate.mtime_ns,
                            class,
                            facts: facts.as_ref(),
                            lines,
                        };
                        facts::put_file(&tx, old.map(|o| o.id), &file)?;
                    }
                    Outcome::Skipped(reason) => {
                        if let Some(old) = old {
                            writer.delete_term(Term::from_field_text(
                                self.fields.path,
                                &candidate.rel,
                            ));
                            facts::delete_file(&tx, old.id)?;
                        }
                        summary.skipped.push(Skipped { path: candidate.rel.clone(), reason });
                    }
                }
                if state.files_done.is_multiple_of(64) || state.files_done == state.files_total {
                    progress(&state);
                }
            }
            Ok(())
        });
        result?;
        for rel in &gone {
            writer.delete_term(Term::from_field_text(self.fields.path, rel));
            if let Some(old) = known.get(rel) {
                facts::delete_file(&tx, old.id)?;
                summary.deleted += 1;
            }
        }
        facts::set_meta(&tx, "root", &self.root.display().to_string())?;
        writer.commit()?;
        tx.commit()?;
        summary.files = facts_guard
            .conn()
            .query_row("SELECT COUNT(*) FROM files", [], |r| r.get::<_, i64>(0))?
            as usize;
        drop(facts_guard);
        drop(guard);
        self.reader.reload()?;
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Reads, hashes and (if its content changed) parses one file into its documents.
    fn process(&self, c: &Candidate, old: Option<&facts::Known>) -> Outcome {
        if old.is_some_and(|o| o.size == c.size && o.mtime_ns == c.mtime_ns) {
            return Outcome::Unchanged;
        }
        let cap = self.walker.config().max_file_bytes;
        let bytes = match walk::read_text(&c.abs, cap) {
            Ok(b) => b,
            Err(reason) => return Outcome::Skipped(reason),
        };
        let hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
        if old.is_some_and(|o| o.hash == hash) {
            return Outcome::Touched;
        }
        let generated = walk::is_generated(&c.rel, &bytes);
        if generated && self.walker.config().skip_generated {
            return Outcome::Skipped("generated".into());
        }
        let class = if generated {
            FileClass::Generated
        } else if self.walker.is_vendored(&c.rel) {
            FileClass::Vendored
        } else if walk::is_test(&c.rel) {
            FileClass::Test
        } else {
            FileClass::Source
        };
        let lang = walk::lang_of(&c.rel);
        let facts = lang.and_then(|l| crate::extract::extract(l, &bytes));
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.split('\n').collect();
        let line_counts = LineCounts {
            code: lines.iter().filter(|l| !l.trim().is_empty()).count() as u32,
            blank: lines.iter().filter(|l| l.trim().is_empty()).count() as u32,
            comment: 0,
        };
        let docs = self.documents(c, class, facts.as_ref(), &bytes, &lines);
        Outcome::Indexed { hash, class, facts, lines: line_counts, docs }
    }

    fn documents(
        &self,
        c: &Candidate,
        class: FileClass,
        facts: Option<&FileFacts>,
        bytes: &[u8],
        lines: &[&str],
    ) -> Vec<TantivyDocument> {
        let f = &self.fields;
        let lang = facts.map(|x| x.lang.as_str()).unwrap_or("text");
        let symbols = facts.map_or(&[][..], |x| &x.symbols[..]);
        // Each line belongs to the innermost definition around it (symbols are in pre-order,
        // so inner ones come later and win).
        let mut owner: Vec<Option<usize>> = vec![None; lines.len()];
        for (i, s) in symbols.iter().enumerate() {
            let (a, b) = (s.line as usize - 1, (s.end_line as usize).min(lines.len()));
            for o in owner.iter_mut().take(b).skip(a) {
                *o = Some(i);
            }
        }
        let mut owned = vec![String::new(); symbols.len()];
        let mut loose = String::new();
        for (row, line) in lines.iter().enumerate() {
            let target = match owner[row] {
                Some(i) => &mut owned[i],
                None => &mut loose,
            };
            target.push_str(line);
            target.push('\n');
        }
        let mut calls: Vec<Vec<&str>> = vec![Vec::new(); symbols.len()];
        for r in facts.map_or(&[][..], |x| &x.references[..]) {
            if let Some(Some(i)) = owner.get(r.line as usize - 1) {
                calls[*i].push(&r.name);
            }
        }
        let mut docs = Vec::with_capacity(symbols.len() + 1);
        let common = |doc: &mut TantivyDocument| {
            doc.add_text(f.path, &c.rel);
            doc.add_text(f.path_words, &c.rel);
            doc.add_text(f.lang, lang);
            doc.add_text(f.class, class.as_str());
        };
        let mut file = TantivyDocument::default();
        common(&mut file);
        file.add_text(f.doc_kind, "file");
        let stem = c.rel.rsplit('/').next().unwrap_or(&c.rel);
        file.add_text(f.name, stem.split('.').next().unwrap_or(stem));
        file.add_text(f.content, &loose);
        file.add_u64(f.line, 1);
        file.add_u64(f.end_line, lines.len().max(1) as u64);
        file.add_u64(f.column, 1);
        file.add_u64(f.boost, boost(class, None));
        for t in trigram::file_trigrams(bytes) {
            file.add_u64(f.trigram, u64::from(t));
        }
        docs.push(file);
        for (i, s) in symbols.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            common(&mut doc);
            doc.add_text(f.doc_kind, "symbol");
            doc.add_text(f.sym_kind, s.kind.as_str());
            doc.add_text(f.name, &s.name);
            doc.add_text(f.qualified, &s.qualified_name);
            if let Some(d) = &s.doc {
                doc.add_text(f.doc, d);
            }
            doc.add_text(f.content, &owned[i]);
            calls[i].sort_unstable();
            calls[i].dedup();
            for name in &calls[i] {
                doc.add_text(f.calls, name);
            }
            doc.add_u64(f.line, u64::from(s.line));
            doc.add_u64(f.end_line, u64::from(s.end_line));
            doc.add_u64(f.column, u64::from(s.column));
            doc.add_text(f.signature, &s.signature);
            doc.add_u64(f.boost, boost(class, Some(s.kind)));
            docs.push(doc);
        }
        docs
    }
}
