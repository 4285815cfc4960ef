//! The JSON shapes of the values that payloads and documents share (dates,
//! money, ids, vocabularies) and a reader that turns a wrong shape into a
//! [`CodecError::Malformed`] naming the member, never quoting its value (an
//! opened payload holds personal data, and errors end up in logs).

use chrono::NaiveDate;
use dossier_domain::Money;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::CodecError;

/// `"YYYY-MM-DD"`.
pub(crate) fn date(d: NaiveDate) -> Value {
    Value::String(d.format("%Y-%m-%d").to_string())
}

pub(crate) fn opt_date(d: Option<NaiveDate>) -> Value {
    d.map_or(Value::Null, date)
}

/// `{"amount": "<canonical decimal>", "currency": "CNY"}`: a string, never a
/// JSON number, so no reader rounds it through a float (and the chain's
/// canonical encoder accepts only integers).
pub(crate) fn money(m: &Money) -> Value {
    json!({"amount": m.amount_str(), "currency": m.currency()})
}

pub(crate) fn opt_money(m: Option<&Money>) -> Value {
    m.map_or(Value::Null, money)
}

pub(crate) fn id(u: Uuid) -> Value {
    Value::String(u.to_string())
}

pub(crate) fn opt_id(u: Option<Uuid>) -> Value {
    u.map_or(Value::Null, id)
}

pub(crate) fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

/// A vocabulary value by its stable name, or `null`.
pub(crate) fn opt_name<T: Copy>(v: Option<T>, as_str: fn(T) -> &'static str) -> Value {
    v.map_or(Value::Null, |v| Value::String(as_str(v).to_owned()))
}

/// A sorted array of distinct strings.
pub(crate) fn sorted_strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    let mut v: Vec<&String> = items.into_iter().collect();
    v.sort();
    v.dedup();
    Value::Array(v.into_iter().map(|s| Value::String(s.clone())).collect())
}

pub(crate) fn ids<'a>(items: impl IntoIterator<Item = &'a Uuid>) -> Value {
    Value::Array(items.into_iter().map(|u| id(*u)).collect())
}

pub(crate) fn parse_date(v: &Value) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v.as_str()?, "%Y-%m-%d").ok()
}

pub(crate) fn parse_money(v: &Value) -> Option<Money> {
    let amount = v.get("amount")?.as_str()?;
    let currency = v.get("currency")?.as_str()?;
    Money::parse(amount, currency).ok()
}

pub(crate) fn parse_id(v: &Value) -> Option<Uuid> {
    Uuid::parse_str(v.as_str()?).ok()
}

pub(crate) fn malformed(event_type: &str, reason: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        event_type: event_type.to_owned(),
        reason: reason.into(),
    }
}

/// Reads the members of one JSON object of a payload. Optional members may be
/// `null` or missing (writers always write `null`); required ones must be
/// present with the right shape.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    event_type: &'a str,
    value: &'a Value,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(event_type: &'a str, value: &'a Value) -> Result<Reader<'a>, CodecError> {
        if value.is_object() {
            Ok(Reader { event_type, value })
        } else {
            Err(malformed(event_type, "payload is not a JSON object"))
        }
    }

    fn bad(&self, name: &str, expected: &str) -> CodecError {
        malformed(self.event_type, format!("{name} is not {expected}"))
    }

    fn present(&self, name: &str) -> Option<&'a Value> {
        self.value.get(name).filter(|v| !v.is_null())
    }

    fn required<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, CodecError> {
        self.present(name)
            .and_then(parse)
            .ok_or_else(|| self.bad(name, expected))
    }

    fn optional<T>(
        &self,
        name: &str,
        expected: &str,
        parse: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, CodecError> {
        match self.present(name) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or_else(|| self.bad(name, expected)),
        }
    }

    pub(crate) fn object(&self, name: &str) -> Result<Reader<'a>, CodecError> {
        let value = self.required(name, "an object", |v| v.is_object().then_some(v))?;
        Ok(Reader {
            event_type: self.event_type,
            value,
        })
    }

    pub(crate) fn members(
        &self,
        name: &str,
    ) -> Result<&'a serde_json::Map<String, Value>, CodecError> {
        self.required(name, "an object", Value::as_object)
    }

    pub(crate) fn array(&self, name: &str) -> Result<&'a [Value], CodecError> {
        self.required(name, "an array", |v| v.as_array().map(Vec::as_slice))
    }

    pub(crate) fn string(&self, name: &str) -> Result<String, CodecError> {
        self.required(name, "a string", |v| v.as_str().map(str::to_owned))
    }

    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, CodecError> {
        self.optional(name, "a string or null", |v| v.as_str().map(str::to_owned))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, CodecError> {
        self.array(name)?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.bad(name, "an array of strings"))
            })
            .collect()
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<bool, CodecError> {
        self.required(name, "true or false", Value::as_bool)
    }

    pub(crate) fn uuid(&self, name: &str) -> Result<Uuid, CodecError> {
        self.required(name, "a UUID", parse_id)
    }

    pub(crate) fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>, CodecError> {
        self.optional(name, "a UUID or null", parse_id)
    }

    pub(crate) fn date(&self, name: &str) -> Result<NaiveDate, CodecError> {
        self.required(name, "a date YYYY-MM-DD", parse_date)
    }

    pub(crate) fn money(&self, name: &str) -> Result<Money, CodecError> {
        self.required(
            name,
            "an amount {\"amount\": decimal string, \"currency\": code}",
            parse_money,
        )
    }

    pub(crate) fn opt_money(&self, name: &str) -> Result<Option<Money>, CodecError> {
        self.optional(
            name,
            "an amount {\"amount\": decimal string, \"currency\": code} or null",
            parse_money,
        )
    }

    pub(crate) fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, CodecError> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        self.required(name, &expected, |v| {
            v.as_u64().filter(|n| range.contains(n))
        })
    }

    /// A vocabulary value by name; `names` lists the accepted ones for the error.
    pub(crate) fn name<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        names: fn() -> String,
    ) -> Result<T, CodecError> {
        self.required(name, &format!("one of {}", names()), |v| parse(v.as_str()?))
    }

    pub(crate) fn opt_name<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        names: fn() -> String,
    ) -> Result<Option<T>, CodecError> {
        self.optional(name, &format!("one of {} or null", names()), |v| {
            parse(v.as_str()?)
        })
    }
}
