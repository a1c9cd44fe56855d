//! Tests of the loader, the evaluator and the output, data-driven through one check helper per
//! concern. The behaviours are those of `shared/reference/falco-rules.md`.

use kaudit_model::{Priority, read_input};
use serde_json::json;

use crate::fields::EventCtx;
use crate::{Detector, LoadError, Loaded, Matching, RuleSet, RuleSource, Selection, load};

/// A k8s rule with the given condition (and a fixed output).
fn rule(name: &str, condition: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: {condition}\n  output: \"{name} %ka.verb\"\n  priority: WARNING\n  source: k8s_audit\n"
    )
}

fn load_files(files: &[&str]) -> Result<Loaded, LoadError> {
    let sources: Vec<RuleSource> = files
        .iter()
        .enumerate()
        .map(|(i, t)| RuleSource::new(format!("f{}.yaml", i + 1), *t))
        .collect();
    load(&sources)
}

#[track_caller]
fn loaded(files: &[&str]) -> Loaded {
    match load_files(files) {
        Ok(l) => l,
        Err(e) => panic!("load failed: {e}"),
    }
}

/// Loads `files` and compares the compiled condition of rule `name`.
#[track_caller]
fn check_compiled(files: &[&str], name: &str, expected: &str) {
    let l = loaded(files);
    let r = l
        .ruleset
        .rules()
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule {name}"));
    assert_eq!(r.condition_compiled, expected);
}

/// Loads `files` and expects an error whose first line (`file:line:column: item: message`)
/// contains `expected`.
#[track_caller]
fn check_error(files: &[&str], expected: &str) {
    match load_files(files) {
        Ok(_) => panic!("loaded, expected an error containing {expected:?}"),
        Err(e) => {
            let shown = e.to_string();
            let first = shown.lines().next().unwrap_or("");
            assert!(first.contains(expected), "error {shown:?} lacks {expected:?}");
        }
    }
}

/// Loads `files` and expects a warning containing `expected` (or, with `!`, none).
#[track_caller]
fn check_warning(files: &[&str], expected: &str) {
    let l = loaded(files);
    let shown: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    match expected.strip_prefix('!') {
        Some(absent) => assert!(
            !shown.iter().any(|w| w.contains(absent)),
            "unexpected warning {absent:?} in {shown:#?}"
        ),
        None => assert!(
            shown.iter().any(|w| w.contains(expected)),
            "no warning {expected:?} in {shown:#?}"
        ),
    }
}

/// A ResponseComplete event with the given members merged over a base event (a create of pod
/// `p` in `default` by `alice`).
fn event(overrides: serde_json::Value) -> String {
    let mut base = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "a-1",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/default/pods", "verb": "create",
        "user": {"username": "alice", "groups": ["dev", "system:authenticated"]},
        "objectRef": {"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"},
        "responseStatus": {"code": 201},
        "requestObject": {"spec": {"containers": [{"name": "c", "image": "nginx:1.2"}]}},
        "stageTimestamp": "2024-05-01T10:11:12.123456789Z"
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base.to_string()
}

/// The names of the rules matching each event, under all-matching.
fn matches_of(rules: &RuleSet, events: &[String]) -> Vec<Vec<String>> {
    let input = events.join("\n");
    let mut out = Vec::new();
    let mut n = 0;
    let mut matched = Vec::new();
    read_input(
        input.as_bytes(),
        |ev| {
            n += 1;
            let ctx = EventCtx::new(&ev, n);
            rules.evaluate(&ctx, Matching::All, &mut matched);
            out.push(matched.iter().map(|&i| rules.rules()[i].name.clone()).collect());
        },
        |s| panic!("test event skipped: {s}"),
    );
    out
}

/// Loads one rule with `condition` and tells, for each event, whether it matches.
#[track_caller]
fn check_condition(condition: &str, cases: &[(serde_json::Value, bool)]) {
    let l = loaded(&[&rule("R", condition)]);
    let events: Vec<String> = cases.iter().map(|(e, _)| event(e.clone())).collect();
    let got = matches_of(&l.ruleset, &events);
    for ((e, want), got) in cases.iter().zip(got) {
        assert_eq!(!got.is_empty(), *want, "condition {condition:?} on {e}");
    }
}

// ---- loader: lists ------------------------------------------------------------------------

#[test]
fn lists_are_substituted_textually() {
    let lists = "- list: verbs\n  items: [create, \"a b\"]\n- list: empty\n  items: []\n- list: known\n  items: [x, y]\n";
    check_compiled(
        &[lists, &rule("R", "ka.verb in (verbs)")],
        "R",
        "ka.verb in (create, \"a b\")",
    );
    check_compiled(
        &[lists, &rule("R", "ka.verb in (known, empty)")],
        "R",
        "ka.verb in (x, y)",
    );
    check_compiled(
        &[lists, &rule("R", "ka.verb in (empty, known)")],
        "R",
        "ka.verb in (x, y)",
    );
    check_compiled(&[lists, &rule("R", "ka.verb in (empty)")], "R", "ka.verb in ()");
    // Anywhere between delimiters, not only inside `in (...)`, but never inside quotes.
    check_compiled(
        &[
            "- list: pods\n  items: [deployments]\n",
            &rule("R", "ka.target.resource=pods"),
        ],
        "R",
        "ka.target.resource = deployments",
    );
    check_compiled(
        &[
            "- list: pods\n  items: [deployments]\n",
            &rule("R", "ka.target.resource=\"pods\""),
        ],
        "R",
        "ka.target.resource = pods",
    );
    check_compiled(
        &[
            "- list: pods\n  items: [deployments]\n",
            &rule("R", "ka.uri contains kube-pods"),
        ],
        "R",
        "ka.uri contains kube-pods",
    );
}

#[test]
fn list_items_naming_lists() {
    let earlier = "- list: inner\n  items: [a, b]\n- list: outer\n  items: [inner, c]\n";
    check_compiled(
        &[earlier, &rule("R", "ka.verb in (outer)")],
        "R",
        "ka.verb in (a, b, c)",
    );
    // A list named by an item but defined later is expanded by the textual substitution.
    let later =
        "- list: later_ref\n  items: [defined_after, mallory]\n- list: defined_after\n  items: [ci-bot]\n";
    check_compiled(
        &[later, &rule("R", "ka.user.name in (later_ref)")],
        "R",
        "ka.user.name in (ci-bot, mallory)",
    );
}

#[test]
fn list_redefinition_and_append() {
    let base = "- list: l\n  items: [a]\n";
    check_compiled(
        &[base, "- list: l\n  items: [b]\n", &rule("R", "ka.verb in (l)")],
        "R",
        "ka.verb in (b)",
    );
    check_compiled(
        &[
            base,
            "- list: l\n  items: [b]\n  append: true\n",
            &rule("R", "ka.verb in (l)"),
        ],
        "R",
        "ka.verb in (a, b)",
    );
    check_compiled(
        &[
            base,
            "- list: l\n  items: [b]\n  override:\n    items: append\n",
            &rule("R", "ka.verb in (l)"),
        ],
        "R",
        "ka.verb in (a, b)",
    );
    check_compiled(
        &[
            base,
            "- list: l\n  items: [b]\n  override:\n    items: replace\n",
            &rule("R", "ka.verb in (l)"),
        ],
        "R",
        "ka.verb in (b)",
    );
    check_error(
        &["- list: l\n  items: [b]\n  append: true\n"],
        "no list by that name already exists",
    );
    check_error(
        &["- list: l\n  items: [b]\n  append: true\n  override:\n    items: append\n"],
        "cannot be used together",
    );
}

#[test]
fn broken_list_items_break_conditions() {
    check_error(
        &[
            "- list: l\n  items: [\"a b\", \"\"]\n",
            &rule("R", "ka.verb in (l)"),
        ],
        "expected a string value",
    );
    check_error(
        &[
            "- list: l\n  items: ['a \"b\" c']\n",
            &rule("R", "ka.verb in (l)"),
        ],
        "expected a ')' token",
    );
}

// ---- loader: macros -----------------------------------------------------------------------

#[test]
fn macros_are_expanded_and_late_bound() {
    let m = "- macro: kcreate\n  condition: ka.verb=create\n";
    check_compiled(
        &[m, &rule("R", "kcreate and not kcreate")],
        "R",
        "(ka.verb = create and not ka.verb = create)",
    );
    // A later redefinition changes every rule using the macro.
    check_compiled(
        &[
            m,
            &rule("R", "kcreate"),
            "- macro: kcreate\n  condition: ka.verb=delete\n",
        ],
        "R",
        "ka.verb = delete",
    );
    check_compiled(
        &[
            m,
            &rule("R", "kcreate"),
            "- macro: kcreate\n  condition: or ka.verb=patch\n  append: true\n",
        ],
        "R",
        "(ka.verb = create or ka.verb = patch)",
    );
    // Rules see every macro, even one defined after them in the same file.
    check_compiled(
        &[&format!("{}{m}", rule("R", "kcreate"))],
        "R",
        "ka.verb = create",
    );
}

#[test]
fn macro_visibility() {
    // A macro may only use macros first defined before it.
    check_error(
        &["- macro: a\n  condition: b\n- macro: b\n  condition: ka.verb=x\n"],
        "f1.yaml:2:14: macro 'a': Undefined macro 'b' used in filter.",
    );
    // ... before its latest definition, which may come after.
    let ok = "- macro: a\n  condition: ka.verb=y\n- macro: b\n  condition: ka.verb=x\n- macro: a\n  condition: b\n";
    check_compiled(&[ok, &rule("R", "a")], "R", "ka.verb = x");
    check_error(
        &["- macro: a\n  condition: ka.verb=y\n- macro: a\n  condition: a\n"],
        "reference loop in macro 'a'",
    );
    // Every prefix of the file list must compile.
    check_error(
        &[&rule("R", "m"), "- macro: m\n  condition: ka.verb=x\n"],
        "f1.yaml:3:14: rule 'R': Undefined macro 'm'",
    );
    // Unused macros are parsed (and their macros resolved) anyway.
    check_error(
        &["- macro: m\n  condition: ka.verb=\n"],
        "macro 'm': expected a string value",
    );
}

// ---- loader: rules ------------------------------------------------------------------------

#[test]
fn rule_definitions_overrides_and_order() {
    let base = format!("{}{}", rule("A", "ka.verb=a"), rule("B", "ka.verb=b"));
    let l = loaded(&[&base, &rule("A", "ka.verb=z"), &rule("C", "ka.verb=c")]);
    let names: Vec<&str> = l.ruleset.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"], "a redefinition keeps the rule's place");
    assert_eq!(l.ruleset.rules()[0].condition_compiled, "ka.verb = z");

    let over = "- rule: A\n  condition: and ka.user.name=bob\n  output: extra\n  tags: [x, a]\n  priority: error\n  override:\n    condition: append\n    output: append\n    tags: append\n    priority: replace\n";
    let l = loaded(&[&format!("{}  tags: [a, r]\n", rule("A", "ka.verb=a")), over]);
    let r = &l.ruleset.rules()[0];
    assert_eq!(r.condition_compiled, "(ka.verb = a and ka.user.name = bob)");
    assert_eq!(r.output, "A %ka.verb extra");
    assert_eq!(r.tags, ["a", "r", "x"]);
    assert_eq!(r.priority, Priority::Error);

    let legacy = "- rule: A\n  condition: or ka.verb=b\n  append: true\n";
    check_compiled(
        &[&rule("A", "ka.verb=a"), legacy],
        "A",
        "(ka.verb = a or ka.verb = b)",
    );
    check_warning(&[&rule("A", "ka.verb=a"), legacy], "'append' key is deprecated");

    let l = loaded(&[&rule("A", "ka.verb=a"), "- rule: A\n  enabled: false\n"]);
    assert!(!l.ruleset.rules()[0].enabled);
    check_warning(
        &[&rule("A", "ka.verb=a"), "- rule: A\n  enabled: false\n"],
        "standalone 'enabled' key usage is deprecated",
    );
}

#[test]
fn rule_errors() {
    check_error(
        &["- rule: A\n  condition: ka.verb=a\n  append: true\n"],
        "no rule by that name already exists",
    );
    check_error(
        &[
            &rule("A", "ka.verb=a"),
            "- rule: A\n  enabled: false\n  append: true\n",
        ],
        "Appended rule must have exceptions or condition property",
    );
    check_error(
        &["- rule: A\n  enabled: false\n"],
        "Rule has 'enabled' key but no rule by that name already exists",
    );
    check_error(
        &["- rule: A\n  desc: d\n  condition: ka.verb=a\n  priority: info\n"],
        "Item has no mapping for key 'output'",
    );
    check_error(
        &[
            "- rule: A\n  desc: d\n  condition: ka.verb=a\n  output: o\n  priority: loud\n  source: k8s_audit\n",
        ],
        "Invalid priority",
    );
    // A rule without `source:` is a syscall rule, which cannot read k8s audit fields.
    check_error(
        &["- rule: A\n  desc: d\n  condition: ka.verb=a\n  output: o %ka.verb\n  priority: info\n"],
        "f1.yaml:4:13: rule 'A': invalid formatting token ka.verb: not a field of the syscall source",
    );
    check_error(
        &["- rule: A\n  desc: d\n  condition: evt.num=1 and ka.verb=a\n  output: o\n  priority: info\n"],
        "f1.yaml:3:28: rule 'A': filter_check called with nonexistent field ka.verb",
    );
    // A full redefinition without `source:` is a syscall rule.
    check_error(
        &[
            &rule("A", "ka.verb=a"),
            "- rule: A\n  desc: d\n  condition: ka.verb=a\n  output: o\n  priority: info\n",
        ],
        "re-defined with a different source",
    );
    check_error(
        &[
            &rule("A", "ka.verb=a"),
            "- rule: A\n  condition: ka.verb=b\n  override:\n    output: append\n",
        ],
        "An append override for 'output' was specified but 'output' is not defined",
    );
    check_error(
        &[
            &rule("A", "ka.verb=a"),
            "- rule: A\n  condition: ka.verb=b\n  priority: info\n  override:\n    condition: replace\n",
        ],
        "Unexpected key 'priority'",
    );
    check_error(
        &[
            &rule("A", "ka.verb=a"),
            "- rule: A\n  priority: info\n  override:\n    priority: append\n",
        ],
        "Key 'priority' cannot be appended to",
    );
    check_error(
        &["- rule: A\n  condition: x\n  override:\n    condition: replace\n"],
        "no rule by that name already exists",
    );
}

#[test]
fn exceptions_become_condition_text() {
    let ex = "  exceptions:\n  - name: admins\n    fields: ka.user.name\n    values: [admin, \"root user\"]\n  - name: pairs\n    fields: [ka.target.namespace, ka.user.name]\n    comps: [=, in]\n    values:\n    - [kube-system, [x, \"y z\"]]\n    - [default, bob]\n  - name: novalues\n    fields: ka.verb\n";
    check_compiled(
        &[&format!("{}{ex}", rule("R", "ka.verb in (a, b)"))],
        "R",
        "(ka.verb in (a, b) and not ka.user.name in (admin, \"root user\") and not ((ka.target.namespace = kube-system and ka.user.name in (x, \"y z\")) or (ka.target.namespace = default and ka.user.name in (bob))))",
    );
    let tuple_default =
        "  exceptions:\n  - name: e\n    fields: [ka.verb, ka.user.name]\n    values: [[get, bob]]\n";
    check_compiled(
        &[&format!("{}{tuple_default}", rule("R", "ka.verb=a"))],
        "R",
        "(ka.verb = a and not (ka.verb = get and ka.user.name = bob))",
    );
    check_error(
        &[&format!(
            "{}  exceptions:\n  - name: e\n    fields: ka.nope\n    values: [a]\n",
            rule("R", "ka.verb=a")
        )],
        "'ka.nope' is not a supported filter field",
    );
    check_error(
        &[&format!(
            "{}  exceptions:\n  - name: e\n    fields: ka.verb\n    comps: =\n    values: [a]\n",
            rule("R", "ka.verb=a")
        )],
        "comps must be one of (in, pmatch, intersects)",
    );
    check_error(
        &[&format!(
            "{}  exceptions:\n  - name: e\n    fields: ka.verb\n    values: [\"\"]\n",
            rule("R", "ka.verb=a")
        )],
        "Value must be non-empty",
    );
    check_error(
        &[&format!(
            "{}  exceptions:\n  - name: e\n    fields: [ka.verb, ka.uri]\n    values: [[a]]\n",
            rule("R", "ka.verb=a")
        )],
        "Fields and values lists must have equal length",
    );
    // Appending values to an existing exception, and a new one.
    let append = "- rule: R\n  exceptions:\n  - name: e\n    values: [b]\n  - name: f\n    fields: ka.uri\n    comps: pmatch\n    values: [/x]\n  override:\n    exceptions: append\n";
    check_compiled(
        &[
            &format!(
                "{}  exceptions:\n  - name: e\n    fields: ka.verb\n    values: [a]\n",
                rule("R", "ka.verb=c")
            ),
            append,
        ],
        "R",
        "(ka.verb = c and not ka.verb in (a, b) and not ka.uri pmatch (/x))",
    );
    // Falco 0.44.1 quirk: replaced exceptions get no default `comps`.
    let replace = "- rule: R\n  exceptions:\n  - name: e\n    fields: ka.user.name\n    values: [admin]\n  override:\n    exceptions: replace\n";
    check_error(
        &[&rule("R", "ka.verb=c"), replace],
        "expected a valid check operator",
    );
}

#[test]
fn requirements() {
    loaded(&[
        "- required_engine_version: 15\n",
        "- required_engine_version: 0.62.0\n",
    ]);
    check_error(
        &["- required_engine_version: 0.63.0\n"],
        "Rules require engine version 0.63.0, but engine version is 0.62.0",
    );
    check_error(
        &["- required_engine_version: 63\n"],
        "Rules require engine version 0.63.0",
    );
    check_error(
        &["- required_engine_version: soon\n"],
        "Unable to parse engine version 'soon'",
    );
    let plugins = "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.18.0\n    alternatives:\n    - name: k8saudit-eks\n      version: 0.12.0\n  - name: json\n    version: 0.7.0\n";
    loaded(&[plugins]);
    check_error(
        &["- required_plugin_versions:\n  - name: k8saudit\n    version: 0.19.0\n"],
        "Plugin requirement not satisfied, must load one of: k8saudit (>= 0.19.0)",
    );
    check_error(
        &["- required_plugin_versions:\n  - name: k8saudit-gke\n    version: 0.9.0\n"],
        "must load one of: k8saudit-gke",
    );
    check_error(
        &["- required_plugin_versions:\n  - name: json\n    version: 1.0.0\n"],
        "not satisfied",
    );
}

#[test]
fn other_sources_count_but_are_not_evaluated() {
    let syscall = "- list: shells\n  items: [bash]\n- macro: spawned\n  condition: evt.type=execve\n- rule: S\n  desc: d\n  condition: spawned and proc.name in (shells)\n  output: o %proc.name\n  priority: info\n- rule: S2\n  desc: d\n  condition: spawned\n  output: o\n  priority: info\n";
    let l = loaded(&[syscall, &rule("K", "ka.user.name in (shells)")]);
    assert_eq!(l.ruleset.rules().len(), 1);
    assert_eq!(l.ruleset.skipped().len(), 2);
    assert_eq!(l.ruleset.rules()[0].condition_compiled, "ka.user.name in (bash)");
    let notes: Vec<String> = l
        .warnings
        .iter()
        .filter(|w| w.message.contains("not evaluated"))
        .map(|w| w.message.clone())
        .collect();
    assert_eq!(
        notes,
        ["rules of source syscall are not evaluated: kaudit only knows k8s_audit fields"]
    );
    check_warning(
        &[syscall, &rule("K", "ka.user.name in (shells)")],
        "!Macro not referred to",
    );
}

#[test]
fn warnings() {
    check_warning(
        &[&format!("{}  colour: red\n", rule("R", "ka.verb=a"))],
        "unknown key 'colour' ignored",
    );
    check_warning(
        &["- macro: m\n  condition: ka.verb=a\n"],
        "f1.yaml:1:3: macro 'm': Macro not referred to by any other rule/macro",
    );
    check_warning(&["- list: l\n  items: []\n"], "List not referred to");
    check_warning(&["- frobnicate: 1\n"], "Unknown top level item");
    check_warning(&[&rule("R", "ka.user.name regex alice")], "may be optimized");
    let twice = "  exceptions:\n  - name: e\n    fields: ka.verb\n    values: [a]\n  - name: e\n    fields: ka.uri\n    values: [b]\n";
    check_warning(
        &[&format!("{}{twice}", rule("R", "ka.verb=x"))],
        "Multiple definitions of this exception name",
    );
}

// ---- loader: error places -----------------------------------------------------------------

#[test]
fn errors_point_into_conditions() {
    // A plain one-line condition: the exact column.
    check_error(
        &[&rule("R", "ka.verb = create and")],
        "f1.yaml:3:34: rule 'R': expected blank or '(' after 'and'",
    );
    check_error(&[&rule("R", "\"ka.verb = create and\"")], "f1.yaml:3:35:");
    check_error(
        &[&rule("R", "ka.verb=a and ka.foo=b")],
        "f1.yaml:3:28: rule 'R': filter_check called with nonexistent field ka.foo",
    );
    // A block scalar: the scalar's start, and the condition quoted with a caret.
    let block = "- rule: R\n  desc: d\n  condition: >\n    ka.verb=a and\n    ka.bad.field=b\n  output: o\n  priority: info\n  source: k8s_audit\n";
    let e = load_files(&[block]).unwrap_err();
    assert_eq!((e.line, e.column), (4, 5), "{e}");
    assert!(
        e.snippet
            .contains("in: ka.verb=a and ka.bad.field=b\n                     ^"),
        "{}",
        e.snippet
    );
    // Inside a macro: the macro's condition, for the rule that uses it.
    check_error(
        &["- macro: m\n  condition: ka.verb contains\n", &rule("R", "m")],
        "f1.yaml:2:22: macro 'm'",
    );
    check_error(
        &["- macro: m\n  condition: ka.nope exists\n", &rule("R", "m")],
        "f1.yaml:2:14: rule 'R': filter_check called with nonexistent field ka.nope (in macro 'm')",
    );
    // YAML errors.
    check_error(&["- rule: [\n"], "f1.yaml:2:1: invalid YAML");
    check_error(&["rule: x\n"], "Rules content is not yaml array of objects");
    check_error(&["- just a string\n"], "Unexpected element type");
}

#[test]
fn field_and_operator_checks() {
    check_error(
        &[&rule("R", "ka.req.pod.containers.image contains nginx")],
        "'contains' operator not supported list filters (list fields only take the operators exists, in, intersects)",
    );
    check_error(
        &[&rule("R", "ka.req.pod.containers.image = nginx")],
        "list fields only take",
    );
    check_error(
        &[&rule("R", "ka.uri.param exists")],
        "requires an argument but none provided",
    );
    check_error(
        &[&rule("R", "ka.verb[0] exists")],
        "does not allow nor require an argument",
    );
    check_error(
        &[&rule("R", "ka.verb bcontains 41")],
        "'bcontains' operator not supported for string filters",
    );
    check_error(
        &[&rule("R", "evt.num contains 1")],
        "'contains' operator not supported for numeric filters",
    );
    check_error(
        &[&rule("R", "evt.num = abc")],
        "could not parse 'abc' as a number",
    );
    check_error(&[&rule("R", "ka.verb regex \"(\"")], "invalid regular expression");
    check_error(
        &[&rule("R", "jevt.value[] exists")],
        "expected a valid field argument",
    );
    loaded(&[&rule(
        "R",
        "ka.req.pod.containers.image intersects (nginx) and ka.req.pod.containers.image exists and ka.req.pod.containers.image in (a)",
    )]);
}

#[test]
fn output_checks() {
    check_error(
        &[
            "- rule: R\n  desc: d\n  condition: ka.verb=a\n  output: bad %ka.nope field\n  priority: info\n  source: k8s_audit\n",
        ],
        "f1.yaml:4:15: rule 'R': invalid formatting token ka.nope field",
    );
    check_error(
        &[
            "- rule: R\n  desc: d\n  condition: ka.verb=a\n  output: 100%\n  priority: info\n  source: k8s_audit\n",
        ],
        "formatting cannot end with a %",
    );
    check_error(
        &[
            "- rule: R\n  desc: d\n  condition: ka.verb=a\n  output: \"%%\"\n  priority: info\n  source: k8s_audit\n",
        ],
        "invalid formatting token",
    );
    // skip-if-unknown-filter turns an unknown field into a warning and drops the rule.
    let skip = "- rule: R\n  desc: d\n  condition: ka.nope=a\n  output: o\n  priority: info\n  source: k8s_audit\n  skip-if-unknown-filter: true\n";
    let l = loaded(&[skip]);
    assert!(l.ruleset.rules().is_empty());
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("skip-if-unknown-filter"))
    );
}

#[test]
fn a_failed_load_is_all_or_nothing() {
    let good = rule("A", "ka.verb=a");
    assert!(load_files(&[&good, "- rule: B\n  condition: x\n  append: true\n"]).is_err());
    assert!(load_files(&[&good]).is_ok());
}

// ---- evaluation ---------------------------------------------------------------------------

#[test]
fn missing_values_make_checks_false() {
    let no_ns = json!({"objectRef": {"resource": "namespaces", "name": "x"}});
    check_condition(
        "ka.target.namespace != kube-system",
        &[(json!({}), true), (no_ns.clone(), false)],
    );
    check_condition("not ka.target.namespace = kube-system", &[(no_ns.clone(), true)]);
    check_condition(
        "ka.target.namespace exists",
        &[(json!({}), true), (no_ns.clone(), false)],
    );
    check_condition("not ka.target.subresource exists", &[(json!({}), true)]);
    check_condition(
        "ka.target.namespace in (default)",
        &[(json!({}), true), (no_ns, false)],
    );
    // Without auditID no ka.* field has a value; jevt.* still does.
    check_condition("ka.verb = create", &[(json!({"auditID": null}), false)]);
    check_condition("jevt.value[/verb] = create", &[(json!({"auditID": null}), true)]);
    check_condition(
        "not ka.response.code startswith 2",
        &[(json!({"responseStatus": null}), true)],
    );
    // An empty string is a value.
    let ann = json!({"annotations": {"authorization.k8s.io/reason": ""}});
    check_condition(
        "ka.auth.reason = \"\"",
        &[(ann.clone(), true), (json!({}), false)],
    );
    check_condition("ka.auth.reason exists", &[(ann, true)]);
}

#[test]
fn list_fields() {
    let two = json!({"requestObject": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "evil"}]}}});
    check_condition(
        "ka.req.pod.containers.image in (nginx, evil)",
        &[(two.clone(), true)],
    );
    check_condition(
        "ka.req.pod.containers.image in (nginx)",
        &[(two.clone(), false), (json!({}), false)],
    );
    check_condition(
        "not ka.req.pod.containers.image in (nginx)",
        &[(two.clone(), true)],
    );
    check_condition(
        "ka.req.pod.containers.image intersects (evil)",
        &[(two.clone(), true), (json!({}), false)],
    );
    check_condition(
        "ka.req.pod.containers.image exists",
        &[(two.clone(), true), (json!({"requestObject": null}), false)],
    );
    check_condition("ka.user.groups intersects (dev)", &[(json!({}), true)]);
    check_condition("ka.req.pod.containers.image[1] in (evil)", &[(two.clone(), true)]);
    check_condition(
        "len(ka.req.pod.containers.image) = 2",
        &[(two, true), (json!({}), false)],
    );
}

#[test]
fn string_operators() {
    check_condition(
        "ka.response.code >= 400",
        &[
            (json!({"responseStatus": {"code": 201}}), false),
            (json!({"responseStatus": {"code": 403}}), true),
        ],
    );
    // Lexicographic: "9" > "10".
    check_condition(
        "jevt.value[/requestObject/spec/replicas] > 10",
        &[(json!({"requestObject": {"spec": {"replicas": 9}}}), true)],
    );
    check_condition(
        "ka.response.code < 1000",
        &[(json!({"responseStatus": {"code": 201}}), false)],
    );
    check_condition("ka.uri contains namespaces/def", &[(json!({}), true)]);
    check_condition("ka.uri icontains NAMESPACES", &[(json!({}), true)]);
    check_condition(
        "ka.user.name startswith al and ka.user.name endswith ce",
        &[(json!({}), true)],
    );
    check_condition("ka.uri glob '/api/*/pods'", &[(json!({}), true)]);
    check_condition("ka.uri iglob '/API/*'", &[(json!({}), true)]);
    check_condition("ka.user.name regex \"ali\"", &[(json!({}), false)]);
    check_condition("ka.user.name regex \"ali.*\"", &[(json!({}), true)]);
    check_condition(
        "ka.uri pmatch (/api/v1/namespaces)",
        &[(json!({}), true), (json!({"requestURI": "/api/v1/nodes"}), false)],
    );
    check_condition("ka.verb pmatch (/create)", &[(json!({}), true)]);
    check_condition(
        "ka.uri pmatch (/healthz)",
        &[(json!({"requestURI": "/healthz?verbose=1"}), false)],
    );
    check_condition("ka.verb=create", &[(json!({}), true)]);
    check_condition(
        "ka.verb != create",
        &[(json!({}), false), (json!({"verb": "get"}), true)],
    );
    check_condition("jevt.rawtime = 0", &[(json!({}), false)]);
    check_condition("jevt.rawtime exists", &[(json!({}), true)]);
    check_condition(
        "jevt.value[/requestObject/x] = null",
        &[(json!({"requestObject": {"x": null}}), true)],
    );
}

#[test]
fn numbers_transformers_and_modifiers() {
    check_condition("evt.num <= 1", &[(json!({}), true), (json!({}), false)]);
    check_condition("evt.num in (2)", &[(json!({}), false), (json!({}), true)]);
    check_condition(
        "tolower(ka.user.name) = alice and toupper(ka.verb) = CREATE",
        &[(json!({"user": {"username": "ALICE"}}), true)],
    );
    check_condition("basename(ka.uri) = pods", &[(json!({}), true)]);
    check_condition("b64(jevt.value[/x]) = hello", &[(json!({"x": "aGVsbG8="}), true)]);
    check_condition("len(ka.verb) = 6", &[(json!({}), true)]);
    check_condition(
        "ka.target.name = val(ka.resp.name)",
        &[
            (json!({"responseObject": {"metadata": {"name": "p"}}}), true),
            (json!({}), false),
        ],
    );
    check_condition(
        "ka.verb = oneof (get, create)",
        &[(json!({}), true), (json!({"verb": "list"}), false)],
    );
    check_condition(
        "ka.user.name startswith anyof (system:, ali)",
        &[(json!({}), true)],
    );
    check_condition(
        "ka.uri contains allof (default, pods)",
        &[(json!({}), true), (json!({"requestURI": "/api/v1/pods"}), false)],
    );
}

// ---- the multivalue transformers: join, concat, getopt ------------------------------------

/// Two containers whose images are `nginx` and `evil` and whose args are `-e` and `/bin/sh`.
fn two_containers() -> serde_json::Value {
    json!({"requestObject": {"spec": {"containers": [
        {"name": "a", "image": "nginx", "args": ["-e"]},
        {"name": "b", "image": "evil", "args": ["/bin/sh"]}
    ]}}})
}

#[test]
fn join_transformer() {
    let two = two_containers();
    // A list field joined; no value when the list has none.
    check_condition(
        "join(\",\", ka.req.pod.containers.image) = \"nginx,evil\"",
        &[(two.clone(), true), (json!({}), false)],
    );
    check_condition(
        "join(\",\", ka.req.pod.containers.image) exists",
        &[(json!({"requestObject": null}), false)],
    );
    // A list of fields and literals; the separator may be a field; numbers print in decimal.
    check_condition(
        "join(\"->\", (ka.verb, ka.target.name)) = create->p",
        &[(json!({}), true), (json!({"verb": "get"}), false)],
    );
    check_condition(
        "join(ka.target.namespace, (ka.verb, ka.target.name)) = createdefaultp",
        &[(json!({}), true)],
    );
    check_condition("join(\"-\", (\"aaa\", \"bbb\")) = aaa-bbb", &[(json!({}), true)]);
    check_condition("join(\"->\", (\"aaa\")) = aaa", &[(json!({}), true)]);
    check_condition(
        "join(\",\", (\"aaa\", \"bbb\")) = \"aaa-bbb\"",
        &[(json!({}), false)],
    );
    check_condition("join(\",\", (evt.num, evt.num)) = \"1,1\"", &[(json!({}), true)]);
    // An empty list joins to the empty string.
    check_condition("join(\",\", ()) = \"\"", &[(json!({}), true)]);
    check_condition("join(\",\", ()) = \",\"", &[(json!({}), false)]);
    // A list field inside a list gives all its values.
    check_condition(
        "join(\"|\", (ka.verb, ka.user.groups)) = \"create|dev|system:authenticated\"",
        &[(json!({}), true)],
    );
    // Transformers inside and around.
    check_condition(
        "join(\"-\", (ka.target.namespace, join(\"->\", (\"aaa\", toupper(ka.verb))))) = default-aaa->CREATE",
        &[(json!({}), true)],
    );
    check_condition(
        "toupper(join(\"-\", (ka.verb, ka.target.name))) = CREATE-P",
        &[(json!({}), true)],
    );
    check_condition(
        "len(join(\"-\", (ka.verb, ka.target.name))) = 8",
        &[(json!({}), true)],
    );
    check_condition(
        "len(join(\"-\", (ka.verb, ka.target.name))) > 7 and len(join(\"-\", (ka.verb, ka.target.name))) < 9",
        &[(json!({}), true)],
    );
    check_condition(
        "b64(join(\"W\", (\"YWFhL\", \"JiYg\"))) = \"aaa-bbb\"",
        &[(json!({}), true)],
    );
    check_condition(
        "toupper(join(\",\", ka.req.pod.containers.image)) contains EVIL",
        &[(two.clone(), true)],
    );
    // Any item without a value leaves the whole join without one.
    check_condition(
        "join(\",\", (ka.verb, ka.target.subresource)) exists",
        &[
            (json!({}), false),
            (
                json!({"objectRef": {"resource": "pods", "subresource": "exec"}}),
                true,
            ),
        ],
    );
    check_condition(
        "not join(\",\", (ka.verb, ka.target.subresource)) = x",
        &[(json!({}), true)],
    );
}

#[test]
fn concat_transformer() {
    check_condition(
        "concat(ka.target.namespace, \"/\", ka.target.name) = default/p",
        &[
            (json!({}), true),
            (
                json!({"objectRef": {"namespace": "kube-system", "name": "p"}}),
                false,
            ),
        ],
    );
    check_condition(
        "concat(\"aaa\", \"bbb\", \"ccc\") = aaabbbccc",
        &[(json!({}), true)],
    );
    check_condition("concat(\"aaa\", \"bbb\") = \"aaa-bbb\"", &[(json!({}), false)]);
    check_condition("concat(ka.verb, 5, 0x1F) = create50x1F", &[(json!({}), true)]);
    check_condition(
        "concat(ka.target.namespace, \"/\", ka.target.name) in (default/p, kube-system/q)",
        &[(json!({}), true)],
    );
    check_condition(
        "concat(ka.target.namespace, concat(\"aaa\", toupper(ka.verb))) = defaultaaaCREATE",
        &[(json!({}), true)],
    );
    check_condition(
        "toupper(concat(ka.verb, ka.target.name)) startswith CREATEP",
        &[(json!({}), true)],
    );
    check_condition("len(concat(ka.verb, ka.target.name)) = 7", &[(json!({}), true)]);
    check_condition("b64(concat(\"YWFh\", \"YmJi\")) = aaabbb", &[(json!({}), true)]);
    // On the right side: compared with another field.
    check_condition(
        "ka.uri = concat(\"/api/v1/namespaces/\", ka.target.namespace, \"/\", ka.target.resource)",
        &[(json!({}), true), (json!({"requestURI": "/api/v1/pods"}), false)],
    );
    // Any argument without a value leaves the result without one.
    check_condition(
        "concat(ka.verb, ka.target.subresource) exists",
        &[(json!({}), false)],
    );
    check_condition(
        "not concat(ka.verb, ka.target.subresource) = create",
        &[(json!({}), true)],
    );
}

#[test]
fn getopt_transformer() {
    // Options and their values, as a list.
    check_condition(
        "getopt((\"-n\", \"\"), \"n\") intersects (n)",
        &[(json!({}), true)],
    );
    check_condition(
        "getopt((\"-nt\", \"hello\"), \"nt:\") in (n, t, hello)",
        &[(json!({}), true)],
    );
    check_condition(
        "getopt((\"-thello\"), \"t:\") intersects (hello)",
        &[(json!({}), true)],
    );
    check_condition(
        "len(getopt((\"-n\", \"-t\", \"hello\"), \"nt:\")) = 3",
        &[(json!({}), true)],
    );
    check_condition("getopt((\"-n\"), \"n\") intersects (t)", &[(json!({}), false)]);
    // `--`, a non-option and `-` end the options; long options are skipped.
    check_condition(
        "getopt((\"-n\", \"--\", \"-t\"), \"nt:\") intersects (t)",
        &[(json!({}), false)],
    );
    check_condition(
        "getopt((\"arg1\", \"-n\"), \"n\") intersects (n)",
        &[(json!({}), false)],
    );
    check_condition(
        "getopt((\"-\", \"-n\"), \"n\") intersects (n)",
        &[(json!({}), false)],
    );
    check_condition(
        "getopt((\"--exec\", \"-n\"), \"n\") intersects (n)",
        &[(json!({}), true)],
    );
    // Unknown options give `?`; a missing value gives an empty string only.
    check_condition(
        "getopt((\"-x\", \"-n\"), \"n\") in (\"?\", n)",
        &[(json!({}), true)],
    );
    check_condition("getopt((\"-t\"), \"t:\") intersects (\"\")", &[(json!({}), true)]);
    check_condition("getopt((\"-t\"), \"t:\") intersects (t)", &[(json!({}), false)]);
    // With no option at all the list is empty: it exists, is in any set, intersects none.
    let none = "getopt((\"file\", \"-n\"), \"n\")";
    check_condition(&format!("{none} exists"), &[(json!({}), true)]);
    check_condition(&format!("{none} in (x)"), &[(json!({}), true)]);
    check_condition(&format!("{none} intersects (n)"), &[(json!({}), false)]);
    check_condition(&format!("len({none}) = 0"), &[(json!({}), true)]);
    // `[o]` selects the last value of one option; no value when it does not occur.
    let args = "(\"-n\", \"-t\", \"v1\", \"-t\", \"v2\")";
    check_condition(&format!("getopt({args}, \"nt:\")[t] = v2"), &[(json!({}), true)]);
    check_condition(&format!("getopt({args}, \"nt:\")[n] = n"), &[(json!({}), true)]);
    check_condition(
        &format!("getopt({args}, \"nt:\")[x] exists"),
        &[(json!({}), false)],
    );
    check_condition("getopt((\"-t\"), \"t:\")[t] = \"\"", &[(json!({}), true)]);
    check_condition("getopt((\"-t?\"), \"t:\")[t] = \"?\"", &[(json!({}), true)]);
    // Over a list field of an event, and an optstring read from a field.
    check_condition(
        "getopt(ka.req.pod.containers.args, \"e:\")[e] = /bin/sh",
        &[(two_containers(), true), (json!({}), false)],
    );
    check_condition(
        "getopt((\"-c\", ka.verb), concat(ka.target.resource, \"c:\"))[c] = create",
        &[(json!({}), true)],
    );
    // Transformers around it apply to every value; inside `concat` only its first value counts.
    check_condition(
        "toupper(getopt((\"-t\", \"v\"), \"t:\")) intersects (V)",
        &[(json!({}), true)],
    );
    check_condition(
        "concat(getopt((\"-t\", \"v\"), \"t:\"), \"!\") = \"t!\"",
        &[(json!({}), true)],
    );
}

#[test]
fn multivalue_transformer_load_errors() {
    // The place is the transformer's start: line 3, column 14 of the rule.
    let at = |cond: &str, message: &str| {
        check_error(&[&rule("R", cond)], &format!("f1.yaml:3:14: rule 'R': {message}"));
    };
    at(
        "join(\"-\") = x",
        "join() requires exactly 2 arguments: separator and list",
    );
    at(
        "join(\"-\", \"a\", \"b\") = x",
        "join() requires exactly 2 arguments: separator and list",
    );
    // An unknown field inside points at the field itself.
    check_error(
        &[&rule("R", "join(ka.user.groups, (a.b)) = x")],
        "f1.yaml:3:36: rule 'R': filter_check called with nonexistent field a.b",
    );
    at(
        "join(ka.user.groups, (\"a\", \"b\")) = x",
        "join() first argument (separator) must be a single value, not a list",
    );
    at(
        "join((\"a\", \"b\"), \"a\") = x",
        "join() first argument (separator) must be a single value, not a list",
    );
    at("join(\"a\", \"b\") = x", "join() second argument must be a list");
    at(
        "join(\",\", len(ka.verb)) = x",
        "join() second argument must be a list",
    );
    // A getopt result counts as a single string for the transformers that take it.
    at(
        "join(\",\", getopt((\"-n\"), \"n\")) = x",
        "join() second argument must be a list",
    );
    at("concat(\"aaa\") = x", "concat() requires at least 2 arguments");
    at(
        "concat(ka.user.groups, \"a\") = x",
        "concat() arguments must be strings",
    );
    at(
        "concat(\"a\", (\"a\", \"b\")) = x",
        "concat() arguments must be strings",
    );
    at("concat(evt.num, \"a\") = x", "concat() arguments must be strings");
    at(
        "concat(evt.is_async, \"a\") = x",
        "concat() arguments must be strings",
    );
    at(
        "getopt((\"a\")) = x",
        "getopt() requires exactly 2 arguments: args list and optstring",
    );
    at(
        "getopt((\"a\"), \"n\", \"extra\") intersects (n)",
        "getopt() requires exactly 2 arguments: args list and optstring",
    );
    at(
        "getopt(\"not_a_list\", \"n\") intersects (n)",
        "getopt() first argument must be a list",
    );
    at(
        "getopt((\"-n\"), (\"n\")) intersects (n)",
        "getopt() second argument (optstring) must be a single value",
    );
    at(
        "getopt(ka.user.groups, evt.num) intersects (n)",
        "getopt() arguments must be strings",
    );
    // A literal list is a list of strings whatever its items: numbers are printed.
    check_condition("getopt((\"-n\", evt.num), \"n:\")[n] = 1", &[(json!({}), true)]);
    at(
        "getopt((\"-n\"), \"n\")[\"\"] = n",
        "getopt() field argument must be a single option character",
    );
    at(
        "getopt((\"-n\"), \"n\")[nt] = n",
        "getopt() field argument must be a single option character",
    );
    at(
        "concat(\"a\", \"b\")[x] = ab",
        "transformer 'concat' does not support field arguments",
    );
    at(
        "tolower(ka.verb)[x] = a",
        "transformer 'tolower' does not support field arguments",
    );
    at(
        "tolower(ka.verb, ka.uri) = a",
        "transformer 'tolower' takes exactly one argument",
    );
    // A getopt list takes only the list operators; with a selector it is a string.
    at(
        "getopt((\"-n\"), \"n\") = n",
        "'=' operator not supported list filters (list fields only take the operators exists, in, intersects)",
    );
    loaded(&[&rule("R", "getopt((\"-n\"), \"n\")[n] startswith n")]);
    // Syntax errors point at the exact column.
    check_error(
        &[&rule("R", "ka.verb = concat(ka.verb, (x))")],
        "f1.yaml:3:41: rule 'R': expected transformer list argument: field, transformer, quoted string, or number",
    );
    check_error(
        &[&rule("R", "join() = x")],
        "f1.yaml:3:19: rule 'R': expected field transformer argument: field, transformer, quoted string, number, or transformer list",
    );
}

#[test]
fn multivalue_transformers_compile_as_falco_prints_them() {
    check_compiled(
        &[&rule(
            "R",
            "join(\",\", (ka.verb, \"a b\")) = x and ka.verb = concat(ka.user.name, \"x\")",
        )],
        "R",
        "(join(,,(ka.verb,\"a b\")) = x and ka.verb = concat(ka.user.name,x))",
    );
    check_compiled(
        &[&rule(
            "R",
            "getopt( ka.req.pod.containers.args , \"e:\" )[e] = sh",
        )],
        "R",
        "getopt(ka.req.pod.containers.args,e:)[e] = sh",
    );
    // Lists are pasted into transformer arguments like anywhere else.
    check_compiled(
        &[
            "- list: opts\n  items: ['\"-n\"', '\"-t\"']\n",
            &rule("R", "getopt((opts), \"nt:\") intersects (t)"),
        ],
        "R",
        "getopt((-n,-t),nt:) intersects (t)",
    );
    // The fields a rule reads include those inside transformers, in the order written.
    let l = loaded(&[&rule("R", "concat(ka.verb, jevt.value[/requestObject/x]) = a")]);
    let names: Vec<String> = l.ruleset.rules()[0]
        .fields()
        .iter()
        .map(|f| f.display())
        .collect();
    assert_eq!(names, ["ka.verb", "jevt.value[/requestObject/x]"]);
    assert_eq!(l.ruleset.rules()[0].body(), crate::fields::Body::Request);
}

#[test]
fn transformers_in_exception_fields() {
    let ex = "  exceptions:\n  - name: lower\n    fields: tolower(ka.user.name)\n    values: [alice]\n  - name: pair\n    fields:\n    - 'concat(ka.target.namespace, \"/\", ka.target.name)'\n    - ka.verb\n    comps: [=, in]\n    values: [[default/p, [create]]]\n";
    let yaml = format!("{}{ex}", rule("R", "ka.verb exists"));
    check_compiled(
        &[&yaml],
        "R",
        "(ka.verb exists and not tolower(ka.user.name) in (alice) and not (concat(ka.target.namespace,/,ka.target.name) = default/p and ka.verb in (create)))",
    );
    let rules = loaded(&[&yaml]).ruleset;
    let events = [
        event(json!({"user": {"username": "ALICE"}})),
        event(json!({"user": {"username": "bob"}})),
        event(
            json!({"user": {"username": "bob"}, "objectRef": {"resource": "pods", "namespace": "x", "name": "p"}}),
        ),
    ];
    assert_eq!(
        matches_of(&rules, &events),
        [Vec::<String>::new(), vec![], vec!["R".to_owned()]]
    );
    check_error(
        &[&format!(
            "{}  exceptions:\n  - name: e\n    fields: 'join(ka.verb, ka.uri)'\n    values: [a]\n",
            rule("R", "ka.verb=a")
        )],
        "'join(ka.verb, ka.uri)' is not a supported filter field",
    );
}

/// Loads `yaml`, evaluates `ev` under `matching`, and compares the alerts' rule names.
#[track_caller]
fn check_matching(
    yaml: &str,
    selections: &[Selection],
    min: Priority,
    matching: Matching,
    expected: &[&str],
) {
    let mut rules = loaded(&[yaml]).ruleset;
    rules.select(selections);
    rules.set_min_priority(min);
    let detector = Detector::new(rules, matching);
    let input = event(json!({}));
    let mut names = Vec::new();
    read_input(
        input.as_bytes(),
        |ev| names.extend(detector.detect(&ev, 1).into_iter().map(|a| a.rule)),
        |_| {},
    );
    assert_eq!(
        names, expected,
        "selections {selections:?}, min {min:?}, {matching:?}"
    );
}

#[test]
fn matching_selection_and_priority() {
    let yaml = format!(
        "{}  tags: [k8s, a]\n{}  tags: [k8s]\n- rule: Low\n  desc: d\n  condition: ka.verb=create\n  output: o\n  priority: debug\n  source: k8s_audit\n  tags: [b]\n- rule: Off\n  desc: d\n  condition: ka.verb=create\n  output: o\n  priority: info\n  source: k8s_audit\n  enabled: false\n",
        rule("First One", "ka.verb=create"),
        rule("Second", "ka.verb in (create, delete)")
    );
    let all = Priority::Debug;
    check_matching(&yaml, &[], all, Matching::First, &["First One"]);
    check_matching(&yaml, &[], all, Matching::All, &["First One", "Second", "Low"]);
    check_matching(
        &yaml,
        &[Selection::DisableRule("F*".into())],
        all,
        Matching::All,
        &["Second", "Low"],
    );
    check_matching(
        &yaml,
        &[
            Selection::DisableRule("*".into()),
            Selection::EnableTag("k8s".into()),
        ],
        all,
        Matching::All,
        &["First One", "Second"],
    );
    check_matching(
        &yaml,
        &[Selection::DisableTag("a".into())],
        all,
        Matching::All,
        &["Second", "Low"],
    );
    check_matching(
        &yaml,
        &[Selection::EnableRule("Off".into())],
        all,
        Matching::All,
        &["First One", "Second", "Low", "Off"],
    );
    check_matching(
        &yaml,
        &[],
        Priority::Notice,
        Matching::All,
        &["First One", "Second"],
    );
}

#[test]
fn prefilter_never_changes_results() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/falco-k8saudit/rules/k8s_audit_rules.yaml"
    ));
    let Ok(text) = text else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "shared rules missing"
        );
        eprintln!("notice: shared rules missing; skipping");
        return;
    };
    let rules = load(&[RuleSource::new("k8s_audit_rules.yaml", text)])
        .expect("upstream rules load")
        .ruleset;
    let r = rules
        .rules()
        .iter()
        .find(|r| r.name == "Create Privileged Pod")
        .expect("rule exists");
    assert_eq!(
        r.verbs().map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["create".to_owned()])
    );
    assert_eq!(
        r.resources().map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["pods".to_owned()])
    );
    assert_eq!(
        r.stages().map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["ResponseComplete".to_owned()])
    );
    assert_eq!(r.body(), crate::fields::Body::Request);
    let verbs = [
        "create",
        "delete",
        "get",
        "list",
        "watch",
        "patch",
        "update",
        "deletecollection",
    ];
    let resources = [
        "pods",
        "secrets",
        "configmaps",
        "clusterroles",
        "namespaces",
        "deployments",
        "services",
        "clusterrolebindings",
    ];
    let mut events = Vec::new();
    for v in verbs {
        for res in resources {
            for sub in [json!(null), json!("exec")] {
                let mut obj = json!({"resource": res, "namespace": "kube-system", "name": "system:x"});
                if !sub.is_null() {
                    obj["subresource"] = sub.clone();
                }
                events.push(event(
                    json!({"verb": v, "objectRef": obj, "user": {"username": "system:admin"}}),
                ));
                events.push(event(
                    json!({"verb": v, "objectRef": obj, "stage": "ResponseStarted"}),
                ));
            }
        }
    }
    events.push(event(json!({"verb": null})));
    events.push(event(json!({"objectRef": null})));
    let input = events.join("\n");
    let mut n = 0;
    let mut indexed = Vec::new();
    read_input(
        input.as_bytes(),
        |ev| {
            n += 1;
            let ctx = EventCtx::new(&ev, n);
            rules.evaluate(&ctx, Matching::All, &mut indexed);
            let brute = rules.evaluate_without_index(&ctx);
            assert_eq!(indexed, brute, "event {n}");
        },
        |_| {},
    );
    assert!(n > 100);
}

// ---- output -------------------------------------------------------------------------------

/// Loads a rule with `output`, fires it on `ev` and compares the message and the JSON
/// output fields.
#[track_caller]
fn check_output(output: &str, ev: serde_json::Value, message: &str, fields: serde_json::Value) {
    let yaml = format!(
        "- rule: R\n  desc: d\n  condition: ka.verb exists\n  output: '{output}'\n  priority: notice\n  source: k8s_audit\n  tags: [z, a, z]\n"
    );
    let detector = Detector::new(loaded(&[&yaml]).ruleset, Matching::First);
    let input = event(ev);
    let mut alerts = Vec::new();
    read_input(
        input.as_bytes(),
        |e| alerts.extend(detector.detect(&e, 1)),
        |_| {},
    );
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.message, message);
    let j = a.to_falco_json("host-1");
    let mut want = fields;
    want["evt.time"] = json!(1_714_558_272_123_456_789i64);
    assert_eq!(j["output_fields"], want);
    assert_eq!(j["time"], "2024-05-01T10:11:12.123456789Z");
    assert_eq!(j["priority"], "Notice");
    assert_eq!(j["rule"], "R");
    assert_eq!(j["source"], "k8s_audit");
    assert_eq!(j["hostname"], "host-1");
    assert_eq!(j["tags"], json!(["a", "z"]));
    assert_eq!(j["output"], format!("10:11:12.123456789: Notice {message}"));
}

#[test]
fn outputs() {
    check_output(
        "u=%ka.user.name v=%ka.verb",
        json!({}),
        "u=alice v=create",
        json!({"ka.user.name": "alice", "ka.verb": "create"}),
    );
    check_output(
        "ns=%ka.target.namespace",
        json!({"objectRef": {"resource": "nodes"}}),
        "ns=<NA>",
        json!({"ka.target.namespace": null}),
    );
    check_output(
        "images=%ka.req.pod.containers.image first=%ka.req.pod.containers.image[0]",
        json!({}),
        "images=(nginx:1.2) first=(nginx:1.2)",
        json!({"ka.req.pod.containers.image": ["nginx:1.2"], "ka.req.pod.containers.image[0]": ["nginx:1.2"]}),
    );
    check_output(
        "[%10ka.verb][%3ka.target.namespace][%3ka.target.subresource]",
        json!({}),
        "[create    ][def][<NA]",
        json!({"ka.verb": "create", "ka.target.namespace": "default", "ka.target.subresource": null}),
    );
    check_output(
        "%ka.target.name/%ka.target.resource))",
        json!({}),
        "p/pods))",
        json!({"ka.target.name": "p", "ka.target.resource": "pods"}),
    );
    check_output("%ka.verbx", json!({}), "createx", json!({"ka.verb": "create"}));
    check_output(
        "code=%ka.response.code n=%evt.num",
        json!({}),
        "code=201 n=1",
        json!({"ka.response.code": "201", "evt.num": 1}),
    );
    check_output(
        "vols=%jevt.value[/requestObject/spec/volumes]",
        json!({"requestObject": {"spec": {"volumes": [{"hostPath": {"path": "/etc", "type": ""}, "name": "etc"}]}}}),
        "vols=[{\"hostPath\":{\"path\":\"/etc\",\"type\":\"\"},\"name\":\"etc\"}]",
        json!({"jevt.value[/requestObject/spec/volumes]": "[{\"hostPath\":{\"path\":\"/etc\",\"type\":\"\"},\"name\":\"etc\"}]"}),
    );
}

#[test]
fn transformer_outputs() {
    // The message shows the transformed value; `output_fields` shows the fields read,
    // untransformed, as Falco does.
    check_output(
        "u=%toupper(ka.user.name)",
        json!({}),
        "u=ALICE",
        json!({"ka.user.name": "alice"}),
    );
    check_output(
        "images=%join(\"->\", ka.req.pod.containers.image) n=%len(ka.user.groups)",
        two_containers(),
        "images=nginx->evil n=2",
        json!({"ka.req.pod.containers.image": ["nginx", "evil"], "ka.user.groups": ["dev", "system:authenticated"]}),
    );
    check_output(
        "[%8concat(ka.verb, \"!\")][%3concat(ka.target.namespace, \"/\", ka.target.name)]",
        json!({}),
        "[create! ][def]",
        json!({"ka.verb": "create", "ka.target.namespace": "default", "ka.target.name": "p"}),
    );
    check_output(
        "opts=%getopt(ka.req.pod.containers.args, \"e:\") e=%getopt(ka.req.pod.containers.args, \"e:\")[e]",
        two_containers(),
        "opts=(e,/bin/sh) e=/bin/sh",
        json!({"ka.req.pod.containers.args": ["-e", "/bin/sh"]}),
    );
    check_output(
        "sub=%concat(ka.verb, ka.target.subresource) c=%concat(\"a\", \"b\")",
        json!({}),
        "sub=<NA> c=ab",
        json!({"ka.verb": "create", "ka.target.subresource": null}),
    );
    // A `[arg]` the transformer does not take stays text, as Falco's shorter retries leave it.
    check_output(
        "%getopt((\"-t\", ka.verb), \"t:\")[tt] %toupper(ka.verb)[x]",
        json!({}),
        "(t,create)[tt] CREATE[x]",
        json!({"ka.verb": "create"}),
    );
}

#[test]
fn transformer_output_errors() {
    let with_output = |output: &str| {
        format!(
            "- rule: R\n  desc: d\n  condition: ka.verb=a\n  output: bad {output}\n  priority: info\n  source: k8s_audit\n"
        )
    };
    check_error(
        &[&with_output("%concat(ka.verb) x")],
        "f1.yaml:4:15: rule 'R': invalid formatting token concat(ka.verb) x: concat() requires at least 2 arguments",
    );
    check_error(
        &[&with_output("%toupper(ka.nope)")],
        "f1.yaml:4:15: rule 'R': invalid formatting token toupper(ka.nope): filter_check called with nonexistent field ka.nope",
    );
    check_error(
        &[&with_output("%join(\",\", ka.verb")],
        "invalid formatting token join(\",\", ka.verb: expected a ')' token closing the transformer",
    );
    check_error(
        &[&with_output("%val(ka.verb)")],
        "invalid formatting token val(ka.verb)",
    );
    check_error(
        &[&with_output("%toupper (ka.verb)")],
        "invalid formatting token toupper (ka.verb)",
    );
}

#[test]
fn detector_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Detector>();
    assert_send_sync::<RuleSet>();
}

// ---- robustness ---------------------------------------------------------------------------

#[test]
fn mutated_rules_files_never_panic() {
    let base = format!(
        "- required_engine_version: 15\n- list: l\n  items: [a, \"b c\"]\n- macro: m\n  condition: ka.verb in (l) and not jevt.value[/x] exists\n{}  exceptions:\n  - name: e\n    fields: [ka.verb, ka.uri]\n    comps: [=, pmatch]\n    values: [[a, /b]]\n- rule: R\n  condition: or m\n  override:\n    condition: append\n{}  exceptions:\n  - name: t\n    fields: 'tolower(ka.user.name)'\n    values: [a]\n- rule: U\n  desc: d\n  condition: ka.verb exists\n  output: x=%concat(ka.verb, \"-\", ka.uri) %getopt((ka.verb), \"t:\")[t]\n  priority: info\n  source: k8s_audit\n",
        rule(
            "R",
            "m and ka.user.name startswith \"x\" or (tolower(ka.verb) = oneof (a, b))"
        ),
        rule(
            "T",
            "getopt((ka.verb, \"-t\", 5), \"t:\")[t] = join(\",\", ka.user.groups) or concat(ka.verb, 'x') exists"
        )
    );
    assert!(load_files(&[&base]).is_ok(), "the unmutated text loads");
    let bytes = base.as_bytes();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b" \n-:[](){}\"'%,=*&!#\\.abkx0";
    for _ in 0..3000 {
        let mut text = bytes.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let pos = (next() as usize) % text.len();
            match next() % 3 {
                0 => text[pos] = alphabet[(next() as usize) % alphabet.len()],
                1 => text.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                _ => {
                    text.remove(pos);
                }
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let _ = load(&[RuleSource::new("fuzz.yaml", text)]);
    }
}

#[test]
fn macro_explosions_are_refused() {
    let mut yaml = String::from("- macro: m0\n  condition: ka.verb=a\n");
    for i in 1..40 {
        yaml.push_str(&format!(
            "- macro: m{i}\n  condition: (m{p} and m{p})\n",
            p = i - 1
        ));
    }
    yaml.push_str(&rule("R", "m39"));
    check_error(&[&yaml], "too large after macro expansion");
    let mut chain = String::from("- macro: c0\n  condition: ka.verb=a\n");
    for i in 1..2000 {
        chain.push_str(&format!("- macro: c{i}\n  condition: not c{p}\n", p = i - 1));
    }
    chain.push_str(&rule("R", "c1999"));
    check_error(&[&chain], "too deeply");
}
