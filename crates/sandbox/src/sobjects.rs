//! sObject Rows by External ID (`salesforce-api.md` §4.5):
//! `GET /services/data/vNN.N/sobjects/{Object}/{Field}/{value}`, answered from the records in
//! [`SandboxSettings::external_ids`](super::SandboxSettings::external_ids).
//!
//! No record → 404 `NOT_FOUND` "The requested resource does not exist" (also what Salesforce
//! says for an object or field it does not know); one → 200 with the record (`attributes` and
//! `Id`, plus the external id field unless `?fields=` leaves it out); several → 300 Multiple
//! Choices with the matching records' URLs. Object and field names match in any case, as API
//! names do in Salesforce; values match exactly. Every call (refused ones included) is counted,
//! so tests can prove the proxy's cache and coalescing: [`Sandbox::lookup_requests`].

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{Sandbox, Shared, refuse_call, resource_not_found};

/// The route, beside the other `/services/data` ones.
pub(super) const SOBJECT_BY_EXTERNAL_ID_PATH: &str =
    "/services/data/{version}/sobjects/{object}/{field}/{value}";

/// Records the sandbox finds by external id: the `object` records whose `field` holds `value`.
/// No ids: not found; one: that record; several: 300.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdRecords {
    /// The sObject API name, e.g. `Account`.
    pub object: String,
    /// The external id field's API name, e.g. `EHR_Patient_Id__c`.
    pub field: String,
    /// The external id value.
    pub value: String,
    /// The ids of the records holding it.
    pub ids: Vec<String>,
}

impl ExternalIdRecords {
    /// Records of `object` whose `field` holds `value`.
    pub fn new(object: &str, field: &str, value: &str, ids: &[&str]) -> Self {
        ExternalIdRecords {
            object: object.to_owned(),
            field: field.to_owned(),
            value: value.to_owned(),
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        }
    }
}

impl Sandbox {
    /// How many sObject-by-external-id requests arrived, refused ones included.
    pub fn lookup_requests(&self) -> usize {
        self.shared.lookup_requests.load(Ordering::SeqCst)
    }
}

/// `GET …/sobjects/{object}/{field}/{value}`.
pub(super) async fn get_by_external_id(
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    shared.lookup_requests.fetch_add(1, Ordering::SeqCst);
    let (version, object, field, value) = path.into_inner();
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let ids: Vec<&String> = shared
        .settings
        .external_ids
        .iter()
        .filter(|r| {
            r.object.eq_ignore_ascii_case(&object)
                && r.field.eq_ignore_ascii_case(&field)
                && r.value == value
        })
        .flat_map(|r| &r.ids)
        .collect();
    let url = |id: &str| format!("/services/data/{version}/sobjects/{object}/{id}");
    match ids.as_slice() {
        [] => resource_not_found(),
        [id] => {
            let mut record = serde_json::Map::new();
            record.insert(
                "attributes".to_owned(),
                json!({"type": object, "url": url(id)}),
            );
            record.insert("Id".to_owned(), json!(id));
            // Without `fields`, Salesforce sends every field; the external id stands for them.
            if requested_fields(&req).is_none_or(|f| f.iter().any(|f| f == &field)) {
                record.insert(field.clone(), json!(value));
            }
            HttpResponse::Ok().json(Value::Object(record))
        }
        several => HttpResponse::build(StatusCode::MULTIPLE_CHOICES).json(
            several
                .iter()
                .map(|id| Value::String(url(id)))
                .collect::<Vec<_>>(),
        ),
    }
}

/// The `fields` query parameter's names, when given.
fn requested_fields(req: &HttpRequest) -> Option<Vec<String>> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, _)| name == "fields")
        .map(|(_, list)| list.split(',').map(|f| f.trim().to_owned()).collect())
}
