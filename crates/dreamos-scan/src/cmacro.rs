//! C's macro idioms that defeat a grammar: `if mi_unlikely(x) {` (mimalloc, and the `likely`
//! / `unlikely` macros of many C code bases) is no C syntax until the preprocessor runs, and
//! tree-sitter's error recovery then ends the function early or makes a "function" of the
//! block. Before parsing, such conditions get their parentheses, without moving a byte:
//! `if mi_unlikely(x) {` becomes `if(mi_unlikely(x)){`, so every line and column stays.

use std::borrow::Cow;

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `src` with each `if`/`while` whose condition is a bare macro call parenthesized (same
/// length); `src` itself when there is none.
pub(crate) fn parenthesize_macro_conditions(src: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < src.len() {
        let keyword = if src[i..].starts_with(b"if") {
            2
        } else if src[i..].starts_with(b"while") {
            5
        } else {
            i += 1;
            continue;
        };
        let starts_word = i == 0 || !is_ident(src[i - 1]);
        if starts_word
            && !in_comment(src, i)
            && let Some((open, close)) = bare_call_condition(src, i + keyword)
        {
            let buf = out.get_or_insert_with(|| src.to_vec());
            buf[open] = b'(';
            buf[close] = b')';
        }
        i += keyword;
    }
    match out {
        Some(fixed) => Cow::Owned(fixed),
        None => Cow::Borrowed(src),
    }
}

/// Whether `at` is inside a line comment or a line of a block comment (`//`, or a line whose
/// first characters are `*` or `/*`): a rough test, enough not to touch prose.
fn in_comment(src: &[u8], at: usize) -> bool {
    let line_start = src[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let line = &src[line_start..at];
    let first = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let trimmed = &line[first..];
    trimmed.starts_with(b"*") || trimmed.starts_with(b"/*") || line.windows(2).any(|w| w == b"//")
}

/// After a keyword ending at `from`: ` NAME(...) {`, with a space or tab after the keyword
/// and before the brace. The positions of those two blanks, which become `(` and `)`.
fn bare_call_condition(src: &[u8], from: usize) -> Option<(usize, usize)> {
    let blank = |b: u8| b == b' ' || b == b'\t';
    if !src.get(from).copied().is_some_and(blank) {
        return None;
    }
    let mut at = from;
    while src.get(at).copied().is_some_and(blank) {
        at += 1;
    }
    // A macro's name, then its arguments.
    let name_start = at;
    while src.get(at).copied().is_some_and(is_ident) {
        at += 1;
    }
    if at == name_start || src[name_start].is_ascii_digit() || src.get(at) != Some(&b'(') {
        return None;
    }
    let mut depth = 0usize;
    loop {
        match *src.get(at)? {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b';' | b'{' | b'}' => return None,
            _ => {}
        }
        at += 1;
    }
    let close_blank = at + 1;
    if !src.get(close_blank).copied().is_some_and(blank) {
        return None;
    }
    let mut brace = close_blank;
    while src.get(brace).copied().is_some_and(blank) {
        brace += 1;
    }
    (src.get(brace) == Some(&b'{')).then_some((from, brace - 1))
}

#[cfg(test)]
mod tests {
    use super::parenthesize_macro_conditions as fix;

    #[test]
    fn bare_macro_conditions_get_parentheses_without_moving_a_byte() {
        let cases: [(&str, &str); 7] = [
            ("if mi_unlikely(p == NULL) {", "if(mi_unlikely(p == NULL)){"),
            ("} else if likely(f(x, (y))) {", "} else if(likely(f(x, (y)))){"),
            ("while  unlikely(n)  {", "while( unlikely(n) ){"),
            // Ordinary C, and what is not a bare call, is left alone.
            ("if (x) {", "if (x) {"),
            ("if x {", "if x {"),
            ("diff mi_unlikely(x) {", "diff mi_unlikely(x) {"),
            ("// if mi_unlikely(x) {", "// if mi_unlikely(x) {"),
        ];
        for (before, after) in cases {
            let fixed = fix(before.as_bytes());
            assert_eq!(std::str::from_utf8(&fixed).unwrap(), after);
            assert_eq!(fixed.len(), before.len());
        }
    }
}
