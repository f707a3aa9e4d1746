//! Structured logging setup of both binaries (tracing-subscriber on stderr, text or JSON,
//! the filter from `RUST_LOG`, `info` by default).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (coloured only on a terminal).
    Text,
    /// One JSON object per line; `flatten` puts the event's fields (and its message) at the
    /// top level instead of under `fields`.
    Json { flatten: bool },
}

/// Install the global subscriber (once per process).
pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        Format::Json { flatten } => builder.json().flatten_event(flatten).init(),
        Format::Text => builder.init(),
    }
}
