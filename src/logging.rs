//! Log set-up: `tracing` to standard error, JSON by default, with the `log`
//! records of Pingora bridged in. Standard output stays free for command
//! output.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Pingora's crates log whole request headers, cookies and `Authorization`
/// included, at debug level, so the configured filter never lets them below
/// info. `RUST_LOG` is not capped, for debugging on a developer's machine.
const PINGORA_CAPS: &str = "pingora_core=info,pingora_proxy=info,pingora_http=info";

fn configured_filter(level: &str) -> String {
    let verbose = level.contains("debug") || level.contains("trace");
    if verbose {
        format!("{level},{PINGORA_CAPS}")
    } else {
        level.to_owned()
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the
/// configured level.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(configured_filter(&config.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init also installs the bridge for `log` records; it fails only when
    // a subscriber is already set, which is harmless.
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
