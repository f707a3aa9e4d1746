//! `custom-http-errors` + `default-backend` through the real controller and nginx: the app's
//! `503` and `404` are replaced by the error backend's page (which gets `X-Code` and
//! `X-Original-URI`, and is asked for `/` with the query), the app's other codes and its `200`s pass untouched;
//! nginx's own `503` for a route whose Service is missing gets the page too. Both spellings;
//! `custom-http-errors` without `default-backend` refuses the Ingress (404, reported).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::Result;
use berth_tests::ingress_ctl::{ingress, local_service};

use super::{served, started};

/// A local HTTP/1.1 server. `errors: false` (the app): `/code/NNN` answers `NNN` with the body
/// `app NNN`, anything else `200 app PATH`. `errors: true` (the error backend): answers the
/// code of `X-Code` (else 200) with `page CODE for ORIGINAL-URI at PATH`.
fn start(errors: bool) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || _ = serve(stream, errors));
        }
    });
    Ok(port)
}

fn serve(stream: TcpStream, errors: bool) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let (mut code, mut original) = (None, String::new());
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-code" => code = v.trim().parse::<u16>().ok(),
                    "x-original-uri" => original = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let (status, body) = if errors {
            let c = code.unwrap_or(200);
            (c, format!("page {c} for {original} at {path}"))
        } else {
            let code = path
                .split('?')
                .next()
                .and_then(|p| p.strip_prefix("/code/"));
            match code.and_then(|c| c.parse().ok()) {
                Some(c) => (c, format!("app {c}")),
                None => (200, format!("app {path}")),
            }
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        out.write_all(answer.as_bytes())?;
    }
}

pub fn custom_error_pages() -> Result<()> {
    let (app, pages) = (start(false)?, start(true)?);
    let n = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    let ing = |name: &str, service: &str, ann: &[(&str, &str)]| {
        let host = format!("{name}.test");
        ingress("shop", name, &host, "/", (service, app), ann, None)
    };
    let (codes, backend) = (n("custom-http-errors"), n("default-backend"));
    let manifests = vec![
        ("app", local_service("shop", "app", app)),
        ("errors", local_service("shop", "errors", pages)),
        (
            "nginx",
            ing("nginx", "app", &[(&codes, "503,404"), (&backend, "errors")]),
        ),
        (
            "berth",
            ing(
                "berth",
                "gone",
                &[
                    ("berth.dev/custom-http-errors", "503"),
                    ("berth.dev/default-backend", "errors"),
                ],
            ),
        ),
        ("lone", ing("lone", "app", &[(&codes, "503")])),
        ("plain", ing("plain", "app", &[])),
    ];
    let ctl = started(&manifests, &[])?;
    served(&ctl, "plain.test", "/code/503", 503, Some("app 503"))?;
    let page = |c: u16, uri: &str| {
        // Asked for `/` with the query kept (nginx's rewrite, as in ingress-nginx).
        let query = uri.split_once('?').map(|(_, q)| format!("?{q}"));
        format!("page {c} for {uri} at /{}", query.unwrap_or_default())
    };
    served(
        &ctl,
        "nginx.test",
        "/code/503",
        503,
        Some(&page(503, "/code/503")),
    )?;
    served(
        &ctl,
        "nginx.test",
        "/code/404?q=1",
        404,
        Some(&page(404, "/code/404?q=1")),
    )?;
    // Codes not listed, and successes, are the app's own.
    served(&ctl, "nginx.test", "/code/500", 500, Some("app 500"))?;
    served(&ctl, "nginx.test", "/code/403", 403, Some("app 403"))?;
    served(&ctl, "nginx.test", "/ok", 200, Some("app /ok"))?;
    // The Service is missing: nginx's own 503 gets the page too.
    served(&ctl, "berth.test", "/x", 503, Some(&page(503, "/x")))?;
    // custom-http-errors without default-backend: not served, reported.
    served(&ctl, "lone.test", "/ok", 404, None)?;
    anyhow::ensure!(
        ctl.log_text()
            .contains("custom-http-errors needs default-backend"),
        "no report for the lone custom-http-errors:\n{}",
        ctl.log_text()
    );
    Ok(())
}
