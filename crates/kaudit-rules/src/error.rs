//! Load errors and warnings: each names the rules file, line and column, the item it is about,
//! and carries a snippet of the source with a caret.

use std::fmt;

/// What kind of problem stopped loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The file is not valid YAML.
    Yaml,
    /// The YAML does not have the shape of a rules file (wrong types, missing keys, invalid
    /// values, append to an undefined item, ...).
    Validate,
    /// A `required_engine_version` or `required_plugin_versions` that kaudit does not satisfy.
    Requirement,
    /// A condition that does not parse, uses an undefined macro, an unknown field, or an
    /// operator the field does not take.
    Condition,
    /// An output template that does not parse or names an unknown field.
    Output,
}

/// Why a set of rules files could not be loaded. Nothing is loaded when this is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// What kind of problem it is.
    pub kind: LoadErrorKind,
    /// The rules file, as named in its [`RuleSource`](crate::RuleSource).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The item concerned, e.g. `rule 'Create Privileged Pod'`, `macro 'kevt'`.
    pub item: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The source line with a caret under the column; for errors inside a condition that
    /// cannot be pointed at exactly in the file, also the condition text with a caret.
    pub snippet: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(item) = &self.item {
            write!(f, "{item}: ")?;
        }
        f.write_str(&self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

/// Something worth telling about a rules file that does not stop it from loading (unknown
/// keys, deprecated forms, unused lists and macros, rules of sources kaudit does not
/// evaluate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The rules file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The item concerned.
    pub item: Option<String>,
    /// What it is about.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(item) = &self.item {
            write!(f, "{item}: ")?;
        }
        f.write_str(&self.message)
    }
}
