//! Log output of the long-running commands: `--log-format text` (tracing's
//! human format, coloured only on a terminal) or `--log-format json`, one
//! JSON object per line after Kubernetes' structured JSON logs
//! (component-base `logs/json`): `ts` (seconds since the Unix epoch, a
//! float) and `msg` as kube writes them, `level` and `logger` (the
//! emitting module) where kube writes the verbosity `v` and `caller`, then
//! each event field as a top-level key (`field_<name>` for a field named
//! as one of those four).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (Kubernetes' JSON log shape).
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global logger: stderr, at `default` level unless
/// `VKUBE_LOG` (an `EnvFilter` directive) says otherwise, in `format`.
pub fn init(format: LogFormat, default: &str) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_env("VKUBE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.with_ansi(false).event_format(JsonLines).init(),
    }
}

/// Writes a start-up message meant for the person or pipeline reading
/// stderr: as is in text format, as one `info` JSON line in JSON format.
pub fn announce(text: &str) {
    match FORMAT.get() {
        Some(LogFormat::Json) => eprintln!(
            "{}",
            json_line(unix_seconds(), "info", text, env!("CARGO_CRATE_NAME"), "")
        ),
        _ => eprintln!("{text}"),
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One JSON log line (pure): `fields` is a run of `,"key":value` pairs
/// already encoded.
fn json_line(ts: f64, level: &str, msg: &str, logger: &str, fields: &str) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        "{{\"ts\":{ts},\"level\":{},\"msg\":{},\"logger\":{}{fields}}}",
        s(level),
        s(msg),
        s(logger)
    )
}

/// An event's fields as `,"key":value` pairs, its `message` apart.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: String,
}

impl Fields {
    fn push(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            return;
        }
        let name = field.name();
        let key = if matches!(name, "ts" | "level" | "msg" | "logger") {
            serde_json::Value::from(format!("field_{name}"))
        } else {
            serde_json::Value::from(name)
        };
        let _ = write!(self.pairs, ",{key}:{value}");
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string().into());
    }
}

/// tracing-subscriber's event format for `--log-format json`.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let level = meta.level().as_str().to_ascii_lowercase();
        writeln!(
            writer,
            "{}",
            json_line(
                unix_seconds(),
                &level,
                &fields.message,
                meta.target(),
                &fields.pairs
            )
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_parse_and_escape() {
        let line = json_line(
            1.5,
            "info",
            "a \"quoted\"\nline",
            "vkube::up",
            ",\"n\":3,\"err\":\"x\"",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ts": 1.5, "level": "info", "msg": "a \"quoted\"\nline",
                               "logger": "vkube::up", "n": 3, "err": "x"})
        );
    }
}
