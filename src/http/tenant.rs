//! The extractor that picks a request's tenant ([`crate::tenants`]) from its URL: the named
//! tenant's segment after the FHIR base, else the tenant at the base. A request for a tenant that
//! does not exist is a 404 OperationOutcome before any handler runs.

use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{FromRequest, HttpRequest, web};

use super::response;
use crate::error::ProxyError;
use crate::tenants::{Tenant, Tenants};

pub use super::routes::TENANT_SEGMENT;

/// The tenant a request is for: the one its URL names, else the unnamed one. The state is taken
/// now, once: the request runs on this version of the mapping to its end.
///
/// # Errors
/// [`ProxyError::UnknownTenant`] when there is no such tenant.
pub fn for_request(tenants: &Tenants, request: &HttpRequest) -> Result<Arc<Tenant>, ProxyError> {
    let name = request.match_info().get(TENANT_SEGMENT);
    tenants.get(name).ok_or(ProxyError::UnknownTenant {
        named: name.is_some(),
    })
}

/// The state of the tenant a request is for; a handler parameter. Extraction fails with the
/// FHIR 404 for an unknown tenant, rendered in the format the client asked for.
pub struct RequestTenant(pub Arc<Tenant>);

impl Deref for RequestTenant {
    type Target = Tenant;

    fn deref(&self) -> &Tenant {
        &self.0
    }
}

impl FromRequest for RequestTenant {
    type Error = actix_web::Error;
    type Future = Ready<Result<RequestTenant, actix_web::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = match request.app_data::<web::Data<Tenants>>() {
            Some(tenants) => for_request(tenants, request),
            None => Err(ProxyError::UnknownTenant { named: false }),
        };
        ready(found.map(RequestTenant).map_err(|error| {
            let rendering = response::rendering_for(request);
            InternalError::from_response("unknown tenant", response::error(&error, rendering))
                .into()
        }))
    }
}
