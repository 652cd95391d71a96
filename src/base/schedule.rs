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

/// A duration as a config would write it, in its largest whole unit: `35d`, `36h`, `90m`,
/// `45s` (humantime's own format counts months of 30.44 days: `1month 4days 13h 26m 24s`).
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses a duration as humans write it: `90d`, `36h`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `36h` or `35d`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_a_config_writes_them_and_parse_back() {
        for (secs, text) in [
            (35 * 86_400, "35d"),
            (36 * 3_600, "36h"),
            (90 * 60, "90m"),
            (45, "45s"),
            (0, "0s"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(duration_text(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }
}
