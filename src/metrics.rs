//! Prometheus metrics: one [`Metrics`] (with its own registry) per running application, served as
//! text at `GET /metrics`.
//!
//! A registry per application rather than a global one, so that several proxies in one process
//! (the integration tests) count apart. The Salesforce side gets a [`SalesforceMetrics`] handle
//! bound to its tenant: it records call latencies, token fetches and lookup-cache hits without
//! knowing anything of HTTP, FHIR or Prometheus labels beyond its call kinds.
//!
//! Labels hold only fixed words (interaction names, call kinds, status codes) and configured
//! tenant names, never anything from a request body or query.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The tenant label of the tenant served at the FHIR base itself.
pub const DEFAULT_TENANT: &str = "default";

/// The interaction label of requests that are no FHIR interaction (`/metrics`, `/healthz`,
/// unknown paths).
pub const NO_INTERACTION: &str = "other";

/// The content type of the text exposition (OpenMetrics 1.0, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds, from 5 ms to 30 s: Salesforce calls take tens to hundreds of
/// milliseconds, and the configured timeouts are seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What a Salesforce call does, as the `call` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Book Appointment.
    Book,
    /// Update (reschedule) Appointment.
    Update,
    /// Cancel Appointment.
    Cancel,
    /// Get Slots.
    Slots,
    /// sObject row by external id.
    Lookup,
    /// OAuth token request.
    Token,
    /// SOQL query (or its next page): reads and searches.
    Query,
}

impl CallKind {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Book => "book",
            CallKind::Update => "update",
            CallKind::Cancel => "cancel",
            CallKind::Slots => "slots",
            CallKind::Lookup => "lookup",
            CallKind::Token => "token",
            CallKind::Query => "query",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    interaction: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InteractionLabels {
    interaction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tenant: String,
    call: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one application. Clones share them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<InteractionLabels>,
    in_flight: Gauge,
    salesforce_duration: HistogramFamily<CallLabels>,
    token_fetches: Family<TenantLabels, Counter>,
    token_failures: Family<TenantLabels, Counter>,
    lookup_hits: Family<TenantLabels, Counter>,
    lookup_misses: Family<TenantLabels, Counter>,
    api_used: Family<TenantLabels, Gauge>,
    api_max: Family<TenantLabels, Gauge>,
    auth_failures: Family<KindLabels, Counter>,
    auth_held_back: Family<KindLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (and none yet observed), the store's
    /// among them: a store of its own, counting nothing.
    pub fn new() -> Self {
        Metrics::with_store(&StoreMetrics::new())
    }

    /// A fresh registry with every metric registered, the store's from the store in use (whose
    /// handle the store itself records into).
    pub fn with_store(store: &StoreMetrics) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "fsp_store_operation_duration_seconds",
            "Time of one store operation, by operation",
            store.duration.clone(),
        );
        registry.register(
            "fsp_store_errors",
            "Store operations that failed, by operation",
            store.errors.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "fsp_http_requests",
            "HTTP requests answered, by FHIR interaction and HTTP status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<InteractionLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "fsp_http_request_duration_seconds",
            "Time from request to answer, by FHIR interaction",
            request_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "fsp_http_requests_in_flight",
            "HTTP requests being served now",
            in_flight.clone(),
        );
        let salesforce_duration: HistogramFamily<CallLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "fsp_salesforce_call_duration_seconds",
            "Time of one Salesforce call (including a retry), by tenant and call kind",
            salesforce_duration.clone(),
        );
        let token_fetches = Family::<TenantLabels, Counter>::default();
        registry.register(
            "fsp_salesforce_token_fetches",
            "Salesforce OAuth token requests made, by tenant",
            token_fetches.clone(),
        );
        let token_failures = Family::<TenantLabels, Counter>::default();
        registry.register(
            "fsp_salesforce_token_fetch_failures",
            "Salesforce OAuth token requests that failed, by tenant",
            token_failures.clone(),
        );
        let lookup_hits = Family::<TenantLabels, Counter>::default();
        registry.register(
            "fsp_lookup_cache_hits",
            "External-id lookups answered from the cache, by tenant",
            lookup_hits.clone(),
        );
        let lookup_misses = Family::<TenantLabels, Counter>::default();
        registry.register(
            "fsp_lookup_cache_misses",
            "External-id lookups that needed a Salesforce call, by tenant",
            lookup_misses.clone(),
        );
        let api_used = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "fsp_salesforce_api_usage_used",
            "API calls counted against the org in the rolling 24 hours (Sforce-Limit-Info), by tenant",
            api_used.clone(),
        );
        let api_max = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "fsp_salesforce_api_usage_max",
            "The org's API allocation for 24 hours (Sforce-Limit-Info), by tenant",
            api_max.clone(),
        );
        let auth_failures = Family::<KindLabels, Counter>::default();
        registry.register(
            "fsp_auth_failures",
            "Credentials that were not valid, by kind (credentials on a request, or a refused \
             token request's assertion)",
            auth_failures.clone(),
        );
        let auth_held_back = Family::<KindLabels, Counter>::default();
        registry.register(
            "fsp_auth_held_back",
            "Requests refused with 429 unchecked because their address failed too often, by kind",
            auth_held_back.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                auth_failures,
                auth_held_back,
                registry,
                requests,
                request_duration,
                in_flight,
                salesforce_duration,
                token_fetches,
                token_failures,
                lookup_hits,
                lookup_misses,
                api_used,
                api_max,
            }),
        }
    }

    /// Counts one answered request and its duration.
    pub fn request_done(&self, interaction: &'static str, status: u16, duration: Duration) {
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                interaction,
                status,
            })
            .inc();
        self.inner
            .request_duration
            .get_or_create(&InteractionLabels { interaction })
            .observe(duration.as_secs_f64());
    }

    /// Counts a request as in flight until the returned guard is dropped (also when the request
    /// is abandoned midway).
    pub fn in_flight(&self) -> InFlightGuard {
        self.inner.in_flight.inc();
        InFlightGuard {
            gauge: self.inner.in_flight.clone(),
        }
    }

    /// Sets the org's API usage as Salesforce last reported it.
    pub fn set_api_usage(&self, tenant: &str, used: u64, max: u64) {
        let labels = TenantLabels {
            tenant: tenant.to_owned(),
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.inner.api_used.get_or_create(&labels).set(clamp(used));
        self.inner.api_max.get_or_create(&labels).set(clamp(max));
    }

    /// Counts credentials that were not valid (`credentials` or `token`).
    pub fn auth_failure(&self, kind: &'static str) {
        self.inner
            .auth_failures
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// Counts a request refused because its address failed too often.
    pub fn auth_held_back(&self, kind: &'static str) {
        self.inner
            .auth_held_back
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// A handle for one tenant's Salesforce client.
    pub fn salesforce(&self, tenant: &str) -> SalesforceMetrics {
        SalesforceMetrics {
            target: Some((self.clone(), tenant.to_owned())),
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
}

/// Store latencies in seconds, from 100 µs (a SQLite read) to 2.5 s (a pool waiting for a
/// connection).
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

fn store_histogram() -> Histogram {
    Histogram::new(STORE_BUCKETS)
}

/// What the store records: each operation's latency and failures. The store makes it; each
/// application registers it ([`Metrics::with_store`]). Clones share the series.
#[derive(Clone)]
pub struct StoreMetrics {
    duration: HistogramFamily<StoreLabels>,
    errors: Family<StoreLabels, Counter>,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics::new()
    }
}

impl StoreMetrics {
    /// Series with nothing observed yet.
    pub fn new() -> Self {
        StoreMetrics {
            duration: Family::new_with_constructor(store_histogram),
            errors: Family::default(),
        }
    }

    /// Records one operation.
    pub fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        let labels = StoreLabels { operation };
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

/// Keeps a request counted in [`Metrics::in_flight`] while alive.
pub struct InFlightGuard {
    gauge: Gauge,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// What one tenant's Salesforce client records. The default records nothing (clients built
/// outside a running application: the CLI, unit tests).
#[derive(Clone, Default)]
pub struct SalesforceMetrics {
    target: Option<(Metrics, String)>,
}

impl SalesforceMetrics {
    /// A handle that records nothing.
    pub fn disabled() -> Self {
        SalesforceMetrics::default()
    }

    /// Records the duration of one call.
    pub fn call(&self, kind: CallKind, duration: Duration) {
        if let Some((metrics, tenant)) = &self.target {
            metrics
                .inner
                .salesforce_duration
                .get_or_create(&CallLabels {
                    tenant: tenant.clone(),
                    call: kind.name(),
                })
                .observe(duration.as_secs_f64());
        }
    }

    /// Records one token request and whether it got a token.
    pub fn token_fetch(&self, ok: bool, duration: Duration) {
        self.call(CallKind::Token, duration);
        if let Some((metrics, tenant)) = &self.target {
            let labels = TenantLabels {
                tenant: tenant.clone(),
            };
            metrics.inner.token_fetches.get_or_create(&labels).inc();
            if !ok {
                metrics.inner.token_failures.get_or_create(&labels).inc();
            }
        }
    }

    /// Records one lookup answered from the cache (`hit`) or needing a call.
    pub fn lookup(&self, hit: bool) {
        if let Some((metrics, tenant)) = &self.target {
            let labels = TenantLabels {
                tenant: tenant.clone(),
            };
            let family = if hit {
                &metrics.inner.lookup_hits
            } else {
                &metrics.inner.lookup_misses
            };
            family.get_or_create(&labels).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_their_labels() {
        let metrics = Metrics::new();
        metrics.request_done("create", 201, Duration::from_millis(30));
        metrics.request_done("create", 201, Duration::from_millis(30));
        let sf = metrics.salesforce("north");
        sf.token_fetch(false, Duration::from_millis(3));
        sf.lookup(true);
        sf.call(CallKind::Book, Duration::from_millis(40));
        metrics.set_api_usage("north", 12, 15000);
        let store = StoreMetrics::new();
        let metrics_with_store = Metrics::with_store(&store);
        store.observe("claim", Duration::from_micros(300), true);
        store.observe("claim", Duration::from_micros(300), false);
        let text = metrics_with_store.encode();
        for line in [
            r#"fsp_store_operation_duration_seconds_count{operation="claim"} 2"#,
            r#"fsp_store_errors_total{operation="claim"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let guard = metrics.in_flight();
        let text = metrics.encode();
        drop(guard);
        for line in [
            r#"fsp_http_requests_total{interaction="create",status="201"} 2"#,
            r#"fsp_http_request_duration_seconds_count{interaction="create"} 2"#,
            "fsp_http_requests_in_flight 1",
            r#"fsp_salesforce_token_fetches_total{tenant="north"} 1"#,
            r#"fsp_salesforce_token_fetch_failures_total{tenant="north"} 1"#,
            r#"fsp_salesforce_call_duration_seconds_count{tenant="north",call="token"} 1"#,
            r#"fsp_salesforce_call_duration_seconds_count{tenant="north",call="book"} 1"#,
            r#"fsp_lookup_cache_hits_total{tenant="north"} 1"#,
            r#"fsp_salesforce_api_usage_used{tenant="north"} 12"#,
            r#"fsp_salesforce_api_usage_max{tenant="north"} 15000"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(
            metrics
                .encode()
                .lines()
                .any(|l| l == "fsp_http_requests_in_flight 0")
        );
    }

    #[test]
    fn disabled_handles_record_nothing() {
        let sf = SalesforceMetrics::disabled();
        sf.token_fetch(true, Duration::ZERO);
        sf.lookup(false);
    }
}
