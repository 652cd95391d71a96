//! The incident policy: the severity scheme with its targets, and the business calendar that
//! "business hours" and "business days" are counted in.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A response target: wall-clock time, or time counted in the business calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "unit", content = "amount", rename_all = "snake_case")]
pub enum Target {
    Seconds(i64),
    BusinessHours(i64),
    BusinessDays(i64),
}

impl Target {
    /// Parses `15m`, `2h`, `3d` (wall clock), `8 business hours`, `5 business days`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let t = text.trim().to_ascii_lowercase();
        let words: Vec<&str> = t.split_whitespace().collect();
        if let [n, "business", unit] = words.as_slice() {
            let n: i64 = n
                .parse()
                .map_err(|_| format!("`{text}`: `{n}` is not a whole number"))?;
            return match *unit {
                "hour" | "hours" => Ok(Target::BusinessHours(n)),
                "day" | "days" => Ok(Target::BusinessDays(n)),
                _ => Err(format!(
                    "`{text}`: write `N business hours` or `N business days`"
                )),
            };
        }
        humantime::parse_duration(&t)
            .map(|d| Target::Seconds(d.as_secs() as i64))
            .map_err(|e| format!("`{text}` is not a target ({e}); write e.g. `15m`, `24h`, `8 business hours`, `5 business days`"))
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Seconds(s) => human_duration(*s),
            Target::BusinessHours(n) => format!("{n} business hours"),
            Target::BusinessDays(n) => format!("{n} business days"),
        }
    }
}

pub use crate::human_duration;

/// Working days, hours and holidays in one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessCalendar {
    pub timezone: String,
    /// Working days, `mon` … `sun`.
    pub days: Vec<String>,
    /// `09:00`.
    pub start: String,
    /// `17:00`.
    pub end: String,
    pub holidays: Vec<NaiveDate>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        BusinessCalendar {
            timezone: "UTC".into(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            start: "09:00".into(),
            end: "17:00".into(),
            holidays: Vec::new(),
        }
    }
}

fn weekday(s: &str) -> Option<Weekday> {
    s.parse().ok()
}

impl BusinessCalendar {
    /// Every problem with the calendar.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.timezone.parse::<Tz>().is_err() {
            p.push(format!(
                "calendar.timezone `{}` is not an IANA time zone",
                self.timezone
            ));
        }
        for d in &self.days {
            if weekday(d).is_none() {
                p.push(format!("calendar.days: `{d}` is not a weekday (mon … sun)"));
            }
        }
        match self.hours() {
            Some((s, e)) if s < e => {}
            _ => p.push(format!(
                "calendar hours `{}`–`{}` must be HH:MM with start before end",
                self.start, self.end
            )),
        }
        p
    }

    fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    fn hours(&self) -> Option<(NaiveTime, NaiveTime)> {
        Some((
            NaiveTime::parse_from_str(&self.start, "%H:%M").ok()?,
            NaiveTime::parse_from_str(&self.end, "%H:%M").ok()?,
        ))
    }

    fn is_working_day(&self, d: NaiveDate) -> bool {
        self.days
            .iter()
            .filter_map(|x| weekday(x))
            .any(|w| w == d.weekday())
            && !self.holidays.contains(&d)
    }

    fn at(&self, d: NaiveDate, t: NaiveTime) -> DateTime<Utc> {
        let tz = self.tz();
        let local = d.and_time(t);
        tz.from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(local + Duration::hours(1)))
                    .earliest()
            })
            .map(|x| x.with_timezone(&Utc))
            .unwrap_or_else(|| local.and_utc())
    }

    /// `start` plus a target.
    pub fn deadline(&self, start: DateTime<Utc>, target: Target) -> DateTime<Utc> {
        match target {
            Target::Seconds(s) => start + Duration::seconds(s),
            Target::BusinessHours(h) => self.add_business_seconds(start, h * 3600),
            Target::BusinessDays(n) => {
                // The same local time, `n` working days later.
                let local = start.with_timezone(&self.tz());
                let mut day = local.date_naive();
                let mut left = n;
                let mut guard = 0;
                while left > 0 && guard < 10_000 {
                    day = day.succ_opt().expect("date in range");
                    if self.is_working_day(day) {
                        left -= 1;
                    }
                    guard += 1;
                }
                self.at(day, local.time())
            }
        }
    }

    fn add_business_seconds(&self, start: DateTime<Utc>, mut seconds: i64) -> DateTime<Utc> {
        let Some((open, close)) = self.hours() else {
            return start + Duration::seconds(seconds);
        };
        let mut cursor = start;
        for _ in 0..100_000 {
            let local = cursor.with_timezone(&self.tz());
            let day = local.date_naive();
            let (day_open, day_close) = (self.at(day, open), self.at(day, close));
            if !self.is_working_day(day) || cursor >= day_close {
                cursor = self.at(day.succ_opt().expect("date in range"), open);
                continue;
            }
            if cursor < day_open {
                cursor = day_open;
            }
            let available = (day_close - cursor).num_seconds();
            if seconds <= available {
                return cursor + Duration::seconds(seconds);
            }
            seconds -= available;
            cursor = day_close;
        }
        cursor
    }
}

/// One severity of the scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Severity {
    pub name: String,
    /// Other names for it (`P1`, `Critical`), matched case-insensitively.
    pub aliases: Vec<String>,
    pub triage: Target,
    pub resolution: Target,
    /// Whether a post-mortem is required.
    pub postmortem: bool,
}

/// The incident policy: severities, post-mortem and breach-notification targets, calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Most severe first.
    pub severities: Vec<Severity>,
    /// Post-mortems are due this long after resolution.
    pub postmortem_within: Target,
    /// GDPR Art. 33: the supervisory authority is notified within this of detection.
    pub breach_notification_within: Target,
    pub calendar: BusinessCalendar,
}

impl Default for Policy {
    /// The targets of the incident-management procedure annexa was built from (seed 002):
    /// respond to Sev1 within 15 minutes, Sev2 2 hours, Sev3 24 hours, Sev4 72 hours;
    /// post-mortems for Sev1/2 within 5 business days; the authority notified of a personal-data
    /// breach within 72 hours. The procedure sets no resolution targets; annexa's defaults are
    /// 24 hours, 72 hours, 10 and 20 business days.
    fn default() -> Self {
        let sev = |name: &str, aliases: &[&str], triage, resolution, postmortem| Severity {
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            triage,
            resolution,
            postmortem,
        };
        Policy {
            severities: vec![
                sev(
                    "Sev1",
                    &["SEV-1", "S1", "Critical"],
                    Target::Seconds(15 * 60),
                    Target::Seconds(24 * 3600),
                    true,
                ),
                sev(
                    "Sev2",
                    &["SEV-2", "S2", "High"],
                    Target::Seconds(2 * 3600),
                    Target::Seconds(72 * 3600),
                    true,
                ),
                sev(
                    "Sev3",
                    &["SEV-3", "S3", "Medium"],
                    Target::Seconds(24 * 3600),
                    Target::BusinessDays(10),
                    false,
                ),
                sev(
                    "Sev4",
                    &["SEV-4", "S4", "Low"],
                    Target::Seconds(72 * 3600),
                    Target::BusinessDays(20),
                    false,
                ),
            ],
            postmortem_within: Target::BusinessDays(5),
            breach_notification_within: Target::Seconds(72 * 3600),
            calendar: BusinessCalendar::default(),
        }
    }
}

impl Policy {
    /// The severity a name or alias stands for.
    pub fn severity(&self, text: &str) -> Option<&Severity> {
        let t = text.trim();
        self.severities.iter().find(|s| {
            s.name.eq_ignore_ascii_case(t) || s.aliases.iter().any(|a| a.eq_ignore_ascii_case(t))
        })
    }

    /// The names a register may use, for error messages.
    pub fn names(&self) -> String {
        self.severities
            .iter()
            .map(|s| {
                if s.aliases.is_empty() {
                    s.name.clone()
                } else {
                    format!("{} ({})", s.name, s.aliases.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_default_target_of_seed_002() {
        let p = Policy::default();
        let names: Vec<&str> = p.severities.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Sev1", "Sev2", "Sev3", "Sev4"]);
        let triage: Vec<Target> = p.severities.iter().map(|s| s.triage).collect();
        assert_eq!(
            triage,
            [
                Target::Seconds(900),
                Target::Seconds(7200),
                Target::Seconds(86_400),
                Target::Seconds(259_200)
            ]
        );
        let postmortem: Vec<bool> = p.severities.iter().map(|s| s.postmortem).collect();
        assert_eq!(
            postmortem,
            [true, true, false, false],
            "post-mortems for Sev1/2"
        );
        assert_eq!(p.postmortem_within, Target::BusinessDays(5));
        assert_eq!(p.breach_notification_within, Target::Seconds(72 * 3600));
        assert_eq!(p.severity("critical").unwrap().name, "Sev1");
        assert_eq!(p.severity(" sev3 ").unwrap().name, "Sev3");
        assert!(
            p.severity("P1").is_none(),
            "P-levels differ between schemes: map them in the config"
        );
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human_duration(26 * 60), "26 min");
        assert_eq!(human_duration(26 * 3600 + 59), "1 d 2 h");
        assert_eq!(human_duration(72 * 3600), "3 d");
        assert_eq!(Target::Seconds(900).describe(), "15 min");
    }

    #[test]
    fn targets_parse_in_wall_clock_and_business_units() {
        assert_eq!(Target::parse("15m").unwrap(), Target::Seconds(900));
        assert_eq!(
            Target::parse("8 business hours").unwrap(),
            Target::BusinessHours(8)
        );
        assert_eq!(
            Target::parse("5 Business Days").unwrap(),
            Target::BusinessDays(5)
        );
        assert!(Target::parse("soonish").is_err());
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        let mut cal = BusinessCalendar::default();
        // Friday 2026-11-20 16:00 + 5 business days = Friday 2026-11-27 16:00.
        assert_eq!(
            cal.deadline(utc("2026-11-20T16:00:00Z"), Target::BusinessDays(5)),
            utc("2026-11-27T16:00:00Z")
        );
        cal.holidays
            .push(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
        assert_eq!(
            cal.deadline(utc("2026-11-20T16:00:00Z"), Target::BusinessDays(5)),
            utc("2026-11-30T16:00:00Z")
        );
    }

    #[test]
    fn business_hours_count_only_working_time_in_the_calendars_zone() {
        let cal = BusinessCalendar {
            timezone: "Europe/Berlin".into(),
            ..BusinessCalendar::default()
        };
        // Friday 15:00 Berlin (14:00 UTC) + 8 business hours: 2 h on Friday, 6 h on Monday → 15:00 Berlin.
        assert_eq!(
            cal.deadline(utc("2026-11-20T14:00:00Z"), Target::BusinessHours(8)),
            utc("2026-11-23T14:00:00Z")
        );
        // Saturday night counts from Monday 09:00.
        assert_eq!(
            cal.deadline(utc("2026-11-21T22:00:00Z"), Target::BusinessHours(1)),
            utc("2026-11-23T09:00:00Z")
        );
        assert!(cal.problems().is_empty());
        let bad = BusinessCalendar {
            timezone: "Mars/Olympus".into(),
            start: "18:00".into(),
            ..BusinessCalendar::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }
}
