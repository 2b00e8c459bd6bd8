//! Record ids as Salesforce mints them: 15 case-sensitive characters, and the 18-character
//! case-safe form whose last three characters encode the case of the first fifteen (five bits
//! each, `A`–`Z` then `0`–`5`).

const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Whether `id` has the form of a record id: 15 or 18 ASCII letters and digits.
pub fn is_record_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The case-safe 18-character form of a 15-character id.
pub fn case_safe(id: &str) -> String {
    let mut suffix = String::with_capacity(3);
    for part in id.as_bytes().chunks(5).take(3) {
        let mut bits = 0;
        for (position, byte) in part.iter().enumerate() {
            if byte.is_ascii_uppercase() {
                bits |= 1 << position;
            }
        }
        suffix.push(char::from(SUFFIX[bits]));
    }
    format!("{id}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_safe_ids_carry_the_case_of_their_first_fifteen_characters() {
        // A pair published in Salesforce's knowledge base: 001D000000IqhSL → 001D000000IqhSLIAZ.
        assert_eq!(case_safe("001D000000IqhSL"), "001D000000IqhSLIAZ");
        assert_eq!(case_safe("000000000000000"), "000000000000000AAA");
        assert!(is_record_id("001D000000IqhSLIAZ") && is_record_id("001D000000IqhSL"));
        assert!(!is_record_id("08qxxG000000Axq6xxC"));
        assert!(!is_record_id("001D000000Iqh-L"));
    }
}
