//! Structured logging setup (berth_common::logging: text or JSON, filter from RUST_LOG).

use berth_common::logging::{Format, init as init_with};

use crate::args::LogFormat;

pub fn init(format: LogFormat) {
    // JSON: the event's fields (and message) at the top level of each line.
    init_with(match format {
        LogFormat::Json => Format::Json { flatten: true },
        LogFormat::Text => Format::Text,
    });
}
