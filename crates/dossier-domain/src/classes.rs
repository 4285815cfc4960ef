//! Closed vocabularies of the customer file: each has a stable lowercase
//! name (what the log and the API carry) and a parser that is the only way in.

/// Declares a closed vocabulary: an enum with stable names, `ALL`, `as_str`,
/// `parse`, `names` and `Display`. Exported so read-model crates declare
/// theirs the same way.
#[macro_export]
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted names, for error messages.
            pub fn names() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// 重要 / 特殊 / 一般.
    Importance { Important => "important", Special => "special", General => "general" }
}

vocabulary! {
    /// Credit rating, best first: a later variant is a worse rating.
    CreditRating {
        Aaa => "AAA", Aa => "AA", A => "A", Bbb => "BBB", Bb => "BB", B => "B",
        Ccc => "CCC", Cc => "CC", C => "C", D => "D",
    }
}

vocabulary! {
    /// Legal standing of the customer; anything but `Normal` is a risk signal.
    LegalStatus {
        Normal => "normal", Litigation => "litigation", Restructuring => "restructuring",
        Bankruptcy => "bankruptcy", Dissolved => "dissolved",
    }
}

vocabulary! {
    /// How an interaction happened.
    Channel { Visit => "visit", Call => "call", Email => "email", Chat => "chat", Other => "other" }
}

vocabulary! {
    /// What an interaction achieved. `NoAnswer` means the customer was not reached.
    Outcome { Positive => "positive", Neutral => "neutral", Negative => "negative", NoAnswer => "no_answer" }
}

vocabulary! {
    /// Company size.
    CompanySize { Micro => "micro", Small => "small", Medium => "medium", Large => "large" }
}

vocabulary! {
    /// A three-step judgement used by the commercial profile (standing,
    /// distribution capability, financial strength, reputation).
    Strength { Strong => "strong", Average => "average", Weak => "weak" }
}

vocabulary! {
    /// 合作意向: how willing the customer is to work with us.
    Intent { High => "high", Medium => "medium", Low => "low", None => "none" }
}

impl CreditRating {
    /// Whether `after` is a worse rating than `self`.
    pub fn is_downgrade_to(self, after: CreditRating) -> bool {
        after > self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ratings_order_best_first() {
        for r in CreditRating::ALL {
            assert_eq!(CreditRating::parse(r.as_str()), Some(*r));
        }
        assert!(CreditRating::Aa.is_downgrade_to(CreditRating::Bbb));
        assert!(!CreditRating::Bbb.is_downgrade_to(CreditRating::A));
        assert_eq!(Importance::parse("重要"), None);
        assert_eq!(Outcome::parse("no_answer"), Some(Outcome::NoAnswer));
    }
}
