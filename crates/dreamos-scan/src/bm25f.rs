//! BM25F: ranking over several fields of one document as if they were one weighted text.
//!
//! Summing a BM25 score per field (what a boolean query over fields does) counts a word
//! once per field it appears in and saturates each field on its own, so a name that is also
//! written in the body's first line is rewarded twice. BM25F (Robertson, Zaragoza and
//! Taylor, 2004) first adds each field's length-normalised frequency, times the field's
//! weight, and saturates that sum once per term:
//!
//! ```text
//! tf~(t, d)  = sum over fields f of  w_f * tf(t, f, d) / (1 - b_f + b_f * len_f(d) / avglen_f)
//! score(d)   = sum over terms t of   idf(t) * tf~ / (k1 + tf~)
//! ```
//!
//! The postings and field lengths come straight from tantivy's segments.

use std::collections::HashMap;

use tantivy::postings::Postings;
use tantivy::query::{EnableScoring, Query};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, DocSet, Searcher, TERMINATED, Term};

use crate::ScanError;

pub(crate) struct FieldSpec {
    pub field: Field,
    pub weight: f32,
    /// Length normalisation: 0 ignores the field's length, 1 divides by it fully.
    pub b: f32,
}

pub(crate) struct QueryTerm {
    pub text: String,
    /// Words of the question weigh 1; their other forms and abbreviations less.
    pub weight: f32,
}

pub(crate) struct Params<'a> {
    pub fields: &'a [FieldSpec],
    pub k1: f32,
    /// Documents must match this (filters), if given.
    pub filter: Option<&'a dyn Query>,
    /// Documents must pass this, given their rank code and file id.
    pub accept: &'a dyn Fn(u64, u64) -> bool,
    /// A factor per value of the `rank` fast field (kind and class of the document).
    pub factors: &'a [f32],
    pub limit: usize,
    /// When the query asks for one name: tiers by how the document's name matches it.
    pub name: Option<&'a NameTiers<'a>>,
}

/// Tiers for a query that asks for one name (`sym:Runtime`, or the single word `Runtime`):
/// a definition with exactly that name first (types before the rest), then names that
/// contain it, ordered by how much of the name it is; BM25F orders each tier.
pub(crate) struct NameTiers<'a> {
    pub field: Field,
    /// The name's whole token, as the index holds it.
    pub term: String,
    /// How many tokens a definition named exactly so has in `field`.
    pub tokens: u32,
    /// Whether a rank code is a type's (class, struct, enum, ...).
    pub is_type: &'a dyn Fn(u64) -> bool,
    /// Whether a definition is named exactly so, when its token count leaves it in doubt
    /// (an index splits some run-together names into extra pieces).
    pub is_exact: &'a dyn Fn(DocAddress) -> bool,
}

/// Tier bonuses: far above any BM25F score, so that the tiers never mix.
const EXACT: f32 = 1_000.0;
const EXACT_TYPE: f32 = 1_100.0;
const PARTIAL: f32 = 100.0;

impl NameTiers<'_> {
    /// The bonus of `doc` (which holds `term` in `field` with `norm` tokens there).
    fn bonus(&self, code: u64, norm: u32, address: DocAddress) -> f32 {
        // A file document's name is its module's: not a definition named so.
        let definition = crate::index::rank_parts(code).1.is_some();
        let exact = definition
            && (norm == self.tokens
                || (norm > self.tokens && norm <= self.tokens + 3 && (self.is_exact)(address)));
        match exact {
            true if (self.is_type)(code) => EXACT_TYPE,
            true => EXACT,
            false => PARTIAL * self.tokens as f32 / norm.max(self.tokens) as f32,
        }
    }
}

/// The best `limit` documents for `terms`, best first.
pub(crate) fn top_docs(
    searcher: &Searcher,
    terms: &[QueryTerm],
    p: &Params<'_>,
) -> Result<Vec<(f32, DocAddress)>, ScanError> {
    let total_docs = searcher.num_docs().max(1) as f32;
    // Average field lengths over the whole index, and one IDF per term (from the field in
    // which it is most common).
    let mut avg = Vec::with_capacity(p.fields.len());
    for spec in p.fields {
        let (mut tokens, mut docs) = (0u64, 0u64);
        for segment in searcher.segment_readers() {
            tokens += segment.inverted_index(spec.field)?.total_num_tokens();
            docs += u64::from(segment.max_doc());
        }
        avg.push((tokens as f32 / docs.max(1) as f32).max(1.0));
    }
    let mut idf = Vec::with_capacity(terms.len());
    for t in terms {
        let mut df = 0u64;
        for spec in p.fields {
            df = df.max(searcher.doc_freq(&Term::from_field_text(spec.field, &t.text))?);
        }
        let df = df as f32;
        idf.push((1.0 + (total_docs - df + 0.5) / (df + 0.5)).ln());
    }
    let filter_weight = match p.filter {
        Some(q) => Some(q.weight(EnableScoring::disabled_from_searcher(searcher))?),
        None => None,
    };
    let mut best: Vec<(f32, DocAddress)> = Vec::new();
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let allowed = match &filter_weight {
            Some(w) => {
                let mut bits = vec![0u64; segment.max_doc() as usize / 64 + 1];
                let mut docs = w.scorer(segment, 1.0)?;
                let mut doc = docs.doc();
                while doc != TERMINATED {
                    bits[doc as usize / 64] |= 1 << (doc % 64);
                    doc = docs.advance();
                }
                Some(bits)
            }
            None => None,
        };
        let rank = segment.fast_fields().u64("rank")?.first_or_default_col(0);
        let file_id = segment.fast_fields().u64("file_id")?.first_or_default_col(0);
        let mut norms = Vec::with_capacity(p.fields.len());
        let mut inverted = Vec::with_capacity(p.fields.len());
        for spec in p.fields {
            // Fields indexed without norms are only used with `b = 0`.
            norms.push(if spec.b > 0.0 {
                Some(segment.get_fieldnorms_reader(spec.field)?)
            } else {
                None
            });
            inverted.push(segment.inverted_index(spec.field)?);
        }
        let mut scores: HashMap<DocId, f32> = HashMap::new();
        let mut tf: HashMap<DocId, f32> = HashMap::new();
        for (t, term) in terms.iter().enumerate() {
            tf.clear();
            for (f, spec) in p.fields.iter().enumerate() {
                let key = Term::from_field_text(spec.field, &term.text);
                let postings = inverted[f]
                    .read_postings(&key, IndexRecordOption::WithFreqs)
                    .map_err(|e| ScanError::Index(e.into()))?;
                let Some(mut postings) = postings else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    let norm = match &norms[f] {
                        Some(n) => 1.0 - spec.b + spec.b * n.fieldnorm(doc) as f32 / avg[f],
                        None => 1.0,
                    };
                    *tf.entry(doc).or_default() += spec.weight * postings.term_freq() as f32 / norm;
                    doc = postings.advance();
                }
            }
            for (&doc, &x) in &tf {
                *scores.entry(doc).or_default() += term.weight * idf[t] * x / (p.k1 + x);
            }
        }
        // Which documents hold the asked-for name in their name field, and how long it is.
        let named: HashMap<DocId, u32> = match p.name {
            Some(tiers) => {
                let norms = segment.get_fieldnorms_reader(tiers.field)?;
                let key = Term::from_field_text(tiers.field, &tiers.term);
                let mut found = HashMap::new();
                if let Some(mut postings) = segment
                    .inverted_index(tiers.field)?
                    .read_postings(&key, IndexRecordOption::Basic)
                    .map_err(|e| ScanError::Index(e.into()))?
                {
                    let mut doc = postings.doc();
                    while doc != TERMINATED {
                        found.insert(doc, norms.fieldnorm(doc));
                        doc = postings.advance();
                    }
                }
                found
            }
            None => HashMap::new(),
        };
        let alive = segment.alive_bitset();
        for (doc, score) in scores {
            if alive.is_some_and(|a| a.is_deleted(doc)) {
                continue;
            }
            if let Some(bits) = &allowed
                && bits[doc as usize / 64] & (1 << (doc % 64)) == 0
            {
                continue;
            }
            let code = rank.get_val(doc);
            if !(p.accept)(code, file_id.get_val(doc)) {
                continue;
            }
            let factor = p.factors.get((code % 64) as usize).copied().unwrap_or(1.0);
            let address = DocAddress::new(ord as u32, doc);
            let bonus = match (p.name, named.get(&doc)) {
                (Some(tiers), Some(&norm)) => tiers.bonus(code, norm, address),
                _ => 0.0,
            };
            best.push((score * factor + bonus, address));
        }
        keep_best(&mut best, p.limit);
    }
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    best.truncate(p.limit);
    Ok(best)
}

/// Keeps the `limit` best, cheaply, while segments add candidates.
fn keep_best(best: &mut Vec<(f32, DocAddress)>, limit: usize) {
    if best.len() > limit.max(1) * 4 {
        best.select_nth_unstable_by(limit, |a, b| b.0.total_cmp(&a.0));
        best.truncate(limit);
    }
}
