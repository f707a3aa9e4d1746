//! Kubernetes label selectors (`--service-selector`), parsed once and matched in pure code.
//!
//! Grammar (the subset kubectl accepts): comma-separated requirements, each one of
//! `key=value`, `key==value`, `key!=value`, `key`, `!key`, `key in (a,b)`, `key notin (a,b)`.
//! The Services source watches all Services and this selector picks the ones that are routed
//! by annotation; Ingress backends may name any Service, selected or not.

use std::collections::BTreeMap;
use std::fmt;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    text: String,
}

/// A selector that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector: {0}")]
pub struct SelectorError(String);

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 317 // prefix (253) + '/' + name (63)
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

fn token(s: &str) -> Result<String, SelectorError> {
    let s = s.trim();
    if valid_token(s) {
        Ok(s.to_owned())
    } else {
        Err(SelectorError(format!(
            "'{}' is not a label key or value",
            s.escape_default()
        )))
    }
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn set_values(rest: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError("set values must be in parentheses".into()))?;
    inner.split(',').map(token).collect()
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if !text.trim().is_empty() {
            for part in split_top_level(text) {
                requirements.push(Self::requirement(part.trim())?);
            }
        }
        Ok(Self {
            requirements,
            text: text.trim().to_owned(),
        })
    }

    fn requirement(part: &str) -> Result<Requirement, SelectorError> {
        if let Some((k, v)) = part.split_once("!=") {
            return Ok(Requirement::NotEquals(token(k)?, token(v)?));
        }
        if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            return Ok(Requirement::Equals(token(k)?, token(v)?));
        }
        if let Some(k) = part.strip_prefix('!') {
            return Ok(Requirement::NotExists(token(k)?));
        }
        if let Some((k, rest)) = part.split_once(" notin ") {
            return Ok(Requirement::NotIn(token(k)?, set_values(rest)?));
        }
        if let Some((k, rest)) = part.split_once(" in ") {
            return Ok(Requirement::In(token(k)?, set_values(rest)?));
        }
        Ok(Requirement::Exists(token(part)?))
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

impl fmt::Display for LabelSelector {
    /// The selector as written (normalised whitespace), e.g. for the API's `labelSelector=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matching_table() {
        let l = labels(&[("app.kubernetes.io/expose", "true"), ("tier", "web")]);
        let cases = [
            ("", true),
            ("app.kubernetes.io/expose=true", true),
            ("app.kubernetes.io/expose==true", true),
            ("app.kubernetes.io/expose=false", false),
            ("app.kubernetes.io/expose!=false", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing", false),
            ("tier in (web,api)", true),
            ("tier in (api)", false),
            ("tier notin (api)", true),
            ("missing notin (api)", true),
            ("tier=web, app.kubernetes.io/expose=true", true),
            ("tier=web,missing", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
        assert!(!LabelSelector::parse("tier").unwrap().matches(None));
        assert!(LabelSelector::parse("").unwrap().matches(None));
    }

    #[test]
    fn rejects_garbage() {
        for sel in ["a=b;c", "=x", "a in b", "a in (b;c)", "a=b c", "a=", ","] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }
}
