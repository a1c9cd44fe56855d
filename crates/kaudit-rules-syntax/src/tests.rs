//! Parser and template tests, data-driven through one check helper per concern.

use super::*;

/// Parses `input` and compares the tree printed in compiled-condition style.
#[track_caller]
fn check(input: &str, printed: &str) {
    match parse_condition(input) {
        Ok(e) => assert_eq!(to_condition_string(&e), printed, "input: {input:?}"),
        Err(e) => panic!("input {input:?} failed: {e}"),
    }
}

/// Parses `input` and expects an error at `offset` whose message contains `message`.
#[track_caller]
fn check_err(input: &str, offset: usize, message: &str) {
    match parse_condition(input) {
        Ok(e) => panic!("input {input:?} parsed as {}", to_condition_string(&e)),
        Err(e) => {
            assert!(
                e.message.contains(message),
                "input {input:?}: message {:?} lacks {message:?}",
                e.message
            );
            assert_eq!(e.offset, offset, "input {input:?}: {}", e.message);
        }
    }
}

#[test]
fn precedence_and_grouping() {
    check("a or b and not c", "(a or (b and not c))");
    check("(a or b) and c", "((a or b) and c)");
    check("not not a", "a");
    check("not not not a", "not a");
    check("not(a)", "not a");
    check("not (a or b)", "not (a or b)");
    check("a and(b)", "(a and b)");
    check("a or(b)", "(a or b)");
    check("  a  ", "a");
    check("a\tand\nb", "(a and b)");
}

#[test]
fn checks_and_operators() {
    check("ka.verb=create", "ka.verb = create");
    check("ka.verb == create", "ka.verb == create");
    check("ka.verb!=create", "ka.verb != create");
    check("ka.target.subresource exists", "ka.target.subresource exists");
    check("ka.response.code >= 400", "ka.response.code >= 400");
    check("ka.response.code<0x12C", "ka.response.code < 0x12C");
    check("evt.num <= -1.5", "evt.num <= -1.5");
    check("x.y > 3e+2", "x.y > 3e+2");
    check("ka.uri contains \"/api\"", "ka.uri contains /api");
    check("ka.uri icontains API", "ka.uri icontains API");
    check("ka.uri glob '/api/*'", "ka.uri glob /api/*");
    check("ka.uri iglob /API/*", "ka.uri iglob /API/*");
    check("ka.user.name regex \"a.*\"", "ka.user.name regex a.*");
    check(
        "ka.user.name startswith system:",
        "ka.user.name startswith system:",
    );
    check("ka.user.name endswith x", "ka.user.name endswith x");
    check("x.y bcontains 0a0b", "x.y bcontains 0a0b");
    check("x.y bstartswith 0a", "x.y bstartswith 0a");
    check(
        "ka.verb in (create, \"a b\", delete)",
        "ka.verb in (create, \"a b\", delete)",
    );
    check("ka.verb in(create)", "ka.verb in (create)");
    check("ka.verb in ( )", "ka.verb in ()");
    check("ka.verb in ()", "ka.verb in ()");
    check("ka.verb in name", "ka.verb in name");
    check("ka.verb inx", "ka.verb in x");
    check("ka.verb intersects (a)", "ka.verb intersects (a)");
    check("ka.uri pmatch (/a, /b)", "ka.uri pmatch (/a, /b)");
    check("ka.auth.reason = \"\"", "ka.auth.reason = ");
}

#[test]
fn fields_arguments_and_transformers() {
    check(
        "jevt.value[/requestObject/spec] exists",
        "jevt.value[/requestObject/spec] exists",
    );
    check("jevt.value[\"/a b\"] = x", "jevt.value[\"/a b\"] = x");
    check("jevt.value[\"\"] exists", "jevt.value exists");
    check("ka.uri.param[command] = ls", "ka.uri.param[command] = ls");
    check(
        "tolower(ka.useragent) startswith kubectl",
        "tolower(ka.useragent) startswith kubectl",
    );
    check(
        "len( ka.req.pod.containers.image ) = 2",
        "len(ka.req.pod.containers.image) = 2",
    );
    check("toupper(tolower(ka.verb)) = X", "toupper(tolower(ka.verb)) = X");
    check(
        "ka.target.name = val(ka.resp.name)",
        "ka.target.name = val(ka.resp.name)",
    );
    check(
        "ka.verb = tolower(ka.user.name)",
        "ka.verb = tolower(ka.user.name)",
    );
    check(
        "ka.verb = oneof (create, delete)",
        "ka.verb = oneof (create, delete)",
    );
    check(
        "ka.user.name startswith anyof(system:, ali)",
        "ka.user.name startswith anyof (system:, ali)",
    );
    check(
        "ka.uri contains allof (team-a, pods)",
        "ka.uri contains allof (team-a, pods)",
    );
    check("ka.verb = oneof", "ka.verb = oneof");
}

#[test]
fn strings_and_escapes() {
    check(r#"a.b = "x\"y""#, r#"a.b = "x\"y""#);
    check(r"a.b = 'it\'s'", "a.b = \"it's\"");
    check(r#"a.b = "tab\there""#, r#"a.b = "tab\there""#);
    check(r#"a.b = "sl\/ash""#, "a.b = sl/ash");
    check(r#"a.b = "back\ slash""#, r#"a.b = "back\\slash""#);
    check("a.b = héllo", "a.b = héllo");
    check_err(r#"a.b = "x\qy""#, 12, "unsupported string escape sequence: \\q");
    check_err(r#"a.b = 'x\"y'"#, 12, "invalid \\\" escape in '-quoted string");
    check_err(r#"a.b = "x\xAB""#, 13, "unsupported string escape sequence: \\x");
    // A quote preceded by a backslash never closes the string.
    check_err(r#"a.b = "x\\" and c"#, 6, "expected a string value");
}

#[test]
fn errors_have_falco_messages_and_offsets() {
    check_err("", 0, "filter input string is empty");
    check_err("   ", 3, "expected a '(' token, a field check, or an identifier");
    check_err("ka.verb = create and", 20, "expected blank or '(' after 'and'");
    check_err("a or", 4, "expected blank or '(' after 'or'");
    check_err("(a and b", 8, "expected a ')' token");
    check_err("ka.verb", 7, "expected a valid check operator: one of 'exists'");
    check_err("ka.verb contains\tx", 8, "expected a valid check operator");
    check_err(
        "ka.response.code < abc",
        19,
        "expected a number value or a field with a valid transformer",
    );
    check_err(
        "x.y > 3e2",
        7,
        "unexpected token after '3', expecting 'or', 'and'",
    );
    check_err("x.y > 1E3", 7, "unexpected token after '1'");
    check_err("x.y > .5", 6, "expected a number value");
    check_err(
        "ka.verb = (x)",
        10,
        "expected a string value or a field with a valid transformer",
    );
    check_err("ka.verb in (a,)", 14, "expected a string value");
    check_err("ka.verb in ( \"a b\",  )", 21, "expected a string value");
    check_err("ka.verb in (\"a b\" c\")", 18, "expected a ')' token");
    check_err(
        "ka.verb in 5",
        11,
        "expected a list, an identifier, or a field with a valid transformer",
    );
    check_err("jevt.value[] exists", 11, "expected a valid field argument");
    check_err("jevt.value[a exists", 12, "expected a ']' token");
    check_err(
        "tolower(x) = 1",
        8,
        "expected field transformer argument: field, transformer, quoted string, number, or transformer list",
    );
    check_err(
        "tolower(a.b = 1",
        12,
        "expected a ')' token closing the transformer",
    );
    check_err("a.b = val(x)", 10, "expected a field within 'val' transformer");
    check_err("a b", 2, "unexpected token after 'a', expecting 'or', 'and'");
    check_err("a.b = x y", 8, "unexpected token after 'x'");
    check_err("a.b existsx", 10, "unexpected token after 'exists'");
}

#[test]
fn nesting_is_limited() {
    let deep = format!("{}a{}", "(".repeat(150), ")".repeat(150));
    check(&deep, "a");
    let too_deep = format!("{}a{}", "(".repeat(250), ")".repeat(250));
    let err = parse_condition(&too_deep).unwrap_err();
    assert_eq!(err.message, "exceeded max depth limit of 1000");
    let nots = format!("{}a", "not ".repeat(10_000));
    check(&nots, "a");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let pieces = [
        "(", ")", "\"", "'", "\\", "a.b", "x", " ", "=", "in", ",", "[", "]", "not ", "é", "val(", "len(",
        "oneof (", "join(", "concat(", "getopt(", "5",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..(seed % 12) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        let _ = parse_condition(&s);
        let _ = parse_template(&s.replace('x', "%"), |n| n == "a.b");
    }
}

/// Parses a template with the fields `ka.verb`, `ka.target.name`, `ka.target.namespace` and
/// `jevt.value` known, and compares a compact rendering: literal text as is, fields as
/// `{width:name[arg]}`, transformers as `{width:T:written}`. A transformer is accepted when
/// every field it reads is known and its `[arg]` is not `bad`.
#[track_caller]
fn check_template(template: &str, expected: Result<&str, &str>) {
    let known = ["ka.verb", "ka.target.name", "ka.target.namespace", "jevt.value"];
    let accept = |o: &Operand| -> Result<(), String> {
        let mut unknown = None;
        o.for_each_field(&mut |f| {
            if !known.contains(&f.name.as_str()) {
                unknown.get_or_insert_with(|| f.name.clone());
            }
        });
        match (unknown, o) {
            (Some(name), _) => Err(format!("unknown field {name}")),
            (None, Operand::Transform { arg: Some(a), .. }) if a == "bad" => Err("bad argument".into()),
            (None, _) => Ok(()),
        }
    };
    let got = parse_template_checked(template, |n| known.contains(&n), accept);
    match (got, expected) {
        (Ok(segments), Ok(want)) => {
            let mut shown = String::new();
            for s in segments {
                match s {
                    Segment::Text(t) => shown.push_str(&t),
                    Segment::Field(f) => {
                        shown.push('{');
                        if let Some(w) = f.width {
                            shown.push_str(&format!("{w}:"));
                        }
                        shown.push_str(&f.written());
                        shown.push('}');
                    }
                    Segment::Transform(t) => {
                        shown.push('{');
                        if let Some(w) = t.width {
                            shown.push_str(&format!("{w}:"));
                        }
                        shown.push_str("T:");
                        shown.push_str(&t.written);
                        shown.push('}');
                    }
                }
            }
            assert_eq!(shown, want, "template {template:?}");
        }
        (Err(e), Err(want)) => assert!(e.message.contains(want), "template {template:?}: {}", e.message),
        (got, want) => panic!("template {template:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn templates() {
    check_template(
        "verb=%ka.verb ns=%ka.target.namespace",
        Ok("verb={ka.verb} ns={ka.target.namespace}"),
    );
    check_template("%ka.target.name/%ka.verb))", Ok("{ka.target.name}/{ka.verb}))"));
    check_template("%ka.verbx %ka.verb.suffix", Ok("{ka.verb}x {ka.verb}.suffix"));
    check_template("[%20ka.verb]", Ok("[{20:ka.verb}]"));
    check_template(
        "m=%jevt.value[/requestObject/spec]",
        Ok("m={jevt.value[/requestObject/spec]}"),
    );
    check_template("no fields", Ok("no fields"));
    check_template("100%", Err("formatting cannot end with a %"));
    check_template("100%% sure", Err("invalid formatting token % sure"));
    check_template("100% sure", Err("invalid formatting token  sure"));
    check_template("%-20ka.verb", Err("invalid formatting token -20ka.verb"));
    check_template("%20", Err("formatting cannot end with a number"));
    check_template("%ka.foo", Err("invalid formatting token ka.foo"));
    check_template("%jevt.value[/a", Err("not terminated"));
}

#[test]
fn multivalue_transformers_parse_and_print_as_falco() {
    // Arguments: fields, quoted strings, numbers, lists and transformers, printed with bare
    // commas and literals quoted only when needed (Falco's compiled-condition style).
    check(
        "join(\",\", ka.req.pod.containers.image) = \"a,b\"",
        "join(,,ka.req.pod.containers.image) = a,b",
    );
    check(
        "concat(ka.verb, \":\", ka.target.name) = create:p",
        "concat(ka.verb,:,ka.target.name) = create:p",
    );
    check(
        "join(\"-\", ( a.b , \"x y\", 5, 0x1F, tolower(c.d) )) exists",
        "join(-,(a.b,\"x y\",5,0x1F,tolower(c.d))) exists",
    );
    check("join(',', ()) = ''", "join(,,()) = ");
    check(
        "getopt((ka.verb, \"-t\"), \"nt:\")[t] = x",
        "getopt((ka.verb,-t),nt:)[t] = x",
    );
    check("getopt(a.b, 'x')[\"\"] exists", "getopt(a.b,x)[\"\"] exists");
    check(
        "toupper(join(\"-\", (concat(a.b, c.d), a.b))) = X",
        "toupper(join(-,(concat(a.b,c.d),a.b))) = X",
    );
    // Blanks are allowed inside the parentheses, not between the name and `(`.
    check("concat( a.b ,c.d ) = x", "concat(a.b,c.d) = x");
    check_err("concat (a.b, c.d) = x", 7, "unexpected token after 'concat'");
    // Every transformer takes the general argument list; the loader checks the counts.
    check("tolower(\"ABC\") = abc", "tolower(ABC) = abc");
    check("len(a.b, c.d) = 2", "len(a.b,c.d) = 2");
    check("tolower(a.b)[x] = y", "tolower(a.b)[x] = y");
    check("a.b = val(c.d)[x]", "a.b = val(c.d)[x]");
    // On the right side of every kind of operator.
    check(
        "ka.verb = concat(ka.user.name, \"x\")",
        "ka.verb = concat(ka.user.name,x)",
    );
    check(
        "ka.verb in getopt(ka.req.pod.containers.args, \"e:\")",
        "ka.verb in getopt(ka.req.pod.containers.args,e:)",
    );
    check(
        "len(a.b) > len(join(\"\", (c.d)))",
        "len(a.b) > len(join(,(c.d)))",
    );
}

#[test]
fn multivalue_transformer_errors_have_falco_messages_and_offsets() {
    check_err(
        "join() = x",
        5,
        "expected field transformer argument: field, transformer, quoted string, number, or transformer list",
    );
    check_err(
        "join(\",\", ka.verb = x",
        18,
        "expected a ')' token closing the transformer",
    );
    check_err("concat(a.b, bare) = z", 12, "expected field transformer argument");
    check_err(
        "concat(a.b, (x)) = z",
        13,
        "expected transformer list argument: field, transformer, quoted string, or number",
    );
    check_err("concat(a.b, (\"x\" \"y\")) = z", 17, "expected ')'");
    check_err(
        "concat(a.b, ((a.b))) = z",
        13,
        "expected transformer list argument",
    );
    check_err(
        "concat(a.b, val(c.d)) = z",
        12,
        "expected field transformer argument",
    );
    check_err(
        "getopt(a.b, \"x\")[ = z",
        17,
        "expected a valid field argument: a quoted string or a bare string",
    );
    check_err("getopt(a.b, \"x\")[t = z", 18, "expected a ']' token");
    check_err(
        "join(\",\", a.b",
        13,
        "expected a ')' token closing the transformer",
    );
    check_err(
        "ka.verb = ,",
        10,
        "expected a string value or a field with a valid transformer: 'val', 'tolower', 'toupper', 'b64', 'basename', 'len', 'join', 'concat', 'getopt'",
    );
    // Each nested transformer takes two grammar levels (the transformer, its argument).
    let nested = |n: usize| format!("{}a.b{} exists", "concat(".repeat(n), ")".repeat(n));
    assert!(parse_condition(&nested(450)).is_ok());
    match parse_condition(&nested(600)) {
        Ok(_) => panic!("600 nested transformers parsed"),
        Err(e) => assert_eq!(e.message, "exceeded max depth limit of 1000"),
    }
}

#[test]
fn transformer_prefixes_of_output_tokens() {
    let (operand, len) = parse_transformer_prefix("getopt(a.b, \"t:\")[t] rest", true).unwrap();
    assert_eq!(len, "getopt(a.b, \"t:\")[t]".len());
    assert!(matches!(operand, Operand::Transform { arg: Some(ref a), .. } if a == "t"));
    let (_, len) = parse_transformer_prefix("getopt(a.b, \"t:\")[t] rest", false).unwrap();
    assert_eq!(len, "getopt(a.b, \"t:\")".len());
    // Output tokens nest at most as deep as Falco's default parser allows.
    let deep = format!("{}a.b{}", "toupper(".repeat(60), ")".repeat(60));
    match parse_transformer_prefix(&deep, true) {
        Ok(_) => panic!("60 nested transformers parsed in an output token"),
        Err(e) => assert_eq!(e.message, "exceeded max depth limit of 100"),
    }
}

#[test]
fn templates_with_transformers() {
    check_template("v=%toupper(ka.verb)!", Ok("v={T:toupper(ka.verb)}!"));
    check_template(
        "[%10join(\",\", (ka.verb, ka.target.name))]",
        Ok("[{10:T:join(\",\", (ka.verb, ka.target.name))}]"),
    );
    check_template(
        "%concat(ka.verb, \"/\", %ka.target.name)",
        Err(
            "invalid formatting token concat(ka.verb, \"/\", %ka.target.name): expected field transformer argument",
        ),
    );
    check_template(
        "%getopt((ka.verb), \"t:\")[t]x",
        Ok("{T:getopt((ka.verb), \"t:\")[t]}x"),
    );
    // A `[arg]` that is refused (or does not parse) is left as text, as Falco's shorter
    // retries do.
    check_template(
        "%getopt((ka.verb), \"t:\")[bad]",
        Ok("{T:getopt((ka.verb), \"t:\")}[bad]"),
    );
    check_template(
        "%getopt((ka.verb), \"t:\")[t x",
        Ok("{T:getopt((ka.verb), \"t:\")}[t x"),
    );
    check_template(
        "%toupper(ka.nope) end",
        Err("invalid formatting token toupper(ka.nope) end: unknown field ka.nope"),
    );
    check_template(
        "%toupper(ka.verb",
        Err("invalid formatting token toupper(ka.verb: expected a ')' token closing the transformer"),
    );
    check_template(
        "%toupper (ka.verb)",
        Err("invalid formatting token toupper (ka.verb)"),
    );
    check_template("%val(ka.verb)", Err("invalid formatting token val(ka.verb)"));
    check_template("%toupperx", Err("invalid formatting token toupperx"));
}
