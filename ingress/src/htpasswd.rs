//! htpasswd files for `auth-type: basic` (pure): the content of a Secret's `auth` key, every
//! line checked, kept out of every log, error and `Debug` output.
//!
//! Format (what ingress-nginx's `auth-file` Secrets hold, as `htpasswd -c` writes it): one
//! `user:hash` per line, blank lines ignored. `user` is 1..=64 of `A-Z a-z 0-9 . _ @ -`. `hash`
//! is a salted hash nginx verifies: `$apr1$` (htpasswd's default), `$1$`, `$5$`, `$6$`,
//! `$2a$`/`$2b$`/`$2y$` (bcrypt), `$y$` (yescrypt), `{SSHA}` or `{SHA}`, over the crypt/base64
//! alphabet only. Refused: `{PLAIN}` and unsalted DES crypt (no protection worth the name),
//! comments, anything else, more than [`MAX_USERS`] lines or [`MAX_BYTES`] bytes.
//!
//! Errors name the line number and what is wrong with it, never its text: a password hash is
//! a secret too.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::model::ObjectRef;

/// Largest accepted file: 1 000 bcrypt lines are ~70 KiB.
pub const MAX_BYTES: usize = 128 * 1024;
/// Most users one Secret may list (nginx scans the file on every request).
pub const MAX_USERS: usize = 1000;
/// Longest accepted user name.
const MAX_USER_LEN: usize = 64;
/// Longest accepted hash (yescrypt and `$5$rounds=` hashes stay under 160).
const MAX_HASH_LEN: usize = 256;

/// Hash schemes nginx verifies (itself or through crypt(3)), by prefix.
const SCHEMES: &[&str] = &[
    "$apr1$", "$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$", "$y$", "{SSHA}", "{SHA}",
];

/// A validated htpasswd file, ready to be written for nginx (`PREFIX/auth/<id>.htpasswd`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HtpasswdFile {
    /// File stem: `namespace_name_<16 hex of sha256(content)>`; a changed Secret yields a new
    /// name, so the config text changes and nginx reloads.
    pub id: String,
    /// The Secret it came from.
    pub origin: ObjectRef,
    content: Arc<str>,
}

impl HtpasswdFile {
    /// The file's text. Secret: write it to the file, nowhere else.
    pub fn content(&self) -> &str {
        &self.content
    }
}

impl fmt::Debug for HtpasswdFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HtpasswdFile")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .field("content", &"<redacted>")
            .finish()
    }
}

/// Why a Secret's htpasswd content was refused. Never carries the content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HtpasswdError {
    #[error("no user:hash line")]
    Empty,
    #[error("larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_USERS} users")]
    TooManyUsers,
    #[error("not UTF-8 text")]
    NotText,
    #[error("line {line}: {why}")]
    Line { line: usize, why: &'static str },
}

/// Check `bytes` line by line and keep it (normalised: one `\n` after each line) as the file
/// for Secret `origin`.
pub fn parse(origin: ObjectRef, bytes: &[u8]) -> Result<HtpasswdFile, HtpasswdError> {
    if bytes.len() > MAX_BYTES {
        return Err(HtpasswdError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| HtpasswdError::NotText)?;
    let mut content = String::with_capacity(text.len() + 1);
    let mut users = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        check_line(line).map_err(|why| HtpasswdError::Line { line: i + 1, why })?;
        users += 1;
        if users > MAX_USERS {
            return Err(HtpasswdError::TooManyUsers);
        }
        content.push_str(line);
        content.push('\n');
    }
    if users == 0 {
        return Err(HtpasswdError::Empty);
    }
    let digest = Sha256::digest(content.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(HtpasswdFile {
        id: format!("{}_{}_{hex}", origin.namespace, origin.name),
        origin,
        content: Arc::from(content),
    })
}

fn check_line(line: &str) -> Result<(), &'static str> {
    let Some((user, hash)) = line.split_once(':') else {
        return Err("not user:hash");
    };
    let user_ok = !user.is_empty()
        && user.len() <= MAX_USER_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !user_ok {
        return Err("the user name is empty, too long or not A-Z a-z 0-9 . _ @ -");
    }
    if hash.starts_with("{PLAIN}") {
        return Err("{PLAIN} passwords are not accepted; use a hash (htpasswd -B or its default)");
    }
    let Some(scheme) = SCHEMES.iter().find(|s| hash.starts_with(**s)) else {
        return Err("the hash is not one of $apr1$ $1$ $5$ $6$ $2a$ $2b$ $2y$ $y$ {SSHA} {SHA}");
    };
    let rest = &hash[scheme.len()..];
    let alphabet_ok = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"./$=+,".contains(&b));
    if rest.len() < 8 || hash.len() > MAX_HASH_LEN || !alphabet_ok {
        return Err("the hash is too short, too long or has characters outside its alphabet");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn origin() -> ObjectRef {
        ObjectRef::new(Kind::Secret, "shop", "basic")
    }

    #[test]
    fn accepts_htpasswd_lines_and_normalises() {
        let f = parse(
            origin(),
            b"alice:$apr1$x1y2z3$abcdefghijklmnopqrstuv\n\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        )
        .unwrap();
        assert_eq!(f.content().lines().count(), 2);
        assert!(f.content().ends_with('\n'));
        assert!(f.id.starts_with("shop_basic_") && f.id.len() == "shop_basic_".len() + 16);
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("apr1") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn refuses_every_bad_line_without_echoing_it() {
        for (bad, line) in [
            ("", 0),
            ("alice", 1),
            ("a:$apr1$abcdefgh$abcdefgh\nsecret-marker", 2),
            (":$apr1$abcdefgh$abcdefgh", 1),
            ("al ice:$apr1$abcdefgh$abcdefgh", 1),
            ("alice:{PLAIN}secret-marker", 1),
            ("alice:abDES0123456x", 1),
            ("alice:$apr1$abc;def$ghijklmnop", 1),
            ("alice:$apr1$abcdefgh$ab\r", 1),
            ("alice:$apr1$abcdefgh$ab cd", 1),
            ("#comment\nalice:$apr1$abcdefgh$abcdefgh", 1),
            ("alice:$1$", 1),
        ] {
            let e = parse(origin(), bad.as_bytes()).unwrap_err();
            let text = e.to_string();
            assert!(
                !text.contains("secret-marker") && !text.contains("abc"),
                "{text}"
            );
            if line > 0 {
                assert!(
                    text.starts_with(&format!("line {line}:")),
                    "{bad:?}: {text}"
                );
            }
        }
        assert_eq!(
            parse(origin(), &[0xff, b':']).unwrap_err(),
            HtpasswdError::NotText
        );
        let many = "u:$apr1$abcdefgh$abcdefgh\n".repeat(MAX_USERS + 1);
        assert_eq!(
            parse(origin(), many.as_bytes()).unwrap_err(),
            HtpasswdError::TooManyUsers
        );
        let huge = vec![b'a'; MAX_BYTES + 1];
        assert_eq!(parse(origin(), &huge).unwrap_err(), HtpasswdError::TooLarge);
    }
}
