//! Logs: text for people, or one JSON object a line for log pipelines.
//!
//! Every line carries its structured fields (`environment`, `count`, ...):
//! as `key=value` after the message in text, as members in JSON. Strings
//! print bare in text; lists and objects print as JSON. `LOG_LEVEL` applies
//! to the monitor's own code (libraries stay at WARN); `RUST_LOG`, when set,
//! replaces it entirely.

use std::io::Write;

use env_logger::fmt::Formatter;
use log::Record;
use log::kv::{Key, Value, VisitSource};
use serde_json::{Map, Value as Json};

use crate::config::{LogFormat, LogSettings};

/// Starts the logger; call once, first thing.
pub fn init(settings: &LogSettings) {
    init_with(settings, false);
}

/// As [`init`], for a command that redraws a live line on the terminal (the
/// demo): each log line first clears that line so the two never mix; the
/// live line is redrawn at its next tick.
pub fn init_for_live_line(settings: &LogSettings) {
    use std::io::IsTerminal;
    init_with(
        settings,
        std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
    );
}

fn init_with(settings: &LogSettings, clear_line: bool) {
    let mut builder = env_logger::Builder::new();
    match &settings.rust_log {
        Some(filters) => {
            builder.parse_filters(filters);
        }
        None => {
            builder
                .filter_level(log::LevelFilter::Warn)
                .filter_module("registre_monitor", settings.level)
                .filter_module("registre_actors", settings.level);
        }
    }
    let format = settings.format;
    builder.format(move |buf, record| {
        if clear_line {
            write!(buf, "\r\x1b[2K")?;
        }
        write_record(buf, record, format)
    });
    builder.init();
    install_panic_hook();
}

/// Fields of a record as JSON values.
struct Fields(Vec<(String, Json)>);

impl<'kvs> VisitSource<'kvs> for Fields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = serde_json::to_value(&value).unwrap_or_else(|_| Json::String(value.to_string()));
        self.0.push((key.as_str().to_string(), json));
        Ok(())
    }
}

fn write_record(
    buf: &mut Formatter,
    record: &Record<'_>,
    format: LogFormat,
) -> std::io::Result<()> {
    let mut fields = Fields(Vec::new());
    // Visiting our own visitor cannot fail.
    let _ = record.key_values().visit(&mut fields);
    let timestamp = buf.timestamp_millis().to_string();
    match format {
        LogFormat::Json => {
            let mut obj = Map::new();
            obj.insert("timestamp".into(), Json::String(timestamp));
            obj.insert("level".into(), Json::String(record.level().to_string()));
            obj.insert("target".into(), Json::String(record.target().to_string()));
            obj.insert("message".into(), Json::String(record.args().to_string()));
            for (k, v) in fields.0 {
                obj.insert(k, v);
            }
            writeln!(buf, "{}", Json::Object(obj))
        }
        LogFormat::Text => {
            write!(buf, "{timestamp} {:<5} {}", record.level(), record.args())?;
            for (k, v) in fields.0 {
                match v {
                    Json::String(s) => write!(buf, " {k}={s}")?,
                    other => write!(buf, " {k}={other}")?,
                }
            }
            writeln!(buf)
        }
    }
}

/// Panics go to the log like everything else (one line, same format), so
/// a restarted actor's cause is found where its restart is.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        log::error!(location = location.as_str(), thread = thread.as_str(); "💥 Panic: {message}");
    }));
}
