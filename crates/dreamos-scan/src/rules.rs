//! What each grammar's nodes mean: which define symbols (and how to find their names), which
//! are calls, imports and comments, and which count towards complexity.
//!
//! Everything language-specific lives here; `extract` walks any tree with these answers.

use tree_sitter::Node;

use crate::Lang;
use crate::model::SymbolKind;

/// A definition found at a node.
pub(crate) struct Def {
    pub kind: SymbolKind,
    pub name: String,
    /// Where the name is written (for its line and column).
    pub name_at: (usize, usize),
    /// Containers written into the name itself (`Widget::` in `Widget::draw`, a Go receiver).
    pub scope: Vec<String>,
}

/// A node's kind, through the language's table.
pub(crate) fn kind(lang: Lang, node: Node<'_>) -> &'static str {
    lang.kind_name(node.kind_id())
}

pub(crate) fn text<'a>(node: Node<'_>, src: &'a [u8]) -> &'a str {
    std::str::from_utf8(&src[node.byte_range()]).unwrap_or("")
}

fn field<'t>(node: Node<'t>, name: &str) -> Option<Node<'t>> {
    node.child_by_field_name(name)
}

fn at(node: Node<'_>) -> (usize, usize) {
    let p = node.start_position();
    (p.row, p.column)
}

fn named(kind: SymbolKind, name_node: Node<'_>, src: &[u8]) -> Option<Def> {
    let name = text(name_node, src).trim().to_string();
    (!name.is_empty()).then(|| Def { kind, name, name_at: at(name_node), scope: Vec::new() })
}

fn by_field(kind: SymbolKind, node: Node<'_>, src: &[u8]) -> Option<Def> {
    named(kind, field(node, "name")?, src)
}

/// Whether the innermost enclosing definition makes functions methods.
pub(crate) fn is_type_container(kind: SymbolKind) -> bool {
    matches!(
        kind,
        SymbolKind::Class
            | SymbolKind::Struct
            | SymbolKind::Impl
            | SymbolKind::Trait
            | SymbolKind::Interface
            | SymbolKind::Enum
            | SymbolKind::Union
    )
}

fn callable(in_type: bool) -> SymbolKind {
    if in_type { SymbolKind::Method } else { SymbolKind::Function }
}

fn is_constant_name(name: &str) -> bool {
    name.len() > 1
        && name.chars().any(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Where a node sits: its ancestors, the parent last.
pub(crate) struct Context<'c, 't> {
    pub lang: Lang,
    pub up: &'c [Node<'t>],
}

impl<'t> Context<'_, 't> {
    /// The ancestor `n` levels up (1: the parent).
    pub fn up(&self, n: usize) -> Option<Node<'t>> {
        self.up.len().checked_sub(n).map(|i| self.up[i])
    }

    pub fn up_kind(&self, n: usize) -> &'static str {
        self.up(n).map_or("", |p| kind(self.lang, p))
    }
}

/// The definition at `node` (of kind `k`), if it is one. `in_type`: the enclosing
/// definition is a type.
pub(crate) fn definition(
    cx: &Context<'_, '_>,
    node: Node<'_>,
    k: &str,
    src: &[u8],
    in_type: bool,
) -> Option<Def> {
    match cx.lang {
        Lang::Rust => rust_def(node, k, src, in_type),
        Lang::Python => python_def(cx, node, k, src, in_type),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => js_def(cx, node, k, src, in_type),
        Lang::Go => go_def(node, k, src),
        Lang::Java => java_def(node, k, src),
        Lang::C | Lang::Cpp => c_def(cx.lang, node, k, src, in_type),
    }
}

fn rust_def(node: Node<'_>, k: &str, src: &[u8], in_type: bool) -> Option<Def> {
    let kind = match k {
        "function_item" | "function_signature_item" => callable(in_type),
        "struct_item" => SymbolKind::Struct,
        "enum_item" => SymbolKind::Enum,
        "union_item" => SymbolKind::Union,
        "trait_item" => SymbolKind::Trait,
        // `mod x { ... }` and `mod x;` (whose body is the file `x.rs`) both define `x`.
        "mod_item" => SymbolKind::Module,
        "const_item" | "static_item" => SymbolKind::Constant,
        // `type Item;` in a trait is a definition, as `type Item = T;` in an impl is.
        "type_item" | "associated_type" => SymbolKind::Type,
        "macro_definition" => SymbolKind::Macro,
        "impl_item" => {
            let mut ty = field(node, "type")?;
            // `impl<T> Foo<T>` is named `Foo`; `impl a::Foo` is named `Foo`.
            while let Some(inner) = field(ty, "type").or_else(|| field(ty, "name")) {
                ty = inner;
            }
            return named(SymbolKind::Impl, ty, src);
        }
        _ => return None,
    };
    by_field(kind, node, src)
}

fn python_def(
    cx: &Context<'_, '_>,
    node: Node<'_>,
    k: &str,
    src: &[u8],
    in_type: bool,
) -> Option<Def> {
    match k {
        "function_definition" => by_field(callable(in_type), node, src),
        "class_definition" => by_field(SymbolKind::Class, node, src),
        // `MAX_SIZE = 10` at module or class level.
        "assignment" => {
            if cx.up_kind(1) != "expression_statement" {
                return None;
            }
            let top = cx.up_kind(2) == "module"
                || (cx.up_kind(2) == "block" && cx.up_kind(3) == "class_definition");
            let left = field(node, "left").filter(|l| l.kind() == "identifier")?;
            (top && is_constant_name(text(left, src)))
                .then(|| named(SymbolKind::Constant, left, src))
                .flatten()
        }
        _ => None,
    }
}

fn js_def(cx: &Context<'_, '_>, node: Node<'_>, k: &str, src: &[u8], in_type: bool) -> Option<Def> {
    let kind = match k {
        "function_declaration" | "generator_function_declaration" | "function_signature" => {
            SymbolKind::Function
        }
        "class_declaration" | "abstract_class_declaration" => SymbolKind::Class,
        "method_definition" | "method_signature" | "abstract_method_signature" => {
            SymbolKind::Method
        }
        // `new (x: number): Point` in an interface: its constructor, named `new`.
        "construct_signature" => {
            return Some(Def {
                kind: SymbolKind::Method,
                name: "new".into(),
                name_at: at(node),
                scope: Vec::new(),
            });
        }
        "interface_declaration" => SymbolKind::Interface,
        "type_alias_declaration" => SymbolKind::Type,
        "enum_declaration" => SymbolKind::Enum,
        "internal_module" | "module" => SymbolKind::Module,
        // `Foo.prototype.bar = function () {}` (a method of `Foo`), `exports.qux = () => {}`,
        // `module.exports.baz = function baz() {}`.
        "assignment_expression" => {
            let left = field(node, "left").filter(|l| l.kind() == "member_expression")?;
            if !is_function_value(unparen(field(node, "right")?).kind()) {
                return None;
            }
            let mut def = named(SymbolKind::Function, field(left, "property")?, src)?;
            let object = field(left, "object")?;
            if object.kind() == "member_expression"
                && field(object, "property").is_some_and(|p| text(p, src) == "prototype")
            {
                def.kind = SymbolKind::Method;
                def.scope.push(text(field(object, "object")?, src).to_string());
            }
            return Some(def);
        }
        // `{ load: function () {}, save: (x) => x }`: the object's functions.
        "pair" => {
            let key = field(node, "key")
                .filter(|k| matches!(k.kind(), "property_identifier" | "identifier"))?;
            if !is_function_value(unparen(field(node, "value")?).kind()) {
                return None;
            }
            return named(callable(in_type), key, src);
        }
        // `class A { handle = () => {} }`: a method held in a field.
        "field_definition" | "public_field_definition" => {
            if !is_function_value(unparen(field(node, "value")?).kind()) {
                return None;
            }
            let name = field(node, "property").or_else(|| field(node, "name"))?;
            return named(SymbolKind::Method, name, src);
        }
        // `const f = () => ...`, `let C = class {...}`, `const MAX = 3` (top level), and
        // `var f = (function f() {...})`.
        "variable_declarator" => {
            let name = field(node, "name").filter(|n| n.kind() == "identifier")?;
            let value = field(node, "value").map(unparen);
            let kind = match value.map(|v| v.kind()) {
                Some(
                    "arrow_function" | "function_expression" | "function" | "generator_function",
                ) => callable(in_type),
                Some("class") => SymbolKind::Class,
                _ => {
                    let declaration = cx.up(1)?;
                    let top = matches!(cx.up_kind(2), "program" | "export_statement");
                    let is_const = declaration.child(0).is_some_and(|c| c.kind() == "const");
                    if top && is_const && is_constant_name(text(name, src)) {
                        SymbolKind::Constant
                    } else {
                        return None;
                    }
                }
            };
            return named(kind, name, src);
        }
        _ => return None,
    };
    by_field(kind, node, src)
}

/// Whether a JavaScript value is a function (so that what holds it defines one).
fn is_function_value(kind: &str) -> bool {
    matches!(kind, "arrow_function" | "function_expression" | "function" | "generator_function")
}

/// An expression without the parentheses around it: `(function f() {})` is a function.
fn unparen(mut node: Node<'_>) -> Node<'_> {
    while node.kind() == "parenthesized_expression" {
        match node.named_child(0) {
            Some(inner) => node = inner,
            None => break,
        }
    }
    node
}

fn go_def(node: Node<'_>, k: &str, src: &[u8]) -> Option<Def> {
    match k {
        "function_declaration" => by_field(SymbolKind::Function, node, src),
        "method_declaration" => {
            let mut def = by_field(SymbolKind::Method, node, src)?;
            // The receiver's type is the method's container: `func (r *Recv) M()` is `Recv.M`.
            let receiver = field(node, "receiver")?;
            let mut ty = receiver.named_child(0).and_then(|p| field(p, "type"));
            while let Some(t) = ty {
                match t.kind() {
                    "pointer_type" | "generic_type" => ty = t.named_child(0),
                    _ => {
                        def.scope.push(text(t, src).to_string());
                        break;
                    }
                }
            }
            Some(def)
        }
        "type_spec" | "type_alias" => {
            let kind = match field(node, "type").map(|t| t.kind()) {
                Some("struct_type") => SymbolKind::Struct,
                Some("interface_type") => SymbolKind::Interface,
                _ => SymbolKind::Type,
            };
            by_field(kind, node, src)
        }
        "const_spec" => by_field(SymbolKind::Constant, node, src),
        "method_elem" | "method_spec" => by_field(SymbolKind::Method, node, src),
        _ => None,
    }
}

fn java_def(node: Node<'_>, k: &str, src: &[u8]) -> Option<Def> {
    let kind = match k {
        "class_declaration" | "record_declaration" => SymbolKind::Class,
        "interface_declaration" | "annotation_type_declaration" => SymbolKind::Interface,
        "enum_declaration" => SymbolKind::Enum,
        "method_declaration" | "constructor_declaration" | "compact_constructor_declaration" => {
            SymbolKind::Method
        }
        "field_declaration" => {
            let modifiers = node.named_child(0).filter(|m| m.kind() == "modifiers")?;
            let m = text(modifiers, src);
            if !(m.contains("static") && m.contains("final")) {
                return None;
            }
            let declarator = field(node, "declarator")?;
            return named(SymbolKind::Constant, field(declarator, "name")?, src);
        }
        _ => return None,
    };
    by_field(kind, node, src)
}

fn c_def(lang: Lang, node: Node<'_>, k: &str, src: &[u8], in_type: bool) -> Option<Def> {
    let with_body = |kind| {
        field(node, "body")?;
        by_field(kind, node, src)
    };
    match k {
        "function_definition" => {
            let (name, scope) = declarator_name(field(node, "declarator")?, src)?;
            // Error recovery can make a "function" of `if (...) {`: no definition is named
            // after a keyword.
            const KEYWORDS: [&str; 8] =
                ["if", "else", "while", "for", "switch", "return", "do", "sizeof"];
            if KEYWORDS.contains(&text(name, src)) {
                return None;
            }
            let mut def = named(SymbolKind::Function, name, src)?;
            if in_type || (lang == Lang::Cpp && !scope.is_empty()) {
                def.kind = SymbolKind::Method;
            }
            def.scope = scope;
            Some(def)
        }
        "struct_specifier" => with_body(SymbolKind::Struct),
        "union_specifier" => with_body(SymbolKind::Union),
        "enum_specifier" => with_body(SymbolKind::Enum),
        "class_specifier" => with_body(SymbolKind::Class),
        "type_definition" => {
            let (name, _) = declarator_name(field(node, "declarator")?, src)?;
            named(SymbolKind::Type, name, src)
        }
        "alias_declaration" => by_field(SymbolKind::Type, node, src),
        "preproc_def" | "preproc_function_def" => by_field(SymbolKind::Macro, node, src),
        "namespace_definition" => by_field(SymbolKind::Module, node, src),
        _ => None,
    }
}

/// The declared name inside a C/C++ declarator, with the scopes of a qualified name.
fn declarator_name<'t>(mut node: Node<'t>, src: &[u8]) -> Option<(Node<'t>, Vec<String>)> {
    let mut scope = Vec::new();
    loop {
        match node.kind() {
            "identifier" | "field_identifier" | "type_identifier" | "destructor_name"
            | "operator_name" | "primitive_type" => return Some((node, scope)),
            "qualified_identifier" => {
                if let Some(s) = field(node, "scope") {
                    scope.push(text(s, src).to_string());
                }
                node = field(node, "name")?;
            }
            "template_function" => node = field(node, "name")?,
            _ => node = field(node, "declarator").or_else(|| node.named_child(0))?,
        }
    }
}

/// Nodes that wrap a definition and carry its leading comments.
pub(crate) fn is_wrapper(kind: &str) -> bool {
    matches!(
        kind,
        "export_statement"
            | "decorated_definition"
            | "template_declaration"
            | "lexical_declaration"
            | "variable_declaration"
            | "type_declaration"
            | "const_declaration"
            | "declaration"
            | "expression_statement"
            | "ambient_declaration"
    )
}

pub(crate) fn is_comment(kind: &str) -> bool {
    matches!(kind, "comment" | "line_comment" | "block_comment")
}

/// The name called at a call node (of kind `k`), if `node` is one.
pub(crate) fn call_target<'t>(lang: Lang, node: Node<'t>, k: &str) -> Option<Node<'t>> {
    let callee = match (lang, k) {
        (Lang::Rust, "macro_invocation") => field(node, "macro")?,
        (Lang::Java, "method_invocation") => return field(node, "name"),
        (Lang::Java, "object_creation_expression") => field(node, "type")?,
        (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "new_expression") => {
            field(node, "constructor")?
        }
        (Lang::Python, "call") | (_, "call_expression") => field(node, "function")?,
        _ => return None,
    };
    last_name(lang, callee)
}

/// The last plain name of a callee expression: `a.b.c` -> `c`, `X::new` -> `new`.
fn last_name(lang: Lang, mut node: Node<'_>) -> Option<Node<'_>> {
    loop {
        match kind(lang, node) {
            "identifier"
            | "field_identifier"
            | "property_identifier"
            | "type_identifier"
            | "constant" => return Some(node),
            "scoped_identifier"
            | "qualified_identifier"
            | "scoped_type_identifier"
            | "template_function"
            | "generic_type" => node = field(node, "name").or_else(|| field(node, "type"))?,
            "field_expression" => node = field(node, "field")?,
            "member_expression" => node = field(node, "property")?,
            "selector_expression" => node = field(node, "field")?,
            "attribute" => node = field(node, "attribute")?,
            "generic_function" => node = field(node, "function")?,
            _ => return None,
        }
    }
}

/// Whether a node (of kind `k`) is a use of a type, not the name of a definition.
pub(crate) fn is_type_use(cx: &Context<'_, '_>, node: Node<'_>, k: &str) -> bool {
    match (cx.lang, k) {
        (Lang::Python, "identifier") => {
            cx.up_kind(1) == "type"
                || (cx.up_kind(1) == "argument_list" && cx.up_kind(2) == "class_definition")
        }
        (_, "type_identifier") => match cx.up(1) {
            Some(p) => {
                let is = |f: &str| p.child_by_field_name(f).is_some_and(|n| n.id() == node.id());
                let parent = kind(cx.lang, p);
                // `struct ring { ... }` defines `ring`; `struct ring *r` uses it.
                let defines = match parent {
                    "struct_specifier" | "union_specifier" | "enum_specifier"
                    | "class_specifier" => is("name") && p.child_by_field_name("body").is_some(),
                    "type_definition" => is("declarator"),
                    _ => is("name"),
                };
                !defines
            }
            None => true,
        },
        _ => false,
    }
}

/// Node kinds that count for complexity, per language.
pub(crate) struct Complexity {
    pub ifs: &'static [&'static str],
    pub loops: &'static [&'static str],
    pub switches: &'static [&'static str],
    pub cases: &'static [&'static str],
    pub catches: &'static [&'static str],
    pub ternaries: &'static [&'static str],
    /// Anonymous functions: they nest their bodies but are part of the enclosing function,
    /// unless `lambdas_are_functions`.
    pub lambdas: &'static [&'static str],
    /// Whether an anonymous function inside a function is a function of its own, named as
    /// the language's runtime names it (Go: `TestX.func1`), with its own figures; lizard
    /// does so for Go. Elsewhere anonymous functions fold into their function, as lizard
    /// folds Rust closures and Python lambdas (docs/complexity.md).
    pub lambdas_are_functions: bool,
    /// Other decision points that only count for cyclomatic complexity.
    pub other_decisions: &'static [&'static str],
}

pub(crate) fn complexity(lang: Lang) -> &'static Complexity {
    match lang {
        Lang::Rust => &Complexity {
            ifs: &["if_expression"],
            loops: &["for_expression", "while_expression", "loop_expression"],
            switches: &["match_expression"],
            cases: &["match_arm"],
            catches: &[],
            ternaries: &[],
            lambdas: &["closure_expression"],
            lambdas_are_functions: false,
            other_decisions: &[],
        },
        Lang::Python => &Complexity {
            ifs: &["if_statement"],
            loops: &["for_statement", "while_statement"],
            switches: &["match_statement"],
            cases: &["case_clause"],
            catches: &["except_clause", "except_group_clause"],
            ternaries: &["conditional_expression"],
            lambdas: &["lambda"],
            lambdas_are_functions: false,
            other_decisions: &["if_clause", "for_in_clause"],
        },
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => &Complexity {
            ifs: &["if_statement"],
            loops: &["for_statement", "for_in_statement", "while_statement", "do_statement"],
            switches: &["switch_statement"],
            cases: &["switch_case"],
            catches: &["catch_clause"],
            ternaries: &["ternary_expression"],
            lambdas: &["arrow_function", "function_expression", "function", "generator_function"],
            lambdas_are_functions: false,
            other_decisions: &[],
        },
        Lang::Go => &Complexity {
            ifs: &["if_statement"],
            loops: &["for_statement"],
            switches: &["expression_switch_statement", "type_switch_statement", "select_statement"],
            cases: &["expression_case", "type_case", "communication_case"],
            catches: &[],
            ternaries: &[],
            lambdas: &["func_literal"],
            lambdas_are_functions: true,
            other_decisions: &[],
        },
        Lang::Java => &Complexity {
            ifs: &["if_statement"],
            loops: &["for_statement", "enhanced_for_statement", "while_statement", "do_statement"],
            switches: &["switch_expression", "switch_statement"],
            cases: &["switch_label"],
            catches: &["catch_clause"],
            ternaries: &["ternary_expression"],
            lambdas: &["lambda_expression"],
            lambdas_are_functions: false,
            other_decisions: &[],
        },
        Lang::C | Lang::Cpp => &Complexity {
            ifs: &["if_statement"],
            loops: &["for_statement", "for_range_loop", "while_statement", "do_statement"],
            switches: &["switch_statement"],
            cases: &["case_statement"],
            catches: &["catch_clause"],
            ternaries: &["conditional_expression"],
            lambdas: &["lambda_expression"],
            lambdas_are_functions: false,
            other_decisions: &[],
        },
    }
}

/// Whether a case node is the default (or wildcard) case, which adds no path.
pub(crate) fn is_default_case(node: Node<'_>, src: &[u8]) -> bool {
    match node.kind() {
        "case_statement" | "switch_label" => node.child(0).is_some_and(|c| c.kind() == "default"),
        "match_arm" | "case_clause" => field(node, "pattern")
            .or_else(|| node.named_child(0))
            .is_some_and(|p| text(p, src).trim() == "_"),
        _ => false,
    }
}

/// The logical operator of a binary node (`&&`, `||`, `and`, `or`, `??`), if it is one.
pub(crate) fn logical_operator<'a>(lang: Lang, node: Node<'_>, src: &'a [u8]) -> Option<&'a str> {
    if !matches!(kind(lang, node), "binary_expression" | "boolean_operator") {
        return None;
    }
    let op = text(field(node, "operator")?, src);
    matches!(op, "&&" | "||" | "and" | "or" | "??").then_some(op)
}

/// How many parameters a function node declares.
pub(crate) fn parameter_count(lang: Lang, node: Node<'_>, src: &[u8]) -> u32 {
    let list = match lang {
        Lang::C | Lang::Cpp => {
            let mut d = field(node, "declarator");
            while let Some(n) = d {
                if n.kind() == "function_declarator" {
                    break;
                }
                d = field(n, "declarator");
            }
            d.and_then(|f| field(f, "parameters"))
        }
        _ => {
            // `const f = (a, b) => ...`: the function is the declarator's value; `x => ...`
            // has one bare parameter.
            let value = field(node, "value");
            if value.and_then(|v| field(v, "parameter")).is_some() {
                return 1;
            }
            field(node, "parameters").or_else(|| value.and_then(|v| field(v, "parameters")))
        }
    };
    let Some(list) = list else { return 0 };
    let mut cursor = list.walk();
    let mut count = 0;
    for p in list.named_children(&mut cursor) {
        count += match p.kind() {
            k if is_comment(k) => 0,
            "positional_separator" | "keyword_separator" | "variadic_parameter" => 0,
            // Go: `b, c string` declares two.
            "parameter_declaration" if lang == Lang::Go => {
                let mut c = p.walk();
                p.children_by_field_name("name", &mut c).count().max(1) as u32
            }
            // C: `(void)` declares none.
            "parameter_declaration"
                if field(p, "declarator").is_none() && text(p, src).trim() == "void" =>
            {
                0
            }
            _ => 1,
        };
    }
    count
}

/// The node holding a function's body, to cut its signature before it.
/// A macro's or constant's value is cut too: `#define PAGE_SIZE 4096` -> `#define PAGE_SIZE`.
pub(crate) fn body_of<'t>(node: Node<'t>) -> Option<Node<'t>> {
    field(node, "body").or_else(|| field(node, "value"))
}
