//! Record ids by external id: `GET /services/data/vXX.X/sobjects/{Object}/{Field}/{value}`, and
//! the cache of its answers.
//!
//! A mapping's `[[ids.lookup]]` rules say which FHIR references or identifiers are external ids
//! of which Salesforce object and field; `mapping::lookup::needed_lookups` lists the
//! [`LookupKey`]s an Appointment needs, [`resolve`] answers them, and the pure mapping reads the
//! [`ResolvedIds`]. Salesforce answers 200 with the record (one match), 404 `NOT_FOUND` (none) or
//! 300 Multiple Choices (several: the field is not unique); everything else is a failure like any
//! other Salesforce call's.
//!
//! Answers are cached per org (the cache lives in the [`SalesforceClient`]): a found id for
//! `found_ttl`, "not found" and "several" for the shorter `not_found_ttl` (a patient registered
//! in Salesforce a minute ago should soon be bookable), at most `max_entries` keys. Concurrent
//! requests for one uncached key share one call: moka's `try_get_with` runs one loader per key and
//! hands its result to every waiter. Failures are not cached: the next request asks again.
//!
//! External id values can be patient data (an MRN): [`LookupKey`]'s `Debug` leaves the value out,
//! and nothing here logs it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use super::{SalesforceClient, SalesforceError};

/// One lookup: the record of `object` whose `field` holds `value`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LookupKey {
    /// The sObject API name, e.g. `Account`.
    pub object: String,
    /// The external id field's API name, e.g. `EHR_Patient_Id__c`.
    pub field: String,
    /// The value looked for (may be patient data: never logged).
    pub value: String,
}

impl fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookupKey")
            .field("object", &self.object)
            .field("field", &self.field)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// What Salesforce said about one [`LookupKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAnswer {
    /// Exactly one record: its id.
    Found(String),
    /// No record (404).
    NotFound,
    /// Several records (300): the field is not unique, so none can be chosen.
    Ambiguous,
}

/// The answers an Appointment's lookups received (or, for `$validate`, those already cached).
/// A key without an answer is one that was not asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedIds {
    answers: HashMap<LookupKey, LookupAnswer>,
}

impl ResolvedIds {
    /// The answer for `key`, if it was asked.
    pub fn get(&self, key: &LookupKey) -> Option<&LookupAnswer> {
        self.answers.get(key)
    }

    /// Records an answer.
    pub fn insert(&mut self, key: LookupKey, answer: LookupAnswer) {
        self.answers.insert(key, answer);
    }

    /// How many keys have an answer.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether no key has an answer.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

impl FromIterator<(LookupKey, LookupAnswer)> for ResolvedIds {
    fn from_iter<I: IntoIterator<Item = (LookupKey, LookupAnswer)>>(iter: I) -> Self {
        ResolvedIds {
            answers: iter.into_iter().collect(),
        }
    }
}

/// How long answers are kept and how many (the mapping file's `[ids.lookup_cache]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupCacheSettings {
    /// How long a found id is reused.
    pub found_ttl: Duration,
    /// How long "not found" and "several records" are reused.
    pub not_found_ttl: Duration,
    /// The most keys kept; the least used go first.
    pub max_entries: u64,
}

/// `found_ttl` when the mapping names none: record ids behind an external id rarely change.
pub const DEFAULT_FOUND_TTL: Duration = Duration::from_secs(60 * 60);
/// `not_found_ttl` when the mapping names none: short, so a record created in Salesforce is soon
/// found, long enough that a burst of retries does not become a burst of calls.
pub const DEFAULT_NOT_FOUND_TTL: Duration = Duration::from_secs(60);
/// `max_entries` when the mapping names none (a few MB at most).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

impl Default for LookupCacheSettings {
    fn default() -> Self {
        LookupCacheSettings {
            found_ttl: DEFAULT_FOUND_TTL,
            not_found_ttl: DEFAULT_NOT_FOUND_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// Each answer's lifetime, by kind: positive and negative answers live differently long.
struct ByAnswer {
    found: Duration,
    not_found: Duration,
}

impl Expiry<LookupKey, LookupAnswer> for ByAnswer {
    fn expire_after_create(
        &self,
        _key: &LookupKey,
        answer: &LookupAnswer,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match answer {
            LookupAnswer::Found(_) => self.found,
            LookupAnswer::NotFound | LookupAnswer::Ambiguous => self.not_found,
        })
    }
}

/// One org's cached lookup answers. Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct LookupCache {
    answers: Cache<LookupKey, LookupAnswer>,
    /// Found ids → the key they were found by, so that a read can name a record the way the
    /// client did (as long as the answer is cached).
    found: Cache<String, LookupKey>,
}

impl LookupCache {
    /// An empty cache with these lifetimes and bound.
    pub fn new(settings: &LookupCacheSettings) -> Self {
        LookupCache {
            answers: Cache::builder()
                .max_capacity(settings.max_entries)
                .expire_after(ByAnswer {
                    found: settings.found_ttl,
                    not_found: settings.not_found_ttl,
                })
                .build(),
            found: Cache::builder()
                .max_capacity(settings.max_entries)
                .time_to_live(settings.found_ttl)
                .build(),
        }
    }

    /// The key a record id was last found by, while that answer is cached.
    pub async fn key_of(&self, salesforce_id: &str) -> Option<LookupKey> {
        self.found.get(salesforce_id).await
    }

    /// The cached answer for `key`, or Salesforce's (then cached). Concurrent calls for one
    /// uncached key make one Salesforce call between them.
    ///
    /// # Errors
    /// The [`SalesforceError`] of the call, shared by every caller that waited for it; not cached.
    pub async fn answer(
        &self,
        salesforce: &SalesforceClient,
        key: &LookupKey,
    ) -> Result<LookupAnswer, SalesforceError> {
        if let Some(answer) = self.answers.get(key).await {
            salesforce.metrics().lookup(true);
            return Ok(answer);
        }
        // Counted as a miss even when a concurrent caller's call answers it: this request did
        // not find the answer cached.
        salesforce.metrics().lookup(false);
        let answer = self
            .answers
            .try_get_with_by_ref(
                key,
                salesforce.get_by_external_id(&key.object, &key.field, &key.value),
            )
            .await
            .map_err(|shared: Arc<SalesforceError>| (*shared).clone())?;
        if let LookupAnswer::Found(id) = &answer {
            self.found.insert(id.clone(), key.clone()).await;
        }
        Ok(answer)
    }

    /// The cached answer for `key`, without asking Salesforce.
    pub async fn cached(&self, key: &LookupKey) -> Option<LookupAnswer> {
        self.answers.get(key).await
    }
}

/// Answers every key, from the org's cache or Salesforce, the calls running concurrently.
///
/// # Errors
/// The first [`SalesforceError`] of a lookup call (the others are not waited for).
pub async fn resolve(
    salesforce: &SalesforceClient,
    settings: &LookupCacheSettings,
    keys: &[LookupKey],
) -> Result<ResolvedIds, SalesforceError> {
    let cache = salesforce.lookup_cache(settings);
    let answers = futures_util::future::try_join_all(keys.iter().map(|key| async move {
        cache
            .answer(salesforce, key)
            .await
            .map(|answer| (key.clone(), answer))
    }))
    .await?;
    Ok(answers.into_iter().collect())
}

/// The answers already cached for these keys; asks Salesforce nothing (for `$validate`).
pub async fn cached(
    salesforce: &SalesforceClient,
    settings: &LookupCacheSettings,
    keys: &[LookupKey],
) -> ResolvedIds {
    let cache = salesforce.lookup_cache(settings);
    let mut resolved = ResolvedIds::default();
    for key in keys {
        if let Some(answer) = cache.cached(key).await {
            resolved.insert(key.clone(), answer);
        }
    }
    resolved
}

/// Reads a 200 answer of sObject Rows by External ID: the record's `Id`.
pub(crate) fn record_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Record {
        #[serde(rename = "Id")]
        id: String,
    }
    serde_json::from_slice::<Record>(body)
        .ok()
        .map(|r| r.id)
        .filter(|id| super::id::is_salesforce_id(id))
}

/// Percent-encodes a value for one path segment: everything but RFC 3986 unreserved characters,
/// so `/`, `?`, `#`, `%` and spaces cannot change the path. (`form_urlencoded` would turn a space
/// into `+`, which a path keeps as a plus.)
pub(crate) fn encode_path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            // `.` too: a value of `.` or `..` must not become a dot-segment.
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_change_the_path() {
        assert_eq!(encode_path_segment("MRN-0042_x~"), "MRN-0042_x~");
        assert_eq!(
            encode_path_segment("a b/c?d#e%f+g"),
            "a%20b%2Fc%3Fd%23e%25f%2Bg"
        );
        assert_eq!(encode_path_segment(".."), "%2E%2E");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn reads_the_record_id_only() {
        let body = br#"{"attributes":{"type":"Account","url":"/services/data/v65.0/sobjects/Account/001xx000012udqQxxQ"},"Id":"001xx000012udqQxxQ"}"#;
        assert_eq!(record_id(body).as_deref(), Some("001xx000012udqQxxQ"));
        assert_eq!(record_id(br#"{"Id":"not an id"}"#), None);
        assert_eq!(record_id(b"[]"), None);
    }

    #[test]
    fn debug_leaves_the_value_out() {
        let key = LookupKey {
            object: "Account".into(),
            field: "MRN__c".into(),
            value: "MRN-SECRET-1".into(),
        };
        let text = format!("{key:?}");
        assert!(!text.contains("MRN-SECRET-1"), "{text}");
        assert!(text.contains("MRN__c"));
    }
}
