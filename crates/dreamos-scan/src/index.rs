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
use tantivy::indexer::NoMergePolicy;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::facts::{self, Facts, NewFile};
use crate::model::{FileFacts, LineCounts, SymbolKind};
use crate::tokenize::CodeTokenizer;
use crate::walk::{self, Candidate, FileClass, ScanConfig, Skipped, Walker};
use crate::{Lang, ScanError, trigram};

/// The tokenizer name registered on every index.
const CODE: &str = "code";
/// Updates of at most this many files are applied on the calling thread with one
/// indexing thread (a save in watch mode).
const SMALL_UPDATE: usize = 16;
/// Updates of at least this many files end with their segments merged into one.
const MERGE_AFTER: usize = 1_000;
/// Memory for the writers of small updates (tantivy's minimum is 15 MB per thread).
const SMALL_WRITER_MEMORY: usize = 16 * 1024 * 1024;
/// Memory for tantivy's indexing buffers, shared by its threads.
const WRITER_MEMORY: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// The file's id in the facts (everything a hit shows is read from there); indexed
    /// too, to delete a file's documents.
    pub file_id: Field,
    /// The definition's position in its file's list (`u64::MAX` for the file document).
    pub idx: Field,
    /// The file's path, on file documents only.
    pub path_words: Field,
    pub name: Field,
    /// The qualified name of the enclosing definition (a method's class).
    pub container: Field,
    pub doc: Field,
    pub content: Field,
    /// [`rank_code`]: language, class and kind, read while scoring and filtering.
    pub rank: Field,
}

/// The trigram index: one document per file, so that its doc ids are dense and its
/// postings small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GramFields {
    pub file_id: Field,
    pub lang: Field,
    pub trigram: Field,
}

/// A raw (untokenized) filter field: no field norms, no stored value.
fn raw() -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    )
}

fn words(record: IndexRecordOption, norms: bool) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(CODE)
            .set_index_option(record)
            .set_fieldnorms(norms),
    )
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // Per document (millions in a large tree) only what ranking needs: no stored values
    // (fast columns instead), no field norms where length does not matter.
    let fields = Fields {
        file_id: b.add_u64_field("file_id", INDEXED | FAST),
        idx: b.add_u64_field("idx", FAST),
        path_words: b.add_text_field("path_words", words(IndexRecordOption::Basic, false)),
        name: b.add_text_field("name", words(IndexRecordOption::WithFreqs, true)),
        container: b.add_text_field("container", words(IndexRecordOption::Basic, false)),
        doc: b.add_text_field("doc", words(IndexRecordOption::WithFreqs, true)),
        content: b.add_text_field("content", words(IndexRecordOption::WithFreqs, true)),
        rank: b.add_u64_field("rank", FAST),
    };
    (b.build(), fields)
}

fn gram_schema() -> (Schema, GramFields) {
    let mut b = Schema::builder();
    let fields = GramFields {
        file_id: b.add_u64_field("file_id", INDEXED | FAST),
        lang: b.add_text_field("lang", raw()),
        trigram: b.add_u64_field("trigram", INDEXED),
    };
    (b.build(), fields)
}

fn open_tantivy(dir: &Path, schema: Schema) -> Result<tantivy::Index, ScanError> {
    std::fs::create_dir_all(dir).map_err(|e| ScanError::io(dir, e))?;
    let index = match tantivy::Index::open_in_dir(dir) {
        Ok(index) if index.schema() == schema => index,
        Ok(_) => {
            return Err(ScanError::Config(format!(
                "the index in {} was made by another version; remove it and index again",
                dir.display()
            )));
        }
        Err(_) => tantivy::Index::create_in_dir(dir, schema)?,
    };
    index.tokenizers().register(CODE, TextAnalyzer::builder(CodeTokenizer::default()).build());
    Ok(index)
}

/// Segments an index may have before its small ones are merged.
const MAX_SEGMENTS: usize = 8;

/// Merges every segment into one, and removes the files of the old ones.
fn merge_all(index: &tantivy::Index, writer: &mut IndexWriter) -> Result<(), ScanError> {
    let segments = index.searchable_segment_ids()?;
    if segments.len() > 1 {
        writer.merge(&segments).wait()?;
        writer.garbage_collect_files().wait()?;
    }
    Ok(())
}

/// Merges the small segments (an eighth of the largest or less) when there are more than
/// [`MAX_SEGMENTS`]; whether it merged.
fn compact(index: &tantivy::Index, writer: &mut IndexWriter) -> Result<bool, ScanError> {
    let metas = index.searchable_segment_metas()?;
    if metas.len() <= MAX_SEGMENTS {
        return Ok(false);
    }
    let largest = metas.iter().map(|m| m.num_docs()).max().unwrap_or(0);
    let small: Vec<_> =
        metas.iter().filter(|m| m.num_docs() <= largest / 8).map(|m| m.id()).collect();
    if small.len() < 2 {
        return Ok(false);
    }
    writer.merge(&small).wait()?;
    writer.garbage_collect_files().wait()?;
    Ok(true)
}

/// What a document is, for ranking and filtering at query time, packed in one number:
/// `lang * 64 + class * 16 + kind`, with kind 0 for a file document and `SymbolKind::ALL`'s
/// index + 1 for a definition, and lang `Lang::ALL`'s index + 1 (0 for plain text).
pub(crate) fn rank_code(lang: Option<Lang>, class: FileClass, kind: Option<SymbolKind>) -> u64 {
    let class = match class {
        FileClass::Source => 0,
        FileClass::Test => 1,
        FileClass::Vendored => 2,
        FileClass::Generated => 3,
    };
    let kind = kind.map_or(0, |k| SymbolKind::ALL.iter().position(|x| *x == k).unwrap_or(0) + 1);
    let lang = lang.map_or(0, |l| Lang::ALL.iter().position(|x| *x == l).unwrap_or(0) + 1);
    (lang * 64 + class * 16 + kind) as u64
}

/// The parts of a rank code: language (if any), kind (if a definition).
pub(crate) fn rank_parts(code: u64) -> (Option<Lang>, Option<SymbolKind>) {
    let lang = (code / 64) as usize;
    let kind = (code % 16) as usize;
    (
        lang.checked_sub(1).and_then(|i| Lang::ALL.get(i).copied()),
        kind.checked_sub(1).and_then(|i| SymbolKind::ALL.get(i).copied()),
    )
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
        hash: [u8; 16],
        class: FileClass,
        facts: Option<FileFacts>,
        lines: LineCounts,
        docs: Vec<TantivyDocument>,
        grams: TantivyDocument,
    },
    Skipped(String),
}

pub struct Index {
    root: PathBuf,
    dir: PathBuf,
    walker: Walker,
    pub(crate) fields: Fields,
    pub(crate) reader: IndexReader,
    pub(crate) gram_fields: GramFields,
    pub(crate) gram_reader: IndexReader,
    tantivy: tantivy::Index,
    grams: tantivy::Index,
    pub(crate) facts: Mutex<Facts>,
    /// The writers, and how many indexing threads they were made with.
    writers: Mutex<Option<(IndexWriter, IndexWriter, usize)>>,
    /// The file table by id, read once and renewed after each update: a broad grep asks
    /// for thousands of files.
    files: Mutex<Option<std::sync::Arc<HashMap<i64, crate::FileRow>>>>,
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
        let (schema, fields) = schema();
        let tantivy = open_tantivy(&dir.join("text"), schema)?;
        let (gram_schema, gram_fields) = gram_schema();
        let grams = open_tantivy(&dir.join("grams"), gram_schema)?;
        let reader = tantivy.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let gram_reader = grams.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let facts = Facts::open(&dir.join("facts.db"))?;
        Ok(Index {
            walker: Walker::new(&root, &config)?,
            root,
            dir: dir.to_path_buf(),
            tantivy,
            fields,
            reader,
            grams,
            gram_fields,
            gram_reader,
            facts: Mutex::new(facts),
            writers: Mutex::new(None),
            files: Mutex::new(None),
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
        self.facts().symbols(name, kind, |path| glob.as_ref().is_none_or(|g| g.is_match(path)))
    }

    /// Merges the small segments that updates left behind, if they have piled up (watch
    /// mode calls this when idle).
    pub fn compact(&self) -> Result<(), ScanError> {
        let mut guard = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let Some((writer, gram_writer, _)) = guard.as_mut() else { return Ok(()) };
        let merged = compact(&self.tantivy, writer)? | compact(&self.grams, gram_writer)?;
        drop(guard);
        if merged {
            self.reader.reload()?;
            self.gram_reader.reload()?;
        }
        Ok(())
    }

    /// The file table by id (cached until the next update).
    pub(crate) fn file_table(
        &self,
    ) -> Result<std::sync::Arc<HashMap<i64, crate::FileRow>>, ScanError> {
        let mut cached = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(table) = cached.as_ref() {
            return Ok(table.clone());
        }
        let table = std::sync::Arc::new(self.facts().files_by_id()?);
        *cached = Some(table.clone());
        Ok(table)
    }

    /// The indexed files, in path order.
    pub fn files(&self) -> Result<Vec<crate::FileRow>, ScanError> {
        self.facts().files()
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
        // What is known of these paths (and, for directories, what lies under them).
        let mut prefixes = Vec::new();
        for path in paths {
            prefixes.push(self.walker.confine(path)?);
        }
        let known = self.facts().known_under(&prefixes)?;
        let mut candidates = Vec::new();
        let mut gone = Vec::new();
        let mut skipped = Vec::new();
        for path in paths {
            let rel = self.walker.confine(path)?;
            let abs = self.root.join(&rel);
            let inside = format!("{rel}/");
            if abs.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                // A directory appeared or changed (a checkout, an extracted archive): its
                // files, and what it no longer holds.
                if self.is_ignored(&abs) {
                    continue;
                }
                let (files, left_out) = self.walker.walk_from(&abs);
                let present: std::collections::HashSet<&str> =
                    files.iter().map(|c| c.rel.as_str()).collect();
                gone.extend(
                    known
                        .keys()
                        .filter(|k| k.starts_with(&inside) && !present.contains(k.as_str()))
                        .cloned(),
                );
                candidates.extend(files);
                skipped.extend(left_out);
                continue;
            }
            // A removed directory takes its files with it.
            if !abs.exists() {
                gone.extend(known.keys().filter(|k| k.starts_with(&inside)).cloned());
            }
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
        gone.sort();
        gone.dedup();
        candidates.sort_by(|a, b| a.rel.cmp(&b.rel));
        candidates.dedup_by(|a, b| a.rel == b.rel);
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
        builder.max_depth(Some(1)).hidden(true).require_git(true).parents(true).follow_links(false);
        let found = builder.build().flatten().any(|e| e.path() == abs);
        !found && abs.exists()
    }

    /// The writers, with `threads` indexing threads: many for a large update, one for a
    /// small one. A small update also gets a small memory budget: tantivy sizes each new
    /// segment's term table from the budget, and allocating and walking a table made for
    /// 256 MB cost a save in watch mode more than everything else together.
    #[allow(clippy::type_complexity)]
    fn writers(
        &self,
        threads: usize,
    ) -> Result<std::sync::MutexGuard<'_, Option<(IndexWriter, IndexWriter, usize)>>, ScanError>
    {
        let mut guard = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_some_and(|w| w.2 != threads) {
            // Dropping the writers waits for their threads and releases the index lock.
            *guard = None;
        }
        if guard.is_none() {
            let busy = |e: tantivy::TantivyError| match e {
                tantivy::TantivyError::LockFailure(..) => ScanError::Conflict(format!(
                    "the index in {} is being written by another process (a running node?)",
                    self.dir.display()
                )),
                other => ScanError::Index(other),
            };
            let (text_memory, gram_memory) = if threads == 1 {
                (SMALL_WRITER_MEMORY, SMALL_WRITER_MEMORY)
            } else {
                (WRITER_MEMORY, WRITER_MEMORY / 2)
            };
            let text = self.tantivy.writer_with_num_threads(threads, text_memory).map_err(busy)?;
            let grams = self.grams.writer_with_num_threads(1, gram_memory).map_err(busy)?;
            text.set_merge_policy(Box::new(NoMergePolicy));
            grams.set_merge_policy(Box::new(NoMergePolicy));
            *guard = Some((text, grams, threads));
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
        let large = candidates.len() >= MERGE_AFTER;
        let threads = self.walker.config().threads();
        let small = candidates.len() <= SMALL_UPDATE;
        let mut guard = self.writers(if small { 1 } else { threads.clamp(1, 8) })?;
        let (writer, gram_writer, _) =
            guard.as_mut().ok_or_else(|| ScanError::Config("no index writer".into()))?;
        let forget = |w: &IndexWriter, g: &IndexWriter, id: i64| {
            w.delete_term(Term::from_field_u64(self.fields.file_id, id as u64));
            g.delete_term(Term::from_field_u64(self.gram_fields.file_id, id as u64));
        };
        let mut facts_guard = self.facts();
        let tx = facts_guard.begin()?;
        let (send, receive) = sync_channel::<(Candidate, Outcome)>(256);
        let result = std::thread::scope(|scope| -> Result<(), ScanError> {
            scope.spawn(|| {
                if small {
                    // A few files (a save, in watch mode): no pool to start.
                    for candidate in candidates {
                        let outcome = self.process(&candidate, known.get(&candidate.rel));
                        let _ = send.send((candidate, outcome));
                    }
                    return;
                }
                let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() else {
                    return;
                };
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
                    Outcome::Indexed { hash, class, facts, lines, docs, mut grams } => {
                        summary.bytes_read += candidate.size;
                        if let Some(old) = old {
                            summary.changed += 1;
                            forget(writer, gram_writer, old.id);
                        } else {
                            summary.added += 1;
                        }
                        summary.symbols += facts.as_ref().map_or(0, |f| f.symbols.len());
                        let file = NewFile {
                            path: &candidate.rel,
                            hash,
                            size: candidate.size,
                            mtime_ns: candidate.mtime_ns,
                            class,
                            facts: facts.as_ref(),
                            lines,
                        };
                        let id = facts::put_file(&tx, old.map(|o| o.id), &file)? as u64;
                        for mut doc in docs {
                            doc.add_u64(self.fields.file_id, id);
                            writer.add_document(doc)?;
                        }
                        grams.add_u64(self.gram_fields.file_id, id);
                        gram_writer.add_document(grams)?;
                    }
                    Outcome::Skipped(reason) => {
                        if let Some(old) = old {
                            forget(writer, gram_writer, old.id);
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
            if let Some(old) = known.get(rel) {
                forget(writer, gram_writer, old.id);
                facts::delete_file(&tx, old.id)?;
                summary.deleted += 1;
            }
        }
        let processed = started.elapsed();
        // Both indexes commit at once: each commit writes and syncs its new segment.
        let (text, grams) = std::thread::scope(|scope| {
            let grams = scope.spawn(|| gram_writer.commit());
            (writer.commit(), grams.join())
        });
        text?;
        grams.map_err(|_| ScanError::Config("the trigram index writer panicked".into()))??;
        let text_committed = started.elapsed();
        let grams_committed = text_committed;
        // Merging is ours to schedule (the writers have no merge policy): never while a
        // save waits. After a large update, one segment per index (no term dictionary kept
        // twice, one segment to visit per search); after a medium one, small segments are
        // merged when they pile up; watch mode compacts when idle.
        if large {
            merge_all(&self.tantivy, writer)?;
            merge_all(&self.grams, gram_writer)?;
        } else if !small {
            compact(&self.tantivy, writer)?;
            compact(&self.grams, gram_writer)?;
        }
        tx.commit()?;
        if large {
            facts_guard.checkpoint()?;
        }
        let facts_committed = started.elapsed();
        summary.files = facts_guard.count()?;
        drop(facts_guard);
        drop(guard);
        self.reader.reload()?;
        self.gram_reader.reload()?;
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::debug!(
            files = summary.added + summary.changed + summary.deleted,
            processed_ms = processed.as_secs_f64() * 1e3,
            text_commit_ms = (text_committed - processed).as_secs_f64() * 1e3,
            grams_commit_ms = (grams_committed - text_committed).as_secs_f64() * 1e3,
            facts_commit_ms = (facts_committed - grams_committed).as_secs_f64() * 1e3,
            reload_ms = (started.elapsed() - facts_committed).as_secs_f64() * 1e3,
            "index updated"
        );
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
        let hash = xxhash_rust::xxh3::xxh3_128(&bytes).to_le_bytes();
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
        let lang = walk::lang_of(&c.rel, &bytes);
        let facts = lang.and_then(|l| crate::extract::extract(l, &bytes));
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.split('\n').collect();
        let line_counts = LineCounts {
            code: lines.iter().filter(|l| !l.trim().is_empty()).count() as u32,
            blank: lines.iter().filter(|l| l.trim().is_empty()).count() as u32,
            comment: 0,
        };
        let docs = self.documents(c, class, facts.as_ref(), &text, &lines);
        let g = &self.gram_fields;
        let mut grams = TantivyDocument::default();
        grams.add_text(g.lang, facts.as_ref().map_or("text", |f| f.lang.as_str()));
        for t in trigram::file_trigrams(&bytes) {
            grams.add_u64(g.trigram, u64::from(t));
        }
        Outcome::Indexed { hash, class, facts, lines: line_counts, docs, grams }
    }

    fn documents(
        &self,
        c: &Candidate,
        class: FileClass,
        facts: Option<&FileFacts>,
        text: &str,
        lines: &[&str],
    ) -> Vec<TantivyDocument> {
        let vocab = crate::compound::Vocab::of_text(text);
        let f = &self.fields;
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
        let mut docs = Vec::with_capacity(symbols.len() + 1);
        let lang = facts.map(|x| x.lang);
        // Top-level definitions are contained in their module: the file's name.
        let stem = c.rel.rsplit('/').next().unwrap_or(&c.rel);
        let module = stem.split('.').next().unwrap_or(stem);
        let mut file = TantivyDocument::default();
        file.add_u64(f.idx, u64::MAX);
        file.add_text(f.path_words, &c.rel);
        file.add_text(f.name, module);
        file.add_text(f.content, &loose);
        file.add_text(f.content, vocab.pieces_of(&loose));
        file.add_u64(f.rank, rank_code(lang, class, None));
        docs.push(file);
        for (i, s) in symbols.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.idx, i as u64);
            doc.add_text(f.name, &s.name);
            if let Some(pieces) = vocab.split(&s.name.to_ascii_lowercase()) {
                doc.add_text(f.name, pieces.join(" "));
            }
            if let Some(p) = s.parent {
                doc.add_text(f.container, &symbols[p].qualified_name);
            }
            if let Some(d) = &s.doc {
                doc.add_text(f.doc, d);
            }
            doc.add_text(f.content, &owned[i]);
            doc.add_text(f.content, vocab.pieces_of(&owned[i]));
            doc.add_u64(f.rank, rank_code(lang, class, Some(s.kind)));
            docs.push(doc);
        }
        docs
    }
}
