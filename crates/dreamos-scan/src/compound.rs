//! Splitting identifiers written without separators: `getroot`, `isdir`, `makedirs`,
//! `splitext`. Case and underscores split most identifiers; these need words.
//!
//! The words come from the file itself (the parts of its `snake_case` and `camelCase`
//! identifiers: a file with `getroot` usually has `root_node` or `set_root` too) and from a
//! short list of words that code uses everywhere. A name is split only into known words of
//! two letters or more, into as few as possible, so `imap` or `strftime` stay whole unless
//! their pieces are known.

use std::collections::HashSet;

use crate::tokenize;

/// Words common to code in any language: verbs of what functions do and nouns of what they
/// handle.
const COMMON: &[&str] = &[
    "abs", "accept", "access", "acquire", "action", "active", "add", "addr", "after", "alias",
    "align", "all", "alloc", "allow", "any", "append", "apply", "arg", "args", "array", "ascii",
    "assert", "async", "at", "attr", "auth", "auto", "back", "base", "before", "begin", "bind",
    "bit", "bits", "block", "body", "bool", "buf", "buffer", "build", "byte", "bytes", "cache",
    "call", "can", "cancel", "case", "cast", "cb", "char", "chars", "check", "child", "chunk",
    "class", "clean", "clear", "client", "clone", "close", "cmd", "code", "col", "color", "column",
    "comment", "common", "compile", "compute", "config", "conn", "connect", "const", "content",
    "context", "copy", "count", "create", "ctx", "cur", "current", "cursor", "data", "date", "day",
    "dec", "decode", "def", "default", "del", "delete", "depth", "desc", "dest", "dict", "diff",
    "dir", "dirs", "disable", "do", "doc", "done", "down", "drop", "dump", "each", "elem", "else",
    "emit", "empty", "enable", "encode", "end", "entry", "env", "eof", "eq", "err", "error",
    "eval", "event", "exc", "exec", "exists", "exit", "expand", "expr", "ext", "extra", "fail",
    "false", "fetch", "field", "file", "files", "fill", "filter", "find", "first", "flag", "flags",
    "float", "flush", "fmt", "font", "for", "form", "format", "frame", "free", "from", "full",
    "func", "gen", "get", "global", "group", "handle", "handler", "has", "hash", "head", "header",
    "height", "help", "hex", "home", "hook", "host", "html", "http", "id", "idx", "in", "inc",
    "index", "info", "init", "inner", "input", "insert", "inst", "int", "into", "io", "is", "item",
    "items", "iter", "join", "json", "key", "keys", "kind", "last", "len", "level", "lib", "line",
    "lines", "link", "list", "load", "local", "lock", "log", "long", "lookup", "loop", "lower",
    "main", "make", "map", "mark", "match", "max", "mem", "merge", "meta", "method", "min", "mk",
    "mod", "mode", "module", "move", "msg", "multi", "name", "names", "new", "next", "node",
    "none", "norm", "not", "num", "obj", "object", "of", "off", "offset", "old", "on", "one", "op",
    "open", "opt", "option", "options", "or", "order", "out", "output", "over", "owner", "pack",
    "page", "pair", "param", "params", "parent", "parse", "part", "pass", "path", "paths", "peek",
    "pid", "pipe", "point", "pop", "port", "pos", "post", "pre", "prefix", "prev", "print", "proc",
    "process", "prop", "proxy", "ptr", "push", "put", "query", "queue", "quote", "raw", "re",
    "read", "ready", "rec", "recv", "ref", "reg", "release", "reload", "remove", "rename", "repr",
    "req", "request", "reset", "resolve", "result", "ret", "rev", "rm", "root", "row", "rule",
    "run", "save", "scan", "seek", "select", "self", "send", "sep", "seq", "server", "set",
    "setup", "shift", "short", "show", "size", "skip", "slice", "sock", "socket", "sort", "source",
    "space", "spec", "split", "src", "start", "stat", "state", "status", "std", "step", "stop",
    "store", "str", "stream", "strip", "struct", "sub", "sum", "super", "swap", "sync", "sys",
    "tab", "table", "tag", "tail", "task", "temp", "term", "test", "text", "the", "thread", "time",
    "timer", "title", "tmp", "to", "token", "top", "total", "trace", "tree", "true", "try", "type",
    "types", "uid", "un", "unit", "unpack", "up", "update", "upper", "uri", "url", "use", "user",
    "util", "val", "valid", "value", "values", "var", "ver", "view", "wait", "walk", "warn",
    "when", "width", "win", "with", "word", "words", "work", "wrap", "write", "xml", "zip",
];

/// Pieces shorter than this are not trusted (except when in `COMMON`).
const MIN_PIECE: usize = 3;
/// Most pieces one name is split into.
const MAX_PIECES: usize = 4;

pub(crate) struct Vocab {
    words: HashSet<String>,
}

impl Vocab {
    /// The words of a file: its identifiers and their parts, where made of letters only.
    pub(crate) fn of_text(text: &str) -> Vocab {
        let mut words: HashSet<String> = HashSet::new();
        let mut lower = String::new();
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.len() < MIN_PIECE || word.len() > 64 || !word.is_ascii() {
                continue;
            }
            tokenize::split_identifier(word, |part| {
                if part.len() >= MIN_PIECE && part.bytes().all(|b| b.is_ascii_alphabetic()) {
                    lower.clear();
                    lower.push_str(part);
                    lower.make_ascii_lowercase();
                    if !words.contains(&lower) {
                        words.insert(lower.clone());
                    }
                }
            });
            if word.bytes().all(|b| b.is_ascii_lowercase()) && !words.contains(word) {
                words.insert(word.to_string());
            }
        }
        Vocab { words }
    }

    fn knows(&self, piece: &str) -> bool {
        COMMON.binary_search(&piece).is_ok()
            || (piece.len() >= MIN_PIECE && self.words.contains(piece))
    }

    /// The pieces of an unseparated lowercase name, if it splits into known words.
    pub(crate) fn split<'w>(&self, word: &'w str) -> Option<Vec<&'w str>> {
        let n = word.len();
        if !(5..=40).contains(&n) || !word.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        // best[i]: the best split of word[..i] as (pieces, shortest piece, where it starts).
        let mut best: Vec<Option<(usize, usize, usize)>> = vec![None; n + 1];
        best[0] = Some((0, usize::MAX, 0));
        for end in 2..=n {
            for start in end.saturating_sub(20)..end.saturating_sub(1) {
                let Some((pieces, shortest, _)) = best[start] else { continue };
                let piece = &word[start..end];
                // The name itself is in its file's words; a piece must be part of it.
                if pieces >= MAX_PIECES || piece.len() == n || !self.knows(piece) {
                    continue;
                }
                let candidate = (pieces + 1, shortest.min(piece.len()), start);
                // Fewer pieces first, then the longest shortest piece.
                let better = match best[end] {
                    None => true,
                    Some((p, s, _)) => {
                        (candidate.0, usize::MAX - candidate.1) < (p, usize::MAX - s)
                    }
                };
                if better {
                    best[end] = Some(candidate);
                }
            }
        }
        let (pieces, _, _) = best[n]?;
        if pieces < 2 {
            return None;
        }
        let mut out = Vec::with_capacity(pieces);
        let mut end = n;
        while end > 0 {
            let (_, _, start) = best[end]?;
            out.push(&word[start..end]);
            end = start;
        }
        out.reverse();
        Some(out)
    }

    /// The pieces of every unseparated identifier in `text`, space-separated, each
    /// identifier once: extra words to index beside the text.
    pub(crate) fn pieces_of(&self, text: &str) -> String {
        let mut seen = HashSet::new();
        let mut out = String::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !(bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            // Only all-lowercase words can be unseparated compounds (others are split by
            // case or underscores already).
            let word = &text[start..i];
            if (5..=40).contains(&word.len())
                && word.bytes().all(|b| b.is_ascii_lowercase())
                && seen.insert(word)
                && let Some(pieces) = self.split(word)
            {
                for p in pieces {
                    out.push_str(p);
                    out.push(' ');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_words_are_sorted_for_binary_search() {
        assert!(COMMON.windows(2).all(|w| w[0] < w[1]), "keep COMMON sorted");
    }

    #[test]
    fn unseparated_names_split_into_known_words() {
        let v = Vocab::of_text(
            "def _setroot(self, element): root_node = element.tree_root\ndef getroot(): pass",
        );
        assert_eq!(v.split("getroot"), Some(vec!["get", "root"]));
        assert_eq!(v.split("isdir"), Some(vec!["is", "dir"]));
        assert_eq!(v.split("makedirs"), Some(vec!["make", "dirs"]));
        assert_eq!(v.split("elementtree"), Some(vec!["element", "tree"]));
        // Unknown pieces: left whole.
        assert_eq!(v.split("strftime"), None);
        assert_eq!(v.split("root"), None, "too short to be a compound");
        assert_eq!(v.split("get_root"), None, "separated names are split by the tokenizer");
        assert_eq!(v.pieces_of("x = getroot(isdir)"), "get root is dir ");
    }
}
