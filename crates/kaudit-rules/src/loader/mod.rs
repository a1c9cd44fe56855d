//! Loading rules files: reading each file into one collection, checking the plugin and engine
//! requirements, and compiling the collection after every file, as Falco does (every prefix
//! of the file list must compile on its own). A file with an error never half-loads: the
//! result is the error and nothing else.

mod check;
mod collect;
mod compile;
mod place;
mod subst;

pub(crate) use compile::CompiledRule;

use crate::error::{LoadError, LoadErrorKind, Warning};
use crate::ruleset::RuleSet;
use collect::{Collection, PLUGINS};
use place::Files;

/// One rules file: its name (shown in errors and warnings) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSource {
    /// The name shown in errors, usually the path.
    pub name: String,
    /// The YAML text.
    pub text: String,
}

impl RuleSource {
    /// A rules file named `name` with content `text`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> RuleSource {
        RuleSource {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// Successfully loaded rules.
#[derive(Debug)]
pub struct Loaded {
    /// The rules, ready to evaluate.
    pub ruleset: RuleSet,
    /// Everything worth telling that did not stop loading, in file order.
    pub warnings: Vec<Warning>,
}

/// Loads rules files, in order, into one rule set.
pub fn load(sources: &[RuleSource]) -> Result<Loaded, LoadError> {
    let files = Files { sources };
    let mut col = Collection::default();
    let mut last = None;
    for file in 0..sources.len() {
        col.read_file(files, file)?;
        let final_pass = file + 1 == sources.len();
        last = Some(compile::compile(&col, files, final_pass)?);
    }
    check_plugin_requirements(&col, files)?;
    let mut warnings = std::mem::take(&mut col.warnings);
    let (rules, skipped) = match last {
        Some(c) => {
            warnings.extend(c.warnings);
            (c.rules, c.skipped)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(Loaded {
        ruleset: RuleSet::new(rules, skipped),
        warnings,
    })
}

/// Each `required_plugin_versions` group needs one of its plugins among those kaudit stands
/// in for (k8saudit 0.18.0, json 0.7.4), in a compatible version.
fn check_plugin_requirements(col: &Collection, files: Files<'_>) -> Result<(), LoadError> {
    for (alternatives, place) in &col.plugin_requirements {
        let satisfied = alternatives.iter().any(|(name, required)| {
            PLUGINS
                .iter()
                .any(|(n, have)| n == name && have.satisfies(*required))
        });
        if !satisfied {
            let wanted: Vec<String> = alternatives
                .iter()
                .map(|(n, v)| format!("{n} (>= {v})"))
                .collect();
            let have: Vec<String> = PLUGINS.iter().map(|(n, v)| format!("{n} {v}")).collect();
            return Err(files.error(
                LoadErrorKind::Requirement,
                *place,
                Some("required_plugin_versions"),
                format!(
                    "Plugin requirement not satisfied, must load one of: {} (kaudit provides {})",
                    wanted.join(", "),
                    have.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
