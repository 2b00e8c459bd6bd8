//! FHIR search syntax (R4 search.html) as the proxy reads it: comma-separated OR lists with their
//! backslash escapes, `system|code` tokens, and the identifier criteria of a conditional create
//! (`If-None-Exist: identifier=S|A,S|B`, or the same as the query of `POST Appointment`).
//!
//! Nothing here is lenient about what it cannot evaluate: a criterion the proxy cannot match
//! exactly is an error naming it, never a search that silently matches nothing (which would book
//! twice).

use std::borrow::Cow;

/// A `system|code` token. `system` is `None` for a bare `code` (any system) and `Some("")` for
/// `|code` (no system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The system, as given.
    pub system: Option<String>,
    /// The code (or value).
    pub code: String,
}

impl Token {
    /// Reads one token of an OR list (already split and unescaped of `\,`): the first unescaped
    /// `|` separates system and code.
    pub fn parse(text: &str) -> Token {
        match find_unescaped(text, '|') {
            Some(at) => Token {
                system: Some(unescape(&text[..at]).into_owned()),
                code: unescape(&text[at + 1..]).into_owned(),
            },
            None => Token {
                system: None,
                code: unescape(text).into_owned(),
            },
        }
    }
}

/// Splits a parameter value at its unescaped commas (R4: a comma means OR; `\,` is a comma in a
/// value). The parts keep their other escapes for the next step ([`Token::parse`]).
pub fn split_or(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (at, c) in value.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                parts.push(&value[start..at]);
                start = at + 1;
            }
            _ => escaped = false,
        }
    }
    parts.push(&value[start..]);
    parts
}

fn find_unescaped(text: &str, wanted: char) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == wanted && !escaped => return Some(at),
            _ => escaped = false,
        }
    }
    None
}

/// Removes the backslash of `\,`, `\|`, `\$` and `\\`.
fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next @ (',' | '|' | '$' | '\\')) => out.push(next),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The identifier criteria of a conditional create: each `identifier` parameter an OR list of
/// `system|value` keys; several parameters must all match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierCriteria {
    /// Each parameter's keys, as `system|value` (escapes removed).
    pub all_of: Vec<Vec<String>>,
}

impl IdentifierCriteria {
    /// Every key named, each once: what a booking under these criteria claims.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for key in self.all_of.iter().flatten() {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Reads criteria in query-string form (`identifier=S|A,S|B&identifier=…`), a leading `?`
    /// allowed. `ignore` names parameters that are not criteria (`_format` and `_pretty` on a
    /// POST's URL).
    ///
    /// # Errors
    /// What cannot be evaluated, naming the parameter (never its value): a parameter other than
    /// `identifier`, a modifier, a token without a system or a value.
    pub fn parse(criteria: &str, ignore: &[&str]) -> Result<IdentifierCriteria, String> {
        let mut all_of = Vec::new();
        for (name, value) in
            url::form_urlencoded::parse(criteria.trim_start_matches('?').as_bytes())
        {
            if ignore.contains(&name.as_ref()) {
                continue;
            }
            if name != "identifier" {
                return Err(format!(
                    "the parameter {} cannot be evaluated: only identifier=system|value (a \
                     comma-separated list meaning OR) is supported",
                    printable(&name)
                ));
            }
            let mut keys = Vec::new();
            for part in split_or(&value) {
                let token = Token::parse(part);
                match token.system {
                    Some(system) if !system.is_empty() && !token.code.is_empty() => {
                        keys.push(format!("{system}|{}", token.code));
                    }
                    _ => {
                        return Err(
                            "identifier needs a system and a value (system|value) in every \
                             entry of its list: the proxy keeps identifiers with their system, so \
                             a value alone cannot be matched"
                                .to_owned(),
                        );
                    }
                }
            }
            all_of.push(keys);
        }
        if all_of.is_empty() {
            return Err("the criteria name no identifier=system|value".to_owned());
        }
        Ok(IdentifierCriteria { all_of })
    }
}

/// A parameter name as it may appear in a diagnostic: names are not patient data, but only
/// printable ASCII of a sane length is echoed.
pub fn printable(name: &str) -> String {
    if name.len() <= 64 && name.bytes().all(|b| b.is_ascii_graphic()) {
        format!("`{name}`")
    } else {
        "(unreadable name)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_lists_split_at_unescaped_commas_only() {
        assert_eq!(split_or("a,b"), ["a", "b"]);
        assert_eq!(split_or(r"a\,b,c"), [r"a\,b", "c"]);
        assert_eq!(split_or(r"a\\,b"), [r"a\\", "b"]);
        assert_eq!(split_or(""), [""]);
    }

    #[test]
    fn tokens_keep_escaped_bars_in_values() {
        let t = Token::parse(r"http://s|A\|B");
        assert_eq!(t.system.as_deref(), Some("http://s"));
        assert_eq!(t.code, "A|B");
        assert_eq!(Token::parse("|x").system.as_deref(), Some(""));
        assert_eq!(Token::parse("x").system, None);
        assert_eq!(Token::parse(r"s|a\,b").code, "a,b");
    }

    #[test]
    fn identifier_criteria_are_or_lists_anded() {
        let c = IdentifierCriteria::parse("identifier=S|A,S|B", &[]).unwrap();
        assert_eq!(c.all_of, [vec!["S|A".to_owned(), "S|B".to_owned()]]);
        let c =
            IdentifierCriteria::parse("?identifier=S|A&identifier=T|B&_format=json", &["_format"])
                .unwrap();
        assert_eq!(c.all_of.len(), 2);
        assert_eq!(c.keys(), ["S|A", "T|B"]);
        let c = IdentifierCriteria::parse(r"identifier=S|A\,1", &[]).unwrap();
        assert_eq!(c.keys(), ["S|A,1"]);
        // Percent-encoded as clients send it.
        let c = IdentifierCriteria::parse("identifier=http%3A%2F%2Fs%7CA%2CS%7CB", &[]).unwrap();
        assert_eq!(c.keys(), ["http://s|A", "S|B"]);
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused_naming_the_parameter_not_the_value() {
        for (criteria, says) in [
            ("identifier=A-123", "system and a value"),
            ("identifier=|A-123", "system and a value"),
            ("identifier=S|", "system and a value"),
            ("identifier=S|A,B-77", "system and a value"),
            ("patient=Patient/MRN-9", "`patient`"),
            ("identifier:of-type=S|A", "`identifier:of-type`"),
            ("", "no identifier"),
            ("_format=json", "`_format`"),
        ] {
            let error = IdentifierCriteria::parse(criteria, &[]).unwrap_err();
            assert!(error.contains(says), "{criteria}: {error}");
            assert!(
                !error.contains("A-123") && !error.contains("MRN-9"),
                "{error}"
            );
        }
    }
}
