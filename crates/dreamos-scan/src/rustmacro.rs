//! Rust items written inside configuration macros: tokio keeps `pub fn spawn`, `pub mod fs;`
//! and whole `impl` blocks inside `cfg_rt! { ... }`, `cfg_fs! { ... }` and the like, which
//! the grammar sees as one opaque token tree. Before extraction, such an invocation at item
//! position is rewritten in place, byte for byte, into an inline module (`cfg_rt! {` becomes
//! `mod cfg {`), so the items inside parse as items; the extractor then treats that module as
//! transparent: its items belong to what encloses the macro.

use std::collections::HashSet;

use tree_sitter::{Node, Tree};

/// Macros whose bodies are items: crate-local `cfg_*!` wrappers and `feature!`.
fn holds_items(name: &str) -> bool {
    (name.starts_with("cfg_") && name != "cfg_if") || name == "feature"
}

/// `src` with each item-position `NAME! { ... }` of [`holds_items`] turned into
/// `mod XXXX { ... }` (same length), and the start bytes of those modules; `None` when the
/// file has none.
pub(crate) fn open_item_macros(src: &[u8], tree: &Tree) -> Option<(Vec<u8>, HashSet<usize>)> {
    let mut spans = Vec::new();
    collect(tree.root_node(), src, &mut spans);
    if spans.is_empty() {
        return None;
    }
    let mut out = src.to_vec();
    let mut starts = HashSet::new();
    for (start, bang_end) in spans {
        // `NAME!` (at least 5 bytes: `mod` + a blank + a one-letter name) becomes `mod N`.
        let len = bang_end - start;
        if len < 5 {
            continue;
        }
        out[start..start + 4].copy_from_slice(b"mod ");
        for (i, b) in out[start + 4..bang_end].iter_mut().enumerate() {
            *b = if i == 0 { b'm' } else { b'_' };
        }
        starts.insert(start);
    }
    (!starts.is_empty()).then_some((out, starts))
}

/// The `(start, end of the '!')` of every item-position invocation worth opening, nested ones
/// included (they are items of the module their parent becomes).
fn collect(node: Node<'_>, src: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if child.kind() == "macro_invocation"
            && matches!(node.kind(), "source_file" | "declaration_list")
            && let Some(name) = child.child_by_field_name("macro")
            && name.kind() == "identifier"
            && holds_items(std::str::from_utf8(&src[name.byte_range()]).unwrap_or_default())
            && let Some(body) =
                child.named_child((child.named_child_count() as u32).saturating_sub(1))
            && body.kind() == "token_tree"
            && src.get(body.start_byte()) == Some(&b'{')
        {
            // The `!` right after the name, then only blanks up to the brace.
            let bang = name.end_byte();
            let between = &src[bang + 1..body.start_byte()];
            if src.get(bang) == Some(&b'!') && between.iter().all(u8::is_ascii_whitespace) {
                out.push((name.start_byte(), bang + 1));
            }
        }
        collect(child, src, out);
    }
}
