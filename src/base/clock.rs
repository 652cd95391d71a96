//! A simulated clock for tests of the worker: `ANNEXA_SIMULATED_CLOCK="START,SPEED,EPOCH_MS"`
//! makes "now" START until the real instant EPOCH_MS (Unix milliseconds), then run SPEED times
//! faster than real time. Several processes given the same value share one clock, so two
//! workers can race over a day of hourly slots in seconds. Not for production use.

use std::sync::Arc;

use annexa_collectors::{Clock, SystemClock};
use chrono::{DateTime, Utc};

pub const ENV: &str = "ANNEXA_SIMULATED_CLOCK";

#[derive(Debug, Clone, Copy)]
pub struct SimulatedClock {
    start: DateTime<Utc>,
    epoch: DateTime<Utc>,
    speed: f64,
}

impl Clock for SimulatedClock {
    fn now(&self) -> DateTime<Utc> {
        // Before EPOCH the clock stands at START.
        let real = (Utc::now() - self.epoch)
            .num_microseconds()
            .unwrap_or(i64::MAX)
            .max(0) as f64;
        self.start + chrono::Duration::microseconds((real * self.speed) as i64)
    }
}

impl std::str::FromStr for SimulatedClock {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage =
            || format!("{ENV}=`{s}`: write START,SPEED,EPOCH_MS (RFC 3339, factor, Unix ms)");
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [start, speed, epoch] = parts[..] else {
            return Err(usage());
        };
        let start = DateTime::parse_from_rfc3339(start).map_err(|_| usage())?;
        let speed: f64 = speed.parse().map_err(|_| usage())?;
        let epoch = epoch
            .parse::<i64>()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .ok_or_else(usage)?;
        if !(speed.is_finite() && speed > 0.0) {
            return Err(usage());
        }
        Ok(SimulatedClock {
            start: start.to_utc(),
            epoch,
            speed,
        })
    }
}

/// The clock of this process and how fast it runs against real time.
pub fn from_env() -> Result<(Arc<dyn Clock>, f64), String> {
    match std::env::var(ENV) {
        Ok(v) if !v.is_empty() => {
            let c: SimulatedClock = v.parse()?;
            Ok((Arc::new(c), c.speed))
        }
        _ => Ok((Arc::new(SystemClock), 1.0)),
    }
}
