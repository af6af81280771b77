//! Code-aware tokenisation for the index and for queries.
//!
//! An identifier yields itself, lowercased (`getusername`), and its parts split at
//! snake_case and camelCase boundaries (`get`, `user`, `name`), so `user name` finds
//! `getUserName` and `get_user_name`, and the whole identifier still matches exactly and
//! ranks highest. Identifiers are never stemmed.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Tokens longer than this are noise (hashes, base64, minified code) and are skipped.
const MAX_TOKEN: usize = 64;

/// Calls `sink(token, is_whole_identifier)` for every token of `text`, in order.
pub fn for_each_token(text: &str, mut sink: impl FnMut(&str, bool)) {
    let mut lower = String::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        if c.is_alphanumeric() || c == '_' {
            start.get_or_insert(i);
            continue;
        }
        let Some(s) = start.take() else { continue };
        let word = &text[s..i];
        // Numbers (`42`, `0x1f`) are left to exact search: as words they only swell the index.
        if word.len() > MAX_TOKEN
            || word.bytes().all(|b| b == b'_')
            || word.as_bytes()[0].is_ascii_digit()
        {
            continue;
        }
        lowercase_into(&mut lower, word);
        sink(&lower, true);
        // A word with no separator and no inner capital is one part: skip the split.
        let may_split = word.contains('_')
            || word.bytes().skip(1).any(|b| b.is_ascii_uppercase())
            || !word.is_ascii();
        if may_split {
            let mut parts = 0;
            split_identifier(word, |_| parts += 1);
            if parts > 1 {
                split_identifier(word, |part| {
                    if part.len() > 1 {
                        lowercase_into(&mut lower, part);
                        sink(&lower, false);
                    }
                });
            }
        }
    }
}

fn lowercase_into(out: &mut String, word: &str) {
    out.clear();
    if word.is_ascii() {
        out.push_str(word);
        out.make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

/// The parts of an identifier: `HTTPServerError_v2` -> `HTTP`, `Server`, `Error`, `v2`.
pub fn split_identifier(word: &str, mut sink: impl FnMut(&str)) {
    for piece in word.split('_').filter(|p| !p.is_empty()) {
        if piece.is_ascii() {
            let b = piece.as_bytes();
            let mut from = 0;
            for k in 1..b.len() {
                let (c, prev) = (b[k], b[k - 1]);
                let next_lower = b.get(k + 1).is_some_and(u8::is_ascii_lowercase);
                let boundary = c.is_ascii_uppercase()
                    && (prev.is_ascii_lowercase()
                        || prev.is_ascii_digit()
                        || (prev.is_ascii_uppercase() && next_lower));
                if boundary {
                    sink(&piece[from..k]);
                    from = k;
                }
            }
            sink(&piece[from..]);
            continue;
        }
        let chars: Vec<(usize, char)> = piece.char_indices().collect();
        let mut from = 0;
        for k in 1..chars.len() {
            let (i, c) = chars[k];
            let prev = chars[k - 1].1;
            let next_lower = chars.get(k + 1).is_some_and(|(_, n)| n.is_lowercase());
            // fooBar | FOOBar: a new word starts at an upper-case letter after a lower-case
            // one, or at the last capital of a run followed by lower case.
            let boundary = (c.is_uppercase() && prev.is_lowercase())
                || (c.is_uppercase() && prev.is_uppercase() && next_lower)
                || (c.is_alphabetic() && prev.is_ascii_digit() && c.is_uppercase());
            if boundary {
                sink(&piece[from..i]);
                from = i;
            }
        }
        sink(&piece[from..]);
    }
}

/// The tokens of `text`, whole identifiers and parts, lowercased.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t, _| out.push(t.to_string()));
    out
}

/// tantivy tokenizer over [`for_each_token`]; parts share their identifier's position.
#[derive(Clone, Default)]
pub struct CodeTokenizer {
    buffer: Vec<Token>,
}

pub struct CodeTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        // The token strings of the previous text are reused: no allocation per token.
        let mut used = 0usize;
        let mut position = 0usize;
        let buffer = &mut self.buffer;
        for_each_token(text, |t, whole| {
            if whole && used > 0 {
                position += 1;
            }
            match buffer.get_mut(used) {
                Some(token) => {
                    token.text.clear();
                    token.text.push_str(t);
                    token.position = position;
                }
                None => buffer.push(Token {
                    offset_from: 0,
                    offset_to: 0,
                    position,
                    text: t.to_string(),
                    position_length: 1,
                }),
            }
            used += 1;
        });
        CodeTokenStream { tokens: &mut self.buffer[..used], next: 0 }
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_the_whole_and_split_into_parts() {
        assert_eq!(tokens("getUserName"), ["getusername", "get", "user", "name"]);
        assert_eq!(tokens("get_user_name"), ["get_user_name", "get", "user", "name"]);
        assert_eq!(tokens("HTTPServerError"), ["httpservererror", "http", "server", "error"]);
        assert_eq!(tokens("parse_utf8 x"), ["parse_utf8", "parse", "utf8", "x"]);
        assert_eq!(tokens("Return the path."), ["return", "the", "path"]);
        // Not stemmed: `files` stays `files`.
        assert_eq!(tokens("files"), ["files"]);
        assert!(tokens(&"a".repeat(100)).is_empty());
        assert_eq!(tokens("mask 0x1f 42 v2"), ["mask", "v2"]);
    }
}
