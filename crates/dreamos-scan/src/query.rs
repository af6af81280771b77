//! The search query language.
//!
//! ```text
//! parse config file            free words: natural language or identifiers, ranked
//! "fn main("                   an exact substring
//! /fn\s+\w+_test/  /todo/i     a regex (`i`: ignore case)
//! sym:parse_args               symbol names only
//! lang:rust  path:src/**/*.rs  kind:function      filters
//! -path:tests/**  -lang:c  -kind:macro  -word      negations
//! ```
//!
//! A query with an exact substring or a regex is answered line by line, like grep (every
//! pattern, and every free word as a case-insensitive substring, must be on the line); any
//! other query is ranked.

use globset::{GlobBuilder, GlobMatcher};

use crate::model::SymbolKind;
use crate::{Lang, ScanError};

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub words: Vec<String>,
    pub not_words: Vec<String>,
    pub sym: Vec<String>,
    /// Exact substrings.
    pub phrases: Vec<String>,
    /// Regexes, with whether they ignore case.
    pub regexes: Vec<(String, bool)>,
    pub langs: Vec<Lang>,
    pub not_langs: Vec<Lang>,
    pub paths: Vec<GlobMatcher>,
    pub not_paths: Vec<GlobMatcher>,
    pub kinds: Vec<SymbolKind>,
    pub not_kinds: Vec<SymbolKind>,
}

impl Query {
    /// Whether the query is answered line by line.
    pub fn is_grep(&self) -> bool {
        !self.phrases.is_empty() || !self.regexes.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.sym.is_empty() && !self.is_grep()
    }

    /// Whether a path passes the `path:` and `-path:` filters.
    pub fn path_ok(&self, path: &str) -> bool {
        (self.paths.is_empty() || self.paths.iter().any(|g| g.is_match(path)))
            && !self.not_paths.iter().any(|g| g.is_match(path))
    }

    pub fn add_lang(&mut self, lang: &str) -> Result<(), ScanError> {
        self.langs.push(lang.parse().map_err(ScanError::Query)?);
        Ok(())
    }

    pub fn add_path(&mut self, glob: &str) -> Result<(), ScanError> {
        self.paths.push(path_glob(glob)?);
        Ok(())
    }
}

/// A `path:` glob. A glob without a `/` or `*` matches that name anywhere in the tree
/// (`path:tests` finds `a/tests/b.rs`), like a directory or file name filter.
pub(crate) fn path_glob(raw: &str) -> Result<GlobMatcher, ScanError> {
    let pattern = if raw.contains('*') || raw.contains('?') || raw.contains('[') {
        raw.strip_prefix('/').unwrap_or(raw).to_string()
    } else {
        let trimmed = raw.trim_matches('/');
        format!("{{{trimmed},{trimmed}/**,**/{trimmed},**/{trimmed}/**}}")
    };
    GlobBuilder::new(&pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| ScanError::Query(format!("bad path glob `{raw}`: {e}")))
}

/// Parses a query string.
pub fn parse(input: &str) -> Result<Query, ScanError> {
    let mut q = Query::default();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"'
            && let Some((text, next)) = delimited(&chars, i + 1, '"')
            && !text.is_empty()
            && chars.get(next).is_none_or(|c| c.is_whitespace())
        {
            q.phrases.push(text);
            i = next;
            continue;
        }
        // `/` opens a regex only when the text right after it is not a space and the regex
        // is closed at the end of a word: `x / y` and `and/or` are words.
        if c == '/'
            && chars.get(i + 1).is_some_and(|c| !c.is_whitespace() && *c != '/')
            && let Some((text, mut next)) = delimited(&chars, i + 1, '/')
        {
            let mut ignore_case = false;
            if chars.get(next) == Some(&'i')
                && chars.get(next + 1).is_none_or(|c| c.is_whitespace())
            {
                ignore_case = true;
                next += 1;
            }
            if chars.get(next).is_none_or(|c| c.is_whitespace()) {
                regex_syntax::ParserBuilder::new()
                    .case_insensitive(ignore_case)
                    .build()
                    .parse(&text)
                    .map_err(|e| ScanError::Query(format!("bad regex /{text}/: {e}")))?;
                q.regexes.push((text, ignore_case));
                i = next;
                continue;
            }
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        term(&mut q, &token)?;
    }
    Ok(q)
}

/// Text up to the closing delimiter (a backslash escapes it); the index after it.
fn delimited(chars: &[char], mut i: usize, close: char) -> Option<(String, usize)> {
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&close) {
            if close == '/' {
                // Keep the escape: `\/` is a valid regex for a slash.
                out.push('\\');
            }
            out.push(close);
            i += 2;
            continue;
        }
        if c == close {
            return Some((out, i + 1));
        }
        out.push(c);
        i += 1;
    }
    None
}

fn term(q: &mut Query, token: &str) -> Result<(), ScanError> {
    let (negated, body) = match token.strip_prefix('-') {
        Some(rest) if !rest.is_empty() => (true, rest),
        _ => (false, token),
    };
    if let Some((key, value)) = body.split_once(':')
        && !value.is_empty()
        && matches!(key, "lang" | "path" | "file" | "kind" | "sym")
    {
        match (key, negated) {
            ("lang", false) => q.langs.push(value.parse().map_err(ScanError::Query)?),
            ("lang", true) => q.not_langs.push(value.parse().map_err(ScanError::Query)?),
            ("path" | "file", false) => q.paths.push(path_glob(value)?),
            ("path" | "file", true) => q.not_paths.push(path_glob(value)?),
            ("kind", false) => q.kinds.push(value.parse().map_err(ScanError::Query)?),
            ("kind", true) => q.not_kinds.push(value.parse().map_err(ScanError::Query)?),
            ("sym", false) => q.sym.push(value.to_string()),
            ("sym", true) => {
                return Err(ScanError::Query("-sym: is not supported; use -word".into()));
            }
            _ => {}
        }
        return Ok(());
    }
    if negated {
        q.not_words.push(body.to_string());
    } else {
        q.words.push(token.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_language() {
        let q = parse(r#"open file "fn main(" /fo+\/bar/i sym:Parser lang:rs path:src/*.rs -path:tests kind:fn -kind:macro -old"#)
            .unwrap();
        assert_eq!(q.words, ["open", "file"]);
        assert_eq!(q.phrases, ["fn main("]);
        assert_eq!(q.regexes, [(r"fo+\/bar".to_string(), true)]);
        assert_eq!(q.sym, ["Parser"]);
        assert_eq!(q.langs, [Lang::Rust]);
        assert_eq!(q.kinds, [SymbolKind::Function]);
        assert_eq!(q.not_kinds, [SymbolKind::Macro]);
        assert_eq!(q.not_words, ["old"]);
        assert!(q.path_ok("src/main.rs"));
        assert!(!q.path_ok("src/tests/x.rs"));
        assert!(!q.path_ok("lib/main.rs"));
        assert!(q.is_grep());
    }

    #[test]
    fn bad_queries_say_why() {
        for (input, needle) in [
            ("/a(b/", "bad regex"),
            ("lang:cobol", "unknown language"),
            ("kind:widget", "unknown symbol kind"),
            ("path:[", "bad path glob"),
        ] {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        // A bare word containing a colon is just a word.
        assert_eq!(parse("std::io").unwrap().words, ["std::io"]);
        // Slashes and quotes that open nothing are text, as in natural-language questions.
        for text in ["Return self / other.", "a /-separated PATH", "(a // b)", "say \"hi"] {
            let q = parse(text).unwrap();
            assert!(!q.is_grep(), "{text}: {q:?}");
        }
    }
}
