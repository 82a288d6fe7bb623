//! How submitted exports finish: the completion mode ([`ExportCompletion`]), the outcome
//! ([`ExportStatus`]), the effective [`ExportSettings`] and their runtime change
//! ([`ExportSettingsUpdate`], `POST /_sim/exports/settings`).
//!
//! Settings are read once per submission: an export execution or a CXone report job keeps the mode,
//! duration, rows and outcome it was submitted under, so an update changes only later submissions and
//! a test never sees an execution change its mind halfway.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::SimConfig;
use crate::error::SimError;

/// Longest accepted export duration (one day); longer values are refused rather than overflowing a timer.
pub const MAX_EXPORT_DURATION: Duration = Duration::from_secs(24 * 3600);

/// How a submitted export tells its client it is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportCompletion {
    /// A (signed) callback to the execution's `callbackUrl` once the duration has passed; polling works too.
    #[default]
    Callback,
    /// No callback; the status route reports completion once the duration has passed.
    Poll,
    /// Never finishes: stays running, no callback (overdue-export tests).
    Never,
}

/// The outcome a finished export reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportStatus {
    /// The export produced its rows.
    #[default]
    Completed,
    /// The export failed (no rows).
    Failed,
}

impl ExportStatus {
    /// The wire form of a data prep execution status (`completed`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Completed => "completed",
            ExportStatus::Failed => "failed",
        }
    }
}

/// The effective export settings (`GET /_sim/exports/settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSettings {
    /// How submissions finish.
    pub completion: ExportCompletion,
    /// Time from submission to completion in milliseconds.
    pub duration_ms: u64,
    /// Rows a completed export reports (capped by the request's `maxRows`).
    pub rows: u64,
    /// Outcome of a finished export.
    pub status: ExportStatus,
    /// Submissions for one data action closer together than this count as spacing violations.
    pub min_spacing_ms: u64,
}

/// Runtime change of the export settings; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettingsUpdate {
    /// New completion mode.
    pub completion: Option<ExportCompletion>,
    /// New duration in milliseconds (at most one day).
    pub duration_ms: Option<u64>,
    /// New number of rows a completed export reports.
    pub rows: Option<u64>,
    /// New outcome of finished exports.
    pub status: Option<ExportStatus>,
    /// New minimum spacing in milliseconds.
    pub min_spacing_ms: Option<u64>,
}

impl ExportSettings {
    /// The start-up settings of `config`.
    pub(crate) fn from_config(c: &SimConfig) -> ExportSettings {
        ExportSettings {
            completion: c.export_completion,
            duration_ms: millis(c.export_duration),
            rows: c.export_rows,
            status: c.export_status,
            min_spacing_ms: millis(c.export_min_spacing),
        }
    }

    /// New settings with `u` applied; a duration over [`MAX_EXPORT_DURATION`] is refused.
    pub(crate) fn apply(&self, u: &ExportSettingsUpdate) -> Result<ExportSettings, SimError> {
        let duration_ms = u.duration_ms.unwrap_or(self.duration_ms);
        check_duration("duration_ms", Duration::from_millis(duration_ms))?;
        Ok(ExportSettings {
            completion: u.completion.unwrap_or(self.completion),
            duration_ms,
            rows: u.rows.unwrap_or(self.rows),
            status: u.status.unwrap_or(self.status),
            min_spacing_ms: u.min_spacing_ms.unwrap_or(self.min_spacing_ms),
        })
    }

    /// Time from submission to completion.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }
}

/// Refuses durations a timer could not reach.
pub(crate) fn check_duration(field: &'static str, d: Duration) -> Result<(), SimError> {
    if d > MAX_EXPORT_DURATION {
        return Err(SimError::invalid(field, format!("{} ms is over the one-day limit", d.as_millis())));
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_keeps_unset_fields_and_refuses_long_durations() {
        let s = ExportSettings::from_config(&SimConfig::default());
        assert_eq!(
            (s.completion, s.duration_ms, s.rows, s.status, s.min_spacing_ms),
            (ExportCompletion::Callback, 200, 1234, ExportStatus::Completed, 2000)
        );
        let t = s.apply(&ExportSettingsUpdate { completion: Some(ExportCompletion::Never), ..Default::default() }).unwrap();
        assert_eq!((t.completion, t.duration_ms), (ExportCompletion::Never, 200));
        let err = s.apply(&ExportSettingsUpdate { duration_ms: Some(u64::MAX), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("duration_ms"), "{err}");
        let wire: ExportSettingsUpdate = serde_json::from_str(r#"{"completion":"poll","status":"failed"}"#).unwrap();
        assert_eq!((wire.completion, wire.status), (Some(ExportCompletion::Poll), Some(ExportStatus::Failed)));
        assert!(serde_json::from_str::<ExportSettingsUpdate>(r#"{"completoin":"poll"}"#).is_err());
    }
}
