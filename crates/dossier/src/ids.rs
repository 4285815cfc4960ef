//! Check characters of Chinese identifiers, for generating valid demo data.

/// ISO 7064 MOD 11-2 check character of a resident identity number (GB 11643-1999).
pub fn national_id_check(first17: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] as char
}

/// An 18-character resident identity number: region (6 digits), birth date
/// (YYYYMMDD), a 3-digit sequence (odd for men, even for women), check character.
pub fn national_id(region: &str, birth: &str, sequence: u16) -> String {
    let first17 = format!("{region}{birth}{:03}", sequence % 1000);
    let check = national_id_check(&first17);
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

const CREDIT_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Check character of a unified social credit code (GB 32100-2015), the 18th character.
pub fn credit_code_check(first17: &str) -> char {
    const WEIGHTS: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let value = |c: u8| CREDIT_ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u32;
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(c, w)| value(c) * w)
        .sum();
    CREDIT_ALPHABET[((31 - sum % 31) % 31) as usize] as char
}

/// A unified social credit code: registration authority and entity type
/// (2 characters, e.g. "91" for an enterprise registered with market
/// regulation), administrative region (6 digits), the first 8 characters of the
/// organisation code (its check character is computed), then the code's check.
pub fn credit_code(authority_and_type: &str, region: &str, org8: &str) -> String {
    let first17 = format!("{authority_and_type}{region}{org8}{}", org_code_check(org8));
    let check = credit_code_check(&first17);
    format!("{first17}{check}")
}

/// A card number with its Luhn check digit appended.
pub fn with_luhn(digits: &str) -> String {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            // The check digit will be the rightmost, so these positions double.
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

#[cfg(test)]
mod tests {
    use dossier_domain::{BankCard, CreditCode, NationalId};

    use super::*;

    #[test]
    fn known_examples() {
        assert_eq!(national_id_check("11010519491231002"), 'X');
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
