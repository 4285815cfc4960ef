//! Stable names: the insight vocabularies (`names!`) and serde adapters that
//! store the domain's vocabularies (which do not derive serde) by their names.

use std::collections::BTreeSet;

use dossier_domain::{CreditRating, CustomerKind, Field, Importance, LegalStatus};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum with stable names: `as_str`, `parse`, `ALL`, `Display`, and serde as the name.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        dossier_domain::vocabulary! {
            $(#[$doc])* $name { $($(#[$vdoc])* $variant => $text),+ }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown {} {s:?}, expected one of {}",
                        stringify!($name),
                        $name::names()
                    ))
                })
            }
        }
    };
}
pub(crate) use names;

/// A domain vocabulary stored by its stable name.
pub(crate) trait Named: Sized + Copy {
    fn name(self) -> &'static str;
    fn from_name(s: &str) -> Option<Self>;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(self) -> &'static str { self.as_str() }
            fn from_name(s: &str) -> Option<Self> { <$t>::parse(s) }
        }
    )*};
}
named!(CreditRating, CustomerKind, Field, Importance, LegalStatus);

fn from_name<'de, T: Named, D: Deserializer<'de>>(s: &str) -> Result<T, D::Error> {
    T::from_name(s).ok_or_else(|| serde::de::Error::custom(format!("unknown name {s:?}")))
}

/// `#[serde(with = "crate::vocab::one")]` for a domain vocabulary value.
pub(crate) mod one {
    use super::*;

    pub fn serialize<T: Named, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        from_name::<T, D>(&String::deserialize(d)?)
    }
}

/// `#[serde(with = "crate::vocab::opt")]` for an optional domain vocabulary value.
pub(crate) mod opt {
    use super::*;

    pub fn serialize<T: Named, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Named::name).serialize(s)
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| from_name::<T, D>(&s))
            .transpose()
    }
}

/// `#[serde(with = "crate::vocab::set")]` for a set of domain vocabulary values.
pub(crate) mod set {
    use super::*;

    pub fn serialize<T: Named + Ord, S: Serializer>(
        v: &BTreeSet<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.name()))
    }

    pub fn deserialize<'de, T: Named + Ord, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeSet<T>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| from_name::<T, D>(s))
            .collect()
    }
}
