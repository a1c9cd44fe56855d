//! Compiling the collection, as Falco does after reading each rules file: lists expanded one
//! level, every macro parsed (after list substitution) and resolved against the macros
//! visible to it, and every rule of the `k8s_audit` source turned into a checked condition
//! and output template (`shared/reference/falco-rules.md` section 3).

use std::collections::HashMap;

use kaudit_rules_syntax::{self as syntax, ExprKind, Rhs, Span};

use super::check::{self, CheckError, convert};
use super::collect::Collection;
use super::place::{Files, Place, PlacedText, quote_with_caret};
use super::subst::{NO_ORIGIN, Rewritten, add_exceptions, substitute_list};
use crate::error::{LoadError, LoadErrorKind, Warning};
use crate::eval::CompiledOperand;
use crate::fields;
use crate::output::OutputSegment;
use crate::ruleset::{RuleInfo, SkippedRule};

/// Macro expansion may not nest a condition deeper than this.
const MAX_EXPANDED_DEPTH: usize = 600;

/// Macro expansion may not make a condition larger than this many nodes.
const MAX_EXPANDED_NODES: usize = 1_000_000;

/// Macro expansion may not produce more than this many nodes for all conditions together.
const MAX_TOTAL_NODES: usize = 10_000_000;

/// A rule ready to be evaluated.
pub(crate) struct CompiledRule {
    pub info: RuleInfo,
    pub output: Vec<OutputSegment>,
}

/// The result of compiling a collection.
pub(crate) struct Compiled {
    pub rules: Vec<CompiledRule>,
    pub skipped: Vec<SkippedRule>,
    pub warnings: Vec<Warning>,
}

/// A condition text that was parsed: where it came from, and how its bytes map back.
struct TextInfo {
    /// `macro 'x'` or `rule 'y'`.
    label: String,
    /// The text as collected from the file(s).
    placed: PlacedText,
    /// The text after exception and list rewriting, with byte origins.
    rewritten: Rewritten,
    /// Where to point when a byte has no origin (generated exception text).
    fallback: Place,
}

struct Compiler<'a> {
    col: &'a Collection,
    files: Files<'a>,
    /// Parsed texts; a span's `source` is an index into this plus one.
    texts: Vec<TextInfo>,
    lists: Vec<(&'a str, Vec<String>)>,
    list_used: Vec<bool>,
    macro_used: Vec<bool>,
    /// Nodes produced by macro expansion so far.
    total_nodes: usize,
    warnings: Vec<Warning>,
}

/// Compiles the collection. Warnings (unused lists and macros, ...) are only gathered when
/// `final_pass` is set, so that compiling every prefix of the file list does not repeat them.
pub(crate) fn compile(col: &Collection, files: Files<'_>, final_pass: bool) -> Result<Compiled, LoadError> {
    let mut c = Compiler {
        col,
        files,
        texts: Vec::new(),
        lists: Vec::new(),
        list_used: vec![false; col.lists.len()],
        macro_used: vec![false; col.macros.len()],
        total_nodes: 0,
        warnings: Vec::new(),
    };
    c.compile_lists();
    let macros = c.compile_macros()?;
    let (rules, skipped) = c.compile_rules(&macros, final_pass)?;
    if final_pass {
        for (i, m) in col.macros.iter().enumerate() {
            if !c.macro_used[i] {
                let label = format!("macro '{}'", m.name);
                c.warnings.push(files.warning(
                    m.place,
                    Some(&label),
                    "Macro not referred to by any other rule/macro",
                ));
            }
        }
        for (i, l) in col.lists.iter().enumerate() {
            if !c.list_used[i] {
                let label = format!("list '{}'", l.name);
                c.warnings.push(files.warning(
                    l.place,
                    Some(&label),
                    "List not referred to by any other rule/macro",
                ));
            }
        }
    }
    Ok(Compiled {
        rules,
        skipped,
        warnings: c.warnings,
    })
}

impl<'a> Compiler<'a> {
    /// Items naming a list defined before this list's latest (re)definition are replaced by
    /// that list's items, one level deep.
    fn compile_lists(&mut self) {
        let col = self.col;
        let mut positions: HashMap<&str, usize> = HashMap::new();
        for (i, l) in col.lists.iter().enumerate() {
            positions.insert(l.name.as_str(), i);
        }
        for list in &col.lists {
            let mut items = Vec::with_capacity(list.items.len());
            for item in &list.items {
                match positions.get(item.as_str()) {
                    Some(&r) if col.lists[r].index < list.visibility => {
                        self.list_used[r] = true;
                        items.extend(col.lists[r].items.iter().cloned());
                    }
                    _ => items.push(item.clone()),
                }
            }
            self.lists.push((list.name.as_str(), items));
        }
    }

    /// Rewrites (list substitution) and parses a condition text; the tree's spans are tagged
    /// with the text's number.
    fn parse(
        &mut self,
        label: String,
        placed: &PlacedText,
        mut rewritten: Rewritten,
        fallback: Place,
    ) -> Result<syntax::Expr, LoadError> {
        for (i, (name, items)) in self.lists.iter().enumerate() {
            if substitute_list(&mut rewritten, name, items) {
                self.list_used[i] = true;
            }
        }
        let text = rewritten.as_string();
        self.texts.push(TextInfo {
            label,
            placed: placed.clone(),
            rewritten,
            fallback,
        });
        let id = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        match syntax::parse_condition(&text) {
            Ok(mut e) => {
                retag(&mut e, id);
                Ok(e)
            }
            Err(pe) => {
                let label = self.texts[self.texts.len() - 1].label.clone();
                Err(self.error_at(
                    LoadErrorKind::Condition,
                    Span {
                        start: pe.offset,
                        end: pe.offset,
                        source: id,
                    },
                    &label,
                    &pe.message,
                ))
            }
        }
    }

    /// An error at a span of a parsed text, reported for the item `label`.
    fn error_at(&self, kind: LoadErrorKind, span: Span, label: &str, message: &str) -> LoadError {
        let Some(text) = (span.source as usize)
            .checked_sub(1)
            .and_then(|i| self.texts.get(i))
        else {
            return self.files.error(kind, Place::default(), Some(label), message);
        };
        let message = if text.label == label {
            message.to_owned()
        } else {
            format!("{message} (in {})", text.label)
        };
        let origin = text.rewritten.origin(span.start);
        if origin == NO_ORIGIN {
            let mut err = self.files.error(kind, text.fallback, Some(label), message);
            err.snippet.push('\n');
            err.snippet
                .push_str(&quote_with_caret(&text.rewritten.as_string(), span.start));
            return err;
        }
        self.files
            .error_in_text(kind, &text.placed, origin as usize, Some(label), message)
    }

    fn compile_macros(&mut self) -> Result<Vec<syntax::Expr>, LoadError> {
        let col = self.col;
        let mut asts = Vec::with_capacity(col.macros.len());
        for m in &col.macros {
            let ast = self.parse(
                format!("macro '{}'", m.name),
                &m.cond,
                Rewritten::new(&m.cond.text),
                m.place,
            )?;
            asts.push(ast);
        }
        for i in 0..asts.len() {
            let visibility = col.macros[i].visibility;
            let visible = |j: usize| col.macros[j].index < visibility;
            let label = format!("macro '{}'", col.macros[i].name);
            let resolved = self.resolve(&asts, &asts[i], &visible, &label)?;
            asts[i] = resolved;
        }
        Ok(asts)
    }

    /// Replaces macro identifiers by the (expanded) macros visible through `visible`.
    fn resolve(
        &mut self,
        asts: &[syntax::Expr],
        expr: &syntax::Expr,
        visible: &dyn Fn(usize) -> bool,
        label: &str,
    ) -> Result<syntax::Expr, LoadError> {
        let budget = MAX_EXPANDED_NODES.min(MAX_TOTAL_NODES.saturating_sub(self.total_nodes));
        let mut r = Resolver {
            col: self.col,
            asts,
            visible,
            path: Vec::new(),
            nodes: 0,
            budget,
            loop_error: None,
            unknown: None,
            used: Vec::new(),
        };
        let out = r.resolve(expr, 0);
        let Resolver {
            loop_error,
            unknown,
            used,
            nodes,
            ..
        } = r;
        self.total_nodes += nodes;
        let out =
            out.map_err(|(span, message)| self.error_at(LoadErrorKind::Condition, span, label, &message))?;
        if let Some((span, message)) = loop_error.or(unknown) {
            return Err(self.error_at(LoadErrorKind::Condition, span, label, &message));
        }
        for i in used {
            self.macro_used[i] = true;
        }
        Ok(out)
    }

    fn compile_rules(
        &mut self,
        macros: &[syntax::Expr],
        final_pass: bool,
    ) -> Result<(Vec<CompiledRule>, Vec<SkippedRule>), LoadError> {
        let col = self.col;
        let mut rules = Vec::new();
        let mut skipped = Vec::new();
        let all = |_: usize| true;
        for r in &col.rules {
            let label = format!("rule '{}'", r.name);
            let mut rewritten = Rewritten::new(&r.cond.text);
            if !r.exceptions.is_empty() {
                add_exceptions(&mut rewritten, &r.exceptions).map_err(|(i, message)| {
                    let place = r.exceptions.get(i).map_or(r.place, |e| e.place);
                    self.files
                        .error(LoadErrorKind::Validate, place, Some(&label), message)
                })?;
            }
            if !r.source_known {
                // Not evaluated, but parsed like Falco does, so that its lists and macros
                // count as used and a broken condition is still reported.
                let ast = self.parse(label.clone(), &r.cond, rewritten, r.place)?;
                let resolved = self.resolve(macros, &ast, &all, &label)?;
                if r.source == "syscall"
                    && let Some(err) = self.k8s_field_in_syscall_rule(r, &resolved, &label)
                {
                    if r.skip_if_unknown_filter {
                        self.skip_warning(final_pass, r.place, &label, &err);
                        continue;
                    }
                    return Err(err);
                }
                skipped.push(SkippedRule {
                    name: r.name.clone(),
                    source: r.source.clone(),
                });
                continue;
            }
            let output = match self.compile_output(&r.output, &label) {
                Ok(o) => o,
                Err(boxed) => {
                    let (err, unknown) = *boxed;
                    if unknown && r.skip_if_unknown_filter {
                        self.skip_warning(final_pass, r.place, &label, &err);
                        continue;
                    }
                    return Err(err);
                }
            };
            let ast = self.parse(label.clone(), &r.cond, rewritten, r.place)?;
            let resolved = self.resolve(macros, &ast, &all, &label)?;
            let expr = match convert(&resolved) {
                Ok(e) => e,
                Err(CheckError {
                    span,
                    message,
                    unknown_field,
                }) => {
                    let err = self.error_at(LoadErrorKind::Condition, span, &label, &message);
                    if unknown_field && r.skip_if_unknown_filter {
                        self.skip_warning(final_pass, r.place, &label, &err);
                        continue;
                    }
                    return Err(err);
                }
            };
            if final_pass {
                self.regex_warnings(&resolved, &label);
            }
            let source = self
                .files
                .sources
                .get(r.place.file)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let info = RuleInfo::new(crate::ruleset::RuleParts {
                name: r.name.clone(),
                desc: r.desc.clone(),
                priority: r.priority,
                tags: r.tags.iter().cloned().collect(),
                source: r.source.clone(),
                enabled: r.enabled,
                condition: r.cond.text.clone(),
                condition_compiled: syntax::to_condition_string(&resolved),
                output: r.output.text.clone(),
                expr,
                output_fields: output
                    .iter()
                    .flat_map(|s| match s {
                        OutputSegment::Field { field, .. } => std::slice::from_ref(field),
                        OutputSegment::Transform { fields, .. } => fields.as_slice(),
                        OutputSegment::Text(_) => &[],
                    })
                    .cloned()
                    .collect(),
                file: source,
                line: r.place.span.line,
                column: r.place.span.column,
            });
            rules.push(CompiledRule { info, output });
        }
        Ok((rules, skipped))
    }

    /// Falco compiles a rule without `source:` as a syscall rule, whose fields do not include
    /// the k8s audit ones, so it refuses such a rule that reads `ka.*`, `jevt.*` or `json.*`
    /// (output first, then condition). kaudit does not know the syscall fields, but it knows
    /// these are not among them.
    fn k8s_field_in_syscall_rule(
        &self,
        r: &super::collect::RuleDef,
        cond: &syntax::Expr,
        label: &str,
    ) -> Option<LoadError> {
        let is_k8s = |name: &str| ["ka.", "jevt.", "json."].iter().any(|p| name.starts_with(p));
        let hint = "a rule without `source:` is a syscall rule; add `source: k8s_audit`";
        let out = r.output.text.as_bytes();
        for (i, &b) in out.iter().enumerate() {
            if b != b'%' {
                continue;
            }
            let digits = out[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let start = i + 1 + digits;
            let name: String = r.output.text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'))
                .collect();
            if is_k8s(&name) {
                let message =
                    format!("invalid formatting token {name}: not a field of the syscall source ({hint})");
                return Some(self.files.error_in_text(
                    LoadErrorKind::Output,
                    &r.output,
                    i,
                    Some(label),
                    message,
                ));
            }
        }
        let mut found = None;
        cond.for_each_check(&mut |c| {
            c.left.for_each_field(&mut |f| {
                if found.is_none() && is_k8s(&f.name) {
                    found = Some((f.span, f.name.clone()));
                }
            });
        });
        found.map(|(span, name)| {
            let message = format!("filter_check called with nonexistent field {name} ({hint})");
            self.error_at(LoadErrorKind::Condition, span, label, &message)
        })
    }

    fn skip_warning(&mut self, final_pass: bool, place: Place, label: &str, err: &LoadError) {
        if final_pass {
            let message = format!("rule skipped (skip-if-unknown-filter): {}", err.message);
            self.warnings
                .push(self.files.warning(place, Some(label), message));
        }
    }

    /// Parses and checks an output template. The flag tells whether the problem is an unknown
    /// field (which `skip-if-unknown-filter` forgives).
    fn compile_output(
        &self,
        output: &PlacedText,
        label: &str,
    ) -> Result<Vec<OutputSegment>, Box<(LoadError, bool)>> {
        let segments = syntax::parse_template_checked(
            &output.text,
            |n| fields::lookup(n).is_some(),
            |o| check::output_operand(o).map(|_| ()).map_err(|e| e.message),
        )
        .map_err(|e| {
            let err =
                self.files
                    .error_in_text(LoadErrorKind::Output, output, e.offset, Some(label), e.message);
            Box::new((err, true))
        })?;
        let mut out = Vec::with_capacity(segments.len());
        for s in segments {
            match s {
                syntax::Segment::Text(t) => out.push(OutputSegment::Text(t)),
                syntax::Segment::Field(tok) => {
                    let field = fields::resolve(&tok.name, tok.arg.as_deref()).map_err(|e| {
                        let unknown = matches!(e, fields::FieldError::Unknown { .. });
                        let err = self.files.error_in_text(
                            LoadErrorKind::Output,
                            output,
                            tok.start,
                            Some(label),
                            e.to_string(),
                        );
                        Box::new((err, unknown))
                    })?;
                    out.push(OutputSegment::Field {
                        key: tok.written(),
                        field,
                        width: tok.width,
                    });
                }
                syntax::Segment::Transform(tok) => {
                    let operand = check::output_operand(&tok.operand).map_err(|e| {
                        let err = self.files.error_in_text(
                            LoadErrorKind::Output,
                            output,
                            tok.start,
                            Some(label),
                            e.message,
                        );
                        Box::new((err, e.unknown_field))
                    })?;
                    out.push(OutputSegment::Transform {
                        fields: operand.fields().into_iter().cloned().collect(),
                        compiled: Box::new(CompiledOperand::new(&operand)),
                        width: tok.width,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Falco warns about `regex` checks a plain comparison could do.
    fn regex_warnings(&mut self, expr: &syntax::Expr, label: &str) {
        let mut found = Vec::new();
        expr.for_each_check(&mut |c| {
            if c.op == syntax::Op::Regex
                && let Rhs::Value(v) = &c.right
                && !v.text.bytes().any(|b| b".[]()*+?{}|^$\\".contains(&b))
            {
                found.push(v.clone());
            }
        });
        for v in found {
            let err = self.error_at(LoadErrorKind::Condition, v.span, label, "");
            self.warnings.push(Warning {
                file: err.file,
                line: err.line,
                column: err.column,
                item: Some(label.to_owned()),
                message: format!("regex check with '{}' may be optimized with simpler operators (=, startswith, endswith, contains)", v.text),
            });
        }
    }
}

struct Resolver<'r> {
    col: &'r Collection,
    asts: &'r [syntax::Expr],
    visible: &'r dyn Fn(usize) -> bool,
    /// Macros being expanded, to detect loops.
    path: Vec<usize>,
    nodes: usize,
    /// The most nodes this expansion may produce.
    budget: usize,
    loop_error: Option<(Span, String)>,
    unknown: Option<(Span, String)>,
    used: Vec<usize>,
}

impl Resolver<'_> {
    /// Fails only when the result grows too deep or too large; loops and unknown macros are
    /// recorded (the first of each) and the identifier is left in place.
    fn resolve(&mut self, e: &syntax::Expr, depth: usize) -> Result<syntax::Expr, (Span, String)> {
        if depth > MAX_EXPANDED_DEPTH {
            return Err((
                e.span,
                format!(
                    "condition nests too deeply after macro expansion (more than {MAX_EXPANDED_DEPTH} levels)"
                ),
            ));
        }
        self.nodes += 1;
        if self.nodes > self.budget {
            return Err((
                e.span,
                format!(
                    "condition too large after macro expansion (more than {} nodes)",
                    self.budget
                ),
            ));
        }
        let kind = match &e.kind {
            ExprKind::And(children) => ExprKind::And(
                children
                    .iter()
                    .map(|c| self.resolve(c, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Or(children) => ExprKind::Or(
                children
                    .iter()
                    .map(|c| self.resolve(c, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Not(child) => ExprKind::Not(Box::new(self.resolve(child, depth + 1)?)),
            ExprKind::Check(_) => return Ok(e.clone()),
            ExprKind::Identifier(name) => {
                let found = self.col.macro_index(name).filter(|&i| (self.visible)(i));
                let Some(i) = found else {
                    self.unknown
                        .get_or_insert_with(|| (e.span, format!("Undefined macro '{name}' used in filter.")));
                    return Ok(e.clone());
                };
                if self.path.contains(&i) {
                    self.loop_error
                        .get_or_insert_with(|| (e.span, format!("reference loop in macro '{name}'")));
                    return Ok(e.clone());
                }
                if self.path.len() >= MAX_EXPANDED_DEPTH {
                    return Err((
                        e.span,
                        format!("macros nest too deeply (more than {MAX_EXPANDED_DEPTH} levels)"),
                    ));
                }
                self.path.push(i);
                let asts = self.asts;
                let out = self.resolve(&asts[i], depth);
                self.path.pop();
                self.used.push(i);
                return out;
            }
        };
        Ok(syntax::Expr { kind, span: e.span })
    }
}

/// Sets the text number of every span of a freshly parsed tree.
fn retag(e: &mut syntax::Expr, id: u32) {
    e.span.source = id;
    match &mut e.kind {
        ExprKind::And(children) | ExprKind::Or(children) => children.iter_mut().for_each(|c| retag(c, id)),
        ExprKind::Not(child) => retag(child, id),
        ExprKind::Identifier(_) => {}
        ExprKind::Check(check) => {
            retag_operand(&mut check.left, id);
            match &mut check.right {
                Rhs::None => {}
                Rhs::Value(v) | Rhs::ListName(v) => v.span.source = id,
                Rhs::List { items, span } | Rhs::Modified { items, span, .. } => {
                    span.source = id;
                    items.iter_mut().for_each(|v| v.span.source = id);
                }
                Rhs::Operand(o) => retag_operand(o, id),
            }
        }
    }
}

fn retag_operand(o: &mut syntax::Operand, id: u32) {
    match o {
        syntax::Operand::Field(f) => f.span.source = id,
        syntax::Operand::Value(v) => v.span.source = id,
        syntax::Operand::Transform {
            args: items, span, ..
        }
        | syntax::Operand::List { items, span } => {
            span.source = id;
            items.iter_mut().for_each(|i| retag_operand(i, id));
        }
    }
}
