//! The demo herd: about 120 cows per tenant, generated deterministically from the tenant's
//! seed and today's date, so every assistant answer is computed from data that looks like a
//! real dairy farm's and is the same on every run of the same day.

pub mod date;

pub use date::Date;

/// A small deterministic generator (SplitMix64): same seed, same herd.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A breed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breed {
    /// ホルスタイン.
    Holstein,
    /// ジャージー.
    Jersey,
    /// ブラウンスイス.
    BrownSwiss,
}

impl Breed {
    /// The breed's name in Japanese.
    pub fn ja(self) -> &'static str {
        match self {
            Self::Holstein => "ホルスタイン",
            Self::Jersey => "ジャージー",
            Self::BrownSwiss => "ブラウンスイス",
        }
    }
}

/// Something that happened to a cow's health.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthEvent {
    /// When.
    pub date: Date,
    /// What, in Japanese and English.
    pub what: (&'static str, &'static str),
}

/// One cow.
#[derive(Clone, Debug, PartialEq)]
pub struct Cow {
    /// Ear-tag number, 1…
    pub tag: u32,
    /// Name.
    pub name: String,
    /// Breed.
    pub breed: Breed,
    /// Born.
    pub birth: Date,
    /// Calvings so far (0 = heifer).
    pub parity: u32,
    /// The latest calving.
    pub last_calving: Option<Date>,
    /// The latest insemination.
    pub last_insemination: Option<Date>,
    /// Confirmed pregnant since the latest insemination.
    pub pregnant: bool,
    /// Daily milk (kg) for the last 60 days, oldest first; the last entry is yesterday.
    pub milk: Vec<f64>,
    /// Daily activity index (100 = the herd's normal) for the last 60 days, oldest first.
    pub activity: Vec<f64>,
    /// Health events, oldest first.
    pub health_events: Vec<HealthEvent>,
}

/// One shipment of the month.
#[derive(Clone, Debug, PartialEq)]
pub struct Shipment {
    /// When.
    pub date: Date,
    /// Head shipped.
    pub head: u32,
    /// Total kg.
    pub kg: f64,
    /// Where to.
    pub destination: &'static str,
}

/// A tenant's herd as of one day.
#[derive(Clone, Debug, PartialEq)]
pub struct Herd {
    /// The day the herd describes.
    pub today: Date,
    /// The cows, by tag.
    pub cows: Vec<Cow>,
    /// This month's shipments up to today, oldest first.
    pub shipments: Vec<Shipment>,
}

impl Herd {
    /// The cow with this ear tag.
    pub fn cow(&self, tag: u32) -> Option<&Cow> {
        self.cows.iter().find(|c| c.tag == tag)
    }
}

const NAMES: [&str; 40] = [
    "はな",
    "さくら",
    "もも",
    "ゆき",
    "みどり",
    "こはる",
    "あずき",
    "きなこ",
    "まめ",
    "ひなた",
    "すず",
    "つばき",
    "かえで",
    "あおい",
    "こむぎ",
    "みるく",
    "ちょこ",
    "もか",
    "ここあ",
    "るり",
    "ひまわり",
    "なずな",
    "あやめ",
    "すみれ",
    "れんげ",
    "しずく",
    "ほのか",
    "ことね",
    "いちご",
    "みかん",
    "さつき",
    "はるか",
    "なつめ",
    "くるみ",
    "しらゆき",
    "あさひ",
    "のぞみ",
    "かすみ",
    "ゆず",
    "まりも",
];

const DESTINATIONS: [&str; 3] = ["十勝家畜市場", "JA北海道 肉牛センター", "帯広食肉センター"];

/// The seed of a tenant's herd (FNV-1a of its id).
pub fn seed(tenant: &str) -> u64 {
    tenant.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The herd of `tenant` as of `today`.
pub fn herd(tenant: &str, today: Date) -> Herd {
    let mut rng = Rng::new(seed(tenant));
    let count = 118 + rng.range(0, 4) as u32;
    let cows = (1..=count).map(|tag| cow(&mut rng, tag, today)).collect();
    let shipments = shipments(&mut rng, today);
    Herd {
        today,
        cows,
        shipments,
    }
}

fn cow(rng: &mut Rng, tag: u32, today: Date) -> Cow {
    let name = match NAMES[(tag as usize - 1) % NAMES.len()] {
        n if tag as usize <= NAMES.len() => n.to_owned(),
        n => format!("{n}{}", (tag as usize - 1) / NAMES.len() + 1),
    };
    let breed = match rng.range(0, 19) {
        0..=15 => Breed::Holstein,
        16..=18 => Breed::Jersey,
        _ => Breed::BrownSwiss,
    };
    let age_days = rng.range(400, 365 * 8) as i32;
    let birth = today.add_days(-age_days);
    let parity = if age_days < 800 {
        0
    } else {
        ((age_days - 700) / 400).clamp(1, 6) as u32
    };
    let last_calving = (parity > 0).then(|| today.add_days(-(rng.range(20, 330) as i32)));
    // Inseminated some weeks after calving (or as a heifer); older inseminations are mostly
    // confirmed pregnancies.
    let last_insemination = match last_calving {
        Some(calved) if today.days_since(calved) > 50 => {
            let since_calving = today.days_since(calved);
            Some(today.add_days(-(rng.range(5, i64::from(since_calving - 45).max(6)) as i32)))
        }
        None if age_days > 430 => Some(today.add_days(-(rng.range(3, 120) as i32))),
        _ => None,
    };
    let pregnant = last_insemination.is_some_and(|d| today.days_since(d) > 40 && rng.chance(0.8));
    // Milk: none for heifers and dry cows (late pregnancy), else a lactation with noise.
    let dry = pregnant && last_calving.is_some_and(|c| today.days_since(c) > 300);
    let base = match breed {
        Breed::Holstein => 31.0,
        Breed::Jersey => 21.0,
        Breed::BrownSwiss => 27.0,
    } + rng.range(-30, 30) as f64 / 10.0;
    // Some cows are declining: the health analysis has something real to find. Cow 14 is the
    // example the product's design documents use, so the demo herd makes it a mild case.
    let decline = if tag == 14 {
        0.11
    } else if rng.chance(0.08) {
        0.08 + rng.unit() * 0.2
    } else {
        0.0
    };
    let milk = (0..60)
        .map(|i| {
            if parity == 0 || dry {
                return 0.0;
            }
            let recent = i >= 30;
            let factor = if recent {
                1.0 - decline * f64::from(i - 29) / 30.0 * 1.5
            } else {
                1.0
            };
            ((base * factor + rng.range(-15, 15) as f64 / 10.0).max(0.0) * 10.0).round() / 10.0
        })
        .collect();
    let low_activity = decline > 0.15;
    let activity = (0..60)
        .map(|i| {
            let level = if low_activity && i >= 40 { 76.0 } else { 100.0 };
            ((level + rng.range(-80, 80) as f64 / 10.0) * 10.0).round() / 10.0
        })
        .collect();
    let mut health_events = Vec::new();
    if decline > 0.0 && rng.chance(0.6) {
        const KINDS: [(&str, &str); 3] = [
            ("乳房炎の疑い", "suspected mastitis"),
            ("食欲不振", "poor appetite"),
            ("跛行", "lameness"),
        ];
        let what = KINDS[rng.range(0, 2) as usize];
        health_events.push(HealthEvent {
            date: today.add_days(-(rng.range(3, 25) as i32)),
            what,
        });
    }
    Cow {
        tag,
        name,
        breed,
        birth,
        parity,
        last_calving,
        last_insemination,
        pregnant,
        milk,
        activity,
        health_events,
    }
}

fn shipments(rng: &mut Rng, today: Date) -> Vec<Shipment> {
    let first = today.first_of_month();
    let mut out = Vec::new();
    let mut day = first.add_days(rng.range(1, 4) as i32);
    while day <= today {
        let head = rng.range(6, 14) as u32;
        let kg = (0..head).map(|_| rng.range(450, 720) as f64).sum::<f64>();
        out.push(Shipment {
            date: day,
            head,
            kg,
            destination: DESTINATIONS[rng.range(0, 2) as usize],
        });
        day = day.add_days(rng.range(5, 9) as i32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tenant_and_day_give_the_same_herd() {
        let day = Date::from_ymd(2026, 11, 22);
        assert_eq!(herd("demo-farm", day), herd("demo-farm", day));
        assert_ne!(herd("demo-farm", day).cows, herd("other-farm", day).cows);
    }

    #[test]
    fn the_herd_looks_like_a_dairy_farm() {
        let h = herd("demo-farm", Date::from_ymd(2026, 11, 22));
        assert!((115..=125).contains(&h.cows.len()));
        assert_eq!(
            h.cows.iter().map(|c| c.tag).collect::<Vec<_>>(),
            (1..=h.cows.len() as u32).collect::<Vec<_>>()
        );
        let milking = h
            .cows
            .iter()
            .filter(|c| c.milk.iter().any(|&m| m > 0.0))
            .count();
        assert!(milking > h.cows.len() / 2, "{milking} milking");
        assert!(
            h.cows
                .iter()
                .all(|c| c.milk.len() == 60 && c.activity.len() == 60)
        );
        assert!(h.cows.iter().any(|c| c.parity == 0), "some heifers");
        let open_21 = h
            .cows
            .iter()
            .filter(|c| {
                !c.pregnant
                    && c.last_insemination
                        .is_some_and(|d| h.today.days_since(d) >= 21)
            })
            .count();
        assert!(open_21 > 0, "someone is due for estrus");
        assert!(
            !h.shipments.is_empty()
                && h.shipments
                    .iter()
                    .all(|s| s.date <= h.today && s.date >= h.today.first_of_month())
        );
        let names: std::collections::HashSet<_> = h.cows.iter().map(|c| &c.name).collect();
        assert_eq!(names.len(), h.cows.len(), "names are unique");
    }
}
