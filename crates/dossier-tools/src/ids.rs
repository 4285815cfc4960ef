//! Valid Chinese identifiers for demo data; the check characters come from
//! the domain crate, the same code that validates them.

/// An 18-character resident identity number: region (6 digits), birth date
/// (YYYYMMDD), a 3-digit sequence (odd for men, even for women), check character.
pub fn national_id(region: &str, birth: &str, sequence: u16) -> String {
    let first17 = format!("{region}{birth}{:03}", sequence % 1000);
    let check = dossier_domain::national_id_check(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// Check character of an organisation code (GB 11714-1997), the 9th character.
fn org_code_check(first8: &str) -> char {
    const WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let value = |c: u8| match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A') + 10,
        _ => 0,
    };
    let sum: u32 = first8.bytes().zip(WEIGHTS).map(|(c, w)| value(c) * w).sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        d => char::from_digit(d, 10).unwrap_or('0'),
    }
}

/// A unified social credit code: registration authority and entity type
/// (2 characters, e.g. "91" for an enterprise registered with market
/// regulation), administrative region (6 digits), the first 8 characters of the
/// organisation code (its check character is computed), then the code's check.
pub fn credit_code(authority_and_type: &str, region: &str, org8: &str) -> String {
    let first17 = format!("{authority_and_type}{region}{org8}{}", org_code_check(org8));
    let check = dossier_domain::credit_code_check(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

/// A card number with its Luhn check digit appended.
pub fn with_luhn(digits: &str) -> String {
    format!(
        "{digits}{}",
        dossier_domain::luhn_check_digit(digits).unwrap_or('0')
    )
}

#[cfg(test)]
mod tests {
    use dossier_domain::{BankCard, CreditCode, NationalId};

    use super::*;

    #[test]
    fn known_examples() {
        assert_eq!(
            dossier_domain::national_id_check("11010519491231002"),
            Some('X')
        );
        assert_eq!(
            dossier_domain::credit_code_check("91350100M000100Y4"),
            Some('3')
        );
        assert_eq!(dossier_domain::luhn_check_digit("7992739871"), Some('3'));
        assert_eq!(dossier_domain::national_id_check("1101051949123100"), None);
        assert_eq!(national_id("110105", "19491231", 2), "11010519491231002X");
        assert_eq!(
            credit_code("91", "350100", "M000100Y"),
            "91350100M000100Y43"
        );
        assert!(NationalId::parse("11010519491231002X").is_ok());
        assert!(CreditCode::parse("91350100M000100Y43").is_ok());
    }

    #[test]
    fn generated_ids_parse() {
        for (region, birth) in [
            ("110105", "19850312"),
            ("310104", "19900721"),
            ("440305", "20001129"),
        ] {
            for seq in [0, 1, 7, 123, 246, 999] {
                let id = national_id(region, birth, seq);
                NationalId::parse(&id).unwrap_or_else(|e| panic!("{id}: {}", e.reason));
                // A wrong check character is rejected.
                let mut bad = id[..17].to_owned();
                bad.push(if id.ends_with('0') { '1' } else { '0' });
                assert!(NationalId::parse(&bad).is_err());
            }
        }
        for org in ["MA5FXT2K", "MA27WQ3B", "MA1H7Y4C", "12345678", "MA00000A"] {
            let code = credit_code("91", "440300", org);
            CreditCode::parse(&code).unwrap_or_else(|e| panic!("{code}: {}", e.reason));
        }
        for prefix in ["622202123456789", "622848001234567", "621700000012345"] {
            let card = with_luhn(prefix);
            BankCard::parse(&card).unwrap_or_else(|e| panic!("{card}: {}", e.reason));
        }
    }
}
