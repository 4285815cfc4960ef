//! The rules in force: a versioned TOML text (docs/rules.md), parsed once into
//! typed thresholds. Every key but `version` has a default, so `version = "x"`
//! alone is a complete file; unknown keys are rejected so a typo cannot pass
//! silently as a default.

use std::collections::{BTreeMap, BTreeSet};

use chrono::FixedOffset;
use dossier_domain::{CreditRating, LegalStatus};
use toml::{Table, Value};

use crate::amount::{Amount, Rate};
use crate::assessment::{RiskLevel, ValueTier};

/// The longest window (in days) a rule may look back over. [`crate::Facts`]
/// keeps dated history (per-day order sums, complaints, credit changes) for
/// this many days before the latest recorded date, which is what keeps it bounded.
pub const MAX_WINDOW_DAYS: u32 = 400;

/// The longest run of unanswered contact attempts a rule may ask for; facts
/// keep at most this many.
pub const MAX_NO_ANSWER_STREAK: u32 = 32;

const DEFAULT_TEXT: &str = include_str!("../default-rules.toml");

/// Why a rules text was refused. Every variant names the key (dotted path).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("the rules are not valid TOML: {0}")]
    Syntax(String),
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    #[error("missing required key `{0}`")]
    Missing(String),
    #[error("`{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

/// The parsed rules. Built only by [`Rules::parse`] (or [`Rules::defaults`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub(crate) version: String,
    pub(crate) utc_offset: FixedOffset,
    pub(crate) base_currency: String,
    /// Rates to the base currency, the base itself included (1).
    pub(crate) rates: BTreeMap<String, Rate>,
    pub(crate) tier: TierRules,
    pub(crate) importance: ImportanceRules,
    pub(crate) lifecycle: LifecycleRules,
    pub(crate) risk: RiskRules,
    pub(crate) follow_ups: FollowUpRules,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TierRules {
    pub window_days: u32,
    pub a_min: Amount,
    pub b_min: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImportanceRules {
    pub important_tiers: BTreeSet<ValueTier>,
    pub important_min_amount: Option<Amount>,
    pub special_rating_at_or_below: Option<CreditRating>,
    pub special_legal_statuses: BTreeSet<LegalStatus>,
    pub special_tags: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LifecycleRules {
    pub new_days: u32,
    pub dormant_days: u32,
    pub lost_days: u32,
    pub lost_legal_statuses: BTreeSet<LegalStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RiskRules {
    /// This many signals at high or above make the level critical; 0 = never.
    pub escalate_high_count: u32,
    pub overdue: Option<OverdueRules>,
    pub decline: Option<DeclineRules>,
    pub complaints: Option<ComplaintRules>,
    pub credit: Option<CreditRules>,
    pub legal: Option<LegalRules>,
    pub lost_contact: Option<LostContactRules>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OverdueRules {
    pub min_amount: Amount,
    pub medium_after_days: u32,
    pub high_after_days: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeclineRules {
    pub window_days: u32,
    pub min_decline_percent: u32,
    pub min_previous_amount: Amount,
    pub severity: RiskLevel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ComplaintRules {
    pub window_days: u32,
    pub min_count: u32,
    pub severity: RiskLevel,
    pub open_severity: RiskLevel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CreditRules {
    pub window_days: u32,
    pub severity: RiskLevel,
    pub high_at_or_below: Option<CreditRating>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LegalRules {
    pub litigation: RiskLevel,
    pub restructuring: RiskLevel,
    pub bankruptcy: RiskLevel,
    pub dissolved: RiskLevel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LostContactRules {
    pub days: u32,
    pub no_answer_streak: u32,
    pub severity: RiskLevel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FollowUpRules {
    pub no_contact_days: u32,
    pub review_every_days: u32,
    pub birthday_days_ahead: u32,
    pub complaint_open_days: u32,
}

impl Rules {
    /// Parses and validates a rules text.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let root: Table = text
            .parse()
            .map_err(|e: toml::de::Error| RulesError::Syntax(e.to_string().trim().to_owned()))?;
        parse_root(&Section::root(&root))
    }

    /// The text of the built-in rules (`default-rules.toml`), for adopting or editing.
    pub fn default_text() -> &'static str {
        DEFAULT_TEXT
    }

    /// The built-in rules.
    pub fn defaults() -> Rules {
        Rules::parse(DEFAULT_TEXT).expect("default-rules.toml is valid (tested)")
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The business time zone.
    pub fn utc_offset(&self) -> FixedOffset {
        self.utc_offset
    }

    pub fn base_currency(&self) -> &str {
        &self.base_currency
    }

    /// `amount` (in `currency`) in the base currency; None without a rate.
    pub fn to_base(&self, currency: &str, amount: Amount) -> Option<Amount> {
        self.rates.get(currency).map(|r| r.convert(amount))
    }
}

/// A table being read: its dotted path, for error messages.
struct Section<'a> {
    path: String,
    table: &'a Table,
}

impl<'a> Section<'a> {
    fn root(table: &'a Table) -> Section<'a> {
        Section {
            path: String::new(),
            table,
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_owned()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn invalid(&self, k: &str, reason: impl Into<String>) -> RulesError {
        RulesError::Invalid {
            key: self.key(k),
            reason: reason.into(),
        }
    }

    /// Rejects keys outside `allowed` (reported in sorted order, so the
    /// message does not depend on the map's order).
    fn only(&self, allowed: &[&str]) -> Result<(), RulesError> {
        match self.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(RulesError::UnknownKey(self.key(k))),
            None => Ok(()),
        }
    }

    /// A sub-table; an absent one reads as empty (all defaults).
    fn table(&self, k: &str) -> Result<Section<'a>, RulesError> {
        static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        match self.table.get(k) {
            None => Ok(Section {
                path: self.key(k),
                table: EMPTY.get_or_init(Table::new),
            }),
            Some(Value::Table(t)) => Ok(Section {
                path: self.key(k),
                table: t,
            }),
            Some(_) => Err(self.invalid(k, "must be a table")),
        }
    }

    fn string(&self, k: &str) -> Result<Option<&'a str>, RulesError> {
        match self.table.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(self.invalid(k, "must be a string")),
        }
    }

    fn boolean(&self, k: &str, default: bool) -> Result<bool, RulesError> {
        match self.table.get(k) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(_) => Err(self.invalid(k, "must be true or false")),
        }
    }

    /// A whole number in `min..=max`.
    fn number(&self, k: &str, default: u32, min: u32, max: u32) -> Result<u32, RulesError> {
        let n = match self.table.get(k) {
            None => return Ok(default),
            Some(Value::Integer(n)) => *n,
            Some(_) => return Err(self.invalid(k, "must be a whole number")),
        };
        if n < i64::from(min) || n > i64::from(max) {
            return Err(self.invalid(k, format!("must be between {min} and {max}, not {n}")));
        }
        Ok(n as u32)
    }

    /// An amount in the base currency, not negative: an integer or a decimal string.
    fn amount(&self, k: &str, default: &str) -> Result<Amount, RulesError> {
        self.optional_amount(k, default)?
            .ok_or_else(|| self.invalid(k, "cannot be \"off\""))
    }

    /// Like `amount`, but the string "off" turns the condition off.
    fn optional_amount(&self, k: &str, default: &str) -> Result<Option<Amount>, RulesError> {
        let text = match self.table.get(k) {
            None => default.to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Integer(n)) => n.to_string(),
            Some(Value::Float(_)) => {
                return Err(self.invalid(
                    k,
                    "write decimal amounts as strings (\"1000.5\"): floats are not exact",
                ))
            }
            Some(_) => return Err(self.invalid(k, "must be an amount such as \"100000\"")),
        };
        if text == "off" {
            return Ok(None);
        }
        match Amount::parse(&text) {
            Some(a) if a >= Amount::ZERO => Ok(Some(a)),
            _ => Err(self.invalid(
                k,
                format!("must be a non-negative decimal with at most 4 decimals, not {text:?}"),
            )),
        }
    }

    fn level(&self, k: &str, default: RiskLevel) -> Result<RiskLevel, RulesError> {
        match self.string(k)? {
            None => Ok(default),
            Some(s) => RiskLevel::parse(s).ok_or_else(|| {
                self.invalid(
                    k,
                    format!("must be one of {}, not {s:?}", RiskLevel::names()),
                )
            }),
        }
    }

    /// A credit rating, or "off".
    fn rating(
        &self,
        k: &str,
        default: Option<CreditRating>,
    ) -> Result<Option<CreditRating>, RulesError> {
        match self.string(k)? {
            None => Ok(default),
            Some("off") => Ok(None),
            Some(s) => CreditRating::parse(s).map(Some).ok_or_else(|| {
                self.invalid(
                    k,
                    format!(
                        "must be \"off\" or one of {}, not {s:?}",
                        CreditRating::names()
                    ),
                )
            }),
        }
    }

    fn strings(&self, k: &str, default: &[&str]) -> Result<Vec<String>, RulesError> {
        match self.table.get(k) {
            None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.invalid(k, "must be a list of strings")),
                })
                .collect(),
            Some(_) => Err(self.invalid(k, "must be a list of strings")),
        }
    }

    fn legal_statuses(
        &self,
        k: &str,
        default: &[&str],
    ) -> Result<BTreeSet<LegalStatus>, RulesError> {
        self.strings(k, default)?
            .iter()
            .map(|s| {
                LegalStatus::parse(s).ok_or_else(|| {
                    self.invalid(k, format!("{s:?} is not one of {}", LegalStatus::names()))
                })
            })
            .collect()
    }

    /// A risk signal section: None when `enabled = false`.
    fn signal<T>(
        &self,
        k: &str,
        allowed: &[&str],
        read: impl FnOnce(&Section<'a>) -> Result<T, RulesError>,
    ) -> Result<Option<T>, RulesError> {
        let s = self.table(k)?;
        let mut keys = vec!["enabled"];
        keys.extend_from_slice(allowed);
        s.only(&keys)?;
        let enabled = s.boolean("enabled", true)?;
        let rules = read(&s)?;
        Ok(enabled.then_some(rules))
    }
}

fn parse_root(root: &Section<'_>) -> Result<Rules, RulesError> {
    root.only(&[
        "version",
        "utc_offset",
        "base_currency",
        "rates",
        "tier",
        "importance",
        "lifecycle",
        "risk",
        "follow_ups",
    ])?;
    let version = root
        .string("version")?
        .ok_or_else(|| RulesError::Missing("version".into()))?
        .trim()
        .to_owned();
    if version.is_empty() {
        return Err(root.invalid("version", "must not be empty"));
    }
    let offset_text = root.string("utc_offset")?.unwrap_or("+08:00");
    let utc_offset = parse_offset(offset_text).ok_or_else(|| {
        root.invalid(
            "utc_offset",
            format!("must be written like \"+08:00\" or \"-05:30\" (within ±14:00), not {offset_text:?}"),
        )
    })?;
    let base_text = root.string("base_currency")?.unwrap_or("CNY");
    let base_currency = currency_code(base_text)
        .ok_or_else(|| root.invalid("base_currency", "must be a three-letter code such as CNY"))?;

    let rates_section = root.table("rates")?;
    let mut rates = BTreeMap::new();
    for (code, value) in rates_section.table {
        let currency = currency_code(code)
            .ok_or_else(|| rates_section.invalid(code, "is not a three-letter currency code"))?;
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Integer(n) => n.to_string(),
            Value::Float(_) => {
                return Err(rates_section.invalid(
                    code,
                    "write rates as strings (\"7.1\"): floats are not exact",
                ))
            }
            _ => return Err(rates_section.invalid(code, "must be a rate such as \"7.1\"")),
        };
        let rate = Rate::parse(&text).ok_or_else(|| {
            rates_section.invalid(
                code,
                format!("must be a positive decimal with at most 8 decimals, not {text:?}"),
            )
        })?;
        if currency == base_currency && rate != Rate::ONE {
            return Err(rates_section.invalid(code, "the base currency's rate is 1"));
        }
        if rates.insert(currency, rate).is_some() {
            return Err(rates_section.invalid(code, "is listed twice (codes are case-insensitive)"));
        }
    }
    rates.insert(base_currency.clone(), Rate::ONE);

    let tier = parse_tier(&root.table("tier")?)?;
    let importance = parse_importance(&root.table("importance")?)?;
    let lifecycle = parse_lifecycle(&root.table("lifecycle")?)?;
    let risk = parse_risk(&root.table("risk")?)?;
    let follow_ups = parse_follow_ups(&root.table("follow_ups")?)?;
    Ok(Rules {
        version,
        utc_offset,
        base_currency,
        rates,
        tier,
        importance,
        lifecycle,
        risk,
        follow_ups,
    })
}

/// Days for windows over dated history, which facts keep only so long.
fn window(s: &Section<'_>, k: &str, default: u32) -> Result<u32, RulesError> {
    s.number(k, default, 1, MAX_WINDOW_DAYS)
}

/// Days measured from a single remembered date (no history needed): up to 100 years.
fn span(s: &Section<'_>, k: &str, default: u32, min: u32) -> Result<u32, RulesError> {
    s.number(k, default, min, 36_500)
}

fn parse_tier(s: &Section<'_>) -> Result<TierRules, RulesError> {
    s.only(&["window_days", "a_min", "b_min"])?;
    let t = TierRules {
        window_days: window(s, "window_days", 365)?,
        a_min: s.amount("a_min", "1000000")?,
        b_min: s.amount("b_min", "100000")?,
    };
    if t.a_min < t.b_min {
        return Err(s.invalid("a_min", "must not be below b_min"));
    }
    Ok(t)
}

fn parse_importance(s: &Section<'_>) -> Result<ImportanceRules, RulesError> {
    s.only(&[
        "important_tiers",
        "important_min_amount",
        "special_rating_at_or_below",
        "special_legal_statuses",
        "special_tags",
    ])?;
    let important_tiers = s
        .strings("important_tiers", &["A"])?
        .iter()
        .map(|t| {
            ValueTier::parse(t)
                .ok_or_else(|| s.invalid("important_tiers", format!("{t:?} is not one of A, B, C")))
        })
        .collect::<Result<_, _>>()?;
    Ok(ImportanceRules {
        important_tiers,
        important_min_amount: s.optional_amount("important_min_amount", "500000")?,
        special_rating_at_or_below: s
            .rating("special_rating_at_or_below", Some(CreditRating::Ccc))?,
        special_legal_statuses: s.legal_statuses(
            "special_legal_statuses",
            &["litigation", "restructuring", "bankruptcy", "dissolved"],
        )?,
        special_tags: s
            .strings("special_tags", &["special", "特殊"])?
            .into_iter()
            .collect(),
    })
}

fn parse_lifecycle(s: &Section<'_>) -> Result<LifecycleRules, RulesError> {
    s.only(&[
        "new_days",
        "dormant_days",
        "lost_days",
        "lost_legal_statuses",
    ])?;
    let l = LifecycleRules {
        new_days: span(s, "new_days", 180, 1)?,
        dormant_days: span(s, "dormant_days", 180, 1)?,
        lost_days: span(s, "lost_days", 365, 1)?,
        lost_legal_statuses: s
            .legal_statuses("lost_legal_statuses", &["bankruptcy", "dissolved"])?,
    };
    if l.lost_days < l.dormant_days {
        return Err(s.invalid("lost_days", "must not be below dormant_days"));
    }
    Ok(l)
}

fn parse_risk(s: &Section<'_>) -> Result<RiskRules, RulesError> {
    s.only(&[
        "escalate_high_count",
        "overdue_receivables",
        "purchase_decline",
        "complaints",
        "credit_downgrade",
        "legal_status",
        "lost_contact",
    ])?;
    let overdue = s.signal(
        "overdue_receivables",
        &["min_amount", "medium_after_days", "high_after_days"],
        |t| {
            let o = OverdueRules {
                min_amount: t.amount("min_amount", "0")?,
                medium_after_days: span(t, "medium_after_days", 30, 0)?,
                high_after_days: span(t, "high_after_days", 90, 0)?,
            };
            if o.high_after_days < o.medium_after_days {
                return Err(t.invalid("high_after_days", "must not be below medium_after_days"));
            }
            Ok(o)
        },
    )?;
    let decline = s.signal(
        "purchase_decline",
        &[
            "window_days",
            "min_decline_percent",
            "min_previous_amount",
            "severity",
        ],
        |t| {
            Ok(DeclineRules {
                // Two consecutive windows must fit in the kept history.
                window_days: t.number("window_days", 90, 1, MAX_WINDOW_DAYS / 2)?,
                min_decline_percent: t.number("min_decline_percent", 50, 1, 100)?,
                min_previous_amount: t.amount("min_previous_amount", "10000")?,
                severity: t.level("severity", RiskLevel::Medium)?,
            })
        },
    )?;
    let complaints = s.signal(
        "complaints",
        &["window_days", "min_count", "severity", "open_severity"],
        |t| {
            Ok(ComplaintRules {
                window_days: window(t, "window_days", 90)?,
                min_count: t.number("min_count", 3, 1, 10_000)?,
                severity: t.level("severity", RiskLevel::Medium)?,
                open_severity: t.level("open_severity", RiskLevel::Low)?,
            })
        },
    )?;
    let credit = s.signal(
        "credit_downgrade",
        &["window_days", "severity", "high_at_or_below"],
        |t| {
            Ok(CreditRules {
                window_days: window(t, "window_days", 180)?,
                severity: t.level("severity", RiskLevel::Medium)?,
                high_at_or_below: t.rating("high_at_or_below", Some(CreditRating::Ccc))?,
            })
        },
    )?;
    let legal = s.signal(
        "legal_status",
        &["litigation", "restructuring", "bankruptcy", "dissolved"],
        |t| {
            Ok(LegalRules {
                litigation: t.level("litigation", RiskLevel::High)?,
                restructuring: t.level("restructuring", RiskLevel::High)?,
                bankruptcy: t.level("bankruptcy", RiskLevel::Critical)?,
                dissolved: t.level("dissolved", RiskLevel::Critical)?,
            })
        },
    )?;
    let lost_contact = s.signal(
        "lost_contact",
        &["days", "no_answer_streak", "severity"],
        |t| {
            Ok(LostContactRules {
                days: span(t, "days", 90, 1)?,
                no_answer_streak: t.number("no_answer_streak", 3, 1, MAX_NO_ANSWER_STREAK)?,
                severity: t.level("severity", RiskLevel::Medium)?,
            })
        },
    )?;
    Ok(RiskRules {
        escalate_high_count: s.number("escalate_high_count", 3, 0, 6)?,
        overdue,
        decline,
        complaints,
        credit,
        legal,
        lost_contact,
    })
}

fn parse_follow_ups(s: &Section<'_>) -> Result<FollowUpRules, RulesError> {
    s.only(&[
        "no_contact_days",
        "review_every_days",
        "birthday_days_ahead",
        "complaint_open_days",
    ])?;
    Ok(FollowUpRules {
        no_contact_days: span(s, "no_contact_days", 30, 1)?,
        review_every_days: span(s, "review_every_days", 60, 1)?,
        birthday_days_ahead: s.number("birthday_days_ahead", 7, 0, 60)?,
        complaint_open_days: span(s, "complaint_open_days", 7, 0)?,
    })
}

/// "+08:00", "-05:30", "+00:00" (also "Z").
fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" {
        return FixedOffset::east_opt(0);
    }
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |i: usize| -> Option<i32> {
        let t = &s[i..i + 2];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (h, m) = (two(1)?, two(4)?);
    if m >= 60 || h * 60 + m > 14 * 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn currency_code(s: &str) -> Option<String> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| s.to_ascii_uppercase())
}
