//! Dates and date-times as clients write them: what Django's `parse_date`
//! and `parse_datetime` accept, so a filter or a write that Django takes is
//! taken here with the same meaning.
//!
//! `2024-2-9` is a date (one-digit month and day, as Django's pattern
//! allows); a date-time is a date, `T` or a space, `H:M`, optional `:S`, an
//! optional fraction (`.` or `,`, cut to microseconds as Python keeps them)
//! and an optional offset (`Z`, `+01`, `+0100`, `+01:00`). Years run from 1
//! to 9999, Python's range.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Django's `parse_date`: `YYYY-M-D`, one or two digits for month and day.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !digits(y, 4, 4) || !digits(m, 1, 2) || !digits(d, 1, 2) {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    if year < 1 {
        return None;
    }
    NaiveDate::from_ymd_opt(year, m.parse().ok()?, d.parse().ok()?)
}

/// Django's `parse_datetime`, then `parse_date` (midnight): the date-time
/// as written, and its offset east of UTC in seconds if it has one.
pub(crate) fn parse_datetime(s: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    if let Some(date) = parse_date(s) {
        return Some((date.and_time(NaiveTime::MIN), None));
    }
    let at = s.find(['T', ' '])?;
    let date = parse_date(&s[..at])?;
    let rest = &s[at + 1..];
    // The time runs until the offset (or spaces before it).
    let end = rest.find(['Z', '+', '-', ' ']).unwrap_or(rest.len());
    let (time, zone) = (&rest[..end], rest[end..].trim_start());
    let time = parse_time(time)?;
    let offset = match zone {
        "" => None,
        "Z" => Some(0),
        _ => Some(parse_offset(zone)?),
    };
    Some((date.and_time(time), offset))
}

/// `H:M`, `H:M:S`, `H:M:S.ffffff` (up to twelve fraction digits, as
/// Django's pattern allows, of which the first six count).
fn parse_time(s: &str) -> Option<NaiveTime> {
    let (hms, fraction) = match s.find(['.', ',']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mut parts = hms.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() || !digits(h, 1, 2) || !digits(m, 1, 2) {
        return None;
    }
    let sec = match sec {
        Some(sec) if digits(sec, 1, 2) => sec.parse().ok()?,
        Some(_) => return None,
        None if fraction.is_some() => return None,
        None => 0,
    };
    let micros = match fraction {
        Some(f) if digits(f, 1, 12) => {
            let six: String = f.chars().chain(std::iter::repeat('0')).take(6).collect();
            six.parse().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    if sec > 59 {
        return None;
    }
    NaiveTime::from_hms_micro_opt(h.parse().ok()?, m.parse().ok()?, sec, micros)
}

/// `+HH`, `+HHMM` or `+HH:MM` (or `-`), in seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.len() {
        2 => (rest, "00"),
        4 => (&rest[..2], &rest[2..]),
        5 if &rest[2..3] == ":" => (&rest[..2], &rest[3..]),
        _ => return None,
    };
    if !digits(h, 2, 2) || !digits(m, 2, 2) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_django_parses_them() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(parse_date("2024-02-29"), d(2024, 2, 29));
        assert_eq!(parse_date("2024-2-9"), d(2024, 2, 9));
        for bad in ["2023-02-29", "24-02-01", "2024-02-01x", "2024/02/01", "0000-01-01", "2024-002-01", "", "2024-02"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn datetimes_as_django_parses_them() {
        let at = |s: &str| parse_datetime(s).map(|(t, o)| (t.to_string(), o));
        assert_eq!(at("2024-02-29"), Some(("2024-02-29 00:00:00".into(), None)));
        assert_eq!(at("2024-02-29T13:05"), Some(("2024-02-29 13:05:00".into(), None)));
        assert_eq!(at("2024-2-9 3:05:07.5"), Some(("2024-02-09 03:05:07.500 ".trim().into(), None)));
        assert_eq!(at("2024-02-29T13:05:00.1234567Z"), Some(("2024-02-29 13:05:00.123456".into(), Some(0))));
        assert_eq!(at("2024-02-29T13:05:00+01:30"), Some(("2024-02-29 13:05:00".into(), Some(5400))));
        assert_eq!(at("2024-02-29T13:05:00-0100"), Some(("2024-02-29 13:05:00".into(), Some(-3600))));
        assert_eq!(at("2024-02-29T13:05 +01"), Some(("2024-02-29 13:05:00".into(), Some(3600))));
        for bad in ["2024-02-29T25:00", "2024-02-29T13", "2024-02-29T13:05:60", "2024-02-29T13:05+1", "2024-02-29X"] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}
