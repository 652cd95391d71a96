//! The rolling scrub: which objects a verify re-hashes, and what every verify so far covered.
//!
//! Objects are named by their SHA-256, so their names are spread evenly over a ring of 2⁶⁴
//! positions (the first 16 hex digits). A rolling scrub re-hashes every object recorded since
//! the previous verify began, plus the arc of the ring a cursor has swept since then; the
//! cursor goes round once every [`SWEEP_SHARE`] of `[verify] full_every`, so a day's scrub of a
//! store of a million objects with `full_every = 30d` re-hashes about 37,000 old objects plus
//! the new ones.
//! A full verify covers the whole ring. Each verify's audit event records its arc; from those
//! events alone anyone can work out when the object re-hashed longest ago was last re-hashed.

use chrono::{DateTime, Utc};

use crate::db::AuditEventRow;

/// The cursor sweeps the ring in this share of `full_every`, so a worker that is down for a few
/// days (3 of 30) still re-hashes every object within `full_every`.
pub const SWEEP_SHARE: f64 = 0.9;

/// The ring's size: positions are `0..RING`.
const RING: u128 = 1 << 64;

/// Rows of a run committed this long before the previous verify began may not have been
/// visible to it (clocks of two workers differ a little): their objects count as new.
const NEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Which objects one verify re-hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every object.
    Full,
    /// Objects recorded by runs that finished since `new_since`, and those whose ring position
    /// is in `[from, to)` (wrapping round; `from == to` is the empty arc).
    Rolling {
        from: u64,
        to: u64,
        new_since: DateTime<Utc>,
    },
}

impl Scope {
    /// The ring position after this verify, where the next rolling scrub starts.
    pub fn cursor(&self, previous: u64) -> u64 {
        match self {
            Scope::Full => previous,
            Scope::Rolling { to, .. } => *to,
        }
    }

    /// Whether this verify re-hashes an object of that name, first recorded by a run that
    /// finished at `written` (unknown for an object no evidence row names).
    pub fn covers(&self, key: &str, written: Option<DateTime<Utc>>) -> bool {
        match self {
            Scope::Full => true,
            Scope::Rolling {
                from,
                to,
                new_since,
            } => {
                written.is_some_and(|w| w >= *new_since)
                    || position(key).is_none_or(|p| in_arc(p, *from, *to))
            }
        }
    }
}

/// An object's position on the ring: the first 64 bits of the SHA-256 its key names. `None`
/// for a key that names no hash (re-hashed every time: it is a violation anyway).
pub fn position(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    u64::from_str_radix(name.get(..16)?, 16).ok()
}

fn in_arc(p: u64, from: u64, to: u64) -> bool {
    if from <= to {
        from <= p && p < to
    } else {
        p >= from || p < to
    }
}

/// One verify as its audit event records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub at: DateTime<Utc>,
    /// When it began listing the store.
    pub started: DateTime<Utc>,
    /// `None`: the whole ring (a full verify, or one recorded before scrubs existed).
    pub arc: Option<(u64, u64)>,
    /// Where the next rolling scrub starts.
    pub cursor: u64,
}

/// What a verify re-hashed, as its audit event (`details.scrub`) and `verify --json` hold it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Coverage {
    /// `full` or `rolling`.
    pub scope: String,
    /// When it began listing the store.
    pub started: String,
    /// The arc a rolling scrub swept (16 hex digits each), and since when objects were new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_since: Option<String>,
    /// Where the next rolling scrub starts.
    pub cursor: String,
    /// Objects and bytes re-hashed.
    pub objects: usize,
    pub bytes: u64,
    /// When the object re-hashed longest ago was last re-hashed, this verify included (see
    /// [`oldest_rehash`]); `None` while verifies have not yet covered every object.
    pub oldest_rehash: Option<String>,
}

impl Coverage {
    pub fn new(
        scope: &Scope,
        started: DateTime<Utc>,
        previous: &[Pass],
        objects: usize,
        bytes: u64,
    ) -> Coverage {
        let cursor = scope.cursor(previous.last().map_or(0, |p| p.cursor));
        let this = Pass {
            at: started,
            started,
            arc: match scope {
                Scope::Full => None,
                Scope::Rolling { from, to, .. } => Some((*from, *to)),
            },
            cursor,
        };
        let mut all = previous.to_vec();
        all.push(this);
        let hex = |v: &u64| format!("{v:016x}");
        let (from, to, new_since) = match scope {
            Scope::Full => (None, None, None),
            Scope::Rolling {
                from,
                to,
                new_since,
            } => (
                Some(hex(from)),
                Some(hex(to)),
                Some(crate::db::ts(*new_since)),
            ),
        };
        Coverage {
            scope: if from.is_some() { "rolling" } else { "full" }.into(),
            started: crate::db::ts(started),
            from,
            to,
            new_since,
            cursor: hex(&cursor),
            objects,
            bytes,
            oldest_rehash: oldest_rehash(&all, started).map(crate::db::ts),
        }
    }
}

/// Every verify recorded by the `verified` audit events, oldest first. An event from before
/// scrubs were recorded is a full verify at its time.
pub fn passes<'a>(events: impl IntoIterator<Item = &'a AuditEventRow>) -> Vec<Pass> {
    events
        .into_iter()
        .filter_map(|e| {
            let at = crate::db::parse_ts("verified.at", &e.at).ok()?;
            let details: serde_json::Value = serde_json::from_str(&e.details).ok()?;
            let coverage: Option<Coverage> = serde_json::from_value(details["scrub"].clone()).ok();
            let Some(c) = coverage else {
                return Some(Pass {
                    at,
                    started: at,
                    arc: None,
                    cursor: 0,
                });
            };
            let hex =
                |h: &Option<String>| h.as_deref().and_then(|h| u64::from_str_radix(h, 16).ok());
            Some(Pass {
                at,
                started: crate::db::parse_ts("started", &c.started).unwrap_or(at),
                arc: hex(&c.from).zip(hex(&c.to)),
                cursor: hex(&Some(c.cursor)).unwrap_or(0),
            })
        })
        .collect()
}

/// What a rolling scrub starting at `now` re-hashes, after the verifies in `passes`: the first
/// one is full; later ones sweep the arc the cursor moved through since the previous one (the
/// whole ring once `full_every` has gone by).
pub fn plan(passes: &[Pass], now: DateTime<Utc>, full_every: std::time::Duration) -> Scope {
    let Some(last) = passes.last() else {
        return Scope::Full;
    };
    let elapsed = (now - last.started).num_milliseconds().max(0) as u128;
    let sweep = (full_every.as_millis() as f64 * SWEEP_SHARE).max(1.0) as u128;
    let advance = elapsed.saturating_mul(RING) / sweep;
    if advance >= RING {
        return Scope::Full;
    }
    let from = last.cursor;
    Scope::Rolling {
        from,
        to: from.wrapping_add(advance as u64),
        new_since: last.started - NEW_MARGIN,
    }
}

/// When the object re-hashed longest ago (as of `as_of`) was last re-hashed: going back from
/// the newest verify, the time of the one whose arc completes the ring. `None` when the
/// verifies so far never covered it all (or there were none).
pub fn oldest_rehash(passes: &[Pass], as_of: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut covered: Vec<(u128, u128)> = Vec::new();
    for pass in passes.iter().rev().filter(|p| p.at <= as_of) {
        match pass.arc {
            None => return Some(pass.started),
            Some((from, to)) if from <= to => covered.push((from as u128, to as u128)),
            Some((from, to)) => {
                covered.push((from as u128, RING));
                covered.push((0, to as u128));
            }
        }
        if whole(&mut covered) {
            return Some(pass.started);
        }
    }
    None
}

/// Whether the intervals cover `[0, RING)`; merges them in place.
fn whole(intervals: &mut Vec<(u128, u128)>) -> bool {
    intervals.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *intervals = merged;
    intervals.first() == Some(&(0, RING))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(day: i64) -> DateTime<Utc> {
        chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap() + chrono::TimeDelta::days(day)
    }

    /// Daily scrubs after a first full verify: each object is re-hashed within `full_every`,
    /// a day's arc is about a 27th of the ring, and a missed week is made up in one go.
    #[test]
    fn daily_scrubs_cover_the_ring_within_full_every() {
        let full_every = 30 * DAY;
        let mut passes: Vec<Pass> = Vec::new();
        let mut hashed = vec![t(0); 4096]; // positions spread over the ring
        for day in 0..120 {
            if (60..67).contains(&day) {
                continue; // the worker was down for a week
            }
            let scope = plan(&passes, t(day), full_every);
            if day == 0 {
                assert_eq!(scope, Scope::Full);
            }
            if day == 1
                && let Scope::Rolling { from, to, .. } = scope
            {
                let share = to.wrapping_sub(from) as f64 / RING as f64;
                assert!((share - 1.0 / 27.0).abs() < 1e-6, "{share}");
            }
            for (i, h) in hashed.iter_mut().enumerate() {
                let key = format!("objects/sha256/xx/{:016x}", (i as u64) << 52);
                if scope.covers(&key, None) {
                    *h = t(day);
                }
            }
            let previous = passes.last().map_or(0, |p| p.cursor);
            passes.push(Pass {
                at: t(day),
                started: t(day),
                arc: match scope {
                    Scope::Full => None,
                    Scope::Rolling { from, to, .. } => Some((from, to)),
                },
                cursor: scope.cursor(previous),
            });
            let oldest = *hashed.iter().min().unwrap();
            assert!(t(day) - oldest <= chrono::TimeDelta::days(30), "day {day}");
            // The bound from the events alone is never later than the truth.
            let bound = oldest_rehash(&passes, t(day)).unwrap();
            assert!(bound <= oldest, "day {day}: {bound} after {oldest}");
            assert!(t(day) - bound <= chrono::TimeDelta::days(30), "day {day}");
        }
    }

    #[test]
    fn new_objects_are_rehashed_whatever_their_position() {
        let passes = vec![Pass {
            at: t(0),
            started: t(0),
            arc: None,
            cursor: 0,
        }];
        let scope = plan(&passes, t(0) + chrono::TimeDelta::hours(2), 30 * DAY);
        let far = format!("objects/sha256/ff/{}", "f".repeat(64));
        assert!(!scope.covers(&far, Some(t(-1))));
        assert!(!scope.covers(&far, None));
        assert!(scope.covers(&far, Some(t(0))));
        assert!(scope.covers("objects/sha256/zz/not-a-hash", None));
    }

    #[test]
    fn without_a_verify_nothing_is_covered_and_a_long_pause_is_a_full_pass() {
        assert_eq!(oldest_rehash(&[], t(5)), None);
        let one = vec![Pass {
            at: t(0),
            started: t(0),
            arc: Some((0, 1 << 60)),
            cursor: 1 << 60,
        }];
        assert_eq!(oldest_rehash(&one, t(5)), None);
        assert_eq!(plan(&one, t(28), 30 * DAY), Scope::Full);
        // Events recorded before scrubs existed count as full passes.
        let old = AuditEventRow {
            id: "e".into(),
            at: crate::db::ts(t(0)),
            actor: "annexa".into(),
            action: "verified".into(),
            subject: "s".into(),
            details: r#"{"violations":0}"#.into(),
            ledger_index: 0,
        };
        assert_eq!(passes(&[old])[0].arc, None);
    }
}
