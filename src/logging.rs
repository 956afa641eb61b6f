//! Logs: text for people, or one JSON object a line for log pipelines.
//!
//! Every line carries its structured fields (`environment`, `count`, ...):
//! as `key=value` after the message in text, as members in JSON. Strings
//! print bare in text; lists and objects print as JSON. A line written
//! while a project's database work runs (the driver's, the pool's) gets
//! that project as its `environment` when it does not name one. `LOG_LEVEL`
//! applies to the monitor's own code (libraries stay at WARN); `RUST_LOG`,
//! when set, replaces it entirely.
//!
//! When stderr is the systemd journal (`JOURNAL_STREAM` names it), each
//! line starts with its syslog priority (`<3>` error, `<4>` warn, `<6>`
//! info, `<7>` debug and trace), which journald takes as the entry's
//! priority and removes: `journalctl -p warning` works.
//!
//! Start-up errors, before the logger runs, are written by
//! [`startup_error`] in the same form.

use std::io::Write;

use env_logger::fmt::Formatter;
use log::kv::{Key, Value, VisitSource};
use log::{Level, Log, Record};
use registre_actors::database::current_environment;
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

/// Writes `message` as one ERROR line in the format asked for (`json`),
/// as the logger would, to stderr: for what stops start-up before logging
/// runs (text: `registre-monitor: <message>`).
pub fn startup_error(json: bool, message: &str) {
    if !json {
        let prefix = if journal_is_stderr() { "<3>" } else { "" };
        eprintln!("{prefix}registre-monitor: {message}");
        return;
    }
    let logger = env_logger::Builder::new()
        .filter_level(log::LevelFilter::Error)
        .format(move |buf, record| write_record(buf, record, LogFormat::Json, journal_is_stderr()))
        .build();
    logger.log(
        &Record::builder()
            .args(format_args!("{message}"))
            .level(Level::Error)
            .target("registre_monitor")
            .build(),
    );
    logger.flush();
}

/// Whether stderr is the systemd journal: `JOURNAL_STREAM` (`device:inode`,
/// set by systemd) names the very file stderr is.
fn journal_is_stderr() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes into the zeroed struct it is given, nothing else.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(libc::STDERR_FILENO, &mut stat) } != 0 {
        return false;
    }
    stat.st_dev as u64 == dev && stat.st_ino as u64 == ino
}

/// The syslog priority journald reads from a line's `<N>` prefix.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
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
    let journal = journal_is_stderr();
    builder.format(move |buf, record| {
        if clear_line {
            write!(buf, "\r\x1b[2K")?;
        }
        write_record(buf, record, format, journal)
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
    journal: bool,
) -> std::io::Result<()> {
    let mut fields = Fields(Vec::new());
    // Visiting our own visitor cannot fail.
    let _ = record.key_values().visit(&mut fields);
    if record
        .key_values()
        .get(Key::from_str("environment"))
        .is_none()
        && let Some(environment) = current_environment()
    {
        fields.0.insert(
            0,
            ("environment".into(), Json::String(environment.to_string())),
        );
    }
    if journal {
        write!(buf, "<{}>", syslog_priority(record.level()))?;
    }
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
