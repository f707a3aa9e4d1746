//! Routing through the real controller and nginx: a Service appearing, moving and going,
//! Exact / Prefix / longest match, wildcard hosts, default backends, conflicts.

use super::*;

pub fn service_lifecycle() -> Result<()> {
    let (b1, b2) = (Backend::start("b1")?, Backend::start("b2")?);
    let ctl = started(&[], &[])?;
    served(&ctl, "svc.test", "/", 404, None)?;
    ctl.write("svc", &labelled_service("shop", "web", "svc.test", b1.port))?;
    served(&ctl, "svc.test", "/hello", 200, Some("b1 /hello"))?;
    ctl.write("svc", &labelled_service("shop", "web", "svc.test", b2.port))?;
    served(&ctl, "svc.test", "/hello", 200, Some("b2 /hello"))?;
    remove(&ctl, "svc")?;
    served(&ctl, "svc.test", "/hello", 404, None)?;
    ensure!(b1.served() >= 1 && b2.served() >= 1);
    Ok(())
}

pub fn path_matching() -> Result<()> {
    let (b1, b2) = (Backend::start("b1")?, Backend::start("b2")?);
    let (p1, p2) = (b1.port, b2.port);
    let ctl = started(
        &[
            ("s1", local_service("web", "one", p1)),
            ("s2", local_service("web", "two", p2)),
            (
                "paths",
                ingress_rule(
                    "web",
                    "paths",
                    "paths.test",
                    &[
                        ("/foo", "Prefix", "one", p1),
                        ("/foo/bar", "Prefix", "two", p2),
                        ("/exact", "Exact", "two", p2),
                    ],
                ),
            ),
            (
                "both",
                ingress_rule(
                    "web",
                    "both",
                    "both.test",
                    &[("/foo", "Exact", "two", p2), ("/foo/", "Prefix", "one", p1)],
                ),
            ),
            (
                "impl",
                ingress_rule(
                    "web",
                    "impl",
                    "impl.test",
                    &[("/foo", "ImplementationSpecific", "one", p1)],
                ),
            ),
        ],
        &[],
    )?;
    let h = "paths.test";
    // Prefix /foo: element-wise.
    for p in ["/foo", "/foo/", "/foo/x", "/foo/barx"] {
        served(&ctl, h, p, 200, Some(&b1.body_for(p)))?;
    }
    served(&ctl, h, "/foobar", 404, None)?;
    served(&ctl, h, "/", 404, None)?;
    // Longest match: /foo/bar beats /foo.
    for p in ["/foo/bar", "/foo/bar/", "/foo/bar/baz"] {
        served(&ctl, h, p, 200, Some(&b2.body_for(p)))?;
    }
    // Exact: only the whole path.
    served(&ctl, h, "/exact", 200, Some("b2 /exact"))?;
    for p in ["/exact/", "/exactly", "/Exact"] {
        served(&ctl, h, p, 404, None)?;
    }
    // Exact beats Prefix for the same path; the rule's trailing slash is ignored.
    served(&ctl, "both.test", "/foo", 200, Some("b2 /foo"))?;
    served(&ctl, "both.test", "/foo/", 200, Some("b1 /foo/"))?;
    served(&ctl, "both.test", "/foo/z", 200, Some("b1 /foo/z"))?;
    served(&ctl, "both.test", "/foobar", 404, None)?;
    // ImplementationSpecific is Prefix.
    served(&ctl, "impl.test", "/foo/a", 200, Some("b1 /foo/a"))?;
    served(&ctl, "impl.test", "/foobar", 404, None)?;
    Ok(())
}

pub fn wildcard_host() -> Result<()> {
    let b1 = Backend::start("b1")?;
    let ctl = started(
        &[
            ("s1", local_service("web", "one", b1.port)),
            (
                "wild",
                ingress_rule(
                    "web",
                    "wild",
                    "*.wild.test",
                    &[("/", "Prefix", "one", b1.port)],
                ),
            ),
        ],
        &[],
    )?;
    served(&ctl, "a.wild.test", "/x", 200, Some("b1 /x"))?;
    served(&ctl, "other-label.wild.test", "/", 200, Some("b1 /"))?;
    for host in [
        "wild.test",
        "a.b.wild.test",
        "a.wild.test.evil",
        "awild.test",
    ] {
        served(&ctl, host, "/x", 404, None)?;
    }
    Ok(())
}

pub fn default_backend() -> Result<()> {
    let (b1, b2) = (Backend::start("flag")?, Backend::start("spec")?);
    let ctl = started(
        &[
            ("fallback", local_service("infra", "fallback", b1.port)),
            ("s2", local_service("web", "two", b2.port)),
            (
                "app",
                ingress_rule(
                    "web",
                    "app",
                    "app.test",
                    &[("/app", "Prefix", "two", b2.port)],
                ),
            ),
        ],
        &["--default-backend-service=infra/fallback".to_owned()],
    )?;
    // No Ingress sets spec.defaultBackend: the flag's Service serves unknown hosts and paths.
    served(&ctl, "unknown.test", "/x", 200, Some("flag /x"))?;
    served(&ctl, "app.test", "/other", 200, Some("flag /other"))?;
    served(&ctl, "app.test", "/app", 200, Some("spec /app"))?;
    // An Ingress's spec.defaultBackend: the operator's flag still wins (issue 12 item 1),
    // and the Ingress is reported.
    let mut with_default = ingress_rule(
        "web",
        "app",
        "app.test",
        &[("/app", "Prefix", "two", b2.port)],
    );
    with_default["spec"]["defaultBackend"] =
        json!({"service": {"name": "two", "port": {"number": b2.port}}});
    ctl.write("app", &with_default)?;
    wait_until(
        "the overridden defaultBackend reported",
        SERVED_WITHIN,
        || {
            ctl.log_text().lines().any(|l| {
                l.contains("not served as written")
                    && l.contains("Ingress/web/app")
                    && l.contains("default-backend-service")
            })
        },
    )
    .with_context(|| ctl.log_text())?;
    served(&ctl, "unknown.test", "/y", 200, Some("flag /y"))?;
    served(&ctl, "app.test", "/other", 200, Some("flag /other"))?;
    Ok(())
}

pub fn conflict() -> Result<()> {
    let (b1, b2) = (Backend::start("old")?, Backend::start("new")?);
    let with_age = |ns: &str, name: &str, svc: &str, port: u16, created: &str| {
        let mut v = ingress_rule(ns, name, "clash.test", &[("/shared", "Prefix", svc, port)]);
        v["metadata"]["creationTimestamp"] = json!(created);
        v
    };
    // The newer one is written first: order of arrival must not matter.
    let ctl = started(
        &[
            ("s-new", local_service("b", "svc-new", b2.port)),
            ("s-old", local_service("a", "svc-old", b1.port)),
            (
                "newer",
                with_age("b", "newer", "svc-new", b2.port, "2024-05-01T00:00:00Z"),
            ),
        ],
        &[],
    )?;
    served(&ctl, "clash.test", "/shared", 200, Some("new /shared"))?;
    ctl.write(
        "older",
        &with_age("a", "older", "svc-old", b1.port, "2023-01-01T00:00:00Z"),
    )?;
    served(&ctl, "clash.test", "/shared/x", 200, Some("old /shared/x"))?;
    let conflicts = r#"berth_ingress_rejected_objects{reason="conflict"}"#;
    // Reports are published right after the reload: the gauge may trail the first 200.
    wait_until("conflict gauge set", SERVED_WITHIN, || {
        ctl.metric(conflicts).is_ok_and(|v| v >= 1.0)
    })?;
    let log = ctl.log_text();
    ensure!(
        log.lines().any(|l| l.contains("Ingress/b/newer")
            && l.contains("conflict")
            && l.contains("Ingress/a/older")),
        "loser not reported in the log:\n{log}"
    );
    // The winner goes away: the loser is served, and the conflict is over.
    remove(&ctl, "older")?;
    served(&ctl, "clash.test", "/shared", 200, Some("new /shared"))?;
    wait_until("conflict gauge back to 0", SERVED_WITHIN, || {
        ctl.metric(conflicts).is_ok_and(|v| v == 0.0)
    })?;
    Ok(())
}
