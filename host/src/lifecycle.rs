//! Lifecycle reporting: every state change is appended to the job store and
//! streamed to whoever runs the job (a terminal, JSON lines, a callback).
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::jobstore::{JobState, SqliteJobStore};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Something to show while a job runs.
#[derive(Debug, Clone)]
pub enum Event {
    State { job_id: String, state: JobState, message: String, at_ms: i64 },
    Progress { job_id: String, rows: u64, bytes: u64, total_bytes: Option<u64>, elapsed: Duration },
}

pub trait Reporter: Send + Sync {
    fn report(&self, event: &Event);
}

/// Reports nothing (library use, tests).
pub struct Silent;
impl Reporter for Silent {
    fn report(&self, _: &Event) {}
}

/// One JSON object per line on stdout, for machines.
pub struct JsonLines;
impl Reporter for JsonLines {
    fn report(&self, event: &Event) {
        let v = match event {
            Event::State { job_id, state, message, at_ms } => serde_json::json!({
                "event": "state", "job_id": job_id, "state": state.as_str(), "message": message, "at_ms": at_ms
            }),
            Event::Progress { job_id, rows, bytes, total_bytes, elapsed } => serde_json::json!({
                "event": "progress", "job_id": job_id, "rows": rows, "bytes": bytes,
                "total_bytes": total_bytes, "elapsed_ms": elapsed.as_millis() as u64
            }),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
}

/// State changes as lines on stderr, and a live progress bar when stderr is
/// a terminal.
pub struct Terminal {
    tty: bool,
    bar_shown: Mutex<bool>,
}

impl Terminal {
    pub fn new() -> Self {
        Terminal { tty: std::io::stderr().is_terminal(), bar_shown: Mutex::new(false) }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

/// `12.3 MB` style.
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl Reporter for Terminal {
    fn report(&self, event: &Event) {
        let mut err = std::io::stderr().lock();
        let mut shown = self.bar_shown.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::State { job_id, state, message, .. } => {
                if *shown {
                    let _ = write!(err, "\r\x1b[2K");
                    *shown = false;
                }
                if *state == JobState::Running && self.tty {
                    return; // the bar says it better
                }
                let sep = if message.is_empty() { "" } else { ": " };
                let _ = writeln!(err, "job {job_id} {}{sep}{message}", state.as_str());
            }
            Event::Progress { rows, bytes, total_bytes, elapsed, .. } => {
                if !self.tty {
                    return;
                }
                let secs = elapsed.as_secs_f64().max(1e-3);
                let rate = *rows as f64 / secs;
                let (pct, eta) = match total_bytes {
                    Some(t) if *t > 0 => {
                        let frac = (*bytes as f64 / *t as f64).min(1.0);
                        let eta = if frac > 0.0 { secs * (1.0 - frac) / frac } else { 0.0 };
                        (frac, format!(" ETA {eta:.0} s"))
                    }
                    _ => (0.0, String::new()),
                };
                let width = 30;
                let filled = (pct * width as f64) as usize;
                let _ = write!(
                    err,
                    "\r\x1b[2K[{}{}] {:>3.0}% {} rows, {}, {:.0} rows/s{}",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    pct * 100.0,
                    rows,
                    mb(*bytes),
                    rate,
                    eta
                );
                *shown = true;
            }
        }
        let _ = err.flush();
    }
}

/// Calls a closure per event (library users, tests).
pub struct Callback<F: Fn(&Event) + Send + Sync>(pub F);
impl<F: Fn(&Event) + Send + Sync> Reporter for Callback<F> {
    fn report(&self, event: &Event) {
        (self.0)(event)
    }
}

/// A job's lifecycle: persists states and reports them.
#[derive(Clone)]
pub struct Lifecycle {
    pub job_id: String,
    pub store: Arc<SqliteJobStore>,
    pub reporter: Arc<dyn Reporter>,
}

impl Lifecycle {
    /// Appends a state and reports it.
    ///
    /// # Errors
    /// When the job store cannot be written.
    pub fn state(&self, state: JobState, message: &str) -> Result<(), crate::jobstore::JobStoreError> {
        let at_ms = now_ms();
        self.store.append_state(&self.job_id, state, message, at_ms)?;
        self.reporter.report(&Event::State { job_id: self.job_id.clone(), state, message: message.into(), at_ms });
        Ok(())
    }
}
