//! Structure reports from the facts: totals per language, figures per file, and hotspots
//! (the most complex functions).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{FunctionMetrics, LineCounts};
use crate::{Index, ScanError};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LanguageTotals {
    pub lang: String,
    pub files: usize,
    pub lines: LineCounts,
    pub functions: usize,
    pub cyclomatic_avg: f64,
    pub cyclomatic_max: u32,
    pub cognitive_avg: f64,
    pub cognitive_max: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileMetrics {
    pub path: String,
    pub lang: String,
    pub lines: LineCounts,
    pub functions: usize,
    /// Sums over the file's functions.
    pub cyclomatic: u32,
    pub cognitive: u32,
    pub max_nesting: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hotspot {
    pub path: String,
    pub line: u32,
    pub end_line: u32,
    pub qualified_name: String,
    pub kind: String,
    #[serde(flatten)]
    pub metrics: FunctionMetrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsReport {
    pub files: usize,
    pub lines: LineCounts,
    pub functions: usize,
    pub languages: Vec<LanguageTotals>,
    /// The most complex functions: by cognitive, then cyclomatic complexity.
    pub hotspots: Vec<Hotspot>,
    pub per_file: Vec<FileMetrics>,
}

impl Index {
    /// The report for files under `path_glob` (all files if `None`), with `top` hotspots.
    pub fn metrics(&self, path_glob: Option<&str>, top: usize) -> Result<MetricsReport, ScanError> {
        let glob = path_glob.map(crate::query::path_glob).transpose()?;
        let keep = |p: &str| glob.as_ref().is_none_or(|g| g.is_match(p));
        let files: Vec<_> = self.facts().files()?.into_iter().filter(|f| keep(&f.path)).collect();
        let functions: Vec<_> = self
            .facts()
            .symbols(None, None, keep)?
            .into_iter()
            .filter(|s| s.symbol.metrics.is_some())
            .collect();
        let mut per_file: BTreeMap<&str, FileMetrics> = files
            .iter()
            .map(|f| {
                let lang = f.lang.map_or("text", |l| l.as_str()).to_string();
                let m = FileMetrics {
                    path: f.path.clone(),
                    lang,
                    lines: f.lines,
                    functions: 0,
                    cyclomatic: 0,
                    cognitive: 0,
                    max_nesting: 0,
                };
                (f.path.as_str(), m)
            })
            .collect();
        let mut languages: BTreeMap<String, (LanguageTotals, u64, u64)> = BTreeMap::new();
        let mut total_lines = LineCounts::default();
        for f in &files {
            let lang = f.lang.map_or("text", |l| l.as_str()).to_string();
            let entry = languages
                .entry(lang.clone())
                .or_insert_with(|| (LanguageTotals { lang, ..LanguageTotals::default() }, 0, 0));
            entry.0.files += 1;
            entry.0.lines.add(&f.lines);
            total_lines.add(&f.lines);
        }
        for s in &functions {
            let Some(m) = s.symbol.metrics else { continue };
            if let Some(fm) = per_file.get_mut(s.path.as_str()) {
                fm.functions += 1;
                fm.cyclomatic += m.cyclomatic;
                fm.cognitive += m.cognitive;
                fm.max_nesting = fm.max_nesting.max(m.max_nesting);
            }
            let lang = s.lang.map_or("text", |l| l.as_str()).to_string();
            if let Some((t, cyc, cog)) = languages.get_mut(&lang) {
                t.functions += 1;
                *cyc += u64::from(m.cyclomatic);
                *cog += u64::from(m.cognitive);
                t.cyclomatic_max = t.cyclomatic_max.max(m.cyclomatic);
                t.cognitive_max = t.cognitive_max.max(m.cognitive);
            }
        }
        let languages = languages
            .into_values()
            .map(|(mut t, cyc, cog)| {
                if t.functions > 0 {
                    t.cyclomatic_avg = round2(cyc as f64 / t.functions as f64);
                    t.cognitive_avg = round2(cog as f64 / t.functions as f64);
                }
                t
            })
            .collect();
        let mut hotspots: Vec<Hotspot> = functions
            .iter()
            .filter_map(|s| {
                Some(Hotspot {
                    path: s.path.clone(),
                    line: s.symbol.line,
                    end_line: s.symbol.end_line,
                    qualified_name: s.symbol.qualified_name.clone(),
                    kind: s.symbol.kind.as_str().to_string(),
                    metrics: s.symbol.metrics?,
                })
            })
            .collect();
        hotspots.sort_by(|a, b| {
            (b.metrics.cognitive, b.metrics.cyclomatic)
                .cmp(&(a.metrics.cognitive, a.metrics.cyclomatic))
                .then_with(|| (&a.path, a.line).cmp(&(&b.path, b.line)))
        });
        hotspots.truncate(top);
        Ok(MetricsReport {
            files: files.len(),
            lines: total_lines,
            functions: functions.len(),
            languages,
            hotspots,
            per_file: per_file.into_values().collect(),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
