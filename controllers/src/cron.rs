//! Cron schedules as the CronJob controller reads them (robfig/cron v3
//! `ParseStandard`): five fields `minute hour day-of-month month
//! day-of-week` with `*`, `?`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n` and
//! comma lists, month and weekday names (`JAN`, `MON`), `7` as Sunday, and
//! the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight`, `@hourly`. When both day fields are restricted a
//! day matches either (cron's OR rule); otherwise both must match.
//!
//! Times are evaluated in a time zone (the CronJob's `spec.timeZone`, UTC
//! by default) with jiff; a wall-clock time skipped by a DST change resolves
//! as jiff's `compatible` disambiguation does.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month or day-of-week was `*`/`?` (then AND, else OR).
    day_star: bool,
}

/// Why a schedule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(u64, bool), ParseError> {
    let err = |m: &str| ParseError(format!("{m}: {text}"));
    let num = |s: &str| -> Result<u32, ParseError> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + name_base);
        }
        s.parse::<u32>().map_err(|_| err("failed to parse int"))
    };
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(s.parse::<u32>().map_err(|_| err("failed to parse int"))?),
            ),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            star = step.is_none();
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a)?, num(b)?)
        } else {
            let a = num(range)?;
            (a, if step.is_some() { max } else { a })
        };
        if lo < min || hi > max || lo > hi {
            return Err(err("beyond range"));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(err("step of range should be a positive number"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parses a standard five-field spec or a descriptor; errors name the
    /// offending field as robfig/cron does.
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => {
                return Err(ParseError(format!("unrecognized descriptor: {s}")));
            }
            s => s,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(ParseError(format!(
                "expected exactly 5 fields, found {}: {spec}",
                f.len()
            )));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0)?;
        let (hours, _) = field(f[1], 0, 23, &[], 0)?;
        let (days, dom_star) = field(f[2], 1, 31, &[], 0)?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1)?;
        let (mut weekdays, dow_star) = field(f[4], 0, 7, &DAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_star: dom_star || dow_star,
        })
    }

    fn day_matches(&self, dt: DateTime) -> bool {
        let dom = self.days & (1 << dt.day()) != 0;
        let dow = self.weekdays & (1 << dt.weekday().to_sunday_zero_offset()) != 0;
        if self.day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled time strictly after `after`, in `tz`; `None`
    /// when none falls within five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        // Next whole minute.
        let mut dt = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = start.year() + 5;
        while dt.year() <= limit {
            if self.months & (1 << dt.month()) == 0 {
                dt = dt
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .with()
                    .hour(0)
                    .minute(0)
                    .build()
                    .ok()?;
                continue;
            }
            if !self.day_matches(dt) {
                dt = dt
                    .date()
                    .checked_add(1.day())
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if self.hours & (1 << dt.hour()) == 0 {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minutes & (1 << dt.minute()) == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
            if ts > after {
                return Some(ts);
            }
            dt = dt.checked_add(1.minute()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_times_follow_cron_rules() {
        // (schedule, after, next)
        let cases = [
            ("* * * * *", "2024-01-01T10:00:30Z", "2024-01-01T10:01:00Z"),
            (
                "*/15 * * * *",
                "2024-01-01T10:01:00Z",
                "2024-01-01T10:15:00Z",
            ),
            ("0 0 * * *", "2024-01-01T10:00:00Z", "2024-01-02T00:00:00Z"),
            ("@hourly", "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"),
            (
                "30 9 * * MON-FRI",
                "2024-01-05T10:00:00Z",
                "2024-01-08T09:30:00Z",
            ),
            (
                "0 0 1 JAN *",
                "2024-03-01T00:00:00Z",
                "2025-01-01T00:00:00Z",
            ),
            (
                "0 12 13 * 5",
                "2024-01-01T00:00:00Z",
                "2024-01-05T12:00:00Z",
            ),
            ("0 0 29 2 *", "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("5 4 * * 7", "2024-01-01T00:00:00Z", "2024-01-07T04:05:00Z"),
            (
                "0 1-3/2 * * *",
                "2024-01-01T01:00:00Z",
                "2024-01-01T03:00:00Z",
            ),
        ];
        for (spec, after, want) in cases {
            let s = Schedule::parse(spec).unwrap();
            assert_eq!(s.next(ts(after), &TimeZone::UTC), Some(ts(want)), "{spec}");
        }
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn bad_schedules_are_rejected() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* * * * * *",
            "*/0 * * * *",
            "@every 5m",
            "a * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
    }
}
