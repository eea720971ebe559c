//! Log set-up: `tracing` to standard error, JSON by default, with the `log`
//! records of Pingora bridged in. Standard output stays free for command
//! output.
//!
//! Access lines, one per request, are gathered in memory and written by a
//! thread of their own every few milliseconds, so a request costs a copy
//! instead of a `write(2)`. Every other line is written at once, after the
//! access lines gathered before it. Access lines of different threads can
//! therefore appear a few milliseconds out of order; each carries its time.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use tracing::{Event, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Pingora's crates log whole request headers, cookies and `Authorization`
/// included, at debug level, so the configured filter never lets them below
/// info. `RUST_LOG` is not capped, for debugging on a developer's machine.
const PINGORA_CAPS: &str = "pingora_core=info,pingora_proxy=info,pingora_http=info";

/// Target of the access lines, which are written in batches.
pub const ACCESS_TARGET: &str = "portcullis::access";

/// Maximum time an access line waits in memory before it is written.
const ACCESS_FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Maximum bytes of access lines one thread gathers. A line that does not fit
/// is written by the request's thread with the ones gathered before it, so
/// a burst cannot grow the memory without end.
const ACCESS_MAX_PENDING_BYTES: usize = 256 * 1024;

/// Returns the filter for `log.level`, with [`PINGORA_CAPS`] added when it
/// lets anything below info through. The filter decides that, so `DEBUG`,
/// `Debug` and `5` count as well as `debug`.
fn configured_filter(level: &str) -> String {
    let verbose = match EnvFilter::try_new(level) {
        Ok(filter) => filter
            .max_level_hint()
            .is_none_or(|max| max > LevelFilter::INFO),
        Err(_) => true,
    };
    if verbose {
        format!("{level},{PINGORA_CAPS}")
    } else {
        level.to_owned()
    }
}

/// Crates whose name may stand alone in `RUST_LOG`, enabling every level of
/// that crate. Any other bare word is taken for a misspelt level.
const KNOWN_CRATES: [&str; 10] = [
    "portcullis",
    "pingora",
    "sqlx",
    "redis",
    "reqwest",
    "openidconnect",
    "hyper",
    "rustls",
    "tokio",
    "h2",
];

/// Returns why the `RUST_LOG` value `text` is not used, or `None` when it
/// is. A bare word that is neither a level nor a known crate (such as
/// `inof`) would parse as a target and silence every other line, the
/// access lines included.
fn rust_log_problem(text: &str) -> Option<String> {
    const LEVELS: [&str; 12] = [
        "off", "error", "warn", "info", "debug", "trace", "0", "1", "2", "3", "4", "5",
    ];
    for directive in text.split(',').map(str::trim) {
        if directive.is_empty() || directive.contains(['=', '[']) {
            continue;
        }
        let word = directive.to_ascii_lowercase();
        let is_level = LEVELS.contains(&word.as_str());
        let is_crate = KNOWN_CRATES.iter().any(|name| {
            word == *name
                || word.starts_with(&format!("{name}_"))
                || word.starts_with(&format!("{name}::"))
        });
        if !is_level && !is_crate {
            return Some(format!(
                "{directive:?} is neither a level nor a known crate"
            ));
        }
    }
    EnvFilter::try_new(text)
        .err()
        .map(|error| error.to_string())
}

/// Installs the global subscriber. `RUST_LOG`, when set and not blank,
/// overrides the configured level. A value that cannot be used is reported
/// in a warning, and `log.level` applies.
pub fn init(config: &LogConfig) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|text| !text.trim().is_empty());
    let mut ignored = None;
    let filter = match rust_log {
        Some(text) => match rust_log_problem(&text) {
            None => EnvFilter::new(text),
            Some(problem) => {
                ignored = Some((text, problem));
                EnvFilter::new(configured_filter(&config.level))
            }
        },
        None => EnvFilter::try_new(configured_filter(&config.level))
            .unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrWriter);
    // try_init also installs the bridge for `log` records; it fails only when
    // a subscriber is already set, which is harmless.
    let _ = match config.format {
        LogFormat::Json => {
            let format = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false);
            builder.json().event_format(BridgedJson(format)).try_init()
        }
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    if let Some((text, problem)) = ignored {
        tracing::warn!(
            rust_log = %text,
            problem = %problem,
            level = %config.level,
            "RUST_LOG ignored; log.level applies"
        );
    }
}

/// The JSON line format, minus the `log.target`, `log.module_path`,
/// `log.file` and `log.line` fields that the `log` bridge adds to each
/// record of Pingora. tracing-subscriber 0.3.23 writes them as fields when
/// events are flattened, although it already takes `target` from them.
struct BridgedJson(Format<Json>);

impl<S, N> FormatEvent<S, N> for BridgedJson
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !event.is_log() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&without_bridge_fields(&line))
    }
}

/// Removes the fields named `log.*` from one JSON line, keeping the order of
/// the others. A line that does not parse is returned unchanged.
fn without_bridge_fields(line: &str) -> String {
    let Ok(OrderedObject(fields)) = serde_json::from_str::<OrderedObject>(line) else {
        return line.to_owned();
    };
    let mut output = String::with_capacity(line.len());
    for (name, value) in fields.iter().filter(|(name, _)| !name.starts_with("log.")) {
        output.push(if output.is_empty() { '{' } else { ',' });
        output.push_str(&serde_json::Value::from(name.as_str()).to_string());
        output.push(':');
        output.push_str(&value.to_string());
    }
    if output.is_empty() {
        output.push('{');
    }
    output.push_str("}\n");
    output
}

/// A JSON object read as its fields in order, because `serde_json::Map`
/// sorts them without the `preserve_order` feature.
struct OrderedObject(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OrderedObjectVisitor)
    }
}

struct OrderedObjectVisitor;

impl<'de> Visitor<'de> for OrderedObjectVisitor {
    type Value = OrderedObject;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
        let mut fields = Vec::new();
        while let Some(field) = map.next_entry()? {
            fields.push(field);
        }
        Ok(OrderedObject(fields))
    }
}

/// Writes the access lines gathered so far. Call it before the process
/// exits, because the writer thread does not run after `exit`.
pub fn flush() {
    let mut stderr = io::stderr().lock();
    write_gathered(&mut stderr, &mut Vec::new());
}

/// Access lines gathered by one thread. Other threads lock it only to write
/// the gathered lines, every few milliseconds or before a direct line, so a
/// request rarely waits for the lock.
#[derive(Default)]
struct ThreadLines {
    lines: Mutex<Vec<u8>>,
}

/// Every thread's gathered lines, registered on its first access line.
static GATHERED: Mutex<Vec<Arc<ThreadLines>>> = Mutex::new(Vec::new());

thread_local! {
    static THIS_THREAD: Option<Arc<ThreadLines>> = register_thread();
}

/// Registers the calling thread's buffer, starting the writer thread on
/// first use. Without a writer thread (the system refused one) the lines
/// are written at once.
fn register_thread() -> Option<Arc<ThreadLines>> {
    static WRITER_STARTED: OnceLock<bool> = OnceLock::new();
    let started = *WRITER_STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("access log".to_owned())
            .spawn(write_periodically)
            .is_ok()
    });
    if !started {
        return None;
    }
    let buffer = Arc::new(ThreadLines::default());
    lock(&GATHERED).push(buffer.clone());
    Some(buffer)
}

/// Body of the writer thread.
fn write_periodically() {
    let mut spare = Vec::new();
    loop {
        std::thread::sleep(ACCESS_FLUSH_INTERVAL);
        let mut stderr = io::stderr().lock();
        write_gathered(&mut stderr, &mut spare);
    }
}

/// Writes every thread's gathered lines to `stderr`, which the caller has
/// locked, so a direct line cannot overtake them. `spare` is an empty
/// buffer to swap in. Buffers of threads that ended are dropped.
fn write_gathered(stderr: &mut io::StderrLock<'_>, spare: &mut Vec<u8>) {
    let mut gathered = lock(&GATHERED);
    for buffer in gathered.iter() {
        std::mem::swap(&mut *lock(&buffer.lines), spare);
        // A log line that cannot be written has nowhere else to go.
        let _ = stderr.write_all(spare);
        spare.clear();
    }
    gathered.retain(|buffer| Arc::strong_count(buffer) > 1);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The subscriber's writer: access lines go to the batch, other lines
/// straight to standard error.
struct StderrWriter;

/// One event's output.
enum EventWriter {
    Access(Vec<u8>),
    Direct,
}

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter::Direct
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        if meta.target() == ACCESS_TARGET {
            EventWriter::Access(Vec::new())
        } else {
            EventWriter::Direct
        }
    }
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            EventWriter::Access(line) => {
                line.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            EventWriter::Direct => {
                // Access lines gathered before this line go out first.
                let mut stderr = io::stderr().lock();
                write_gathered(&mut stderr, &mut Vec::new());
                stderr.write(bytes)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let EventWriter::Access(line) = self else {
            return;
        };
        // During thread teardown the buffer may be gone; write at once then.
        let gathered = THIS_THREAD.try_with(|buffer| {
            let Some(buffer) = buffer else {
                return false;
            };
            let mut lines = lock(&buffer.lines);
            if lines.len() + line.len() > ACCESS_MAX_PENDING_BYTES {
                return false;
            }
            lines.extend_from_slice(line);
            true
        });
        if gathered != Ok(true) {
            flush();
            let _ = io::stderr().write_all(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_capped_below_info() {
        let cases = [
            ("info", false),
            ("warn", false),
            ("portcullis=info,warn", false),
            ("debug", true),
            ("DEBUG", true),
            ("Debug", true),
            ("trace", true),
            ("5", true),
            ("info,pingora_proxy=DEBUG", true),
            ("info,portcullis=trace", true),
        ];
        for (level, capped) in cases {
            let filter = configured_filter(level);
            assert_eq!(
                filter.ends_with(PINGORA_CAPS),
                capped,
                "log.level {level:?} gave {filter:?}"
            );
        }
    }

    #[test]
    fn rust_log_checked() {
        let usable = [
            "info",
            "DEBUG",
            "portcullis=debug",
            "warn,portcullis::access=info",
            "portcullis",
            "pingora_proxy",
            "sqlx::query",
        ];
        for text in usable {
            assert_eq!(rust_log_problem(text), None, "RUST_LOG={text:?}");
        }
        let unusable = ["inof", "info,verbose", "debgu", "portcullis=loud", "info, "];
        for text in unusable {
            assert!(
                rust_log_problem(text).is_some(),
                "RUST_LOG={text:?} should be reported"
            );
        }
    }

    #[test]
    fn bridge_fields_removed() {
        let cases = [
            (
                "record of Pingora",
                "{\"level\":\"INFO\",\"message\":\"Server starting\",\"log.target\":\"pingora_core::server\",\"log.line\":643,\"target\":\"pingora_core::server\"}\n",
                "{\"level\":\"INFO\",\"message\":\"Server starting\",\"target\":\"pingora_core::server\"}\n",
            ),
            (
                "nested and escaped values",
                "{\"message\":\"a \\\"quoted\\\" word\",\"log.file\":\"x.rs\",\"list\":[1,{\"b\":null}]}\n",
                "{\"message\":\"a \\\"quoted\\\" word\",\"list\":[1,{\"b\":null}]}\n",
            ),
            ("only bridge fields", "{\"log.line\":1}\n", "{}\n"),
            ("not JSON", "plain text\n", "plain text\n"),
        ];
        for (case, line, expected) in cases {
            assert_eq!(without_bridge_fields(line), expected, "{case}");
        }
    }
}
