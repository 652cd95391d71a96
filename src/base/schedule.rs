//! Schedules and durations as the config writes them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A cron schedule (5 or 6 fields, or `@daily` and friends), in UTC.
#[derive(Clone)]
pub struct Schedule {
    pub text: String,
    pub cron: croner::Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cron = croner::Cron::from_str(s).map_err(|e| format!("{e}"))?;
        Ok(Schedule {
            text: s.to_string(),
            cron,
        })
    }
}

impl Schedule {
    /// The latest scheduled slot at or before `t`.
    pub fn slot_at(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_previous_occurrence(&t, true).ok()
    }

    /// The first scheduled slot after `t`.
    pub fn next_after(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

/// Parses a duration as humans write it: `90d`, `36h`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `36h` or `35d`"))
}
