//! [`Date`]: a civil date (proleptic Gregorian) as days since 1970-01-01, enough calendar for a
//! farm: add days, count days, months. (H. Hinnant's `days_from_civil` / `civil_from_days`.)

use std::fmt;

/// A calendar day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    /// The day `y-m-d` (`m` 1–12, `d` 1–31; out-of-range days roll over like `mktime`).
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Self {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = m as i32;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Self(era * 146_097 + doe - 719_468)
    }

    /// `(year, month, day)`.
    pub fn ymd(self) -> (i32, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i32::from(m <= 2);
        (y, m, d)
    }

    /// Today (UTC).
    pub fn today() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self((secs / 86_400) as i32)
    }

    /// `n` days later (earlier for negative `n`).
    pub fn add_days(self, n: i32) -> Self {
        Self(self.0 + n)
    }

    /// Days from `earlier` to `self`.
    pub fn days_since(self, earlier: Date) -> i32 {
        self.0 - earlier.0
    }

    /// The first day of this month.
    pub fn first_of_month(self) -> Self {
        let (y, m, _) = self.ymd();
        Self::from_ymd(y, m, 1)
    }

    /// The last day of this month.
    pub fn last_of_month(self) -> Self {
        let (y, m, _) = self.ymd();
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Self::from_ymd(ny, nm, 1).add_days(-1)
    }

    /// `2026年11月1日`.
    pub fn ja(self) -> String {
        let (y, m, d) = self.ymd();
        format!("{y}年{m}月{d}日")
    }

    /// `Nov 1, 2026`.
    pub fn en(self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let (y, m, d) = self.ymd();
        format!("{} {d}, {y}", MONTHS[(m as usize + 11) % 12])
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_days() {
        assert_eq!(Date::from_ymd(1970, 1, 1), Date(0));
        assert_eq!(Date::from_ymd(2000, 3, 1).to_string(), "2000-03-01");
        assert_eq!(
            Date::from_ymd(2024, 2, 28).add_days(1).to_string(),
            "2024-02-29"
        );
        assert_eq!(Date::from_ymd(2026, 11, 22).to_string(), "2026-11-22");
        for n in -800_000..800_000 {
            if n % 997 == 0 {
                let d = Date(n);
                let (y, m, dd) = d.ymd();
                assert_eq!(Date::from_ymd(y, m, dd), d);
            }
        }
    }

    #[test]
    fn months() {
        let d = Date::from_ymd(2026, 2, 14);
        assert_eq!(d.first_of_month().to_string(), "2026-02-01");
        assert_eq!(d.last_of_month().to_string(), "2026-02-28");
        assert_eq!(
            Date::from_ymd(2026, 12, 5).last_of_month().to_string(),
            "2026-12-31"
        );
        assert_eq!(d.ja(), "2026年2月14日");
        assert_eq!(d.en(), "Feb 14, 2026");
    }
}
