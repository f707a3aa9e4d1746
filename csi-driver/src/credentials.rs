//! cephx credentials from a CSI request's `secrets` map (keys `userID` / `userKey`, as
//! ceph-csi). The key is wrapped so it cannot be printed: Debug and Display redact it.

use std::collections::HashMap;
use std::fmt;

use crate::error::Error;

/// A cephx secret key. Never formatted; read with [`Secret::expose`] only where it goes to
/// librados or into a 0600 key file.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// cephx user id without the `client.` prefix.
    pub user: String,
    pub key: Secret,
}

impl Credentials {
    /// Read `userID` / `userKey`. Missing or malformed -> UNAUTHENTICATED (the spec's code for
    /// bad secrets), with a message that names the keys, never their values.
    pub fn from_secrets(secrets: &HashMap<String, String>) -> Result<Self, Error> {
        let user = secrets.get("userID").map(|s| s.trim()).unwrap_or_default();
        let key = secrets.get("userKey").map(|s| s.trim()).unwrap_or_default();
        if user.is_empty() || key.is_empty() {
            return Err(Error::SecretsMissing);
        }
        let user = user.strip_prefix("client.").unwrap_or(user);
        if !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Error::SecretMalformed { key: "userID" });
        }
        // cephx keys are base64: refusing anything else keeps config-file injection out.
        if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(Error::SecretMalformed { key: "userKey" });
        }
        Ok(Credentials {
            user: user.to_string(),
            key: Secret::new(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_user_and_key() {
        let c = Credentials::from_secrets(&secrets(&[
            ("userID", "client.csi"),
            ("userKey", "AQBk+/=="),
        ]))
        .unwrap();
        assert_eq!(c.user, "csi");
        assert_eq!(c.key.expose(), "AQBk+/==");
    }

    #[test]
    fn missing_or_bad_is_unauthenticated_and_never_echoes_the_key() {
        for s in [
            secrets(&[]),
            secrets(&[("userID", "csi")]),
            secrets(&[("userKey", "AQB")]),
            secrets(&[("userID", "csi"), ("userKey", "AQB\nkey = evil")]),
            secrets(&[("userID", "c si"), ("userKey", "AQB")]),
        ] {
            let err = Credentials::from_secrets(&s).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
            assert!(!err.to_string().contains("AQB"), "{err}");
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let c = Credentials {
            user: "csi".into(),
            key: Secret::new("AQBsupersecret"),
        };
        assert!(!format!("{c:?}").contains("supersecret"));
    }
}
