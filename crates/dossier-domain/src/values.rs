//! Validated value types ("parse, don't validate").
//!
//! Each type can only be built through its `parse` constructor, so holding one is
//! proof that the data is well-formed and already normalised. Nothing here does I/O.
//!
//! Error reasons say what is wrong and what is expected. Many values are personal
//! data (ID numbers, card numbers, phones), so reasons never echo the input; at most
//! they name a single offending character.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// Why a raw value was rejected. `reason` is a human-readable English sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ValueError {
    pub reason: String,
}

fn fail<T>(reason: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError {
        reason: reason.into(),
    })
}

/// `as_str`, `Display`, `AsRef<str>` and `FromStr` for types that wrap their
/// normalised string in `$field` and have a one-argument `parse`.
macro_rules! string_value {
    ($ty:ident . $field:tt) => {
        impl $ty {
            /// The normalised form.
            pub fn as_str(&self) -> &str {
                &self.$field
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
        impl std::str::FromStr for $ty {
            type Err = ValueError;
            fn from_str(s: &str) -> Result<Self, ValueError> {
                Self::parse(s)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Shared text helpers
// ---------------------------------------------------------------------------

/// Control characters, plus line separators and bidi marks/overrides: those are
/// invisible, yet can make a stored name display as something else.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Names one character unambiguously, even when it is invisible.
fn describe(c: char) -> String {
    format!("{c:?} (U+{:04X})", u32::from(c))
}

fn reject_forbidden(what: &str, s: &str) -> Result<(), ValueError> {
    match s.chars().position(is_forbidden) {
        Some(i) => fail(format!(
            "{what} contains a control or invisible formatting character at position {}; \
             only printable characters are allowed",
            i + 1
        )),
        None => Ok(()),
    }
}

fn check_length(what: &str, s: &str, max: usize) -> Result<(), ValueError> {
    let n = s.chars().count();
    if n == 0 {
        return fail(format!("{what} is empty; expected 1 to {max} characters"));
    }
    if n > max {
        return fail(format!(
            "{what} is {n} characters long; at most {max} are allowed"
        ));
    }
    Ok(())
}

/// Trims, rejects control characters and collapses internal whitespace runs
/// (including full-width U+3000 spaces) to one ASCII space.
fn collapse_whitespace(what: &str, raw: &str) -> Result<String, ValueError> {
    let s = raw.trim();
    reject_forbidden(what, s)?;
    Ok(s.split_whitespace().collect::<Vec<_>>().join(" "))
}

// ---------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------

/// A short general text (names of things, industries, regions, occupations, roles):
/// trimmed, 1..=200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(String);

impl Text {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Self::parse_max(raw, Self::MAX_CHARS)
    }

    /// Like [`Text::parse`] with a caller-chosen maximum length in characters.
    pub fn parse_max(raw: &str, max_chars: usize) -> Result<Self, ValueError> {
        let s = raw.trim();
        reject_forbidden("text", s)?;
        check_length("text", s, max_chars)?;
        Ok(Self(s.to_owned()))
    }
}
string_value!(Text.0);

// ---------------------------------------------------------------------------
// PersonName
// ---------------------------------------------------------------------------

/// A person's name in any script: 张三, 阿卜杜·热合曼, Anna-Maria O'Neil.
///
/// Normalisation: whitespace runs become one space; look-alike middle dots
/// (• ・ ‧) become `·` and the typographic apostrophe `’` becomes `'`, so the same
/// name typed on different keyboards compares equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let collapsed = collapse_whitespace("person name", raw)?;
        let mut out = String::with_capacity(collapsed.len());
        for c in collapsed.chars() {
            let c = match c {
                '\u{2022}' | '\u{2027}' | '\u{30FB}' => '·',
                '\u{2019}' => '\'',
                c => c,
            };
            // U+0300..U+036F: combining accents, so decomposed "é" is accepted.
            let allowed = c.is_alphabetic()
                || matches!(c, ' ' | '·' | '\'' | '-' | '.' | '\u{0300}'..='\u{036F}');
            if !allowed {
                return fail(if c.is_numeric() {
                    "person name must not contain digits".to_owned()
                } else {
                    format!(
                        "person name contains {}; only letters, spaces \
                         and the marks · ' - . are allowed",
                        describe(c)
                    )
                });
            }
            out.push(c);
        }
        check_length("person name", &out, Self::MAX_CHARS)?;
        if !out.chars().any(char::is_alphabetic) {
            return fail("person name must contain at least one letter");
        }
        Ok(Self(out))
    }
}
string_value!(PersonName.0);

// ---------------------------------------------------------------------------
// CompanyName
// ---------------------------------------------------------------------------

/// A company name, e.g. "深圳市腾讯计算机系统有限公司" or "Procter & Gamble (China) Ltd.".
/// Whitespace runs are collapsed; brackets are kept as written (registered Chinese
/// names use full-width （）).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompanyName(String);

impl CompanyName {
    pub const MAX_CHARS: usize = 100;
    /// Punctuation seen in registered company names, Chinese and Latin.
    const PUNCTUATION: &'static str = "()（）&＆.,，、-·'’/+:";

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let s = collapse_whitespace("company name", raw)?;
        if let Some(c) = s
            .chars()
            .find(|&c| !(c.is_alphanumeric() || c == ' ' || Self::PUNCTUATION.contains(c)))
        {
            return fail(format!(
                "company name contains {}; only letters, digits, spaces and {} are allowed",
                describe(c),
                Self::PUNCTUATION
            ));
        }
        check_length("company name", &s, Self::MAX_CHARS)?;
        if !s.chars().any(char::is_alphanumeric) {
            return fail("company name must contain at least one letter or digit");
        }
        Ok(Self(s))
    }
}
string_value!(CompanyName.0);

// ---------------------------------------------------------------------------
// Phone
// ---------------------------------------------------------------------------

/// A phone number normalised to E.164 ("+8613812345678").
///
/// Accepted: mainland mobiles (1[3-9] + 9 digits) with optional +86 / 0086 / 86
/// prefix; mainland landlines with area code ("010-12345678", "0755 8888 6666",
/// "+86 10 1234 5678"); and any international number written with a leading +.
/// Spaces and hyphens are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let s = raw.trim();
        if s.is_empty() {
            return fail("phone number is empty");
        }
        if s.len() > 32 {
            return fail("phone number is too long; expected at most 15 digits");
        }
        let (plus, body) = match s.strip_prefix('+') {
            Some(body) => (true, body),
            None => (false, s),
        };
        let mut digits = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' => {}
                _ => {
                    return fail(format!(
                        "phone number contains {}; only digits, spaces, hyphens \
                         and a leading + are allowed",
                        describe(c)
                    ))
                }
            }
        }
        let national = if plus {
            match digits.strip_prefix("86") {
                // Country codes are prefix-free, so "+86" always means China.
                Some(national) => china_national(national)?,
                None => {
                    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
                        return fail(
                            "international phone number must be + followed by 8 to 15 digits, \
                             the first not 0",
                        );
                    }
                    return Ok(Self(format!("+{digits}")));
                }
            }
        } else if let Some(national) = digits.strip_prefix("0086") {
            china_national(national)?
        } else if let Some(after_trunk) = digits.strip_prefix('0') {
            china_landline(after_trunk).ok_or_else(|| ValueError {
                reason: "landline number must be 0, a 2–3 digit area code and a 7–8 digit \
                         subscriber number, e.g. 010-12345678"
                    .to_owned(),
            })?
        } else if is_china_mobile(&digits) {
            &digits
        } else if digits.len() == 13 && digits.starts_with("86") && is_china_mobile(&digits[2..]) {
            &digits[2..]
        } else {
            return fail(
                "phone number must be a mainland mobile (11 digits starting 13–19), a landline \
                 with area code such as 010-12345678, or an international number starting with +",
            );
        };
        Ok(Self(format!("+86{national}")))
    }
}
string_value!(Phone.0);

/// The part after the country code 86: a mobile or a landline without trunk 0.
fn china_national(national: &str) -> Result<&str, ValueError> {
    // "+86 010 ..." is a common way of writing it; the trunk 0 is simply dropped.
    let n = national.strip_prefix('0').unwrap_or(national);
    if is_china_mobile(n) {
        return Ok(n);
    }
    china_landline(n).ok_or_else(|| ValueError {
        reason: "+86 number must be a mobile (11 digits starting 13–19) or an area code \
                 followed by a 7–8 digit subscriber number"
            .to_owned(),
    })
}

fn is_china_mobile(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && d.bytes().all(|c| c.is_ascii_digit())
}

/// Validates area code + subscriber number (no trunk 0) and returns it unchanged.
/// The area code's length follows from its first digit: 10 and 2x are two digits,
/// codes starting 3–9 are three, so no separator is needed to split it.
fn china_landline(d: &str) -> Option<&str> {
    let b = d.as_bytes();
    let area_len = match (b.first()?, b.get(1)?) {
        (b'1', b'0') | (b'2', _) => 2,
        (b'3'..=b'9', _) => 3,
        _ => return None,
    };
    let subscriber = b.len().checked_sub(area_len)?;
    ((7..=8).contains(&subscriber) && d.bytes().all(|c| c.is_ascii_digit())).then_some(d)
}

// ---------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------

/// A practically valid email address; the domain is lowercased, the local part kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let s = raw.trim();
        if s.is_empty() {
            return fail("email address is empty");
        }
        if s.chars().count() > Self::MAX_LEN {
            return fail("email address is longer than 254 characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return fail("email address must contain an @");
        };
        if domain.contains('@') {
            return fail("email address must contain exactly one @");
        }
        check_email_local(local)?;
        let domain = domain.to_ascii_lowercase();
        check_email_domain(&domain)?;
        Ok(Self(format!("{local}@{domain}")))
    }
}
string_value!(Email.0);

fn check_email_local(local: &str) -> Result<(), ValueError> {
    if let Some(c) = local
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c)))
    {
        return fail(format!(
            "email local part contains {}; only ASCII letters, digits \
             and !#$%&'*+/=?^_`{{|}}~-. are allowed",
            describe(c)
        ));
    }
    // ASCII from here on, so bytes are characters.
    if local.is_empty() || local.len() > 64 {
        return fail("email local part (before the @) must be 1 to 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return fail(
            "email local part must not start or end with a dot or contain two dots in a row",
        );
    }
    Ok(())
}

/// Expects an already lowercased domain.
fn check_email_domain(domain: &str) -> Result<(), ValueError> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return fail("email domain must have at least two labels, e.g. example.com");
    }
    for label in &labels {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return fail(
                "email domain labels must be 1 to 63 ASCII letters, digits or hyphens, \
                 not starting or ending with a hyphen",
            );
        }
    }
    let tld = labels[labels.len() - 1];
    // Punycode TLDs (xn--fiqs8s = .中国) are real top-level domains too.
    let tld_ok =
        (tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())) || tld.starts_with("xn--");
    if !tld_ok {
        return fail("email top-level domain must be at least two letters, e.g. .com or .cn");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// NationalId (居民身份证号码, GB 11643-1999)
// ---------------------------------------------------------------------------

/// An 18-character PRC resident identity number with a valid birth date and
/// ISO 7064 MOD 11-2 check character (uppercase X).
///
/// `Debug` is masked so the full number does not end up in logs; `as_str` and
/// `Display` give the full value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NationalId {
    id: String,
    birth: NaiveDate,
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// The MOD 11-2 check character for the first 17 digits (ASCII).
fn national_id_check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    ID_CHECK_CHARS[(sum % 11) as usize]
}

/// The check character completing 17 digits into a national ID number, for
/// callers that build numbers (demo and test data). `None` unless 17 ASCII digits.
pub fn national_id_check(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    (b.len() == 17 && b.iter().all(u8::is_ascii_digit)).then(|| national_id_check_char(b) as char)
}

impl NationalId {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let id = raw.trim().to_ascii_uppercase();
        if id.chars().count() != 18 {
            return fail(
                "national ID number must be 18 characters: 17 digits and a check digit or X",
            );
        }
        let b = id.as_bytes();
        if !id.is_ascii()
            || !b[..17].iter().all(u8::is_ascii_digit)
            || !(b[17].is_ascii_digit() || b[17] == b'X')
        {
            return fail("national ID number must be 17 digits followed by a digit or X");
        }
        let birth = date_from_digits(&b[6..14])
            .filter(|d| (1900..=2100).contains(&d.year()))
            .ok_or_else(|| ValueError {
                reason: "national ID number has an invalid birth date: characters 7–14 must be a \
                         real date YYYYMMDD between 1900 and 2100"
                    .to_owned(),
            })?;
        if national_id_check_char(&b[..17]) != b[17] {
            return fail(
                "national ID number has a wrong check character; it was probably mistyped",
            );
        }
        Ok(Self { id, birth })
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.birth
    }

    /// First 6 (region) and last 4 characters kept: "110105********123X".
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.id[..6], &self.id[14..])
    }
}
string_value!(NationalId.id);

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({})", self.masked())
    }
}

/// YYYYMMDD (ASCII digits, already checked) to a date, if it exists.
fn date_from_digits(d: &[u8]) -> Option<NaiveDate> {
    let num = |r: std::ops::Range<usize>| {
        d[r].iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    NaiveDate::from_ymd_opt(num(0..4) as i32, num(4..6), num(6..8))
}

// ---------------------------------------------------------------------------
// CreditCode (统一社会信用代码, GB 32100-2015)
// ---------------------------------------------------------------------------

/// An 18-character unified social credit code with a valid check character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreditCode(String);

/// The code's alphabet: digits and capitals without I, O, S, V, Z (easily misread).
const CREDIT_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn credit_value(c: u8) -> Option<u32> {
    CREDIT_ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|p| p as u32)
}

/// The check character for the first 17 characters (all from the alphabet).
fn credit_check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(CREDIT_WEIGHTS)
        .map(|(&c, w)| credit_value(c).unwrap_or(0) * w)
        .sum();
    CREDIT_ALPHABET[((31 - sum % 31) % 31) as usize]
}

/// The check character completing 17 characters into a unified social credit
/// code. `None` unless 17 characters of the code alphabet.
pub fn credit_code_check(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    (b.len() == 17 && b.iter().all(|&c| credit_value(c).is_some()))
        .then(|| credit_check_char(b) as char)
}

impl CreditCode {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.chars().count() != 18 {
            return fail("unified social credit code must be 18 characters");
        }
        if let Some(c) = code
            .chars()
            .find(|&c| !c.is_ascii() || credit_value(c as u8).is_none())
        {
            return fail(format!(
                "unified social credit code contains {}; only digits and the letters A–Y \
                 except I, O, S, V, Z are used",
                describe(c)
            ));
        }
        let b = code.as_bytes();
        if credit_check_char(&b[..17]) != b[17] {
            return fail(
                "unified social credit code has a wrong check character; it was probably mistyped",
            );
        }
        Ok(Self(code))
    }
}
string_value!(CreditCode.0);

// ---------------------------------------------------------------------------
// BankCard
// ---------------------------------------------------------------------------

/// A bank card number: 12..=19 digits passing the Luhn check, stored without
/// separators. `Debug` is masked; `as_str` and `Display` give the full number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BankCard(String);

/// True if the digit string (ASCII) passes the Luhn check.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The Luhn check digit to append to `digits`. `None` unless ASCII digits.
pub fn luhn_check_digit(digits: &str) -> Option<char> {
    let b = digits.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    (0..=9u8)
        .map(|d| b'0' + d)
        .find(|&d| {
            let mut with = b.to_vec();
            with.push(d);
            luhn_valid(&with)
        })
        .map(char::from)
}

impl BankCard {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let mut digits = String::new();
        for c in raw.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' => {}
                _ => {
                    return fail(format!(
                        "bank card number contains {}; only digits, spaces and hyphens are allowed",
                        describe(c)
                    ))
                }
            }
        }
        if !(12..=19).contains(&digits.len()) {
            return fail("bank card number must have 12 to 19 digits");
        }
        if !luhn_valid(digits.as_bytes()) {
            return fail("bank card number fails the Luhn check digit; it was probably mistyped");
        }
        Ok(Self(digits))
    }

    /// First 4 and last 4 digits kept: "6222********1234".
    pub fn masked(&self) -> String {
        let n = self.0.len();
        format!("{}{}{}", &self.0[..4], "*".repeat(n - 8), &self.0[n - 4..])
    }
}
string_value!(BankCard.0);

impl fmt::Debug for BankCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BankCard({})", self.masked())
    }
}

// ---------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------

/// An exact decimal amount (up to 15 integer digits, 4 decimals) in a currency.
///
/// Stored as `minor / 10^scale` with the smallest possible scale, so equal amounts
/// have equal representations ("100.50" == "100.5") and derived `Eq`/`Hash` are
/// correct. No `Ord`: amounts in different currencies are not comparable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i128,
    scale: u32,
    currency: String,
}

impl Money {
    const MAX_INT_DIGITS: u32 = 15;
    const MAX_SCALE: u32 = 4;

    /// `amount` like "1234.5", "-0.0001", "0" (no exponent, leading + or leading
    /// zeros); `currency` three ASCII letters such as "CNY" (case-insensitive).
    pub fn parse(amount: &str, currency: &str) -> Result<Self, ValueError> {
        const SHAPE: &str = "amount must be written like 1234, -45.5 or 0.0001: \
            up to 15 digits before the point and 4 after, \
            without exponent, leading + or leading zeros";
        let a = amount.trim();
        let (negative, body) = match a.strip_prefix('-') {
            Some(body) => (true, body),
            None => (false, a),
        };
        let (int, frac) = match body.split_once('.') {
            Some((int, frac)) if (1..=Self::MAX_SCALE as usize).contains(&frac.len()) => {
                (int, frac)
            }
            Some(_) => return fail(SHAPE),
            None => (body, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let int_ok = (1..=Self::MAX_INT_DIGITS as usize).contains(&int.len())
            && all_digits(int)
            && (int == "0" || !int.starts_with('0'));
        if !int_ok || !all_digits(frac) {
            return fail(SHAPE);
        }
        // At most 19 digits, far below i128::MAX.
        let magnitude: i128 = format!("{int}{frac}").parse().map_err(|_| ValueError {
            reason: SHAPE.to_owned(),
        })?;
        let minor = if negative { -magnitude } else { magnitude };

        let cur = currency.trim();
        if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_alphabetic()) {
            return fail("currency must be a three-letter ISO 4217 code such as CNY or USD");
        }
        // Only the shape of the code is checked: the ISO list changes over time.
        Self::from_parts(minor, frac.len() as u32, cur.to_ascii_uppercase()).ok_or_else(|| {
            ValueError {
                reason: SHAPE.to_owned(),
            }
        })
    }

    /// Canonical form: `minor` reduced to the smallest scale; None if the integer
    /// part would exceed 15 digits (which keeps every `Money` re-parseable).
    fn from_parts(mut minor: i128, mut scale: u32, currency: String) -> Option<Self> {
        if minor.unsigned_abs() >= 10u128.pow(Self::MAX_INT_DIGITS + scale) {
            return None;
        }
        while scale > 0 && minor % 10 == 0 {
            minor /= 10;
            scale -= 1;
        }
        Some(Self {
            minor,
            scale,
            currency,
        })
    }

    /// Canonical decimal string: "100.5", "100", "-0.0001", never "-0" or "1.50".
    pub fn amount_str(&self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let unit = 10u128.pow(self.scale);
        if self.scale == 0 {
            format!("{sign}{abs}")
        } else {
            let width = self.scale as usize;
            format!("{sign}{}.{:0width$}", abs / unit, abs % unit)
        }
    }

    /// The ISO 4217 code, uppercase.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The amount as an integer count of `10^-scale()` units.
    pub fn minor_units(&self) -> i128 {
        self.minor
    }

    /// Digits after the decimal point in the canonical form (0..=4).
    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    /// Zero in `currency` (an already valid code, such as another amount's).
    pub fn zero(currency: &str) -> Money {
        Money {
            minor: 0,
            scale: 0,
            currency: currency.to_owned(),
        }
    }

    /// `self - other` for amounts in the same currency. Amounts are bounded
    /// to 15 integer digits, so the difference of two valid amounts is exact;
    /// a result beyond the bound (only from adversarial input) saturates at it.
    pub fn minus(&self, other: &Money) -> Money {
        debug_assert_eq!(self.currency, other.currency);
        let scale = self.scale.max(other.scale);
        let a = self.minor * 10i128.pow(scale - self.scale);
        let b = other.minor * 10i128.pow(scale - other.scale);
        let bound = 10i128.pow(Self::MAX_INT_DIGITS + scale) - 1;
        Self::from_parts((a - b).clamp(-bound, bound), scale, self.currency.clone())
            .expect("clamped into range")
    }

    /// Whether `self >= other`, for amounts in the same currency.
    pub fn at_least(&self, other: &Money) -> bool {
        !self.minus(other).is_negative()
    }

    /// The sum, or None if the currencies differ or the result exceeds 15 integer digits.
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let scale = self.scale.max(other.scale);
        let a = self.minor.checked_mul(10i128.pow(scale - self.scale))?;
        let b = other.minor.checked_mul(10i128.pow(scale - other.scale))?;
        Self::from_parts(a.checked_add(b)?, scale, self.currency.clone())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_str(), self.currency)
    }
}

// ---------------------------------------------------------------------------
// Birthday
// ---------------------------------------------------------------------------

/// A date of birth written as YYYY-MM-DD, from 1900 and not after `today`.
/// `today` is a parameter because this crate does not read the clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Birthday {
    date: NaiveDate,
    text: String,
}

impl Birthday {
    pub fn parse(raw: &str, today: NaiveDate) -> Result<Self, ValueError> {
        let s = raw.trim();
        let b = s.as_bytes();
        // Checked by hand: chrono's "%Y-%m-%d" also takes "1990-5-7" and "+1990-05-17".
        let shape_ok = b.len() == 10
            && b.iter().enumerate().all(|(i, &c)| {
                if i == 4 || i == 7 {
                    c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !shape_ok {
            return fail("birthday must be a date written as YYYY-MM-DD, e.g. 1990-05-17");
        }
        let digits: Vec<u8> = b.iter().copied().filter(u8::is_ascii_digit).collect();
        let Some(date) = date_from_digits(&digits) else {
            return fail("birthday is not a real calendar date");
        };
        if date.year() < 1900 {
            return fail("birthday must be in 1900 or later");
        }
        if date > today {
            return fail("birthday must not be in the future");
        }
        Ok(Self {
            date,
            text: s.to_owned(),
        })
    }

    pub fn date(&self) -> NaiveDate {
        self.date
    }

    /// The normalised form, YYYY-MM-DD.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Birthday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Asserts `result` is an error whose reason contains `needle`.
    #[track_caller]
    fn assert_reason<T: fmt::Debug>(result: Result<T, ValueError>, needle: &str) {
        match result {
            Ok(v) => panic!("expected an error mentioning {needle:?}, got Ok({v:?})"),
            Err(e) => assert!(
                e.reason.contains(needle),
                "reason {:?} does not mention {needle:?}",
                e.reason
            ),
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    // --- Text ---------------------------------------------------------------

    #[test]
    fn text_valid() {
        for (raw, want) in [
            ("  制造业 ", "制造业"),
            ("华南区", "华南区"),
            ("Sales  Director", "Sales  Director"),
            ("x", "x"),
        ] {
            assert_eq!(Text::parse(raw).unwrap().as_str(), want);
        }
        assert!(Text::parse(&"字".repeat(200)).is_ok());
        assert_eq!(Text::parse_max(" abc ", 3).unwrap().to_string(), "abc");
        assert_eq!("abc".parse::<Text>().unwrap().as_str(), "abc");
    }

    #[test]
    fn text_invalid() {
        assert_reason(Text::parse("   "), "empty");
        assert_reason(Text::parse(&"字".repeat(201)), "at most 200");
        assert_reason(Text::parse("a\nb"), "control");
        assert_reason(Text::parse("a\u{7}b"), "position 2");
        assert_reason(Text::parse("evil\u{202E}txt"), "control");
        assert_reason(Text::parse_max("abcd", 3), "at most 3");
    }

    // --- PersonName -----------------------------------------------------------

    #[test]
    fn person_name_valid() {
        for (raw, want) in [
            ("张三", "张三"),
            (" 阿卜杜·热合曼 ", "阿卜杜·热合曼"),
            ("阿卜杜•热合曼", "阿卜杜·热合曼"),
            ("阿卜杜・热合曼", "阿卜杜·热合曼"),
            ("Anna-Maria O'Neil", "Anna-Maria O'Neil"),
            ("Anna-Maria   O’Neil", "Anna-Maria O'Neil"),
            ("John F. Kennedy", "John F. Kennedy"),
            ("张\u{3000}\u{3000}三", "张 三"),
            ("José Müller", "José Müller"),
            ("Jose\u{301}", "Jose\u{301}"),
        ] {
            assert_eq!(
                PersonName::parse(raw).unwrap().as_str(),
                want,
                "input {raw:?}"
            );
        }
        assert!(PersonName::parse(&"张".repeat(50)).is_ok());
    }

    #[test]
    fn person_name_invalid() {
        assert_reason(PersonName::parse(""), "empty");
        assert_reason(PersonName::parse("张三3"), "digits");
        assert_reason(PersonName::parse("张三３"), "digits");
        assert_reason(PersonName::parse("a\tb"), "control");
        assert_reason(PersonName::parse("Bob@home"), "'@'");
        assert_reason(PersonName::parse("-- .."), "at least one letter");
        assert_reason(PersonName::parse(&"张".repeat(51)), "at most 50");
    }

    // --- CompanyName ------------------------------------------------------------

    #[test]
    fn company_name_valid() {
        for (raw, want) in [
            (
                "深圳市腾讯计算机系统有限公司",
                "深圳市腾讯计算机系统有限公司",
            ),
            ("宝洁（中国）有限公司", "宝洁（中国）有限公司"),
            (
                "Procter & Gamble (China)  Ltd.",
                "Procter & Gamble (China) Ltd.",
            ),
            ("3M 中国有限公司", "3M 中国有限公司"),
            ("A·B, C-D", "A·B, C-D"),
        ] {
            assert_eq!(CompanyName::parse(raw).unwrap().as_str(), want);
        }
        assert!(CompanyName::parse(&"公".repeat(100)).is_ok());
    }

    #[test]
    fn company_name_invalid() {
        assert_reason(CompanyName::parse(" "), "empty");
        assert_reason(CompanyName::parse(&"公".repeat(101)), "at most 100");
        assert_reason(CompanyName::parse("ACME\u{0}"), "control");
        assert_reason(CompanyName::parse("ACME <script>"), "'<'");
        assert_reason(CompanyName::parse("（）"), "at least one letter or digit");
    }

    // --- Phone --------------------------------------------------------------------

    #[test]
    fn phone_valid() {
        for (raw, want) in [
            ("13812345678", "+8613812345678"),
            ("138 1234 5678", "+8613812345678"),
            ("138-1234-5678", "+8613812345678"),
            ("+86 138 1234 5678", "+8613812345678"),
            ("+8613812345678", "+8613812345678"),
            ("0086 13812345678", "+8613812345678"),
            ("86 13812345678", "+8613812345678"),
            ("19912345678", "+8619912345678"),
            ("010-12345678", "+861012345678"),
            ("0755 8888 6666", "+8675588886666"),
            ("021-6123456", "+86216123456"),
            ("+86 10 1234 5678", "+861012345678"),
            ("+86 010 1234 5678", "+861012345678"),
            ("0086-755-88886666", "+8675588886666"),
            ("+1 415 555 2671", "+14155552671"),
            ("+852 9123 4567", "+85291234567"),
            ("+44 20 7946 0958", "+442079460958"),
        ] {
            assert_eq!(Phone::parse(raw).unwrap().as_str(), want, "input {raw:?}");
        }
    }

    #[test]
    fn phone_invalid() {
        assert_reason(Phone::parse(""), "empty");
        assert_reason(Phone::parse("12812345678"), "mainland mobile");
        assert_reason(Phone::parse("1381234567"), "mainland mobile");
        assert_reason(Phone::parse("138123456789"), "mainland mobile");
        assert_reason(Phone::parse("12345678"), "area code");
        assert_reason(Phone::parse("(010) 12345678"), "'('");
        assert_reason(Phone::parse("010-123456"), "landline");
        assert_reason(Phone::parse("010-123456789"), "landline");
        assert_reason(Phone::parse("011-12345678"), "landline");
        assert_reason(Phone::parse("+86 128 1234 5678"), "+86 number");
        assert_reason(Phone::parse("+1234567"), "8 to 15 digits");
        assert_reason(Phone::parse("+1234567890123456"), "8 to 15 digits");
        assert_reason(Phone::parse("+0123456789"), "first not 0");
        assert_reason(Phone::parse("138+12345678"), "'+'");
        assert_reason(Phone::parse(&"1".repeat(40)), "too long");
    }

    // --- Email --------------------------------------------------------------------

    #[test]
    fn email_valid() {
        for (raw, want) in [
            ("zhang.san@Example.COM", "zhang.san@example.com"),
            (
                " Zhang.San+crm@mail.example.com.cn ",
                "Zhang.San+crm@mail.example.com.cn",
            ),
            ("a@b.co", "a@b.co"),
            ("o'neil@x-y.org", "o'neil@x-y.org"),
            ("user@xn--fiqs8s.xn--fiqs8s", "user@xn--fiqs8s.xn--fiqs8s"),
        ] {
            assert_eq!(Email::parse(raw).unwrap().as_str(), want);
        }
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok());
    }

    #[test]
    fn email_invalid() {
        assert_reason(Email::parse(""), "empty");
        assert_reason(Email::parse("zhang.example.com"), "must contain an @");
        assert_reason(Email::parse("a@b@example.com"), "exactly one @");
        assert_reason(Email::parse("@example.com"), "1 to 64");
        assert_reason(
            Email::parse(&format!("{}@example.com", "a".repeat(65))),
            "1 to 64",
        );
        assert_reason(Email::parse(".a@example.com"), "dot");
        assert_reason(Email::parse("a.@example.com"), "dot");
        assert_reason(Email::parse("a..b@example.com"), "two dots");
        assert_reason(Email::parse("a b@example.com"), "' '");
        assert_reason(Email::parse("张三@example.com"), "'张'");
        assert_reason(Email::parse("a@localhost"), "at least two labels");
        assert_reason(Email::parse("a@-x.com"), "hyphen");
        assert_reason(Email::parse("a@x..com"), "labels");
        assert_reason(Email::parse("a@example.com."), "labels");
        assert_reason(Email::parse("a@例子.cn"), "labels");
        assert_reason(Email::parse("a@example.c"), "top-level");
        assert_reason(Email::parse("a@example.123"), "top-level");
        let long = format!("a@{}.com", "b".repeat(60).repeat(5));
        assert_reason(Email::parse(&long), "254");
    }

    // --- NationalId ---------------------------------------------------------------

    /// Builds a valid ID from region (6 digits), birth date and sequence (3 digits).
    fn make_national_id(region: &str, birth: NaiveDate, seq: &str) -> String {
        let first17 = format!("{region}{}{seq}", birth.format("%Y%m%d"));
        let check = national_id_check_char(first17.as_bytes()) as char;
        format!("{first17}{check}")
    }

    #[test]
    fn national_id_valid() {
        // The worked example from GB 11643-1999.
        let id = NationalId::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.birth_date(), date(1949, 12, 31));
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(format!("{id:?}"), "NationalId(110105********002X)");
        assert_eq!(id.to_string(), "11010519491231002X");

        for (y, m, d) in [(1900, 1, 1), (2000, 2, 29), (2100, 12, 31)] {
            let raw = make_national_id("440305", date(y, m, d), "123");
            assert_eq!(NationalId::parse(&raw).unwrap().birth_date(), date(y, m, d));
        }
    }

    #[test]
    fn national_id_invalid() {
        assert_reason(NationalId::parse(""), "18 characters");
        assert_reason(NationalId::parse("11010519491231002"), "18 characters");
        assert_reason(NationalId::parse("1101051949123100233"), "18 characters");
        assert_reason(NationalId::parse("1101051949123100AX"), "17 digits");
        assert_reason(NationalId::parse("11010519491231002Y"), "17 digits");
        assert_reason(NationalId::parse("110105194912310023"), "check character");
        assert_reason(NationalId::parse("11010519491231002０"), "17 digits");
        // Dates are checked before the check character: build IDs whose check is right.
        for bad in ["18991231", "21010101", "19490229", "19491301", "19490100"] {
            let first17 = format!("110105{bad}002");
            let check = national_id_check_char(first17.as_bytes()) as char;
            assert_reason(
                NationalId::parse(&format!("{first17}{check}")),
                "birth date",
            );
        }
    }

    // --- CreditCode ---------------------------------------------------------------

    fn make_credit_code(first17: &str) -> String {
        let check = credit_check_char(first17.as_bytes()) as char;
        format!("{first17}{check}")
    }

    #[test]
    fn credit_code_valid() {
        for (raw, want) in [
            ("91350100M000100Y43", "91350100M000100Y43"),
            (" 91350100m000100y43 ", "91350100M000100Y43"),
        ] {
            assert_eq!(CreditCode::parse(raw).unwrap().as_str(), want);
        }
        // Check value 31 maps to '0' (sum % 31 == 0), and 30 maps to 'Y'.
        let zero = make_credit_code("00000000000000000");
        assert_eq!(zero, "000000000000000000");
        assert!(CreditCode::parse(&zero).is_ok());
        assert_eq!(make_credit_code("10000000000000000"), "10000000000000000Y");
        assert!(CreditCode::parse("10000000000000000Y").is_ok());
    }

    #[test]
    fn credit_code_invalid() {
        assert_reason(CreditCode::parse(""), "18 characters");
        assert_reason(CreditCode::parse("91350100M000100Y4"), "18 characters");
        assert_reason(CreditCode::parse("91350100M000100Y44"), "check character");
        assert_reason(CreditCode::parse("91350100I000100Y43"), "'I'");
        assert_reason(CreditCode::parse("91350100O000100Y43"), "'O'");
        assert_reason(CreditCode::parse("91350100M000100Z43"), "'Z'");
        assert_reason(CreditCode::parse("91350100M000100Y4中"), "'中'");
    }

    // --- BankCard -----------------------------------------------------------------

    /// Appends the Luhn check digit to `payload`.
    fn make_luhn(payload: &str) -> String {
        (0..=9)
            .map(|d| format!("{payload}{d}"))
            .find(|s| luhn_valid(s.as_bytes()))
            .unwrap()
    }

    #[test]
    fn bank_card_valid() {
        for (raw, want) in [
            ("4111 1111 1111 1111", "4111111111111111"),
            ("6222-0212-3456-7890-128", "6222021234567890128"),
            ("378282246310005", "378282246310005"),
            ("000000000000", "000000000000"),
        ] {
            let card = BankCard::parse(raw).unwrap();
            assert_eq!(card.as_str(), want, "input {raw:?}");
        }
        let card = BankCard::parse("4111 1111 1111 1111").unwrap();
        assert_eq!(card.masked(), "4111********1111");
        assert_eq!(format!("{card:?}"), "BankCard(4111********1111)");
        assert_eq!(
            BankCard::parse("6222021234567890128").unwrap().masked(),
            "6222***********0128"
        );
    }

    #[test]
    fn bank_card_invalid() {
        assert_reason(BankCard::parse(""), "12 to 19 digits");
        assert_reason(BankCard::parse("4111 1111 111"), "12 to 19 digits");
        assert_reason(BankCard::parse(&"0".repeat(20)), "12 to 19 digits");
        assert_reason(BankCard::parse("4111 1111 1111 1112"), "Luhn");
        assert_reason(BankCard::parse("4111.1111.1111.1111"), "'.'");
    }

    // --- Money --------------------------------------------------------------------

    #[test]
    fn money_valid() {
        for (amount, currency, want_amount, want_currency) in [
            ("100.50", "CNY", "100.5", "CNY"),
            ("100.00", "cny", "100", "CNY"),
            ("-0", "USD", "0", "USD"),
            ("-0.000", "USD", "0", "USD"),
            ("0", "EUR", "0", "EUR"),
            ("0.0001", "EUR", "0.0001", "EUR"),
            ("-12.3400", "JPY", "-12.34", "JPY"),
            ("999999999999999.9999", "CNY", "999999999999999.9999", "CNY"),
            ("-999999999999999", "CNY", "-999999999999999", "CNY"),
            (" 7 ", " hkd ", "7", "HKD"),
        ] {
            let m = Money::parse(amount, currency).unwrap();
            assert_eq!(m.amount_str(), want_amount, "amount {amount:?}");
            assert_eq!(m.currency(), want_currency);
        }
        assert_eq!(
            Money::parse("100.50", "CNY").unwrap(),
            Money::parse("100.5", "CNY").unwrap()
        );
        let m = Money::parse("-12.34", "CNY").unwrap();
        assert!(m.is_negative());
        assert_eq!((m.minor_units(), m.scale()), (-1234, 2));
        assert_eq!(m.to_string(), "-12.34 CNY");
        assert!(!Money::parse("-0", "CNY").unwrap().is_negative());
    }

    #[test]
    fn money_invalid() {
        for bad in [
            "",
            "-",
            "100.",
            ".5",
            "+1",
            "007",
            "00",
            "-01",
            "1e5",
            "1.23456",
            "1,000",
            "1 000",
            "1000000000000000",
            "１２",
        ] {
            assert_reason(Money::parse(bad, "CNY"), "amount must be written like");
        }
        for bad in ["", "CN", "CNYY", "C1Y", "人民币"] {
            assert_reason(Money::parse("1", bad), "three-letter");
        }
    }

    #[test]
    fn money_checked_add() {
        let m = |a: &str, c: &str| Money::parse(a, c).unwrap();
        assert_eq!(
            m("100.5", "CNY").checked_add(&m("0.5", "CNY")),
            Some(m("101", "CNY"))
        );
        assert_eq!(
            m("0.0001", "CNY").checked_add(&m("-1", "CNY")),
            Some(m("-0.9999", "CNY"))
        );
        assert_eq!(
            m("1.25", "CNY").checked_add(&m("-1.25", "CNY")),
            Some(m("0", "CNY"))
        );
        assert_eq!(m("1", "CNY").checked_add(&m("1", "USD")), None);
        let max = m("999999999999999.9999", "CNY");
        assert_eq!(max.checked_add(&m("0.0001", "CNY")), None);
        assert_eq!(
            max.checked_add(&m("-0.9999", "CNY")),
            Some(m("999999999999999", "CNY"))
        );
    }

    // --- Birthday -----------------------------------------------------------------

    #[test]
    fn birthday_valid() {
        let today = date(2024, 6, 1);
        let b = Birthday::parse(" 1990-05-17 ", today).unwrap();
        assert_eq!(b.as_str(), "1990-05-17");
        assert_eq!(b.date(), date(1990, 5, 17));
        assert_eq!(b.to_string(), "1990-05-17");
        assert!(Birthday::parse("2024-06-01", today).is_ok());
        assert!(Birthday::parse("1900-01-01", today).is_ok());
        assert!(Birthday::parse("2000-02-29", today).is_ok());
    }

    #[test]
    fn birthday_invalid() {
        let today = date(2024, 6, 1);
        for bad in [
            "",
            "1990-5-17",
            "19900517",
            "1990/05/17",
            "+1990-05-17",
            "90-05-17",
            "1990-05-17T00:00",
        ] {
            assert_reason(Birthday::parse(bad, today), "YYYY-MM-DD");
        }
        assert_reason(Birthday::parse("1990-02-30", today), "real calendar date");
        assert_reason(Birthday::parse("1990-13-01", today), "real calendar date");
        assert_reason(Birthday::parse("1899-12-31", today), "1900 or later");
        assert_reason(Birthday::parse("2024-06-02", today), "future");
    }

    // --- Reasons do not leak personal data ------------------------------------------

    #[test]
    fn reasons_do_not_echo_input() {
        let cases: Vec<(String, ValueError)> = vec![
            (
                "110105194912310023".into(),
                NationalId::parse("110105194912310023").unwrap_err(),
            ),
            (
                "4111111111111112".into(),
                BankCard::parse("4111111111111112").unwrap_err(),
            ),
            (
                "12812345678".into(),
                Phone::parse("12812345678").unwrap_err(),
            ),
        ];
        for (input, err) in cases {
            assert!(
                !err.reason.contains(&input),
                "reason echoes input: {}",
                err.reason
            );
            assert!(
                !err.reason.contains(&input[..8]),
                "reason echoes input: {}",
                err.reason
            );
        }
    }

    // --- Property tests -------------------------------------------------------------

    const CREDIT_CHARS: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

    /// Any date in the valid birth range 1900-01-01..=2100-12-31.
    fn id_birth_date() -> impl Strategy<Value = NaiveDate> {
        let start = date(1900, 1, 1);
        let days = (date(2100, 12, 31) - start).num_days();
        (0..=days).prop_map(move |d| start + chrono::Duration::days(d))
    }

    /// Replaces the ASCII character at `pos`.
    fn replace_at(s: &str, pos: usize, c: char) -> String {
        let mut out = s.to_owned();
        out.replace_range(pos..pos + 1, c.encode_utf8(&mut [0; 4]));
        out
    }

    proptest! {
        #[test]
        fn prop_national_id_check(
            region in "[0-9]{6}",
            birth in id_birth_date(),
            seq in "[0-9]{3}",
            pos in 0usize..18,
            delta in 1u8..10,
        ) {
            let raw = make_national_id(&region, birth, &seq);
            let id = NationalId::parse(&raw).unwrap();
            prop_assert_eq!(id.birth_date(), birth);
            prop_assert_eq!(NationalId::parse(&raw.to_lowercase()).unwrap(), id.clone());

            // A different character at any single position must be rejected.
            let chars = b"0123456789X";
            let old = chars.iter().position(|&c| c == raw.as_bytes()[pos]).unwrap();
            let modulus = if pos == 17 { 11 } else { 10 };
            let new = chars[(old + usize::from(delta)) % modulus] as char;
            prop_assert!(NationalId::parse(&replace_at(&raw, pos, new)).is_err());
        }

        #[test]
        fn prop_credit_code_check(
            first17 in "[0-9A-HJ-NP-RTUW-Y]{17}",
            pos in 0usize..18,
            delta in 1usize..31,
        ) {
            let raw = make_credit_code(&first17);
            let code = CreditCode::parse(&raw).unwrap();
            prop_assert_eq!(CreditCode::parse(&raw.to_lowercase()).unwrap(), code);

            let old = CREDIT_CHARS.find(raw.as_bytes()[pos] as char).unwrap();
            let new = CREDIT_CHARS.as_bytes()[(old + delta) % 31] as char;
            let changed = replace_at(&raw, pos, new);
            prop_assert!(CreditCode::parse(&changed).is_err());
        }

        #[test]
        fn prop_luhn(payload in "[0-9]{11,18}", pos in 0usize..19, delta in 1u8..10) {
            let raw = make_luhn(&payload);
            let card = BankCard::parse(&raw).unwrap();
            prop_assert_eq!(card.as_str(), raw.as_str());
            let masked = card.masked();
            prop_assert_eq!(masked.len(), raw.len());
            prop_assert_eq!(&masked[..4], &raw[..4]);

            let pos = pos % raw.len();
            let old = raw.as_bytes()[pos] - b'0';
            let new = (b'0' + (old + delta) % 10) as char;
            prop_assert!(BankCard::parse(&replace_at(&raw, pos, new)).is_err());
        }

        #[test]
        fn prop_money_round_trip(
            negative in any::<bool>(),
            int in 0u64..1_000_000_000_000_000,
            frac in "[0-9]{0,4}",
            currency in "[a-zA-Z]{3}",
        ) {
            let sign = if negative { "-" } else { "" };
            let dot = if frac.is_empty() { "" } else { "." };
            let raw = format!("{sign}{int}{dot}{frac}");
            let m = Money::parse(&raw, &currency).unwrap();
            let again = Money::parse(&m.amount_str(), m.currency()).unwrap();
            prop_assert_eq!(&again, &m);
            prop_assert_eq!(again.amount_str(), m.amount_str());
            prop_assert_eq!(m.currency(), currency.to_ascii_uppercase());
            // Canonical: no trailing zero after the point, no "-0".
            let s = m.amount_str();
            prop_assert!(!(s.contains('.') && s.ends_with('0')));
            prop_assert!(s != "-0");
        }

        #[test]
        fn prop_money_add_round_trips(
            a in -1_000_000_000_000_000_000i128..1_000_000_000_000_000_000,
            b in -1_000_000_000_000_000_000i128..1_000_000_000_000_000_000,
            sa in 0u32..=4,
            sb in 0u32..=4,
        ) {
            let to_money = |minor: i128, scale: u32| {
                Money::from_parts(minor / 10i128.pow(4 - scale), scale, "CNY".into())
            };
            if let (Some(x), Some(y)) = (to_money(a, sa), to_money(b, sb)) {
                if let Some(sum) = x.checked_add(&y) {
                    prop_assert_eq!(Money::parse(&sum.amount_str(), "CNY").unwrap(), sum.clone());
                    prop_assert_eq!(y.checked_add(&x), Some(sum));
                }
            }
        }

        #[test]
        fn prop_phone_formats_idempotent(
            mobile in "1[3-9][0-9]{9}",
            landline in prop_oneof!["10[0-9]{7,8}", "2[0-9]{8,9}", "[3-9][0-9]{9,10}"],
            intl in "[1-79][0-9]{7,14}",
            prefix in prop_oneof![Just(""), Just("+86"), Just("+86 "), Just("0086"), Just("86 ")],
            sep in prop_oneof![Just(""), Just(" "), Just("-")],
        ) {
            let spaced = |s: &str| {
                let (a, rest) = s.split_at(3);
                let (b, c) = rest.split_at(4);
                format!("{a}{sep}{b}{sep}{c}")
            };
            let cases = [
                (format!("{prefix}{}", spaced(&mobile)), format!("+86{mobile}")),
                (format!("0{}", spaced(&landline)), format!("+86{landline}")),
                (format!("+86{sep}{}", spaced(&landline)), format!("+86{landline}")),
                (format!("+{}", spaced(&intl)), format!("+{intl}")),
            ];
            for (raw, want) in cases {
                let p = Phone::parse(&raw).unwrap();
                prop_assert_eq!(p.as_str(), want.as_str(), "input {:?}", raw);
                prop_assert_eq!(Phone::parse(p.as_str()).unwrap(), p);
            }
        }

        #[test]
        fn prop_phone_any_accepted_input_is_idempotent(raw in "\\+?[0-9 -]{0,20}") {
            if let Ok(p) = Phone::parse(&raw) {
                prop_assert_eq!(Phone::parse(p.as_str()).unwrap(), p.clone());
                prop_assert!(p.as_str().starts_with('+'));
                prop_assert!(p.as_str()[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }

        #[test]
        fn prop_text_types_never_panic_and_are_idempotent(
            raw in prop_oneof![any::<String>(), "[ \t\u{3000}a-z张·'.@-]{0,60}"],
        ) {
            if let Ok(t) = Text::parse(&raw) {
                prop_assert_eq!(Text::parse(t.as_str()).unwrap(), t);
            }
            if let Ok(n) = PersonName::parse(&raw) {
                prop_assert_eq!(PersonName::parse(n.as_str()).unwrap(), n);
            }
            if let Ok(c) = CompanyName::parse(&raw) {
                prop_assert_eq!(CompanyName::parse(c.as_str()).unwrap(), c);
            }
            if let Ok(e) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e);
            }
            let _ = (NationalId::parse(&raw), CreditCode::parse(&raw), BankCard::parse(&raw));
            let _ = Money::parse(&raw, &raw);
            let _ = Birthday::parse(&raw, date(2024, 1, 1));
        }
    }
}
