//! Extraction snapshots: every definition (kind, qualified name, span, name position,
//! metrics, signature, doc), import and reference of a realistic file per language.

use std::collections::BTreeSet;
use std::fmt::Write;

use dreamos_scan::{FileFacts, Lang, RefKind, extract};
use expect_test::{Expect, expect};

fn render(facts: &FileFacts) -> String {
    let mut out = String::new();
    for s in &facts.symbols {
        let _ = write!(
            out,
            "{} {} {}-{} @{}:{}",
            s.kind, s.qualified_name, s.line, s.end_line, s.name_line, s.column
        );
        if let Some(m) = s.metrics {
            let l = m.lines;
            let _ = write!(
                out,
                " cc={} cog={} nest={} params={} lines={}/{}/{}",
                m.cyclomatic, m.cognitive, m.max_nesting, m.params, l.code, l.comment, l.blank
            );
        }
        let _ = write!(out, " | {}", s.signature);
        if let Some(doc) = &s.doc {
            let _ = write!(out, " | doc: {}", doc.replace('\n', " "));
        }
        out.push('\n');
    }
    for i in &facts.imports {
        let names = if i.names.is_empty() { String::new() } else { format!(" {:?}", i.names) };
        let _ = writeln!(out, "import {:?} {}{names} @{}", i.kind, i.target, i.line);
    }
    let names = |kind: RefKind| {
        let set: BTreeSet<&str> =
            facts.references.iter().filter(|r| r.kind == kind).map(|r| r.name.as_str()).collect();
        set.into_iter().collect::<Vec<_>>().join(" ")
    };
    let _ = writeln!(out, "calls: {}", names(RefKind::Call));
    let _ = writeln!(out, "types: {}", names(RefKind::Type));
    let l = facts.lines;
    let _ =
        writeln!(out, "lines {}/{}/{} errors={}", l.code, l.comment, l.blank, facts.syntax_errors);
    out
}

fn check(lang: Lang, file: &str, expected: Expect) {
    let src = std::fs::read(crate::fixture(&format!("lang/{file}"))).unwrap();
    let facts = extract(lang, &src).unwrap();
    expected.assert_eq(&render(&facts));
}

#[test]
fn rust() {
    check(
        Lang::Rust,
        "rust.rs",
        expect![[r#"
            module eviction 6-6 @6:5 | mod eviction;
            constant MAX_AGE_SECS 9-9 @9:11 | pub const MAX_AGE_SECS: u64 | doc: Entries older than this are dropped.
            struct Cache 12-15 @12:12 | pub struct Cache<S: Store> | doc: A cache in front of a store.
            enum Entry 18-21 @18:10 | pub enum Entry
            trait Evict 23-26 @23:11 | pub trait Evict
            method Evict::victim 25-25 @25:8 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | fn victim(&self) -> Option<String>; | doc: Chooses what to drop.
            impl Cache 28-49 @28:16 | impl<S: Store> Cache<S>
            method Cache::get 30-38 @30:12 cc=4 cog=2 nest=1 params=3 lines=9/0/0 | pub fn get(&mut self, key: &str, now: u64) -> Option<Vec<u8>> | doc: Reads through the cache.
            method Cache::refresh 40-48 @40:8 cc=4 cog=4 nest=2 params=2 lines=9/0/0 | fn refresh(&mut self, key: &str) -> Option<Vec<u8>>
            macro cached 51-55 @51:14 | macro_rules! cached { ($e:expr) => { $e }; }
            trait Cached 58-62 @58:11 | pub trait Cached | doc: Something that can be read from a cache.
            type Cached::Output 60-60 @60:10 | type Output; | doc: What reading gives.
            method Cached::read 61-61 @61:8 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | fn read(&self) -> Self::Output;
            import Import std::collections::HashMap @3
            import Import crate::store::Store @4
            import Import crate::store::Key @4
            import ModDecl eviction @6
            calls: Some alive clone from get is_empty load refresh
            types: Cache Entry HashMap Option S Store String Vec
            lines 45/8/9 errors=0
        "#]],
    );
}

#[test]
fn python() {
    check(
        Lang::Python,
        "python.py",
        expect![[r#"
        constant RETRIES 7-7 @7:1 | RETRIES = 3
        function fetch 10-18 @10:5 cc=5 cog=7 nest=3 params=3 lines=8/1/0 | def fetch(url, timeout=10, *, headers=None) | doc: Fetch a URL and return its body.
        class Downloader 21-42 @21:7 | class Downloader(object) | doc: Downloads files into a directory.
        constant Downloader.CHUNK 24-24 @24:5 | CHUNK = 8192
        method Downloader.__init__ 26-27 @26:9 cc=1 cog=0 nest=0 params=2 lines=2/0/0 | def __init__(self, root)
        method Downloader.save 29-42 @29:9 cc=7 cog=5 nest=1 params=3 lines=13/1/0 | def save(self, url, name=None) | doc: Save a URL under the root.
        import Import os.path @2
        import Import urllib ["request"] @3
        import Import . ["settings"] @4
        import Import ..core.errors ["NetworkError", "Timeout"] @5
        calls: NetworkError basename fetch join len open range read urlopen write
        types: object
        lines 31/3/8 errors=0
    "#]],
    );
}

#[test]
fn javascript() {
    check(
        Lang::JavaScript,
        "javascript.js",
        expect![[r#"
        constant MAX_LISTENERS 6-6 @6:14 | MAX_LISTENERS
        function throttle 9-19 @9:17 cc=3 cog=3 nest=2 params=2 lines=11/0/0 | function throttle(fn, ms) | doc: Emits at most once per interval.
        class Bus 21-37 @21:14 | class Bus extends EventEmitter
        method Bus.constructor 22-25 @22:3 cc=1 cog=0 nest=0 params=1 lines=4/0/0 | constructor(name)
        method Bus.publish 28-36 @28:3 cc=3 cog=3 nest=2 params=2 lines=9/0/0 | publish(topic, message) | doc: Sends to every listener.
        function handler 39-41 @39:7 cc=3 cog=2 nest=1 params=1 lines=3/0/0 | handler
        import Import events @2
        import Import ./util @3
        import Import ../config @4
        calls: fn listener listeners now report require
        types: 
        lines 33/3/5 errors=0
    "#]],
    );
}

#[test]
fn typescript() {
    check(
        Lang::TypeScript,
        "typescript.ts",
        expect![[r#"
            interface Handler 4-6 @4:18 | interface Handler
            method Handler.handle 5-5 @5:3 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | handle(req: Request): Promise<Response>
            type Middleware 8-8 @8:13 | type Middleware
            enum Method 10-13 @10:13 | enum Method
            class Router 16-33 @16:14 | class Router implements Handler | doc: Routes requests by path.
            method Router.constructor 19-19 @19:3 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | constructor(private log: Logger)
            method Router.add 21-23 @21:3 cc=1 cog=0 nest=0 params=2 lines=3/0/0 | add(path: string, handler: Handler): void
            method Router.handle 25-32 @25:9 cc=2 cog=1 nest=1 params=1 lines=8/0/0 | async handle(req: Request): Promise<Response>
            module Routes 35-37 @35:18 | namespace Routes
            constant Routes.ROOT 36-36 @36:16 | ROOT
            function withLogging 39-41 @39:14 cc=1 cog=0 nest=0 params=1 lines=3/0/0 | withLogging: Middleware
            function withLogging.handle 40-40 @40:3 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | handle
            import Import ./http @1
            import Import ../log @2
            calls: Map Response get handle set warn
            types: Handler Logger Middleware Request Response
            lines 31/1/9 errors=0
        "#]],
    );
}

#[test]
fn tsx() {
    check(
        Lang::Tsx,
        "tsx.tsx",
        expect![[r#"
        interface CounterProps 4-6 @4:11 | interface CounterProps
        function Counter 9-18 @9:17 cc=2 cog=1 nest=0 params=1 lines=10/0/0 | function Counter({ start = 0 }: CounterProps) | doc: A counter with a reset.
        function Label 20-20 @20:14 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | Label
        import Import react @1
        import Import ./Button @2
        calls: setCount useState
        types: CounterProps
        lines 16/1/3 errors=0
    "#]],
    );
}

#[test]
fn go() {
    check(
        Lang::Go,
        "go.go",
        expect![[r#"
        constant MaxItems 13-13 @13:7 | MaxItems
        struct Queue 16-19 @16:6 | Queue struct { mu sync.Mutex items []string } | doc: Queue is a bounded FIFO.
        interface Sizer 22-24 @22:6 | Sizer interface { Len() int } | doc: Sizer reports a size.
        method Sizer.Len 23-23 @23:2 cc=1 cog=0 nest=0 params=0 lines=1/0/0 | Len() int
        type ID 26-26 @26:6 | ID int64
        method Queue.Push 29-37 @29:17 cc=3 cog=2 nest=1 params=1 lines=9/0/0 | func (q *Queue) Push(item string) bool | doc: Push appends unless full.
        method Queue.Pop 39-50 @39:17 cc=2 cog=1 nest=1 params=0 lines=12/0/0 | func (q *Queue) Pop() (string, error)
        function New 52-55 @52:6 cc=1 cog=0 nest=0 params=0 lines=4/0/0 | func New() *Queue
        import Import errors @4
        import Import sync @5
        import Import example.com/app/internal/clock @7
        calls: Lock New Now Unlock append len
        types: Queue bool error int int64 string
        lines 41/4/10 errors=0
    "#]],
    );
}

#[test]
fn java() {
    check(
        Lang::Java,
        "java.java",
        expect![[r#"
        class MemoryStore 8-43 @8:14 | public class MemoryStore implements Store | doc: An in-memory key-value store.
        constant MemoryStore.CAPACITY 9-9 @9:29 | public static final int CAPACITY = 128;
        method MemoryStore.MemoryStore 13-15 @13:12 cc=1 cog=0 nest=0 params=0 lines=3/0/0 | public MemoryStore()
        method MemoryStore.put 18-28 @19:20 cc=4 cog=3 nest=1 params=2 lines=11/0/0 | @Override public boolean put(String key, String value) | doc: Puts a value, evicting when full.
        method MemoryStore.get 30-36 @30:19 cc=3 cog=3 nest=2 params=1 lines=7/0/0 | public String get(String key)
        interface MemoryStore.Listener 38-40 @38:15 | interface Listener
        method MemoryStore.Listener.changed 39-39 @39:14 cc=1 cog=0 nest=0 params=1 lines=1/0/0 | void changed(String key);
        enum MemoryStore.Mode 42-42 @42:10 | enum Mode
        import Import java.util.HashMap @3
        import Import java.util.Map @4
        import Import java.util.Objects.requireNonNull @5
        calls: containsKey getOrDefault put requireNonNull size
        types: ClassCastException HashMap Map Store String
        lines 33/2/8 errors=0
    "#]],
    );
}

#[test]
fn c() {
    check(
        Lang::C,
        "c.c",
        expect![[r#"
        macro RING_MIN 6-6 @6:9 | #define RING_MIN
        macro RING_ALIGN 7-7 @7:9 | #define RING_ALIGN(n)
        struct ring 10-13 @10:8 | struct ring | doc: A ring of bytes.
        type ring_t 15-15 @15:21 | typedef struct ring ring_t;
        enum ring_mode 17-17 @17:6 | enum ring_mode
        function ring_free 19-22 @19:15 cc=1 cog=0 nest=0 params=1 lines=4/0/0 | static size_t ring_free(const struct ring *r)
        function ring_write 25-43 @25:5 cc=8 cog=8 nest=2 params=3 lines=18/0/1 | int ring_write(struct ring *r, const char *data, size_t len) | doc: Writes up to len bytes; returns how many.
        function ring_new 45-51 @45:14 cc=1 cog=0 nest=0 params=1 lines=7/0/0 | struct ring *ring_new(size_t size)
        import SystemInclude stdlib.h @2
        import SystemInclude string.h @3
        import Include ring.h @4
        calls: RING_ALIGN calloc malloc ring_free
        types: ring
        lines 40/3/8 errors=0
    "#]],
    );
}

#[test]
fn cpp() {
    check(
        Lang::Cpp,
        "cpp.cpp",
        expect![[r#"
        module geo 5-32 @5:11 | namespace geo
        class geo::Shape 8-12 @8:7 | class Shape | doc: A 2D shape.
        method geo::Shape::~Shape 10-10 @10:11 cc=1 cog=0 nest=0 params=0 lines=1/0/0 | virtual ~Shape() = default;
        class geo::Rect 14-21 @14:7 | class Rect : public Shape
        method geo::Rect::Rect 16-16 @16:3 cc=1 cog=0 nest=0 params=2 lines=1/0/0 | Rect(double w, double h) : w_(w), h_(h)
        method geo::Rect::area 17-17 @17:10 cc=1 cog=0 nest=0 params=0 lines=1/0/0 | double area() const override
        struct geo::Point 23-25 @23:8 | struct Point
        function geo::clamp 28-30 @28:3 cc=3 cog=3 nest=2 params=3 lines=3/0/0 | T clamp(T v, T lo, T hi)
        method geo::total_area 34-42 @34:13 cc=4 cog=4 nest=2 params=1 lines=9/0/0 | double geo::total_area(const std::vector<Shape*>& shapes)
        import SystemInclude string @1
        import SystemInclude vector @2
        import Include shape.hpp @3
        calls: area
        types: Shape T
        lines 33/1/8 errors=0
    "#]],
    );
}

#[test]
fn syntax_errors_do_not_hide_the_rest_of_the_file() {
    let python = b"def before():\n    return 1\n\ndef broken():\n    x = = 2\n    return x\n\nclass After:\n    def method(self):\n        pass\n";
    let facts = extract(Lang::Python, python).unwrap();
    let names: Vec<&str> = facts.symbols.iter().map(|s| s.qualified_name.as_str()).collect();
    assert_eq!(names, ["before", "broken", "After", "After.method"]);
    assert!(facts.syntax_errors > 0);

    let c = b"int first(void) { return 1; }\nint mid(int a) { return (a + ; }\nstatic int second(int x) { return x; }\n";
    let facts = extract(Lang::C, c).unwrap();
    let names: Vec<&str> = facts.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "mid", "second"]);
    assert!(facts.syntax_errors > 0);
}

/// mimalloc's `if mi_unlikely(x) {` idiom: the function keeps its whole body and its
/// branches, and no block becomes a "function" named after a keyword or an argument.
#[test]
fn c_macro_conditions_keep_their_function_whole() {
    let src = b"#define mi_unlikely(x) __builtin_expect(!!(x), false)
#define mi_likely(x) __builtin_expect(!!(x), true)

static void* page_malloc(mi_heap_t* heap, mi_page_t* page, size_t size, bool zero) {
  mi_block_t* const block = page->free;
  if mi_unlikely(block == NULL) {
    return malloc_generic(heap, size, zero, 0);
  }
  if mi_likely(zero) {
    block->next = 0;
  }
  else if mi_unlikely(size > 64) {
    memzero(block, size);
  }
  while mi_likely(size > 0) { size--; }
  return block;
}

int after(void) { return 1; }
";
    let facts = extract(Lang::C, src).unwrap();
    let functions: Vec<(&str, u32, u32, u32)> = facts
        .symbols
        .iter()
        .filter(|s| s.kind.as_str() == "function")
        .map(|s| (s.name.as_str(), s.line, s.end_line, s.metrics.map_or(0, |m| m.cyclomatic)))
        .collect();
    // Four decisions (three ifs and a while) and the function itself: 5.
    assert_eq!(functions, [("page_malloc", 4, 17, 5), ("after", 19, 19, 1)], "{facts:#?}");
}

/// The ways JavaScript code defines functions without a declaration (lodash, Node modules,
/// React classes).
#[test]
fn javascript_functions_defined_by_assignment_object_and_field() {
    let src = br#"function Stack(entries) { this.size = 0; }
Stack.prototype.push = function (value) { this.size += 1; };
module.exports.create = function create() { return new Stack(); };
exports.empty = () => new Stack();
var runInContext = (function runInContext(context) { return context; });
const api = {
  load: function (path) { return path; },
  save: (value) => value,
  count: 3,
};
class View {
  handleClick = (event) => { event.stop(); };
  label = "view";
}
"#;
    let facts = extract(Lang::JavaScript, src).unwrap();
    let defs: BTreeSet<(String, String)> = facts
        .symbols
        .iter()
        .map(|s| (s.kind.as_str().to_string(), s.qualified_name.clone()))
        .collect();
    for (kind, name) in [
        ("function", "Stack"),
        ("method", "Stack.push"),
        ("function", "create"),
        ("function", "empty"),
        ("function", "runInContext"),
        ("function", "load"),
        ("function", "save"),
        ("class", "View"),
        ("method", "View.handleClick"),
    ] {
        assert!(defs.contains(&(kind.into(), name.into())), "{kind} {name} missing: {defs:?}");
    }
    // Values that are not functions define nothing.
    assert!(!defs.iter().any(|(_, n)| n.ends_with("count") || n.ends_with("label")), "{defs:?}");
}

/// A `.h` file holding C++ is parsed as C++ (classes, namespaces and methods found), and a C
/// header stays C even with an `extern "C"` block for C++ callers and `::` in a comment.
#[test]
fn cpp_headers_ending_in_h_are_parsed_as_cpp() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(
        tree.path().join("widget.h"),
        "#pragma once\nnamespace ui {\nclass CppInH {\n public:\n  int width() const { return w_; }\n  template <typename T> T as() const;\n private:\n  int w_;\n};\n}  // namespace ui\n",
    )
    .unwrap();
    std::fs::write(
        tree.path().join("ring.h"),
        "/* See ring::push in the docs. */\n#ifdef __cplusplus\nextern \"C\" {\n#endif\nstruct ring { int head; };\nint ring_push(struct ring* r, int v);\n#ifdef __cplusplus\n}\n#endif\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let index = dreamos_scan::Index::open(data.path(), tree.path(), Default::default()).unwrap();
    index.update(&mut |_| {}).unwrap();
    let symbols = |path: &str| -> Vec<(String, String, String)> {
        index
            .symbols(None, None, Some(path))
            .unwrap()
            .into_iter()
            .map(|s| {
                let lang = s.lang.map_or("text", |l| l.as_str()).to_string();
                (lang, s.symbol.kind.as_str().to_string(), s.symbol.qualified_name)
            })
            .collect()
    };
    let widget = symbols("widget.h");
    for (kind, name) in [("module", "ui"), ("class", "ui::CppInH"), ("method", "ui::CppInH::width")]
    {
        assert!(
            widget.iter().any(|(l, k, n)| l == "cpp" && k == kind && n == name),
            "{kind} {name} missing: {widget:?}"
        );
    }
    let ring = symbols("ring.h");
    assert!(ring.iter().all(|(l, ..)| l == "c"), "{ring:?}");
    assert!(ring.iter().any(|(_, k, n)| k == "struct" && n == "ring"), "{ring:?}");
}

/// tokio's way of writing items inside configuration macros: what `cfg_rt! { ... }` holds
/// is found as if it were written outside it, `mod` declarations included; a macro in a
/// function body is left alone.
#[test]
fn rust_items_inside_cfg_macros_are_definitions() {
    let src = br#"macro_rules! cfg_rt { ($($item:item)*) => { $($item)* } }

cfg_rt! {
    /// Spawns a task.
    pub fn spawn(future: u32) -> u32 {
        if future > 1 { 1 } else { 0 }
    }

    pub mod task;

    impl Runtime {
        pub fn block_on(&self) {}
    }
}

pub struct Runtime;

feature! {
    #![feature = "fs"]
    pub fn open() {}
}

fn body() {
    cfg_rt! { let x = 1; }
}
"#;
    let facts = extract(Lang::Rust, src).unwrap();
    let defs: Vec<(String, String, u32)> = facts
        .symbols
        .iter()
        .map(|s| (s.kind.as_str().to_string(), s.qualified_name.clone(), s.line))
        .collect();
    for (kind, name, line) in [
        ("function", "spawn", 5),
        ("module", "task", 9),
        ("method", "Runtime::block_on", 12),
        ("struct", "Runtime", 16),
        ("function", "open", 20),
        ("function", "body", 23),
    ] {
        assert!(
            defs.contains(&(kind.into(), name.into(), line)),
            "{kind} {name} at {line} missing: {defs:?}"
        );
    }
    assert!(!defs.iter().any(|(_, n, _)| n.starts_with('m') && n.contains("__")), "{defs:?}");
    let spawn = facts.symbols.iter().find(|s| s.name == "spawn").unwrap();
    assert_eq!(spawn.doc.as_deref(), Some("Spawns a task."));
    assert_eq!(spawn.metrics.map(|m| m.cyclomatic), Some(2));
    assert!(facts.imports.iter().any(|i| i.target == "task"), "{:?}", facts.imports);
}

/// A TypeScript interface's construct signature is its constructor, `new`.
#[test]
fn typescript_construct_signatures_are_constructors() {
    let src = b"interface PointConstructor {\n  new (x: number, y: number): Point;\n  origin(): Point;\n}\n";
    let facts = extract(Lang::TypeScript, src).unwrap();
    let defs: Vec<(String, String, u32)> = facts
        .symbols
        .iter()
        .map(|s| (s.kind.as_str().to_string(), s.qualified_name.clone(), s.line))
        .collect();
    assert!(defs.contains(&("method".into(), "PointConstructor.new".into(), 2)), "{defs:?}");
    let new = facts.symbols.iter().find(|s| s.name == "new").unwrap();
    assert_eq!(new.metrics.map(|m| m.params), Some(2));
}

/// Go's function literals are functions of their own, named as Go's runtime names them, as
/// lizard counts them: a test with subtests is not one big hotspot. Elsewhere anonymous
/// functions still fold into their function (docs/complexity.md).
#[test]
fn go_function_literals_are_functions_of_their_own() {
    let src = b"package a\n\nfunc TestX(t *testing.T) {\n\tt.Run(\"a\", func(t *testing.T) {\n\t\tif x {\n\t\t\ty()\n\t\t}\n\t})\n\tt.Run(\"b\", func(t *testing.T) { for i := range z { _ = i } })\n\tif z {\n\t\tw()\n\t}\n}\n";
    let facts = extract(Lang::Go, src).unwrap();
    let figures: Vec<(String, u32, u32)> = facts
        .symbols
        .iter()
        .map(|s| (s.qualified_name.clone(), s.line, s.metrics.map_or(0, |m| m.cyclomatic)))
        .collect();
    assert_eq!(
        figures,
        [("TestX".into(), 3, 2), ("TestX.func1".into(), 4, 2), ("TestX.func2".into(), 9, 2)]
    );
    let rust = extract(
        Lang::Rust,
        b"fn f(x: u32) -> u32 {\n    let g = |v: u32| if v > 1 { 1 } else { 2 };\n    g(x)\n}\n",
    )
    .unwrap();
    let f: Vec<(&str, u32)> = rust
        .symbols
        .iter()
        .map(|s| (s.qualified_name.as_str(), s.metrics.map_or(0, |m| m.cyclomatic)))
        .collect();
    assert_eq!(f, [("f", 2)], "a Rust closure folds into its function");
}
