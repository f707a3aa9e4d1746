//! Benchmarks, one module per subject (`csi` here; `node` and `ingress` can sit beside it).
//! Each subject returns [`Figures`]: named numbers with a unit and, where the project has one,
//! the goal they are measured against. `bin/bench.rs` prints them as a table or one JSON object.

pub mod csi;
pub mod csi_scale;
pub mod gateway;
pub mod ingress;
pub mod ingress_scale;
pub mod load;
pub mod memory;
pub mod node;

use std::fmt::Write as _;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub key: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// The goal in words (e.g. "<= 0.5"), empty when there is none.
    pub goal: &'static str,
    /// Whether the goal is met (None when there is no goal).
    pub met: Option<bool>,
}

/// A figure: `key` = `value` `unit`, against `goal` (met or not; None when there is no goal).
pub fn figure(
    key: &'static str,
    value: f64,
    unit: &'static str,
    goal: &'static str,
    met: Option<bool>,
) -> Figure {
    Figure {
        key,
        value,
        unit,
        goal,
        met,
    }
}

pub type Figures = Vec<Figure>;

/// Percentile (0..=100) of unsorted samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx.min(s.len() - 1)]
}

pub fn table(subject: &str, figures: &Figures) -> String {
    let mut out = format!("{subject}\n");
    for f in figures {
        let verdict = match f.met {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "",
        };
        let _ = writeln!(
            out,
            "  {:<34} {:>12.3} {:<8} {:<10} {verdict}",
            f.key, f.value, f.unit, f.goal
        );
    }
    out
}

pub fn json(subject: &str, figures: &Figures) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("subject".into(), subject.into());
    for f in figures {
        m.insert(f.key.into(), serde_json::json!(f.value));
    }
    let missed: Vec<&str> = figures
        .iter()
        .filter(|f| f.met == Some(false))
        .map(|f| f.key)
        .collect();
    m.insert("goals_missed".into(), serde_json::json!(missed));
    serde_json::Value::Object(m)
}
