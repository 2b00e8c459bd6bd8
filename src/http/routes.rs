//! The route table: every FHIR path the proxy serves, with the methods it takes and the
//! interaction each method is. The actix routes are built from it, every `Allow` header is read
//! off it, and a request is classified against it once ([`classify`], the outermost middleware):
//! auth, the request limits, the audit trail and the metrics all read that one classification
//! from the request's extensions instead of working it out from the path again.
//!
//! Tenant names are lower case and FHIR resource types start with a capital, so the tenant
//! segment's pattern never takes a resource type: `{base}/Patient` is an unsupported resource
//! type (404 `not-supported`), not an unknown tenant. Unknown operations
//! (`Appointment/$no-such-op`) are a 400 naming the ones served.

use std::collections::HashMap;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;

use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};

use crate::interaction::Interaction;

/// The SMART configuration path below a FHIR base.
pub const SMART_CONFIGURATION: &str = "/.well-known/smart-configuration";

/// The name of the path segment that names a tenant.
pub const TENANT_SEGMENT: &str = "tenant";

/// The tenant scope below the FHIR base: a tenant name as [`crate::config::is_tenant_name`]
/// allows it (lower case), so that `Appointment` or `Patient` is never read as one.
pub const TENANT_SCOPE: &str = "/{tenant:[a-z0-9][a-z0-9_-]{0,39}}";

/// One FHIR path below a tenant's base, and what each of its methods is.
#[derive(Debug)]
pub struct Route {
    /// The path pattern below the base (actix syntax).
    pub path: &'static str,
    /// Each method served there, with its interaction (`HEAD` wherever `GET` is).
    pub methods: &'static [(Method, Interaction)],
}

impl Route {
    /// The `Allow` header value: the methods served, in the table's order.
    pub fn allow(&self) -> String {
        self.methods
            .iter()
            .map(|(m, _)| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn interaction(&self, method: &Method) -> Option<Interaction> {
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, i)| *i)
    }
}

/// The FHIR interactions of one tenant. Order matters to actix (first match wins): the named
/// operations before the id pattern, which excludes `$` anyway.
pub const FHIR_ROUTES: [Route; 9] = [
    Route {
        path: "/metadata",
        methods: &[
            (Method::GET, Interaction::Capabilities),
            (Method::HEAD, Interaction::Capabilities),
        ],
    },
    Route {
        path: "/metadata/",
        methods: &[
            (Method::GET, Interaction::Capabilities),
            (Method::HEAD, Interaction::Capabilities),
        ],
    },
    Route {
        path: "/Appointment/$validate",
        methods: &[(Method::POST, Interaction::Validate)],
    },
    Route {
        path: "/Appointment/$find",
        methods: &[
            (Method::GET, Interaction::Find),
            (Method::HEAD, Interaction::Find),
            (Method::POST, Interaction::Find),
        ],
    },
    Route {
        path: "/Appointment/_search",
        methods: &[(Method::POST, Interaction::Search)],
    },
    Route {
        path: "/Appointment",
        methods: &[
            (Method::GET, Interaction::Search),
            (Method::HEAD, Interaction::Search),
            (Method::POST, Interaction::Create),
            (Method::PUT, Interaction::Update),
        ],
    },
    Route {
        path: "/Appointment/{id:[A-Za-z0-9.-]{1,64}}",
        methods: &[
            (Method::GET, Interaction::Read),
            (Method::HEAD, Interaction::Read),
            (Method::PUT, Interaction::Update),
            (Method::PATCH, Interaction::Patch),
        ],
    },
    Route {
        path: "/Slot",
        methods: &[
            (Method::GET, Interaction::SlotSearch),
            (Method::HEAD, Interaction::SlotSearch),
        ],
    },
    Route {
        path: "",
        methods: &[(Method::POST, Interaction::Bundle)],
    },
];

/// An operation on Appointment that is not one of the table's (`$hold`, `$no-such-op`).
pub(super) const UNKNOWN_OPERATION: &str = "/Appointment/{operation:\\$[^/]*}";
/// A resource type (capitalised) that is not Appointment or Slot, with anything after it.
pub(super) const OTHER_TYPE: &str = "/{type:[A-Z][A-Za-z]*}{rest:(/.*)?}";

/// What a request is, as the route table says: decided once, before everything else.
#[derive(Debug, Clone, Default)]
pub struct Classified {
    /// The FHIR interaction, when the path and method are one.
    pub interaction: Option<Interaction>,
    /// Whether the path is served without credentials (metadata, SMART discovery, probes, the
    /// token endpoint).
    pub open: bool,
    /// The tenant named in the URL, as written (not yet known to exist).
    pub tenant: Option<String>,
}

/// The route patterns of one server, as actix reports them (`match_pattern`), with their routes.
pub struct RouteTable {
    base_path: String,
    by_pattern: HashMap<String, &'static Route>,
    open: Vec<String>,
}

impl RouteTable {
    /// The table for FHIR served at `base_path` (and `{base_path}/{tenant}`).
    pub fn new(base_path: &str) -> RouteTable {
        let mut by_pattern = HashMap::new();
        for route in &FHIR_ROUTES {
            by_pattern.insert(format!("{base_path}{}", route.path), route);
            by_pattern.insert(format!("{base_path}{TENANT_SCOPE}{}", route.path), route);
        }
        // `{base}/` is the Bundle endpoint too.
        if let Some(bundle) = FHIR_ROUTES.iter().find(|r| r.path.is_empty()) {
            by_pattern.insert(format!("{base_path}/"), bundle);
            by_pattern.insert(format!("{base_path}{TENANT_SCOPE}/"), bundle);
        }
        let mut open: Vec<String> = ["/status", "/healthz", "/readyz", "/metrics"]
            .iter()
            .map(|p| (*p).to_owned())
            .chain([crate::auth::TOKEN_PATH.to_owned()])
            .collect();
        for scope in ["", TENANT_SCOPE] {
            open.push(format!("{base_path}{scope}{SMART_CONFIGURATION}"));
        }
        RouteTable {
            base_path: base_path.to_owned(),
            by_pattern,
            open,
        }
    }

    /// The FHIR base path.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Classifies a request by its method, the pattern it matched and its path (the tenant is
    /// read from the path: before routing, actix has matched the pattern but not yet filled in
    /// its segments).
    pub fn classify(&self, method: &Method, pattern: Option<&str>, path: &str) -> Classified {
        let route = pattern.and_then(|p| self.by_pattern.get(p));
        let interaction = route.and_then(|r| r.interaction(method));
        let open = matches!(interaction, Some(Interaction::Capabilities))
            || pattern.is_some_and(|p| self.open.iter().any(|o| o == p));
        let named_tenant = pattern
            .and_then(|p| p.strip_prefix(self.base_path.as_str()))
            .is_some_and(|rest| rest.starts_with(TENANT_SCOPE));
        let tenant = named_tenant
            .then(|| {
                path.strip_prefix(self.base_path.as_str())?
                    .split('/')
                    .nth(1)
            })
            .flatten()
            .map(str::to_owned);
        Classified {
            interaction,
            open,
            tenant,
        }
    }
}

/// The outermost of the proxy's middleware: classifies the request once against the route
/// table and puts the [`Classified`] into its extensions.
///
/// # Errors
/// Whatever the wrapped service returns.
pub async fn classify(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(table) = request.app_data::<web::Data<RouteTable>>() {
        let pattern = request.match_pattern();
        let classified = table.classify(request.method(), pattern.as_deref(), request.path());
        request.extensions_mut().insert(classified);
    }
    next.call(request).await
}

/// The classification of a request (the default, "nothing", when none was made).
pub fn classified(request: &HttpRequest) -> Classified {
    request
        .extensions()
        .get::<Classified>()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_of_both_tenant_kinds_are_classified_by_method() {
        let table = RouteTable::new("/fhir");
        let cases = [
            ("POST", "/fhir/Appointment", Some(Interaction::Create)),
            (
                "POST",
                "/fhir/{tenant:[a-z0-9][a-z0-9_-]{0,39}}/Appointment",
                Some(Interaction::Create),
            ),
            (
                "PUT",
                "/fhir/Appointment/{id:[A-Za-z0-9.-]{1,64}}",
                Some(Interaction::Update),
            ),
            (
                "PATCH",
                "/fhir/{tenant:[a-z0-9][a-z0-9_-]{0,39}}/Appointment/{id:[A-Za-z0-9.-]{1,64}}",
                Some(Interaction::Patch),
            ),
            (
                "POST",
                "/fhir/Appointment/$validate",
                Some(Interaction::Validate),
            ),
            ("GET", "/fhir/Appointment/$find", Some(Interaction::Find)),
            ("HEAD", "/fhir/Slot", Some(Interaction::SlotSearch)),
            ("GET", "/fhir/metadata/", Some(Interaction::Capabilities)),
            ("POST", "/fhir", Some(Interaction::Bundle)),
            ("POST", "/fhir/", Some(Interaction::Bundle)),
            ("GET", "/fhir/Appointment", Some(Interaction::Search)),
            ("PUT", "/fhir/Appointment", Some(Interaction::Update)),
            (
                "POST",
                "/fhir/Appointment/_search",
                Some(Interaction::Search),
            ),
            (
                "GET",
                "/fhir/Appointment/{id:[A-Za-z0-9.-]{1,64}}",
                Some(Interaction::Read),
            ),
            ("DELETE", "/fhir/Appointment", None),
            ("GET", "/status", None),
        ];
        for (method, pattern, expected) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                table.classify(&method, Some(pattern), "/").interaction,
                expected,
                "{method} {pattern}"
            );
        }
        assert!(
            table
                .classify(&Method::GET, Some("/fhir/metadata"), "/fhir/metadata")
                .open
        );
        assert!(
            table
                .classify(&Method::GET, Some("/healthz"), "/healthz")
                .open
        );
        assert!(
            !table
                .classify(
                    &Method::POST,
                    Some("/fhir/Appointment"),
                    "/fhir/Appointment"
                )
                .open
        );
        assert!(!table.classify(&Method::GET, None, "/nowhere").open);
        let north = table.classify(
            &Method::POST,
            Some("/fhir/{tenant:[a-z0-9][a-z0-9_-]{0,39}}/Appointment"),
            "/fhir/north/Appointment",
        );
        assert_eq!(north.tenant.as_deref(), Some("north"));
        assert_eq!(
            table
                .classify(
                    &Method::POST,
                    Some("/fhir/Appointment"),
                    "/fhir/Appointment"
                )
                .tenant,
            None
        );
    }

    #[test]
    fn an_empty_base_path_works() {
        let table = RouteTable::new("");
        assert_eq!(
            table
                .classify(&Method::POST, Some("/Appointment"), "/Appointment")
                .interaction,
            Some(Interaction::Create)
        );
    }

    #[test]
    fn allow_lists_the_methods_served() {
        assert_eq!(FHIR_ROUTES[3].allow(), "GET, HEAD, POST");
        assert_eq!(FHIR_ROUTES[5].allow(), "GET, HEAD, POST, PUT");
        assert_eq!(FHIR_ROUTES[6].allow(), "GET, HEAD, PUT, PATCH");
    }
}
