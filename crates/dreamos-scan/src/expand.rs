//! Query words to search terms, for questions in natural language.
//!
//! - English function words (`the`, `of`, `a`) carry no meaning in a question but match
//!   short identifiers (a function named `a`), so long questions drop them.
//! - Code abbreviates: a question about a *directory* should find `mkdir` and `dir_path`,
//!   one about a *string* `to_str`. A table of the usual abbreviations maps both ways.
//! - Questions inflect (`creating`, `files`), identifiers do not (`create`, `file`). Other
//!   forms of a word are tried, but only those the index actually holds.

/// Words that carry no meaning on their own in a question.
const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "for",
    "from",
    "with",
    "into",
    "onto",
    "and",
    "or",
    "but",
    "nor",
    "if",
    "then",
    "else",
    "than",
    "as",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "it",
    "its",
    "this",
    "that",
    "these",
    "those",
    "there",
    "which",
    "who",
    "whom",
    "whose",
    "what",
    "when",
    "where",
    "how",
    "why",
    "do",
    "does",
    "did",
    "done",
    "has",
    "have",
    "had",
    "not",
    "no",
    "so",
    "such",
    "any",
    "all",
    "each",
    "some",
    "can",
    "could",
    "should",
    "would",
    "will",
    "may",
    "might",
    "must",
    "shall",
    "also",
    "only",
    "just",
    "very",
    "we",
    "you",
    "they",
    "he",
    "she",
    "i",
    "me",
    "my",
    "our",
    "your",
    "their",
    "them",
    "us",
    "one",
    "given",
    "otherwise",
    "either",
    "via",
    "per",
    "e",
    "g",
    "eg",
    "ie",
];

/// Common abbreviations in code, as (word, abbreviations).
const ABBREVIATIONS: &[(&str, &[&str])] = &[
    ("address", &["addr"]),
    ("allocate", &["alloc"]),
    ("application", &["app"]),
    ("argument", &["arg", "args"]),
    ("arguments", &["args", "argv"]),
    ("attribute", &["attr", "attrs"]),
    ("attributes", &["attrs"]),
    ("authentication", &["auth"]),
    ("buffer", &["buf"]),
    ("calculate", &["calc"]),
    ("character", &["char", "ch"]),
    ("characters", &["chars"]),
    ("command", &["cmd"]),
    ("compare", &["cmp"]),
    ("configuration", &["config", "cfg", "conf"]),
    ("connection", &["conn"]),
    ("context", &["ctx"]),
    ("count", &["cnt"]),
    ("current", &["cur", "curr"]),
    ("database", &["db"]),
    ("decrement", &["dec"]),
    ("default", &["dflt"]),
    ("define", &["def"]),
    ("delete", &["del"]),
    ("description", &["desc"]),
    ("destination", &["dst", "dest"]),
    ("dictionary", &["dict"]),
    ("directory", &["dir"]),
    ("directories", &["dirs"]),
    ("document", &["doc"]),
    ("element", &["elem", "el"]),
    ("environment", &["env"]),
    ("error", &["err"]),
    ("exception", &["exc"]),
    ("execute", &["exec"]),
    ("expression", &["expr"]),
    ("extension", &["ext"]),
    ("file", &["f"]),
    ("filename", &["fname"]),
    ("format", &["fmt"]),
    ("frequency", &["freq"]),
    ("function", &["func", "fn"]),
    ("generate", &["gen"]),
    ("identifier", &["id", "ident"]),
    ("image", &["img"]),
    ("increment", &["inc"]),
    ("index", &["idx"]),
    ("information", &["info"]),
    ("initialize", &["init"]),
    ("initialise", &["init"]),
    ("integer", &["int"]),
    ("iterator", &["iter"]),
    ("length", &["len"]),
    ("library", &["lib"]),
    ("list", &["lst"]),
    ("make", &["mk"]),
    ("maximum", &["max"]),
    ("memory", &["mem"]),
    ("message", &["msg"]),
    ("minimum", &["min"]),
    ("module", &["mod"]),
    ("number", &["num", "nr"]),
    ("object", &["obj"]),
    ("operation", &["op"]),
    ("package", &["pkg"]),
    ("parameter", &["param", "params"]),
    ("parameters", &["params"]),
    ("parse", &["parser"]),
    ("pointer", &["ptr"]),
    ("position", &["pos"]),
    ("previous", &["prev"]),
    ("process", &["proc"]),
    ("receive", &["recv"]),
    ("reference", &["ref"]),
    ("regular", &["re"]),
    ("remove", &["rm"]),
    ("request", &["req"]),
    ("response", &["resp"]),
    ("result", &["res"]),
    ("sequence", &["seq"]),
    ("source", &["src"]),
    ("specification", &["spec"]),
    ("standard", &["std"]),
    ("statistics", &["stats"]),
    ("string", &["str"]),
    ("strings", &["strs"]),
    ("synchronize", &["sync"]),
    ("system", &["sys"]),
    ("temporary", &["tmp", "temp"]),
    ("text", &["txt"]),
    ("timestamp", &["ts"]),
    ("utility", &["util"]),
    ("utilities", &["utils"]),
    ("value", &["val"]),
    ("values", &["vals"]),
    ("variable", &["var"]),
    ("version", &["ver"]),
    ("window", &["win"]),
];

pub(crate) fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Abbreviations of a word, and the words an abbreviation stands for.
pub(crate) fn abbreviations(word: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (full, short) in ABBREVIATIONS {
        if *full == word {
            out.extend(short.iter().copied());
        } else if short.contains(&word) && word.len() > 1 {
            out.push(full);
        }
    }
    out
}

/// Other forms of an English word: `files` -> `file`, `creating` -> `create`, `created` ->
/// `create`, `copies` -> `copy`, `file` -> `files`. Candidates only: the caller keeps those
/// the index holds.
pub(crate) fn forms(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let n = word.len();
    if n < 4 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return out;
    }
    let stem = |suffix: &str| word.strip_suffix(suffix).filter(|s| s.len() >= 2);
    if let Some(s) = stem("ies") {
        out.push(format!("{s}y"));
    }
    if let Some(s) = stem("es") {
        out.push(s.to_string());
    }
    if let Some(s) = stem("s").filter(|s| !s.ends_with('s')) {
        out.push(s.to_string());
    }
    for suffix in ["ing", "ed"] {
        if let Some(s) = stem(suffix) {
            out.push(s.to_string());
            out.push(format!("{s}e"));
            // `running` -> `run`, `stopped` -> `stop`.
            let b = s.as_bytes();
            if b.len() >= 2 && b[b.len() - 1] == b[b.len() - 2] {
                out.push(s[..s.len() - 1].to_string());
            }
        }
    }
    if let Some(s) = stem("ly") {
        out.push(s.to_string());
    }
    if !word.ends_with('s') {
        out.push(format!("{word}s"));
    }
    out.retain(|f| f != word && f.len() >= 3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_abbreviations_and_stopwords() {
        assert!(forms("files").contains(&"file".to_string()));
        assert!(forms("creating").contains(&"create".to_string()));
        assert!(forms("copies").contains(&"copy".to_string()));
        assert!(forms("stopped").contains(&"stop".to_string()));
        assert!(forms("file").contains(&"files".to_string()));
        assert!(forms("get_x").is_empty(), "identifiers keep their form");
        assert_eq!(abbreviations("directory"), ["dir"]);
        assert_eq!(abbreviations("dir"), ["directory"]);
        assert!(is_stopword("the") && !is_stopword("return"));
    }
}
