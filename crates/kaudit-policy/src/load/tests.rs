//! Unit checks of the loader's scalar typing and name rules; whole files are covered by
//! the fixtures under `tests/fixtures`.

use super::*;

#[test]
fn plain_scalars_are_typed_as_yaml_1_1() {
    let cases: &[(&str, &str)] = &[
        ("", "null"),
        ("~", "null"),
        ("yes", "bool"),
        ("Off", "bool"),
        ("y", "bool"),
        ("5", "number"),
        ("-0x1F", "number"),
        ("1_000", "number"),
        ("1.5e3", "number"),
        (".inf", "number"),
        ("0b101", "number"),
        ("get", "string"),
        ("1.2.3", "string"),
        ("system:anonymous", "string"),
        ("/healthz", "string"),
        ("-apps", "string"),
        ("inf", "string"),
    ];
    for (text, want) in cases {
        let got = match resolve_plain(text) {
            Plain::Null => "null",
            Plain::Bool(_) => "bool",
            Plain::Number => "number",
            Plain::Str => "string",
        };
        assert_eq!(got, *want, "{text:?}");
    }
}

#[test]
fn group_names_are_dns_subdomains() {
    let cases: &[(&str, bool)] = &[
        ("apps", true),
        ("rbac.authorization.k8s.io", true),
        ("a-b.c1", true),
        ("Apps", false),
        ("apps_v1", false),
        ("-apps", false),
        ("apps.", false),
        ("rbac.authorization.k8s.io/v1", false),
    ];
    for (group, ok) in cases {
        assert_eq!(dns1123_subdomain_error(group).is_none(), *ok, "{group}");
    }
    assert!(dns1123_subdomain_error(&"a".repeat(254)).is_some());
}

#[test]
fn strict_turns_warnings_into_errors() {
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verb: [get]\n";
    let loaded = load(text).expect("loads leniently");
    assert_eq!(
        loaded.policy.rules[0].verbs,
        Vec::<String>::new(),
        "the unknown field is dropped"
    );
    let err = loaded.into_strict().expect_err("strict refuses");
    let diagnostics = err.diagnostics();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].severity, Severity::Error);
    assert_eq!(diagnostics[0].span, Span { line: 5, column: 3 });
}

#[test]
fn nulls_decode_to_empty_strings_and_unset_booleans() {
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: ~\nrules:\n- level: None\n  namespaces: [~]\n  omitManagedFields:\n  resources: [~]\n";
    let policy = load(text).expect("loads").policy;
    assert!(!policy.omit_managed_fields);
    assert_eq!(policy.rules[0].namespaces, vec![String::new()]);
    assert_eq!(policy.rules[0].omit_managed_fields, None);
    assert_eq!(policy.rules[0].resources, vec![GroupResources::default()]);
}
