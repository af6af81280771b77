//! Import resolution per language, package manifests, cycles and dependents.

use std::collections::BTreeSet;

use crate::indexed;

#[test]
fn imports_resolve_to_files_per_language() {
    let t = indexed("tree");
    let g = t.index.graph().unwrap();
    let edges: BTreeSet<(String, String, String)> =
        g.edges.iter().map(|e| (e.from.clone(), e.to.clone(), e.kind.clone())).collect();
    let has = |from: &str, to: &str, kind: &str| {
        assert!(
            edges.contains(&(from.to_string(), to.to_string(), kind.to_string())),
            "missing {from} -> {to} ({kind}); edges: {edges:#?}"
        );
    };
    // Rust: `mod` declarations, `use crate::...` to modules and to the file defining an item.
    has("crate/src/lib.rs", "crate/src/accounts.rs", "mod");
    has("crate/src/lib.rs", "crate/src/journal.rs", "mod");
    has("crate/src/lib.rs", "crate/src/accounts.rs", "import");
    has("crate/src/accounts.rs", "crate/src/journal.rs", "import");
    has("crate/src/accounts.rs", "crate/src/lib.rs", "import"); // crate::Result
    has("crate/src/journal.rs", "crate/src/accounts.rs", "import");
    // Python: relative, absolute and package imports.
    has("pkg/__init__.py", "pkg/core.py", "import");
    has("pkg/core.py", "pkg/util.py", "import");
    has("pkg/util.py", "pkg/core.py", "import");
    has("app.py", "pkg/core.py", "import");
    has("app.py", "pkg/util.py", "import");
    has("tests/test_core.py", "pkg/core.py", "import");
    // JavaScript and TypeScript: relative paths, extensions and index files.
    has("web/index.js", "web/lib/index.js", "import");
    has("web/index.js", "web/lib/format.ts", "import");
    has("web/lib/format.ts", "web/index.js", "import");
    // Go: the module path from go.mod.
    has("cmd/app/main.go", "store/store.go", "import");
    // Java: package path to file.
    has("java/com/ex/App.java", "java/com/ex/util/Strings.java", "import");
    // C: next to the including file, or where the include path is.
    has("csrc/src/ring.c", "csrc/include/ring.h", "import");
    has("csrc/include/ring.h", "csrc/include/ring_types.h", "import");
    // What is not a file of the tree is external.
    let external: BTreeSet<&str> = g.external.iter().map(|e| e.import.as_str()).collect();
    for name in ["os", "fmt", "stdio.h"] {
        assert!(external.contains(name), "{name} in {external:?}");
    }
    // Packages from the manifests.
    let packages: BTreeSet<(String, String, bool)> =
        g.packages.iter().map(|p| (p.ecosystem.clone(), p.name.clone(), p.dev)).collect();
    for p in [
        ("cargo", "serde", false),
        ("cargo", "local-util", false),
        ("cargo", "tempfile", true),
        ("npm", "react", false),
        ("npm", "jest", true),
        ("python", "requests", false),
        ("go", "github.com/google/uuid", false),
    ] {
        assert!(
            packages.contains(&(p.0.to_string(), p.1.to_string(), p.2)),
            "{p:?} in {packages:?}"
        );
    }
}

#[test]
fn cycles_dependents_and_exports() {
    let t = indexed("tree");
    let g = t.index.graph().unwrap();
    let cycles = g.cycles();
    let has_cycle = |members: &[&str]| {
        assert!(
            cycles.iter().any(|c| members.iter().all(|m| c.iter().any(|n| n == m))),
            "no cycle through {members:?} in {cycles:?}"
        );
    };
    has_cycle(&["crate/src/accounts.rs", "crate/src/journal.rs"]);
    has_cycle(&["pkg/core.py", "pkg/util.py"]);
    has_cycle(&["web/index.js", "web/lib/format.ts"]);
    has_cycle(&["csrc/include/ring.h", "csrc/include/ring_types.h"]);
    // Go and Java have none.
    assert!(cycles.iter().all(|c| !c.iter().any(|n| n.ends_with(".go") || n.ends_with(".java"))));

    let direct: Vec<String> = g.dependents("pkg/util.py", 1).into_iter().map(|d| d.path).collect();
    assert_eq!(direct, ["app.py", "pkg/core.py"]);
    let all: Vec<(String, usize)> =
        g.dependents("util.py", usize::MAX).into_iter().map(|d| (d.path, d.depth)).collect();
    assert_eq!(
        all,
        [
            ("app.py".to_string(), 1),
            ("pkg/core.py".to_string(), 1),
            ("pkg/__init__.py".to_string(), 2),
            ("tests/test_core.py".to_string(), 2),
        ]
    );
    let dot = g.to_dot();
    assert!(dot.starts_with("digraph") && dot.contains("\"app.py\" -> \"pkg/core.py\";"), "{dot}");
    let mermaid = g.to_mermaid();
    assert!(mermaid.starts_with("graph LR") && mermaid.contains("-->"), "{mermaid}");
    let modules = g.by_directory();
    assert!(modules.edges.iter().any(|e| e.from == "cmd/app" && e.to == "store"));
}

/// Python's relative imports, in every form: `from . import m`, `from .. import m`,
/// `from .m import x`, `from ..m import x`, `from .sub import m` and `from .. import name`
/// where the name is not a module (the package's `__init__.py`).
#[test]
fn python_relative_imports_resolve_in_every_form() {
    let tree = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = tree.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("pkg/__init__.py", "VERSION = 1\n");
    write(
        "pkg/a.py",
        "from . import b\nfrom .c import x\nfrom .sub import d\nfrom .. import top\n",
    );
    for empty in
        ["pkg/b.py", "pkg/c.py", "pkg/sub/__init__.py", "pkg/sub/d.py", "pkg/sub/e.py", "top.py"]
    {
        write(empty, "");
    }
    write("pkg/sub/f.py", "from .. import b, VERSION\nfrom ..c import x\nfrom . import e\n");
    let data = tempfile::tempdir().unwrap();
    let index = dreamos_scan::Index::open(data.path(), tree.path(), Default::default()).unwrap();
    index.update(&mut |_| {}).unwrap();
    let g = index.graph().unwrap();
    let edges: BTreeSet<(String, String)> =
        g.edges.iter().map(|e| (e.from.clone(), e.to.clone())).collect();
    for (from, to) in [
        ("pkg/a.py", "pkg/b.py"),
        ("pkg/a.py", "pkg/c.py"),
        ("pkg/a.py", "pkg/sub/d.py"),
        ("pkg/a.py", "top.py"),
        ("pkg/sub/f.py", "pkg/b.py"),
        ("pkg/sub/f.py", "pkg/c.py"),
        ("pkg/sub/f.py", "pkg/sub/e.py"),
    ] {
        assert!(edges.contains(&(from.into(), to.into())), "missing {from} -> {to}: {edges:#?}");
    }
    // No relative import is taken for an external module named `.` or `..`.
    let external: Vec<&str> = g.external.iter().map(|e| e.import.as_str()).collect();
    assert!(external.iter().all(|i| !i.starts_with('.')), "{external:?}");
    // And the dependents of a module follow relative imports.
    let dependents: Vec<String> =
        g.dependents("pkg/b.py", usize::MAX).into_iter().map(|d| d.path).collect();
    assert!(dependents.contains(&"pkg/a.py".to_string()), "{dependents:?}");
    assert!(dependents.contains(&"pkg/sub/f.py".to_string()), "{dependents:?}");
}

/// A cycle is printed as a path of real imports, not as its files in alphabetical order:
/// here `a` imports `c`, `c` imports `b` and `b` imports `a`, so `a -> b` is no edge.
#[test]
fn a_cycle_is_a_path_of_real_imports() {
    let tree = tempfile::tempdir().unwrap();
    for (name, imports) in [("a", "c"), ("b", "a"), ("c", "b"), ("d", "a")] {
        std::fs::write(tree.path().join(format!("{name}.py")), format!("import {imports}\n"))
            .unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let index = dreamos_scan::Index::open(data.path(), tree.path(), Default::default()).unwrap();
    index.update(&mut |_| {}).unwrap();
    let g = index.graph().unwrap();
    let cycles = g.cycles();
    assert_eq!(cycles, vec![vec!["a.py", "b.py", "c.py"]]);
    let path = g.cycle_path(&cycles[0]);
    assert_eq!(path, ["a.py", "c.py", "b.py", "a.py"]);
    let edges: BTreeSet<(&str, &str)> =
        g.edges.iter().map(|e| (e.from.as_str(), e.to.as_str())).collect();
    assert!(path.windows(2).all(|w| edges.contains(&(w[0].as_str(), w[1].as_str()))));
}
