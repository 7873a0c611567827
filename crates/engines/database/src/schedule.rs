//! Cron schedules for static roles' `rotation_schedule`: the standard five fields (minute,
//! hour, day of month, month, day of week) and the `@hourly`-style shorthands, as Vault
//! accepts them, evaluated in UTC.

use time::{Duration, OffsetDateTime, Time};

/// A parsed schedule: one bit set per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    /// Cron's rule: when both day fields are restricted, a day matching either runs.
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// How far ahead or back a search looks before giving up: long enough for any schedule
/// that can match at all (29 February of a leap year, falling on a given weekday).
const SEARCH_DAYS: i64 = 366 * 28;

impl Schedule {
    pub(crate) fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!("unsupported schedule descriptor {other:?}"));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        };
        let days_of_week = field(dow, 0, 7, &WEEKDAYS, "day of week")?;
        // 7 is Sunday too.
        let days_of_week = (days_of_week | (days_of_week >> 7)) & 0x7f;
        Ok(Schedule {
            minutes: field(minute, 0, 59, &[], "minute")?,
            hours: field(hour, 0, 23, &[], "hour")? as u32,
            days_of_month: field(dom, 1, 31, &[], "day of month")? as u32,
            months: field(month, 1, 12, &MONTHS, "month")? as u16,
            days_of_week: days_of_week as u8,
            either_day: !is_wildcard(dom) && !is_wildcard(dow),
        })
    }

    fn day_matches(&self, date: OffsetDateTime) -> bool {
        if self.months & (1 << u8::from(date.month())) == 0 {
            return false;
        }
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().number_days_from_sunday()) != 0;
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    fn time_matches(&self, at: OffsetDateTime) -> bool {
        self.hours & (1 << at.hour()) != 0 && self.minutes & (1 << at.minute()) != 0
    }

    /// The first run strictly after `after`.
    pub(crate) fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start = truncate_to_minute(after) + Duration::minutes(1);
        let mut day = start.replace_time(Time::MIDNIGHT);
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(day) {
                let first = if day.date() == start.date() {
                    start
                } else {
                    day
                };
                let mut at = first;
                while at.date() == day.date() {
                    if self.time_matches(at) {
                        return Some(at);
                    }
                    at = if self.hours & (1 << at.hour()) == 0 {
                        at.replace_time(Time::from_hms(at.hour(), 0, 0).ok()?) + Duration::hours(1)
                    } else {
                        at + Duration::minutes(1)
                    };
                }
            }
            day += Duration::days(1);
        }
        None
    }

    /// The last run at or before `at`.
    pub(crate) fn last_at_or_before(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        let end = truncate_to_minute(at);
        let mut day = end.replace_time(Time::MIDNIGHT);
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(day) {
                let mut candidate = if day.date() == end.date() {
                    end
                } else {
                    day.replace_time(Time::from_hms(23, 59, 0).ok()?)
                };
                loop {
                    if self.time_matches(candidate) {
                        return Some(candidate);
                    }
                    if candidate.time() == Time::MIDNIGHT {
                        break;
                    }
                    candidate = if self.hours & (1 << candidate.hour()) == 0 {
                        let hour_start =
                            candidate.replace_time(Time::from_hms(candidate.hour(), 0, 0).ok()?);
                        if hour_start.time() == Time::MIDNIGHT {
                            break;
                        }
                        hour_start - Duration::minutes(1)
                    } else {
                        candidate - Duration::minutes(1)
                    };
                }
            }
            day -= Duration::days(1);
        }
        None
    }
}

fn truncate_to_minute(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(at)
}

fn is_wildcard(field: &str) -> bool {
    field == "*" || field == "?"
}

/// Parses one field into a bit set over `min..=max`.
fn field(text: &str, min: u32, max: u32, names: &[&str], what: &str) -> Result<u64, String> {
    let bad = |detail: &str| format!("invalid {what} field {text:?}: {detail}");
    let value = |token: &str| -> Result<u32, String> {
        if let Some(index) = names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(token))
        {
            // Month names count from 1, weekday names from 0 (Sunday).
            return Ok(index as u32 + u32::from(min == 1));
        }
        let number: u32 = token
            .parse()
            .map_err(|_| bad(&format!("{token:?} is not a number")))?;
        if number < min || number > max {
            return Err(bad(&format!("{number} is outside {min}-{max}")));
        }
        Ok(number)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| bad("the step is not a number"))?;
                if step == 0 {
                    return Err(bad("the step must be positive"));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" | "?" => (min, max),
            _ => match range.split_once('-') {
                Some((low, high)) => (value(low)?, value(high)?),
                // `5/15` runs from 5 to the end.
                None if step > 1 => (value(range)?, max),
                None => {
                    let single = value(range)?;
                    (single, single)
                }
            },
        };
        if low > high {
            return Err(bad(&format!("the range {low}-{high} is backwards")));
        }
        let mut n = low;
        while n <= high {
            bits |= 1 << n;
            n += step;
        }
    }
    if bits == 0 {
        return Err(bad("it matches nothing"));
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn next_and_last_runs() {
        let daily = Schedule::parse("30 2 * * *").unwrap();
        let now = datetime!(2026-11-26 02:30:00 UTC);
        assert_eq!(
            daily.next_after(now),
            Some(datetime!(2026-11-27 02:30:00 UTC))
        );
        assert_eq!(daily.last_at_or_before(now), Some(now));
        assert_eq!(
            daily.last_at_or_before(datetime!(2026-11-26 02:29:59 UTC)),
            Some(datetime!(2026-11-25 02:30:00 UTC))
        );

        let quarter = Schedule::parse("*/15 9-17 * * MON-FRI").unwrap();
        // Thursday 17:50 → Friday 09:00.
        assert_eq!(
            quarter.next_after(datetime!(2026-11-26 17:50:00 UTC)),
            Some(datetime!(2026-11-27 09:00:00 UTC))
        );
        // Saturday noon → back to Friday 17:45.
        assert_eq!(
            quarter.last_at_or_before(datetime!(2026-11-28 12:00:00 UTC)),
            Some(datetime!(2026-11-27 17:45:00 UTC))
        );

        let leap = Schedule::parse("0 0 29 FEB *").unwrap();
        assert_eq!(
            leap.next_after(datetime!(2026-11-26 00:00:00 UTC)),
            Some(datetime!(2028-02-29 00:00:00 UTC))
        );
        let hourly = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            hourly.next_after(datetime!(2026-11-26 23:59:30 UTC)),
            Some(datetime!(2026-11-27 00:00:00 UTC))
        );
    }

    #[test]
    fn either_day_field_matches_when_both_are_restricted() {
        // The 1st of the month or any Sunday.
        let schedule = Schedule::parse("0 0 1 * 0").unwrap();
        assert_eq!(
            schedule.next_after(datetime!(2026-11-26 00:00:00 UTC)),
            Some(datetime!(2026-11-29 00:00:00 UTC))
        );
        // Sunday written as 7.
        assert_eq!(
            Schedule::parse("0 0 * * 7").unwrap(),
            Schedule::parse("0 0 * * SUN").unwrap()
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, needle) in [
            ("* * * *", "expected 5 fields"),
            ("61 * * * *", "outside 0-59"),
            ("*/0 * * * *", "step must be positive"),
            ("5-1 * * * *", "backwards"),
            ("@every 5m", "unsupported"),
            ("0 0 31 FEB *", ""),
            ("x * * * *", "not a number"),
        ] {
            match Schedule::parse(text) {
                Err(err) => assert!(err.contains(needle), "{text}: {err}"),
                // 31 February parses but never runs: the search gives up.
                Ok(schedule) => assert_eq!(
                    schedule.next_after(datetime!(2026-01-01 00:00:00 UTC)),
                    None,
                    "{text}"
                ),
            }
        }
    }
}
