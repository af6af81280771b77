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
        if word.len() > MAX_TOKEN || word.bytes().all(|b| b == b'_') {
            continue;
        }
        lower.clear();
        lower.extend(word.chars().flat_map(char::to_lowercase));
        sink(&lower, true);
        let mut parts = 0;
        split_identifier(word, |_| parts += 1);
        if parts > 1 {
            split_identifier(word, |part| {
                if part.len() > 1 {
                    lower.clear();
                    lower.extend(part.chars().flat_map(char::to_lowercase));
                    sink(&lower, false);
                }
            });
        }
    }
}

/// The parts of an identifier: `HTTPServerError_v2` -> `HTTP`, `Server`, `Error`, `v2`.
pub fn split_identifier(word: &str, mut sink: impl FnMut(&str)) {
    for piece in word.split('_').filter(|p| !p.is_empty()) {
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
        self.buffer.clear();
        let mut position = 0usize;
        let buffer = &mut self.buffer;
        for_each_token(text, |t, whole| {
            if whole && !buffer.is_empty() {
                position += 1;
            }
            buffer.push(Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text: t.to_string(),
                position_length: 1,
            });
        });
        CodeTokenStream { tokens: &mut self.buffer, next: 0 }
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
    }
}
