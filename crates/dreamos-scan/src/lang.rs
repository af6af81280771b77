//! The languages the scanner parses: detection by file name, and each one's tree-sitter
//! grammar.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
}

impl Lang {
    pub const ALL: [Lang; 9] = [
        Lang::Rust,
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
        Lang::Java,
        Lang::C,
        Lang::Cpp,
    ];

    /// The language of a file, from its extension.
    pub fn of_path(path: &Path) -> Option<Lang> {
        let ext = path.extension()?.to_str()?;
        Some(match ext {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "java" => Lang::Java,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "c++" | "hh" | "hpp" | "hxx" | "h++" | "ipp" | "tpp" => {
                Lang::Cpp
            }
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Go => "go",
            Lang::Java => "java",
            Lang::C => "c",
            Lang::Cpp => "cpp",
        }
    }

    /// The tree-sitter grammar.
    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
        }
    }

    /// The name of a node kind. `Node::kind` measures and validates the grammar's C string
    /// on every call; this reads a table made once per language.
    pub(crate) fn kind_name(self, id: u16) -> &'static str {
        static TABLES: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
        let tables = TABLES.get_or_init(|| {
            Lang::ALL
                .iter()
                .map(|l| {
                    // Kept for the life of the process (nine, made once), so that the names
                    // it hands out are 'static.
                    let g: &'static tree_sitter::Language = Box::leak(Box::new(l.grammar()));
                    (0..g.node_kind_count() as u16)
                        .map(move |i| g.node_kind_for_id(i).unwrap_or(""))
                        .collect()
                })
                .collect()
        });
        let index = Lang::ALL.iter().position(|l| *l == self).unwrap_or(0);
        tables[index].get(id as usize).copied().unwrap_or("")
    }

    /// The separator between a symbol's containers in its qualified name.
    pub fn separator(self) -> &'static str {
        match self {
            Lang::Rust | Lang::Cpp => "::",
            _ => ".",
        }
    }

    /// Languages that share import resolution and filters (`lang:ts` finds TSX too).
    pub fn family(self) -> &'static str {
        match self {
            Lang::TypeScript | Lang::Tsx => "typescript",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "rust" | "rs" => Lang::Rust,
            "python" | "py" => Lang::Python,
            "javascript" | "js" | "jsx" => Lang::JavaScript,
            "typescript" | "ts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" | "golang" => Lang::Go,
            "java" => Lang::Java,
            "c" => Lang::C,
            "cpp" | "c++" | "cxx" | "cc" => Lang::Cpp,
            _ => {
                return Err(format!(
                    "unknown language `{s}`: expected rust, python, javascript, typescript, tsx, go, java, c or cpp"
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_and_names() {
        assert_eq!(Lang::of_path(Path::new("a/b.rs")), Some(Lang::Rust));
        assert_eq!(Lang::of_path(Path::new("x.tsx")), Some(Lang::Tsx));
        assert_eq!(Lang::of_path(Path::new("x.hpp")), Some(Lang::Cpp));
        assert_eq!(Lang::of_path(Path::new("Makefile")), None);
        for lang in Lang::ALL {
            assert_eq!(lang.as_str().parse::<Lang>().unwrap(), lang);
            let mut parser = tree_sitter::Parser::new();
            parser.set_language(&lang.grammar()).unwrap();
        }
        assert!("cobol".parse::<Lang>().is_err());
    }
}
