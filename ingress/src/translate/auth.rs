//! Basic authentication annotations -> [`BasicAuth`] (pure), with their grammars.
//!
//! `auth-type: basic` needs `auth-secret` (`name` or `<own namespace>/name`: a Secret in the
//! Ingress's namespace whose key `auth` holds an htpasswd file, checked line by line by
//! `htpasswd.rs`); `auth-secret-type` may only say `auth-file` (the default); `auth-realm` is
//! 1..=[`MAX_REALM_LEN`] of `A-Z a-z 0-9 space . _ , : @ ( ) / -` (written inside double
//! quotes; no `$`, quote, backslash or `;`). Any auth annotation without `auth-type: basic`, a
//! missing or invalid Secret: the Ingress is refused (never served without its authentication),
//! and the report names the Secret, never its content.

use super::report;
use super::secrets::Secrets;
use crate::model::{BasicAuth, ObjectRef, Reason, Report};
use crate::validate::{self, Invalid};

/// Longest accepted realm.
pub const MAX_REALM_LEN: usize = 100;
/// The realm when `auth-realm` is not given.
pub const DEFAULT_REALM: &str = "Authentication Required";

/// One annotation as written: (report field, value).
pub type Field<'a> = (String, &'a str);

/// The auth annotations an Ingress carries (either spelling).
#[derive(Debug, Default)]
pub struct AuthAnnotations<'a> {
    pub auth_type: Option<Field<'a>>,
    pub secret: Option<Field<'a>>,
    pub secret_type: Option<Field<'a>>,
    pub realm: Option<Field<'a>>,
}

/// `auth-realm`.
pub fn realm(value: &str) -> Result<String, Invalid> {
    let ok = !value.is_empty()
        && value.len() <= MAX_REALM_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" ._,:@()/-".contains(&b));
    if !ok {
        return Err(Invalid(format!(
            "'{}' is not a realm (1..{MAX_REALM_LEN} of letters, digits, space and . _ , : @ ( ) / -)",
            validate::excerpt(value)
        )));
    }
    Ok(value.to_owned())
}

/// `auth-secret`: `name` or `namespace/name` with the Ingress's own namespace.
pub fn secret_name<'v>(value: &'v str, namespace: &str) -> Result<&'v str, Invalid> {
    let name = match value.split_once('/') {
        Some((ns, name)) if ns == namespace => name,
        Some(_) => {
            return Err(Invalid(format!(
                "'{}': the Secret must be in the Ingress's namespace {namespace}",
                validate::excerpt(value)
            )));
        }
        None => value,
    };
    validate::dns_name(name)
}

/// The Ingress's basic authentication, `None` when it asks for none.
pub fn basic(
    origin: &ObjectRef,
    a: AuthAnnotations<'_>,
    secrets: &Secrets<'_>,
) -> Result<Option<BasicAuth>, Report> {
    let bad = |field: &str, detail: String| {
        report(origin, field.to_owned(), Reason::InvalidAnnotation, detail)
    };
    let Some((type_field, ty)) = &a.auth_type else {
        if let Some((field, _)) = a.secret.iter().chain(&a.secret_type).chain(&a.realm).next() {
            return Err(bad(
                field,
                "needs auth-type: basic (the Ingress is not served with half its authentication)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    if *ty != "basic" {
        return Err(bad(
            type_field,
            format!(
                "'{}': only auth-type basic is supported",
                validate::excerpt(ty)
            ),
        ));
    }
    if let Some((field, t)) = &a.secret_type
        && *t != "auth-file"
    {
        return Err(bad(
            field,
            format!(
                "'{}': only auth-secret-type auth-file (an htpasswd file in key 'auth') is supported",
                validate::excerpt(t)
            ),
        ));
    }
    let realm = match &a.realm {
        Some((field, v)) => realm(v).map_err(|e| bad(field, e.to_string()))?,
        None => DEFAULT_REALM.to_owned(),
    };
    let Some((secret_field, secret)) = &a.secret else {
        return Err(bad(
            type_field,
            "auth-type basic needs auth-secret; the Ingress is not served".into(),
        ));
    };
    let name =
        secret_name(secret, &origin.namespace).map_err(|e| bad(secret_field, e.to_string()))?;
    let file = secrets
        .htpasswd(&origin.namespace, name)
        .map_err(|e| bad(secret_field, format!("{e}; the Ingress is not served")))?;
    Ok(Some(BasicAuth { realm, file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_and_secret_grammars() {
        assert!(realm("Shop staff (v2) - log in: a@b.c/d_e,f").is_ok());
        for r in [
            "",
            "a\"b",
            "a;b",
            "$realm",
            "a\\b",
            "a\nb",
            "é",
            &"a".repeat(101),
        ] {
            assert!(realm(r).is_err(), "{r:?}");
        }
        assert_eq!(secret_name("basic", "shop"), Ok("basic"));
        assert_eq!(secret_name("shop/basic", "shop"), Ok("basic"));
        for s in ["other/basic", "Basic", "a/b/c", "", "b;c"] {
            assert!(secret_name(s, "shop").is_err(), "{s:?}");
        }
    }
}
