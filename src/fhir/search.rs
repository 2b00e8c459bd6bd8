//! FHIR search syntax (R4 search.html) as the proxy reads it: comma-separated OR lists with their
//! backslash escapes, `system|code` tokens, and the identifier criteria of a conditional create
//! (`If-None-Exist: identifier=S|A,S|B`, or the same as the query of `POST Appointment`).
//!
//! Nothing here is lenient about what it cannot evaluate: a criterion the proxy cannot match
//! exactly is an error naming it, never a search that silently matches nothing (which would book
//! twice).

use std::borrow::Cow;

use fhirbolt::model::r4::resources::{Bundle, BundleLink};

use crate::fhir::outcome::{Issue, IssueCode};

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

/// The largest `_count` honoured; a larger one is cut to it (R4 lets a server choose its page
/// size).
pub const MAX_COUNT: usize = 1000;

/// Parameters about the answer rather than the search: `_format` and `_pretty` (rendering),
/// `_count` (page size) and `_offset` (where a page starts: the proxy's own, in `next` links).
pub const RESULT_PARAMETERS: [&str; 4] = ["_format", "_pretty", "_count", "_offset"];

/// A page of a search's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Page {
    /// `_count`: at most this many entries (`None`: all).
    pub count: Option<usize>,
    /// `_offset`: entries skipped before the page.
    pub offset: usize,
}

/// A search's query string split for the search and for its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// What the search reads: its own parameters (and, in strict handling, unknown ones too, for
    /// the search to refuse by name).
    pub query: String,
    /// The parameters the answer's links repeat: the search's own and `_format`/`_pretty`.
    pub used: Vec<(String, String)>,
    /// The page asked for.
    pub page: Page,
    /// Parameters ignored under `Prefer: handling=lenient` (names only).
    pub ignored: Vec<String>,
}

impl SearchRequest {
    /// Splits `query`: `known` names (a `:modifier` is part of a name, so it is unknown unless
    /// listed) go to the search; result parameters to the page and links; under lenient handling
    /// unknown ones are dropped, under strict handling (the default) they go to the search, which
    /// refuses them naming them.
    ///
    /// # Errors
    /// A `_count` or `_offset` that is not a whole number (an `invalid` 400).
    pub fn split(query: &str, known: &[&str], lenient: bool) -> Result<SearchRequest, Issue> {
        let mut request = SearchRequest::default();
        let mut search = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let number = || {
                value.trim().parse::<usize>().map_err(|_| {
                    Issue::general(
                        IssueCode::Invalid,
                        format!("{name} must be a whole number, e.g. {name}=20"),
                    )
                })
            };
            match name.as_ref() {
                "_count" => request.page.count = Some(number()?.min(MAX_COUNT)),
                "_offset" => request.page.offset = number()?,
                "_format" | "_pretty" => request.used.push((name.into(), value.into())),
                known_name if known.contains(&known_name) => {
                    search.append_pair(&name, &value);
                    request.used.push((name.into(), value.into()));
                }
                _ if lenient => request.ignored.push(name.into_owned()),
                _ => {
                    search.append_pair(&name, &value);
                }
            }
        }
        request.query = search.finish();
        Ok(request)
    }

    /// The URL of this search at `offset`: `{path}?{used}&_count=…&_offset=…`.
    fn url_at(&self, path: &str, offset: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.used {
            query.append_pair(name, value);
        }
        if let Some(count) = self.page.count {
            query.append_pair("_count", &count.to_string());
        }
        if offset > 0 {
            query.append_pair("_offset", &offset.to_string());
        }
        match query.finish() {
            q if q.is_empty() => path.to_owned(),
            q => format!("{path}?{q}"),
        }
    }

    /// Cuts a `searchset` Bundle holding the whole answer down to the page asked for: `total`
    /// stays the whole answer's size; the links become `self` (the parameters actually used: under
    /// lenient handling the ignored ones are left out) and, when there is more, `next` (and
    /// `previous` after the first page). `path` is the absolute URL searched.
    pub fn page_bundle(&self, bundle: &mut Bundle, path: &str) {
        let total = bundle.entry.len();
        let offset = self.page.offset.min(total);
        let end = self
            .page
            .count
            .map_or(total, |count| offset.saturating_add(count).min(total));
        bundle.entry = bundle.entry.drain(offset..end).collect();
        bundle.total = Some((total as u32).into());
        let link = |relation: &str, url: String| BundleLink {
            relation: relation.into(),
            url: url.into(),
            ..Default::default()
        };
        let mut links = vec![link("self", self.url_at(path, offset))];
        if let Some(count) = self.page.count {
            if end < total {
                links.push(link("next", self.url_at(path, end)));
            }
            if offset > 0 {
                links.push(link(
                    "previous",
                    self.url_at(path, offset.saturating_sub(count)),
                ));
            }
        }
        bundle.link = links;
    }
}

/// Whether `Prefer` asks for lenient handling of unknown search parameters (R4 search.html
/// §3.1.1.2): `handling=lenient`. Strict is the default.
pub fn is_lenient<'a>(prefer: impl IntoIterator<Item = &'a str>) -> bool {
    prefer
        .into_iter()
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|p| p.trim().strip_prefix("handling="))
        .any(|v| v.trim_matches('"').eq_ignore_ascii_case("lenient"))
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
    fn a_search_query_is_split_for_the_search_the_page_and_the_links() {
        let known = ["start", "schedule.actor"];
        let r = SearchRequest::split(
            "start=ge2025-09-20&_count=2&schedule.actor=Practitioner/x&_format=json&foo=1",
            &known,
            false,
        )
        .unwrap();
        assert_eq!(
            r.page,
            Page {
                count: Some(2),
                offset: 0
            }
        );
        // Strict: the unknown one goes to the search, which refuses it by name.
        assert!(r.query.contains("foo=1") && r.query.contains("start=ge2025-09-20"));
        assert!(!r.query.contains("_count") && !r.query.contains("_format"));
        let lenient =
            SearchRequest::split("start=ge2025&foo=1&start:missing=true", &known, true).unwrap();
        assert_eq!(lenient.query, "start=ge2025");
        assert_eq!(lenient.ignored, ["foo", "start:missing"]);
        assert!(SearchRequest::split("_count=many", &known, false).is_err());
        assert_eq!(
            SearchRequest::split("_count=99999", &known, false)
                .unwrap()
                .page
                .count,
            Some(MAX_COUNT)
        );
    }

    #[test]
    fn a_page_keeps_the_total_and_links_to_the_next_and_previous_pages() {
        let entries = (0..5)
            .map(|i| fhirbolt::model::r4::resources::BundleEntry {
                full_url: Some(format!("urn:e{i}").into()),
                ..Default::default()
            })
            .collect();
        let whole = Bundle {
            r#type: "searchset".into(),
            entry: entries,
            ..Default::default()
        };
        let r = SearchRequest::split("start=ge2025&_count=2&_offset=2", &["start"], false).unwrap();
        let mut bundle = whole.clone();
        r.page_bundle(&mut bundle, "http://h/fhir/Slot");
        let urls: Vec<&str> = bundle
            .entry
            .iter()
            .filter_map(|e| e.full_url.as_ref()?.value.as_deref())
            .collect();
        assert_eq!(urls, ["urn:e2", "urn:e3"]);
        assert_eq!(bundle.total.as_ref().and_then(|t| t.value), Some(5));
        let links: Vec<(String, String)> = bundle
            .link
            .iter()
            .map(|l| {
                (
                    l.relation.value.clone().unwrap_or_default(),
                    l.url.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                (
                    "self".to_owned(),
                    "http://h/fhir/Slot?start=ge2025&_count=2&_offset=2".to_owned()
                ),
                (
                    "next".to_owned(),
                    "http://h/fhir/Slot?start=ge2025&_count=2&_offset=4".to_owned()
                ),
                (
                    "previous".to_owned(),
                    "http://h/fhir/Slot?start=ge2025&_count=2".to_owned()
                ),
            ]
        );
        // The last page has no next link; without _count everything comes at once.
        let last = SearchRequest::split("_count=2&_offset=4", &[], false).unwrap();
        let mut bundle = whole.clone();
        last.page_bundle(&mut bundle, "http://h/x");
        assert_eq!(bundle.entry.len(), 1);
        assert!(
            bundle
                .link
                .iter()
                .all(|l| l.relation.value.as_deref() != Some("next"))
        );
        let all = SearchRequest::split("", &[], false).unwrap();
        let mut bundle = whole;
        all.page_bundle(&mut bundle, "http://h/x");
        assert_eq!(bundle.entry.len(), 5);
    }

    #[test]
    fn lenient_handling_is_asked_for_in_prefer() {
        assert!(is_lenient(["handling=lenient"]));
        assert!(is_lenient(["return=minimal; handling=lenient"]));
        assert!(!is_lenient(["handling=strict"]));
        assert!(!is_lenient([]));
    }

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
