//! What the scanner learns about a file: its definitions, references, imports and line
//! counts, with structure metrics per function.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Lang;

/// What kind of thing a definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    Union,
    Interface,
    Trait,
    Impl,
    Module,
    Constant,
    Type,
    Macro,
}

impl SymbolKind {
    pub const ALL: [SymbolKind; 13] = [
        SymbolKind::Function,
        SymbolKind::Method,
        SymbolKind::Class,
        SymbolKind::Struct,
        SymbolKind::Enum,
        SymbolKind::Union,
        SymbolKind::Interface,
        SymbolKind::Trait,
        SymbolKind::Impl,
        SymbolKind::Module,
        SymbolKind::Constant,
        SymbolKind::Type,
        SymbolKind::Macro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Union => "union",
            SymbolKind::Interface => "interface",
            SymbolKind::Trait => "trait",
            SymbolKind::Impl => "impl",
            SymbolKind::Module => "module",
            SymbolKind::Constant => "constant",
            SymbolKind::Type => "type",
            SymbolKind::Macro => "macro",
        }
    }

    /// Functions and methods: the units that get structure metrics.
    pub fn is_callable(self) -> bool {
        matches!(self, SymbolKind::Function | SymbolKind::Method)
    }
}

impl fmt::Display for SymbolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SymbolKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "fn" | "func" | "def" => "function",
            "class" | "cls" => "class",
            "const" | "static" => "constant",
            "mod" | "namespace" | "package" => "module",
            "typedef" | "alias" => "type",
            other => other,
        };
        SymbolKind::ALL.into_iter().find(|k| k.as_str() == alias).ok_or_else(|| {
            let names: Vec<&str> = SymbolKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown symbol kind `{s}`: expected one of {}", names.join(", "))
        })
    }
}

/// Lines by what they hold. A line with both code and a comment counts as code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCounts {
    pub code: u32,
    pub comment: u32,
    pub blank: u32,
}

impl LineCounts {
    pub fn total(&self) -> u32 {
        self.code + self.comment + self.blank
    }

    pub fn add(&mut self, other: &LineCounts) {
        self.code += other.code;
        self.comment += other.comment;
        self.blank += other.blank;
    }
}

/// Structure metrics of one function or method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionMetrics {
    /// McCabe: 1 + decision points (branches, loops, cases, catches, `&&`/`||`, ternaries).
    pub cyclomatic: u32,
    /// SonarSource's cognitive complexity: structures cost 1 plus their nesting depth.
    pub cognitive: u32,
    /// Deepest nesting of control structures (0 for straight-line code).
    pub max_nesting: u32,
    pub params: u32,
    pub lines: LineCounts,
}

/// One definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbol {
    pub name: String,
    /// The name with its containers: `Widget::draw`, `pkg.Class.method`.
    pub qualified_name: String,
    pub kind: SymbolKind,
    /// First and last line of the definition, 1-based.
    pub line: u32,
    pub end_line: u32,
    /// Line and 1-based column of the name itself.
    pub name_line: u32,
    pub column: u32,
    /// The definition's header, up to its body, on one line.
    pub signature: String,
    pub doc: Option<String>,
    /// Functions and methods only.
    pub metrics: Option<FunctionMetrics>,
    /// Index of the enclosing definition in the file's symbol list.
    pub parent: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    Call,
    Type,
}

/// A use of a name: a call or a type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub kind: RefKind,
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// `use`, `import`, `from ... import`, `require(...)`.
    Import,
    /// `#include "file"`.
    Include,
    /// `#include <file>`.
    SystemInclude,
    /// Rust `mod name;`: the module lives in another file.
    ModDecl,
}

/// One import, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// What is imported: `crate::a::b`, `..pkg.mod`, `./lib`, `linux/slab.h`, `java.util.List`.
    pub target: String,
    /// Names imported from it (`from m import a, b`), when the language says.
    pub names: Vec<String>,
    pub kind: ImportKind,
    pub line: u32,
}

/// Everything extracted from one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    pub lang: Lang,
    pub symbols: Vec<Symbol>,
    pub references: Vec<Reference>,
    pub imports: Vec<Import>,
    pub lines: LineCounts,
    /// Syntax errors tree-sitter recovered from (the rest of the file is still extracted).
    pub syntax_errors: u32,
}
