//! `POST /admin/reload`: reloads the mapping files now, as SIGHUP does (see [`crate::reload`]).
//! Answers `200` with JSON saying what was loaded, the new generation and which changes were
//! ignored until a restart; or an OperationOutcome, in the negotiated format, naming each bad
//! file and why the reload was refused (the old mappings keep serving). It sits at the root,
//! outside the FHIR base: it is an operator's endpoint, not a FHIR interaction.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use super::response;
use crate::reload::{Reloader, reload_in_background};

/// The path of the reload endpoint.
pub const RELOAD_PATH: &str = "/admin/reload";

/// `POST /admin/reload`.
pub async fn reload(request: HttpRequest, reloader: web::Data<Reloader>) -> HttpResponse {
    let reloader: Arc<Reloader> = reloader.into_inner();
    match reload_in_background(reloader).await {
        Ok(report) => HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(report),
        Err(error) => {
            let rendering = response::rendering_for(&request);
            response::error(&error, rendering)
        }
    }
}
