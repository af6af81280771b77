//! Structure metrics checked against values counted by hand.

use crate::indexed;

#[test]
fn metrics_match_hand_counts() {
    let t = indexed("tree");
    let report = t.index.metrics(None, 100).unwrap();
    let function = |name: &str| {
        report
            .hotspots
            .iter()
            .find(|h| h.qualified_name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    // Account::post: `if` -> cyclomatic 2, cognitive 1, nesting 1; (&mut self, entry); lines
    // 12-18: 7 code lines.
    let post = &function("Account::post").metrics;
    assert_eq!((post.cyclomatic, post.cognitive, post.max_nesting, post.params), (2, 1, 1, 2));
    assert_eq!((post.lines.code, post.lines.comment, post.lines.blank), (7, 0, 0));
    // ring_push: one `if` -> 2, 1, 1; two parameters; 7 lines.
    let ring = &function("ring_push").metrics;
    assert_eq!((ring.cyclomatic, ring.cognitive, ring.max_nesting, ring.params), (2, 1, 1, 2));
    assert_eq!(ring.lines.total(), 7);
    // parse_config: a comprehension with a `for` and an `if` -> 3; docstring is a comment.
    let parse = &function("parse_config").metrics;
    assert_eq!((parse.cyclomatic, parse.cognitive), (3, 0));
    assert_eq!((parse.lines.code, parse.lines.comment), (3, 1));
    // The most complex function heads the hotspots.
    let top = &report.hotspots[0];
    assert!(report.hotspots.iter().all(|h| h.metrics.cognitive <= top.metrics.cognitive));
    // Per-language totals: three Rust files; lines add up to the files' lines.
    let rust = report.languages.iter().find(|l| l.lang == "rust").unwrap();
    assert_eq!(rust.files, 3);
    let lines: u32 =
        report.per_file.iter().filter(|f| f.lang == "rust").map(|f| f.lines.total()).sum();
    assert_eq!(lines, rust.lines.total());
    assert_eq!(rust.lines.total(), 8 + 19 + 12);
    // A path filter narrows everything.
    let pkg = t.index.metrics(Some("pkg/**"), 10).unwrap();
    assert_eq!(pkg.files, 3);
    assert!(pkg.hotspots.iter().all(|h| h.path.starts_with("pkg/")));
}
