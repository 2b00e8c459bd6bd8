//! Reading the sandbox's records the way the REST API reads them (`salesforce-api.md` §5.1 and
//! the REST API Developer Guide's Query, Query More Results and sObject Rows pages):
//!
//! - `GET /services/data/vNN.N/query?q=SOQL`: the statements module `soql` reads, over
//!   ServiceAppointment. Answers `{"totalSize","done","records"}`, and, when more rows remain than
//!   one batch holds, `nextRecordsUrl` (`/services/data/vNN.N/query/01gSB…-N`, no parameters).
//!   The batch is `Sforce-Query-Options: batchSize=N` clamped to 200–2,000 (default 2,000), and
//!   never more than [`SandboxSettings::query_batch_size`](super::SandboxSettings) ("there is no
//!   guarantee that the requested batch size is the actual batch size"). `totalSize` counts every
//!   row the statement matched (after LIMIT). A statement it cannot read, or over another object,
//!   is 400 `MALFORMED_QUERY`; an unknown field 400 `INVALID_FIELD`.
//! - `GET /services/data/vNN.N/query/{locator}`: the next batch, as often as asked while the
//!   sandbox keeps it (the newest 256 locators); an unknown locator is 400
//!   `INVALID_QUERY_LOCATOR`.
//! - `GET /services/data/vNN.N/sobjects/ServiceAppointment/{id}[?fields=a,b]`: the flat record,
//!   or 404 `NOT_FOUND`.
//! - `PATCH /services/data/vNN.N/sobjects/ServiceAppointment/{id}`: a change as a Salesforce user
//!   makes it (a JSON object of fields), 204; tests can also call [`Sandbox::edit_appointment`].

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::records::{JUNCTION, JUNCTIONS, Junction, SERVICE_APPOINTMENT, known_field};
use super::soql::{self, Condition, Item, Malformed, Query};
use super::{Sandbox, Shared, platform_error, refuse_call, resource_not_found};

pub(super) const QUERY_PATH: &str = "/services/data/{version}/query";
pub(super) const QUERY_MORE_PATH: &str = "/services/data/{version}/query/{locator}";
pub(super) const RECORD_PATH: &str = "/services/data/{version}/sobjects/ServiceAppointment/{id}";

/// How many open cursors the sandbox keeps; the oldest is forgotten first (Salesforce keeps a
/// bounded number per user, and a locator expires after two days).
const MAX_CURSORS: usize = 256;

/// Rows not yet answered of a query, behind a locator.
#[derive(Default)]
pub(super) struct Cursors {
    open: VecDeque<(String, Vec<Value>)>,
    serial: u64,
}

impl Sandbox {
    /// Changes an appointment's ServiceAppointment fields (API names → values) as a Salesforce
    /// user would: `{"Status": "Canceled"}`, `{"SchedStartTime": "2025-01-01T10:00:00.000+0000"}`.
    /// Returns false when no appointment has the id.
    pub fn edit_appointment(&self, id: &str, changes: &Value) -> bool {
        let Some(changes) = changes.as_object() else {
            return false;
        };
        let mut state = self.shared.lock();
        let Some(index) = state.find(id) else {
            return false;
        };
        state.records[index].edit(changes, Utc::now());
        true
    }

    /// Every SOQL statement received, in order (`q` as decoded).
    pub fn queries(&self) -> Vec<String> {
        self.shared.lock().queries.clone()
    }

    /// How many query and query-more calls arrived, refused ones included.
    pub fn query_requests(&self) -> usize {
        self.shared.query_requests.load(Ordering::SeqCst)
    }
}

fn malformed_query(Malformed(message): Malformed) -> HttpResponse {
    platform_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &message)
}

fn invalid_field(path: &str, object: &str) -> HttpResponse {
    refused(Refusal::InvalidField(format!(
        "No such column '{path}' on entity '{object}'."
    )))
}

/// Why a statement is refused before it runs.
enum Refusal {
    Malformed(Malformed),
    InvalidField(String),
}

fn refused(refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::Malformed(malformed) => malformed_query(malformed),
        Refusal::InvalidField(message) => {
            platform_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", &message)
        }
    }
}

/// Every field a statement names must exist: Salesforce refuses the whole query otherwise.
fn check_fields(query: &Query) -> Result<(), Refusal> {
    let check = |object: &str, path: &str| {
        if known_field(object, path) {
            Ok(())
        } else {
            Err(Refusal::InvalidField(format!(
                "No such column '{path}' on entity '{object}'."
            )))
        }
    };
    for item in &query.select {
        match item {
            Item::Field(path) => check(SERVICE_APPOINTMENT, path)?,
            Item::Children {
                relationship,
                fields,
            } => {
                if !relationship.eq_ignore_ascii_case(JUNCTIONS) {
                    return Err(Refusal::Malformed(Malformed(format!(
                        "Didn't understand relationship '{relationship}' in FROM part of query \
                         call."
                    ))));
                }
                for path in fields {
                    check(JUNCTION, path)?;
                }
            }
        }
    }
    fn conditions(
        list: &[Condition],
        object: &str,
        check: &dyn Fn(&str, &str) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        for condition in list {
            match condition {
                Condition::Compare { path, .. } | Condition::In { path, .. } => {
                    check(object, path)?;
                }
                Condition::SemiJoin {
                    object: inner,
                    conditions: nested,
                } => {
                    if !inner.eq_ignore_ascii_case(JUNCTION) {
                        return Err(Refusal::Malformed(Malformed(format!(
                            "the sandbox only reads semi-joins over {JUNCTION}"
                        ))));
                    }
                    conditions(nested, JUNCTION, check)?;
                }
                Condition::Any(alternatives) => conditions(alternatives, object, check)?,
            }
        }
        Ok(())
    }
    conditions(&query.conditions, SERVICE_APPOINTMENT, &check)?;
    for (path, _) in &query.order_by {
        check(SERVICE_APPOINTMENT, path)?;
    }
    Ok(())
}

/// The batch size asked for in `Sforce-Query-Options`, clamped as Salesforce clamps it.
fn batch_size(req: &HttpRequest, cap: usize) -> usize {
    let asked = req
        .headers()
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|part| part.trim().split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        })
        .unwrap_or(2000)
        .clamp(200, 2000);
    asked.min(cap.max(1))
}

/// `GET …/query?q=`.
pub(super) async fn query(
    req: HttpRequest,
    version: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    shared.query_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let Some(soql) = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, _)| name == "q")
        .map(|(_, q)| q.into_owned())
    else {
        return malformed_query(Malformed("a query needs the q parameter".to_owned()));
    };
    shared.lock().queries.push(soql.clone());
    let query = match soql::parse(&soql) {
        Ok(query) => query,
        Err(malformed) => return malformed_query(malformed),
    };
    if !query.from.eq_ignore_ascii_case(SERVICE_APPOINTMENT) {
        return malformed_query(Malformed(format!(
            "the sandbox only reads {SERVICE_APPOINTMENT}, not {}",
            query.from
        )));
    }
    if let Err(refusal) = check_fields(&query) {
        return refused(refusal);
    }
    let batch = batch_size(&req, shared.settings.query_batch_size);
    let mut state = shared.lock();
    let mut rows = Vec::new();
    for record in &state.records {
        let semi_join = |_object: &str, conditions: &[Condition]| -> Result<bool, Malformed> {
            for junction in &record.junctions {
                if soql::matches(conditions, &Junction(junction), &|_, _| {
                    Err(Malformed("semi-joins cannot nest".to_owned()))
                })? {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        match soql::matches(&query.conditions, record, &semi_join) {
            Ok(true) => rows.push(record),
            Ok(false) => {}
            Err(malformed) => return malformed_query(malformed),
        }
    }
    if query.count {
        // `SELECT COUNT()` answers the count in totalSize, with no records.
        return HttpResponse::Ok()
            .json(json!({"totalSize": rows.len(), "done": true, "records": []}));
    }
    rows.sort_by(|a, b| soql::order(*a, *b, &query.order_by));
    if let Some(limit) = query.limit {
        rows.truncate(limit);
    }
    let mut rendered: Vec<Value> = rows
        .iter()
        .map(|r| r.render(&query.select, &version))
        .collect();
    let total = rendered.len();
    let rest = if rendered.len() > batch {
        rendered.split_off(batch)
    } else {
        Vec::new()
    };
    let next = (!rest.is_empty()).then(|| open_cursor(&mut state.cursors, rest, batch));
    drop(state);
    answer(total, rendered, next.as_deref(), &version)
}

/// Keeps the remaining rows behind a new locator; returns `01gSB…-<offset>`.
fn open_cursor(cursors: &mut Cursors, rest: Vec<Value>, offset: usize) -> String {
    cursors.serial += 1;
    let locator = format!(
        "{}-{offset}",
        crate::id::case_safe(&format!("01gSB{:010}", cursors.serial))
    );
    if cursors.open.len() >= MAX_CURSORS {
        cursors.open.pop_front();
    }
    cursors.open.push_back((locator.clone(), rest));
    locator
}

fn answer(total: usize, records: Vec<Value>, next: Option<&str>, version: &str) -> HttpResponse {
    let mut body = Map::new();
    body.insert("totalSize".into(), json!(total));
    body.insert("done".into(), json!(next.is_none()));
    if let Some(locator) = next {
        body.insert(
            "nextRecordsUrl".into(),
            json!(format!("/services/data/{version}/query/{locator}")),
        );
    }
    body.insert("records".into(), Value::Array(records));
    HttpResponse::Ok().json(Value::Object(body))
}

/// `GET …/query/{locator}`: the next batch of an open query.
pub(super) async fn query_more(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    shared.query_requests.fetch_add(1, Ordering::SeqCst);
    let (version, locator) = path.into_inner();
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let batch = batch_size(&req, shared.settings.query_batch_size);
    let mut state = shared.lock();
    // A locator can be read again while it lives (Salesforce keeps results for two days).
    let Some(mut rows) = state
        .cursors
        .open
        .iter()
        .find(|(l, _)| *l == locator)
        .map(|(_, rows)| rows.clone())
    else {
        return platform_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    let offset: usize = locator
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    let total = offset + rows.len();
    let rest = if rows.len() > batch {
        rows.split_off(batch)
    } else {
        Vec::new()
    };
    let next = (!rest.is_empty()).then(|| {
        let taken = rows.len();
        open_cursor(&mut state.cursors, rest, offset + taken)
    });
    drop(state);
    answer(total, rows, next.as_deref(), &version)
}

/// `GET …/sobjects/ServiceAppointment/{id}`.
pub(super) async fn get_record(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let fields: Option<Vec<String>> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(name, _)| name == "fields")
        .map(|(_, list)| list.split(',').map(|f| f.trim().to_owned()).collect());
    let state = shared.lock();
    match state.find(&id) {
        Some(index) => {
            HttpResponse::Ok().json(state.records[index].flat(fields.as_deref(), &version))
        }
        None => resource_not_found(),
    }
}

/// `PATCH …/sobjects/ServiceAppointment/{id}`: a user's change, 204 No Content.
pub(super) async fn patch_record(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
        return platform_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object of fields",
        );
    };
    if let Some(unknown) = changes
        .keys()
        .find(|name| !known_field(SERVICE_APPOINTMENT, name))
    {
        return invalid_field(unknown, SERVICE_APPOINTMENT);
    }
    let mut state = shared.lock();
    let Some(index) = state.find(&id) else {
        return resource_not_found();
    };
    state.records[index].edit(&changes, Utc::now());
    HttpResponse::NoContent().finish()
}
