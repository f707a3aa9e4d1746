//! Unit tests of the grammars in `validate.rs`: every accepted form and, for each grammar, the
//! values it must refuse (injection attempts, overlong or malformed input).

use super::*;

#[test]
fn annotation_grammars() {
    assert_eq!(boolean("false"), Ok(false));
    for b in ["False", "no", "", "true;"] {
        assert!(boolean(b).is_err(), "{b:?}");
    }
    for (v, want) in [
        ("0", "0"),
        ("512", "512"),
        ("10k", "10k"),
        ("8M", "8m"),
        ("1g", "1g"),
    ] {
        assert_eq!(size(v).as_deref(), Ok(want));
    }
    for v in [
        "", "k", "1t", "1kb", "-1", "1 m", "1m;", "1234567", "1.5m", "1m\n",
    ] {
        assert!(size(v).is_err(), "{v:?}");
    }
    assert_eq!(timeout_seconds("60"), Ok(60));
    assert_eq!(timeout_seconds("5s"), Ok(5));
    for v in ["0", "", "s", "86401", "1m", "10;", "-1", "999999"] {
        assert!(timeout_seconds(v).is_err(), "{v:?}");
    }
    assert_eq!(backend_protocol("grpc"), Ok(BackendProtocol::Grpc));
    assert_eq!(backend_protocol("grpcs"), Ok(BackendProtocol::Grpcs));
    for v in ["h2", "GRPCS;", "AJP", "FCGI", "", "HTTP;"] {
        assert!(backend_protocol(v).is_err(), "{v:?}");
    }
    let l = cidr_list("10.0.0.0/8, 192.168.1.1,fd00::/8").unwrap();
    let shown: Vec<String> = l.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "192.168.1.1/32", "fd00::/8"]);
    for v in [
        "",
        "10.0.0.0/33",
        "10.0.0.0/",
        "::/129",
        "10.0.0.0/8;",
        "all",
        "10.0.0.0/8,,",
        "1.2.3.4/+8",
    ] {
        assert!(cidr_list(v).is_err(), "{v:?}");
    }
    assert!(cidr_list(&vec!["10.0.0.1"; 65].join(",")).is_err());
    assert_eq!(rewrite_target("/api/").as_deref(), Ok("/api"));
    assert!(rewrite_target("/$1").is_err());
    assert!(rewrite_target("http://x/").is_err());
}

#[test]
fn hosts() {
    let ok = [
        ("foo.example.com", Host::Exact("foo.example.com".into())),
        ("a", Host::Exact("a".into())),
        ("x-1.y2", Host::Exact("x-1.y2".into())),
        ("*.example.com", Host::Wildcard("example.com".into())),
    ];
    for (input, want) in ok {
        assert_eq!(host(input), Ok(want), "{input}");
    }
    let bad = [
        "",
        "Foo.example.com",
        "foo..com",
        ".foo.com",
        "foo.com.",
        "-foo.com",
        "foo-.com",
        "*",
        "*.",
        "**.foo.com",
        "foo.*.com",
        "*foo.com",
        "*.*.foo.com",
        "foo.com;",
        "foo.com }",
        "foo.com\n",
        "foo com",
        "foo_bar.com",
        "ex\u{e4}mple.com",
        "127.0.0.1",
        "$host",
    ];
    for input in bad {
        assert!(host(input).is_err(), "{input:?} accepted");
    }
    assert!(host(&format!("{}.com", "a".repeat(64))).is_err());
    assert!(host(&vec!["a".repeat(63); 4].join(".")).is_err()); // 255 chars
    assert!(
        host(
            &[
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(61)
            ]
            .join(".")
        )
        .is_ok()
    );
}

#[test]
fn paths() {
    let ok = [
        ("/", PathKind::Prefix, "/"),
        ("/", PathKind::Exact, "/"),
        ("/foo", PathKind::Prefix, "/foo"),
        ("/foo/", PathKind::Prefix, "/foo"),
        ("/foo/", PathKind::Exact, "/foo/"),
        ("/a-b_c.d~e/F9", PathKind::Exact, "/a-b_c.d~e/F9"),
        ("/v1:x@y+z,w=1!*&", PathKind::Prefix, "/v1:x@y+z,w=1!*&"),
        ("/.well-known/acme", PathKind::Prefix, "/.well-known/acme"),
    ];
    for (input, kind, want) in ok {
        assert_eq!(path(input, kind).as_deref(), Ok(want), "{input}");
    }
    let bad = [
        "",
        "foo",
        "/foo;",
        "/foo{",
        "/foo}",
        "/$uri",
        "/a\"b",
        "/a'b",
        "/a#b",
        "/a\\b",
        "/a b",
        "/a\tb",
        "/a\nb",
        "/a\0b",
        "/caf\u{e9}",
        "/a%20b",
        "/a?b",
        "/a//b",
        "/a/../b",
        "/a/./b",
        "/..",
        "/a(b)",
        "/a|b",
        "/a^b",
        "/a<b>",
    ];
    for input in bad {
        assert!(path(input, PathKind::Prefix).is_err(), "{input:?} accepted");
    }
    assert!(path(&format!("/{}", "a".repeat(MAX_PATH_LEN)), PathKind::Exact).is_err());
}

#[test]
fn ports_and_names() {
    assert_eq!(port(80), Ok(80));
    assert_eq!(port(65535), Ok(65535));
    for p in [0, -1, 65536, i64::MAX] {
        assert!(port(p).is_err(), "{p}");
    }
    assert_eq!(port_ref("8080"), Ok(PortRef::Number(8080)));
    assert_eq!(port_ref("http"), Ok(PortRef::Name("http".into())));
    for p in [
        "",
        "0",
        "99999999999999999999",
        "HTTP",
        "a_b",
        "80;",
        "toolongportname1",
    ] {
        assert!(port_ref(p).is_err(), "{p:?}");
    }
    assert_eq!(dns_label("default"), Ok("default"));
    for n in ["", "Default", "a.b", "-a", "a-", "a b", "a;"] {
        assert!(dns_label(n).is_err(), "{n:?}");
    }
    assert!(ip("10.0.0.1").is_ok());
    assert!(ip("fd00::1").is_ok());
    assert!(ip("10.0.0.1; evil").is_err());
    assert!(ip("None").is_err());
}

#[test]
fn excerpt_escapes_and_truncates() {
    assert_eq!(excerpt("a\nb"), "a\\nb");
    assert_eq!(excerpt(&"x".repeat(100)), format!("{}...", "x".repeat(40)));
}
