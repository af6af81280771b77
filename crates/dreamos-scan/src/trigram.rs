//! The trigram prefilter for exact-substring and regex search.
//!
//! Each file is indexed with the set of its byte trigrams, ASCII letters folded to lower case
//! and trigrams that span a line break left out (matching is line by line, as in ripgrep). A
//! regex becomes a boolean query over trigrams that every matching file must satisfy: the
//! technique of Russ Cox's "Regular Expression Matching with a Trigram Index" (Google Code
//! Search), computed here over `regex-syntax`'s HIR. Candidates are then verified with the
//! real regex engine, so the prefilter only has to be conservative, never exact.

use std::cell::RefCell;
use std::collections::BTreeSet;

use regex_syntax::hir::{Class, Hir, HirKind};

/// A trigram as indexed: three folded bytes packed into 24 bits.
pub type Trigram = u32;

fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

fn pack(a: u8, b: u8, c: u8) -> Trigram {
    (u32::from(fold(a)) << 16) | (u32::from(fold(b)) << 8) | u32::from(fold(c))
}

thread_local! {
    /// One bit per possible trigram (2 MiB), to deduplicate a file's trigrams in linear time.
    static SEEN: RefCell<Vec<u64>> = RefCell::new(vec![0; (1 << 24) / 64]);
}

/// The distinct trigrams of a file, in order of first appearance.
pub fn file_trigrams(bytes: &[u8]) -> Vec<Trigram> {
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let mut out = Vec::with_capacity(bytes.len() / 4);
        for w in bytes.windows(3) {
            if w.contains(&b'\n') {
                continue;
            }
            let t = pack(w[0], w[1], w[2]);
            let (word, bit) = ((t >> 6) as usize, 1u64 << (t & 63));
            if seen[word] & bit == 0 {
                seen[word] |= bit;
                out.push(t);
            }
        }
        for t in &out {
            seen[(t >> 6) as usize] = 0;
        }
        out
    })
}

/// What a candidate file must contain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TriQuery {
    /// No constraint: every file is a candidate.
    All,
    /// Every one of these trigrams.
    And(Vec<TriQuery>),
    /// At least one.
    Or(Vec<TriQuery>),
    Tri(Trigram),
}

impl TriQuery {
    fn and(self, other: TriQuery) -> TriQuery {
        match (self, other) {
            (TriQuery::All, q) | (q, TriQuery::All) => q,
            (TriQuery::And(mut a), TriQuery::And(b)) => {
                a.extend(b);
                TriQuery::And(a).normal()
            }
            (TriQuery::And(mut a), q) | (q, TriQuery::And(mut a)) => {
                a.push(q);
                TriQuery::And(a).normal()
            }
            (a, b) => TriQuery::And(vec![a, b]).normal(),
        }
    }

    fn or(self, other: TriQuery) -> TriQuery {
        match (self, other) {
            (TriQuery::All, _) | (_, TriQuery::All) => TriQuery::All,
            (TriQuery::Or(mut a), TriQuery::Or(b)) => {
                a.extend(b);
                TriQuery::Or(a).normal()
            }
            (TriQuery::Or(mut a), q) | (q, TriQuery::Or(mut a)) => {
                a.push(q);
                TriQuery::Or(a).normal()
            }
            (a, b) => TriQuery::Or(vec![a, b]).normal(),
        }
    }

    fn normal(self) -> TriQuery {
        match self {
            TriQuery::And(mut v) => {
                v.sort();
                v.dedup();
                if v.len() == 1 { v.pop().unwrap_or(TriQuery::All) } else { TriQuery::And(v) }
            }
            TriQuery::Or(mut v) => {
                v.sort();
                v.dedup();
                // Absorption: `x | (x & y)` is `x`.
                let sets: Vec<Option<BTreeSet<Trigram>>> =
                    v.iter().map(TriQuery::required).collect();
                let mut keep = Vec::with_capacity(v.len());
                for (i, q) in v.into_iter().enumerate() {
                    let absorbed = sets[i].as_ref().is_some_and(|mine| {
                        sets.iter().enumerate().any(|(j, other)| {
                            j != i
                                && other.as_ref().is_some_and(|o| {
                                    o.is_subset(mine) && (o.len() < mine.len() || j < i)
                                })
                        })
                    });
                    if !absorbed {
                        keep.push(q);
                    }
                }
                if keep.len() == 1 {
                    keep.pop().unwrap_or(TriQuery::All)
                } else {
                    TriQuery::Or(keep)
                }
            }
            q => q,
        }
    }

    /// The trigrams a plain conjunction requires, if it is one.
    fn required(&self) -> Option<BTreeSet<Trigram>> {
        match self {
            TriQuery::Tri(t) => Some(BTreeSet::from([*t])),
            TriQuery::And(v) => v
                .iter()
                .map(|q| match q {
                    TriQuery::Tri(t) => Some(*t),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// All trigrams of a literal string (`All` if it is shorter than three bytes).
    pub fn literal(s: &[u8]) -> TriQuery {
        let mut q = TriQuery::All;
        for w in s.windows(3) {
            q = q.and(TriQuery::Tri(pack(w[0], w[1], w[2])));
        }
        q
    }

    /// Any one of the strings.
    fn any_of(set: &BTreeSet<Vec<u8>>) -> TriQuery {
        let mut q: Option<TriQuery> = None;
        for s in set {
            let one = TriQuery::literal(s);
            q = Some(match q {
                None => one,
                Some(q) => q.or(one),
            });
        }
        q.unwrap_or(TriQuery::All)
    }
}

/// Largest set of exact strings kept before they are summarised as prefixes and suffixes.
const MAX_SET: usize = 32;
/// Largest character class expanded into its characters.
const MAX_CLASS: usize = 8;

/// What is known about the strings a sub-expression matches.
#[derive(Debug, Clone)]
struct Info {
    empty_ok: bool,
    /// Every string it can match, when few.
    exact: Option<BTreeSet<Vec<u8>>>,
    /// Possible beginnings and endings of a match.
    prefix: BTreeSet<Vec<u8>>,
    suffix: BTreeSet<Vec<u8>>,
    /// What any match implies.
    matches: TriQuery,
}

fn set(items: impl IntoIterator<Item = Vec<u8>>) -> BTreeSet<Vec<u8>> {
    items.into_iter().collect()
}

fn just_empty() -> BTreeSet<Vec<u8>> {
    set([Vec::new()])
}

fn cross(a: &BTreeSet<Vec<u8>>, b: &BTreeSet<Vec<u8>>) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.insert(s);
        }
    }
    out
}

impl Info {
    fn exactly(strings: BTreeSet<Vec<u8>>) -> Info {
        let empty_ok = strings.iter().any(Vec::is_empty);
        Info {
            empty_ok,
            exact: Some(strings),
            prefix: just_empty(),
            suffix: just_empty(),
            matches: TriQuery::All,
        }
    }

    fn anything(empty_ok: bool) -> Info {
        Info {
            empty_ok,
            exact: None,
            prefix: just_empty(),
            suffix: just_empty(),
            matches: TriQuery::All,
        }
    }

    /// Keeps sets small: a large exact set becomes its prefixes and suffixes (its trigrams
    /// move into `matches`), and long prefixes and suffixes keep only their ends.
    fn simplify(mut self) -> Info {
        if let Some(exact) = &self.exact
            && exact.len() > MAX_SET
        {
            self.matches = self.matches.and(TriQuery::any_of(exact));
            self.prefix = exact.iter().map(|s| s[..s.len().min(2)].to_vec()).collect();
            self.suffix = exact.iter().map(|s| s[s.len().saturating_sub(2)..].to_vec()).collect();
            self.exact = None;
        }
        if self.exact.is_none() {
            if self.prefix.iter().any(|s| s.len() > 2) {
                self.matches = self.matches.and(TriQuery::any_of(&self.prefix));
                self.prefix = self.prefix.iter().map(|s| s[..s.len().min(2)].to_vec()).collect();
            }
            if self.suffix.iter().any(|s| s.len() > 2) {
                self.matches = self.matches.and(TriQuery::any_of(&self.suffix));
                self.suffix =
                    self.suffix.iter().map(|s| s[s.len().saturating_sub(2)..].to_vec()).collect();
            }
            if self.prefix.len() > MAX_SET {
                self.prefix = just_empty();
            }
            if self.suffix.len() > MAX_SET {
                self.suffix = just_empty();
            }
        }
        self
    }

    fn prefixes(&self) -> BTreeSet<Vec<u8>> {
        self.exact.clone().unwrap_or_else(|| self.prefix.clone())
    }

    fn suffixes(&self) -> BTreeSet<Vec<u8>> {
        self.exact.clone().unwrap_or_else(|| self.suffix.clone())
    }

    fn concat(self, next: Info) -> Info {
        let mut matches = self.matches.clone().and(next.matches.clone());
        let exact = match (&self.exact, &next.exact) {
            (Some(a), Some(b)) if a.len() * b.len() <= MAX_SET * 4 => Some(cross(a, b)),
            _ => None,
        };
        if exact.is_none() {
            // What spans the boundary between the two must be in the file too.
            let bridge = cross(&self.suffixes(), &next.prefixes());
            if bridge.len() <= MAX_SET * 4 {
                matches = matches.and(TriQuery::any_of(&bridge));
            }
        }
        let mut prefix = match &self.exact {
            Some(a) => cross(a, &next.prefixes()),
            None => self.prefix.clone(),
        };
        if self.empty_ok && self.exact.is_none() {
            prefix.extend(next.prefixes());
        }
        let mut suffix = match &next.exact {
            Some(b) => cross(&self.suffixes(), b),
            None => next.suffix.clone(),
        };
        if next.empty_ok && next.exact.is_none() {
            suffix.extend(self.suffixes());
        }
        Info { empty_ok: self.empty_ok && next.empty_ok, exact, prefix, suffix, matches }.simplify()
    }

    fn alternate(self, other: Info) -> Info {
        let exact = match (&self.exact, &other.exact) {
            (Some(a), Some(b)) => Some(a.union(b).cloned().collect()),
            _ => None,
        };
        let (a_m, b_m) = (self.matches.clone(), other.matches.clone());
        let (a_full, b_full) = if exact.is_some() {
            (TriQuery::All, TriQuery::All)
        } else {
            (a_m.and(self.exact_query()), b_m.and(other.exact_query()))
        };
        Info {
            empty_ok: self.empty_ok || other.empty_ok,
            prefix: self.prefixes().union(&other.prefixes()).cloned().collect(),
            suffix: self.suffixes().union(&other.suffixes()).cloned().collect(),
            matches: if exact.is_some() {
                self.matches.or(other.matches)
            } else {
                a_full.or(b_full)
            },
            exact,
        }
        .simplify()
    }

    /// What an exact set alone implies.
    fn exact_query(&self) -> TriQuery {
        self.exact.as_ref().map_or(TriQuery::All, TriQuery::any_of)
    }

    /// The final query for a whole pattern.
    fn query(self) -> TriQuery {
        match &self.exact {
            Some(exact) => self.matches.clone().and(TriQuery::any_of(exact)),
            None => self
                .matches
                .clone()
                .and(TriQuery::any_of(&self.prefix))
                .and(TriQuery::any_of(&self.suffix)),
        }
    }
}

fn class_strings(class: &Class) -> Option<BTreeSet<Vec<u8>>> {
    let mut out = BTreeSet::new();
    match class {
        Class::Unicode(c) => {
            let size: u32 = c.ranges().iter().map(|r| r.end() as u32 - r.start() as u32 + 1).sum();
            if size as usize > MAX_CLASS * 2 {
                return None;
            }
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    let mut buf = [0u8; 4];
                    out.insert(ch.encode_utf8(&mut buf).as_bytes().to_ascii_lowercase());
                }
            }
        }
        Class::Bytes(c) => {
            let size: usize = c.ranges().iter().map(|r| (r.end() - r.start()) as usize + 1).sum();
            if size > MAX_CLASS * 2 {
                return None;
            }
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    out.insert(vec![fold(b)]);
                }
            }
        }
    }
    (out.len() <= MAX_CLASS).then_some(out)
}

fn analyze(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info::exactly(just_empty()),
        HirKind::Literal(lit) => Info::exactly(set([lit.0.to_ascii_lowercase()])),
        HirKind::Class(class) => match class_strings(class) {
            Some(strings) => Info::exactly(strings),
            None => Info::anything(false),
        },
        HirKind::Capture(cap) => analyze(&cap.sub),
        HirKind::Repetition(rep) => {
            let sub = analyze(&rep.sub);
            match (rep.min, rep.max) {
                (0, Some(1)) => {
                    let mut exact = sub.exact.clone();
                    if let Some(e) = exact.as_mut() {
                        e.insert(Vec::new());
                    }
                    match exact {
                        Some(e) => Info::exactly(e),
                        None => Info::anything(true),
                    }
                }
                (0, _) => Info::anything(true),
                _ => {
                    // At least one copy: whatever one copy implies, without its exactness.
                    let matches = sub.matches.clone().and(sub.exact_query());
                    Info {
                        empty_ok: sub.empty_ok,
                        exact: None,
                        prefix: sub.prefixes(),
                        suffix: sub.suffixes(),
                        matches,
                    }
                    .simplify()
                }
            }
        }
        HirKind::Concat(parts) => {
            let mut info = Info::exactly(just_empty());
            for p in parts {
                info = info.concat(analyze(p));
            }
            info
        }
        HirKind::Alternation(alts) => {
            let mut it = alts.iter();
            let mut info = it.next().map(analyze).unwrap_or_else(|| Info::exactly(just_empty()));
            for a in it {
                info = info.alternate(analyze(a));
            }
            info
        }
    }
}

/// The trigram query every line matching `hir` satisfies.
pub fn plan(hir: &Hir) -> TriQuery {
    analyze(hir).query()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pattern: &str) -> TriQuery {
        plan(&regex_syntax::parse(pattern).unwrap())
    }

    fn tri(s: &str) -> TriQuery {
        TriQuery::literal(s.as_bytes())
    }

    #[test]
    fn literals_need_all_their_trigrams() {
        assert_eq!(q("abcd"), tri("abcd"));
        assert_eq!(q("ab"), TriQuery::All);
        // Case is folded in the index, so both spellings need the same trigrams.
        assert_eq!(q("(?i)Hello"), tri("hello"));
        assert_eq!(q("HELLO"), tri("hello"));
    }

    #[test]
    fn alternations_and_repetitions() {
        assert_eq!(q("abc|xyz"), tri("abc").or(tri("xyz")));
        assert_eq!(q("foo.*bar"), tri("foo").and(tri("bar")));
        assert_eq!(q("a*"), TriQuery::All);
        assert_eq!(q(r"\w+"), TriQuery::All);
        assert_eq!(q("(abc)+d"), tri("abcd"));
        // A class of a few characters is expanded.
        assert_eq!(q("ab[cd]e"), tri("abce").or(tri("abde")));
        assert_eq!(q(r"fn\s+main"), tri("main"));
        assert_eq!(q("x?abc"), tri("abc"));
    }

    #[test]
    fn file_trigrams_are_distinct_folded_and_within_lines() {
        let t = file_trigrams(b"AbCab\nabc");
        assert_eq!(t, vec![pack(b'a', b'b', b'c'), pack(b'b', b'c', b'a'), pack(b'c', b'a', b'b')]);
        // The scratch bitset is clean for the next file.
        assert_eq!(file_trigrams(b"abc"), vec![pack(b'a', b'b', b'c')]);
    }
}
