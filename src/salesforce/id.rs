//! Salesforce record ids: the 15-character case-sensitive form and the 18-character case-safe form.
//!
//! A well-formed id is 15 or 18 ASCII letters and digits. The last three characters of an
//! 18-character id encode the case of the first fifteen; Salesforce's own documentation samples use
//! `xx` placeholders that break that checksum, so it is computed here (to mint ids) but not required
//! when checking one.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// True when `id` looks like a Salesforce record id (15 or 18 ASCII alphanumerics).
pub fn is_salesforce_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The 18-character case-safe form of a 15-character id.
///
/// # Panics
/// Never for a well-formed 15-character id; callers pass only ids they minted or checked.
pub fn to_case_safe(id15: &str) -> String {
    debug_assert_eq!(id15.len(), 15);
    let mut out = String::with_capacity(18);
    out.push_str(id15);
    for chunk in id15.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out.push(SUFFIX_ALPHABET[bits] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_15_and_18_character_ids_only() {
        assert!(is_salesforce_id("001xx000012udqQ"));
        assert!(is_salesforce_id("001xx000012udqQxxQ"));
        assert!(!is_salesforce_id("08qxxG000000Axq6xxC")); // the docs' 19-character sample
        assert!(!is_salesforce_id("001xx000012udq"));
        assert!(!is_salesforce_id("001xx000012udq-xxQ"));
        assert!(!is_salesforce_id(""));
    }

    #[test]
    fn case_safe_suffix_matches_salesforce_algorithm() {
        // A real-world pair: 001D000000IqhSL → 001D000000IqhSLIAZ.
        assert_eq!(to_case_safe("001D000000IqhSL"), "001D000000IqhSLIAZ");
        assert_eq!(to_case_safe("000000000000000"), "000000000000000AAA");
    }
}
