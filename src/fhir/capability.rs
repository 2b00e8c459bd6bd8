//! The CapabilityStatement this server answers at `GET [base]/metadata` (R4 http.html §3.1.0.10).
//!
//! It describes this build and nothing more: what a client can rely on is exactly what is listed
//! here, so an interaction is added to the statement in the same change that implements it.
//!
//! The statement is written as JSON, the way the R4 specification prints CapabilityStatements,
//! and turned into the fhirbolt model in strict mode, so an element name or type that R4 does not
//! have fails the unit tests below instead of reaching a client.

use fhirbolt::model::r4::resources::CapabilityStatement;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::{Value, json};

/// The date the statement's content last changed (`CapabilityStatement.date`). A fixed date,
/// rather than the build time, keeps the ETag stable across rebuilds of the same content; change it
/// together with the content.
pub const STATEMENT_DATE: &str = "2026-11-26";

/// The software name announced in `software.name`.
pub const SOFTWARE_NAME: &str = "fhir-salesforce-proxy";

/// The `$validate` operation's canonical definition (R4 core).
pub const VALIDATE_DEFINITION: &str = "http://hl7.org/fhir/OperationDefinition/Resource-validate";

/// The `$find` operation's canonical definition (Argonaut Scheduling, the R4 form IHE ITI-115
/// builds on).
pub const FIND_DEFINITION: &str =
    "http://fhir.org/guides/argonaut-scheduling/OperationDefinition/appointment-find";

/// How clients authenticate, as `rest.security` announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Authentication is switched off (`auth.disabled = true`): nothing is announced, since
    /// `rest.security` describes how to authenticate.
    Off,
    /// Credentials are required; with a token endpoint URL when the proxy is a SMART Backend
    /// Services token server reachable at a configured public URL.
    Required {
        /// The token endpoint, announced in the SMART `oauth-uris` extension.
        token_url: Option<String>,
    },
}

/// The SMART extension that carries the OAuth endpoints in `rest.security`.
pub const OAUTH_URIS_EXTENSION: &str =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// Builds the CapabilityStatement of this server, reached at `base_url` (the FHIR base, e.g.
/// `https://proxy.example.org/fhir`), running software version `version`, with `security` as
/// `rest.security`.
///
/// # Panics
/// Never for any input: the arguments only fill string values, and the unit tests prove the shape
/// parses as an R4 CapabilityStatement in strict mode.
pub fn capability_statement(
    base_url: &str,
    version: &str,
    security: &Security,
) -> CapabilityStatement {
    let value = statement_json(base_url, version, security);
    fhirbolt::json::from_json_value(
        value,
        Some(DeserializationConfig {
            mode: DeserializationMode::Strict,
        }),
    )
    .expect("the CapabilityStatement is valid R4: the unit tests parse it strictly")
}

fn statement_json(base_url: &str, version: &str, security: &Security) -> Value {
    let mut statement = json!({
        "resourceType": "CapabilityStatement",
        "name": "FhirSalesforceProxy",
        "title": "fhir-salesforce-proxy",
        "status": "active",
        "experimental": false,
        "date": STATEMENT_DATE,
        "description": "Books, reschedules and cancels appointments in Salesforce Health Cloud \
            (Connect REST API, Appointment Management) from FHIR R4 Appointments, and finds free \
            slots through Salesforce Get Slots. Appointments are not stored here: Salesforce holds \
            them, so there is no read or search of Appointment.",
        "kind": "instance",
        "software": {
            "name": SOFTWARE_NAME,
            "version": version
        },
        "implementation": {
            "description": "FHIR R4 proxy in front of Salesforce Health Cloud Appointment Management",
            "url": base_url
        },
        "fhirVersion": "4.0.1",
        "format": ["json", "xml", "application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Request bodies may be application/fhir+json or application/fhir+xml \
                (also application/json, application/xml and the DSTU2 names), UTF-8. Answers use \
                _format, else Accept, else the request's own format; _pretty=true indents them. \
                Every failure is an OperationOutcome whose diagnostics name elements by FHIRPath \
                and never echo their values. Searches (Slot, $find) are strict by default: a \
                parameter they do not know is refused with 400 rather than ignored; send Prefer: \
                handling=lenient to have unknown parameters ignored instead (the self link then \
                shows the parameters used). _count sets the page size (at most 1000), with next \
                and previous links when the answer is cut.",
            "resource": [appointment(), slot()],
            "interaction": [
                {
                    "code": "transaction",
                    "documentation": "POST [base] with a transaction Bundle of Appointment \
                        entries: all succeed, or the answer is a single OperationOutcome."
                },
                {
                    "code": "batch",
                    "documentation": "POST [base] with a batch Bundle of Appointment entries: \
                        each entry succeeds or fails on its own; the answer is 200 with a \
                        batch-response Bundle."
                }
            ]
        }]
    });
    if let Some(security) = security_json(security) {
        statement["rest"][0]["security"] = security;
    }
    statement
}

/// `rest.security`: the SMART-on-FHIR service when a token endpoint is announced, and always a
/// description of the ways in (R4 CapabilityStatement.rest.security; SMART App Launch
/// conformance for the `oauth-uris` extension).
fn security_json(security: &Security) -> Option<Value> {
    let Security::Required { token_url } = security else {
        return None;
    };
    let mut value = json!({
        "cors": false,
        "description": "Every interaction but metadata needs credentials: an access token from \
            this server's SMART Backend Services token endpoint (private_key_jwt, RS384 or ES384, \
            system/ scopes in v1 or v2 syntax), a bearer JWT from the organisation's \
            authorization server, or an API key in X-API-Key. Unauthenticated calls get 401 with \
            WWW-Authenticate; calls outside the client's scopes or tenants get 403."
    });
    if let Some(token_url) = token_url {
        value["service"] = json!([{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }]
        }]);
        value["extension"] = json!([{
            "url": OAUTH_URIS_EXTENSION,
            "extension": [{ "url": "token", "valueUri": token_url }]
        }]);
    }
    Some(value)
}

fn appointment() -> Value {
    json!({
        "type": "Appointment",
        "documentation": "Appointments are booked in Salesforce through a mapping file that turns \
            participants, codings, slots and dates into a Book Appointment request. The id of an \
            Appointment is its Salesforce record id.",
        "interaction": [
            {
                "code": "create",
                "documentation": "POST [base]/Appointment books the appointment (Salesforce Book \
                    Appointment) and answers 201 with Location [base]/Appointment/{Salesforce id}. \
                    Prefer: return=minimal|representation|OperationOutcome is honoured. Conditional \
                    create takes If-None-Exist: identifier=system|value; an earlier booking with \
                    that identifier is answered (200) instead of booked again."
            },
            {
                "code": "read",
                "documentation": "GET [base]/Appointment/{id}: the appointment as Salesforce holds \
                    it now (its ServiceAppointment record and practitioner junctions, read with \
                    SOQL), merged with what this server answered when it booked or changed it. \
                    meta.versionId and the weak ETag are a digest of the record as read; \
                    If-None-Match with it answers 304. An id Salesforce does not hold, or a \
                    record that is not a patient appointment, is a 404."
            },
            {
                "code": "update",
                "documentation": "PUT [base]/Appointment/{id}: new start, end, participants or \
                    codes go to Salesforce Update Appointment, status cancelled to Cancel \
                    Appointment. Never a create (updateCreate is false). If-Match: W/\"{versionId}\" \
                    refuses the change with 412 when the appointment has changed since. \
                    Conditional update PUT [base]/Appointment?identifier=system|value changes the \
                    one appointment with that identifier (404 for none, 412 for several)."
            },
            {
                "code": "patch",
                "documentation": "PATCH [base]/Appointment/{id} with a JSON Patch \
                    (application/json-patch+json), applied to the appointment as last booked here \
                    and then processed as a PUT; If-Match as for update."
            },
            {
                "code": "search-type",
                "documentation": "GET [base]/Appointment?… or POST [base]/Appointment/_search: \
                    appointments as Salesforce holds them now, each parameter resolved through \
                    the mapping file as participants are (an unknown patient matches nothing). A \
                    search must name _id, identifier, patient, actor, practitioner, location or a \
                    date range bounded on both sides; otherwise it is refused as too-costly. \
                    _count (default 20, at most 200), _sort=date|-date, _total=none|estimate|\
                    accurate; next links page through Salesforce's results for two days. Other \
                    parameters and modifiers are refused with 400."
            }
        ],
        "versioning": "versioned-update",
        "readHistory": false,
        "updateCreate": false,
        "conditionalCreate": true,
        "conditionalRead": "not-match",
        "conditionalUpdate": true,
        "conditionalDelete": "not-supported",
        "searchParam": appointment_search_parameters(),
        "operation": [{
            "name": "validate",
            "definition": VALIDATE_DEFINITION,
            "documentation": "POST [base]/Appointment/$validate with an Appointment, or a \
                Parameters resource whose `resource` parameter holds one: every check and the \
                mapping run, nothing is sent to Salesforce. Answers 200 with an OperationOutcome; \
                when valid, its second issue holds the exact Book Appointment JSON that would be \
                sent."
        }, {
            "name": "find",
            "definition": FIND_DEFINITION,
            "documentation": "GET or POST [base]/Appointment/$find with start and end (dates or \
                date-times), one or more practitioner (Practitioner/{id} or PractitionerRole/{id}, \
                resolved through the mapping file), optional visit-type (system|code, through the \
                work type rules and code tables) and patient-reference. Answers a searchset Bundle \
                of proposed Appointments, one per free slot from Salesforce Get Slots, each with \
                its slot and practitioner: add the location, set status booked and POST it to \
                book. Other parameters are refused with 400 (ignored with Prefer: \
                handling=lenient). _count (in the URL, also with POST) pages the answer, with a \
                next link."
        }]
    })
}

fn appointment_search_parameters() -> Value {
    let parameter = |name: &str, definition: &str, kind: &str, documentation: &str| {
        json!({
            "name": name,
            "definition": format!("http://hl7.org/fhir/SearchParameter/{definition}"),
            "type": kind,
            "documentation": documentation,
        })
    };
    json!([
        parameter(
            "_id",
            "Resource-id",
            "token",
            "Salesforce ServiceAppointment ids."
        ),
        parameter(
            "identifier",
            "Appointment-identifier",
            "token",
            "system|value: identifiers of appointments booked through this server, or the \
             Salesforce id under the mapping's response.identifier_system.",
        ),
        parameter(
            "patient",
            "Appointment-patient",
            "reference",
            "Patient/{id}, resolved through the mapping file (ServiceAppointment.ParentRecordId).",
        ),
        parameter(
            "actor",
            "Appointment-actor",
            "reference",
            "Patient, Practitioner, PractitionerRole or Location references, all of one kind \
             per parameter.",
        ),
        parameter(
            "practitioner",
            "Appointment-practitioner",
            "reference",
            "Practitioner/{id} or PractitionerRole/{id}: the HealthcarePractitionerFacility of \
             the appointment's CarePractnFacilityAppt.",
        ),
        parameter(
            "location",
            "Appointment-location",
            "reference",
            "Location/{id}: the facility (Account) of the appointment's practitioner facility.",
        ),
        parameter(
            "date",
            "Appointment-date",
            "date",
            "The start (SchedStartTime), with eq, ge, gt, le or lt and R4's precision rules; \
             values without a zone are UTC.",
        ),
        parameter(
            "status",
            "Appointment-status",
            "token",
            "R4 AppointmentStatus codes, through the mapping's status and status category \
             tables.",
        ),
        parameter(
            "service-type",
            "Appointment-service-type",
            "token",
            "system|code or code: the work types whose rules pick it.",
        ),
        parameter(
            "appointment-type",
            "Appointment-appointment-type",
            "token",
            "system|code or code: the work types whose rules pick it.",
        ),
    ])
}

fn slot() -> Value {
    json!({
        "type": "Slot",
        "documentation": "Free slots from Salesforce Get Slots, as a searchset Bundle. The chained \
            parameter schedule.actor or the parameter schedule is required (repeat it, or separate \
            values with commas, for several): schedule.actor takes Practitioner/{id} or \
            PractitionerRole/{id} (a Salesforce provider) or Device/{id} (a Salesforce asset), \
            resolved to Salesforce ids through the mapping file as Appointment participants are; \
            schedule takes Schedule/{Salesforce resource id}, which is what each slot's schedule \
            is. A lower bound on start (ge, gt or eq) is required; no visit code is (without a \
            work type the mapping's source system is sent, as Get Slots requires). Parameters \
            not listed here (other than _format and _pretty) are refused with 400 rather than \
            ignored, so a misspelt filter never widens a search silently, unless Prefer: \
            handling=lenient asks for them to be ignored.",
        "interaction": [{
            "code": "search-type",
            "documentation": "GET [base]/Slot?schedule.actor=Practitioner/{id}&start=ge{date}"
        }],
        "searchParam": [
            {
                "name": "start",
                "definition": "http://hl7.org/fhir/SearchParameter/Slot-start",
                "type": "date",
                "documentation": "Required lower bound (ge, gt or eq); optional upper bound (lt, \
                    le or eq). Dates and times without a zone are read as UTC."
            },
            {
                "name": "schedule",
                "definition": "http://hl7.org/fhir/SearchParameter/Slot-schedule",
                "type": "reference",
                "documentation": "Schedule/{id}, the schedule of a slot found earlier: the id is \
                    the Salesforce provider or asset id."
            },
            {
                "name": "service-type",
                "definition": "http://hl7.org/fhir/SearchParameter/Slot-service-type",
                "type": "token",
                "documentation": "system|code; picks the work type or service type codes through \
                    the mapping file, as Appointment.serviceType does when booking."
            },
            {
                "name": "service-category",
                "definition": "http://hl7.org/fhir/SearchParameter/Slot-service-category",
                "type": "token",
                "documentation": "system|code; picks the work type or service category codes \
                    through the mapping file, as Appointment.serviceCategory does when booking."
            },
            {
                "name": "appointment-type",
                "definition": "http://hl7.org/fhir/SearchParameter/Slot-appointment-type",
                "type": "token",
                "documentation": "system|code; picks the work type or appointment type codes \
                    through the mapping file, as Appointment.appointmentType does when booking."
            },
            {
                "name": "status",
                "definition": "http://hl7.org/fhir/SearchParameter/Slot-status",
                "type": "token",
                "documentation": "Only free slots are known: any other status gives an empty \
                    Bundle."
            },
            {
                "name": "_count",
                "type": "number",
                "documentation": "At most this many slots per page (up to 1000); total counts \
                    them all, and a next link fetches the following page."
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const BASE: &str = "https://proxy.example.org/fhir";

    fn statement() -> CapabilityStatement {
        capability_statement(BASE, "1.2.3", &Security::Off)
    }

    fn text(value: Option<&str>) -> &str {
        value.unwrap_or_default()
    }

    #[test]
    fn parses_strictly_as_r4_and_round_trips_through_json_and_xml() {
        let statement = statement();
        let json = fhirbolt::json::to_vec(&statement, None).unwrap();
        let xml = fhirbolt::xml::to_vec(&statement, None).unwrap();
        let strict = Some(DeserializationConfig {
            mode: DeserializationMode::Strict,
        });
        let from_json: CapabilityStatement = fhirbolt::json::from_slice(&json, strict).unwrap();
        let from_xml: CapabilityStatement = fhirbolt::xml::from_slice(&xml, strict).unwrap();
        assert_eq!(from_json, statement);
        assert_eq!(from_xml, statement);
    }

    #[test]
    fn required_elements_and_invariants_cpb_1_2_9_14_hold() {
        let s = statement();
        assert_eq!(s.status.value.as_deref(), Some("active"));
        assert_eq!(s.date.value.as_deref(), Some(STATEMENT_DATE));
        assert_eq!(s.fhir_version.value.as_deref(), Some("4.0.1"));
        assert!(!s.format.is_empty());
        // cpb-1: rest, messaging or document.
        assert!(!s.rest.is_empty());
        // cpb-2: description, software or implementation.
        assert!(s.software.is_some() && s.implementation.is_some());
        // cpb-14: kind = instance ⇒ implementation.
        assert_eq!(s.kind.value.as_deref(), Some("instance"));
        let implementation = s.implementation.as_ref().unwrap();
        assert_eq!(
            text(implementation.url.as_ref().and_then(|u| u.value.as_deref())),
            BASE
        );
        // cpb-9: each resource type once per rest mode.
        for rest in &s.rest {
            let types: Vec<_> = rest
                .resource
                .iter()
                .map(|r| r.r#type.value.clone())
                .collect();
            let unique: HashSet<_> = types.iter().collect();
            assert_eq!(unique.len(), types.len(), "{types:?}");
        }
        let software = s.software.as_ref().unwrap();
        assert_eq!(software.name.value.as_deref(), Some(SOFTWARE_NAME));
        assert_eq!(
            software.version.as_ref().and_then(|v| v.value.as_deref()),
            Some("1.2.3")
        );
    }

    #[test]
    fn tells_what_this_build_serves() {
        let s = statement();
        let codes = |v: &[fhirbolt::model::r4::types::Code]| -> Vec<String> {
            v.iter().filter_map(|c| c.value.clone()).collect()
        };
        assert_eq!(
            codes(&s.format),
            [
                "json",
                "xml",
                "application/fhir+json",
                "application/fhir+xml"
            ]
        );
        assert_eq!(codes(&s.patch_format), ["application/json-patch+json"]);
        let rest = &s.rest[0];
        assert_eq!(rest.mode.value.as_deref(), Some("server"));
        let system: Vec<_> = rest
            .interaction
            .iter()
            .filter_map(|i| i.code.value.clone())
            .collect();
        assert_eq!(system, ["transaction", "batch"]);

        let appointment = &rest.resource[0];
        assert_eq!(appointment.r#type.value.as_deref(), Some("Appointment"));
        let interactions: Vec<_> = appointment
            .interaction
            .iter()
            .filter_map(|i| i.code.value.clone())
            .collect();
        assert_eq!(
            interactions,
            ["create", "read", "update", "patch", "search-type"]
        );
        let flag =
            |b: &Option<fhirbolt::model::r4::types::Boolean>| b.as_ref().and_then(|b| b.value);
        assert_eq!(flag(&appointment.update_create), Some(false));
        assert_eq!(flag(&appointment.conditional_create), Some(true));
        assert_eq!(flag(&appointment.conditional_update), Some(true));
        assert_eq!(
            appointment
                .versioning
                .as_ref()
                .and_then(|v| v.value.as_deref()),
            Some("versioned-update")
        );
        let parameters: Vec<_> = appointment
            .search_param
            .iter()
            .filter_map(|p| p.name.value.clone())
            .collect();
        assert_eq!(parameters, crate::mapping::search::SEARCH_PARAMETERS);
        assert_eq!(appointment.operation.len(), 2);
        assert_eq!(
            appointment.operation[1].definition.value.as_deref(),
            Some(FIND_DEFINITION)
        );
        assert_eq!(
            appointment.operation[0].name.value.as_deref(),
            Some("validate")
        );
        assert_eq!(
            appointment.operation[0].definition.value.as_deref(),
            Some(VALIDATE_DEFINITION)
        );

        let slot = &rest.resource[1];
        assert_eq!(slot.r#type.value.as_deref(), Some("Slot"));
        let interactions: Vec<_> = slot
            .interaction
            .iter()
            .filter_map(|i| i.code.value.clone())
            .collect();
        assert_eq!(interactions, ["search-type"]);
        let params: Vec<(String, String)> = slot
            .search_param
            .iter()
            .map(|p| {
                (
                    p.name.value.clone().unwrap_or_default(),
                    p.r#type.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            params,
            [
                ("start".into(), "date".into()),
                ("schedule".into(), "reference".into()),
                ("service-type".into(), "token".into()),
                ("service-category".into(), "token".into()),
                ("appointment-type".into(), "token".into()),
                ("status".into(), "token".into()),
                ("_count".into(), "number".into()),
            ]
        );
        let documentation = slot
            .documentation
            .as_ref()
            .and_then(|d| d.value.as_deref())
            .unwrap_or_default();
        assert!(documentation.contains("schedule.actor"), "{documentation}");
    }

    #[test]
    fn security_announces_the_smart_token_endpoint_only_when_required() {
        let off = capability_statement(BASE, "1.2.3", &Security::Off);
        assert!(off.rest[0].security.is_none());

        let token_url = "https://proxy.example.org/auth/token".to_owned();
        let smart = capability_statement(
            BASE,
            "1.2.3",
            &Security::Required {
                token_url: Some(token_url.clone()),
            },
        );
        let json: Value =
            serde_json::from_slice(&fhirbolt::json::to_vec(&smart, None).unwrap()).unwrap();
        let security = &json["rest"][0]["security"];
        assert_eq!(
            security["service"][0]["coding"][0]["code"], "SMART-on-FHIR",
            "{security}"
        );
        assert_eq!(security["extension"][0]["url"], OAUTH_URIS_EXTENSION);
        assert_eq!(
            security["extension"][0]["extension"][0],
            json!({"url": "token", "valueUri": token_url})
        );

        let keys_only =
            capability_statement(BASE, "1.2.3", &Security::Required { token_url: None });
        let security = keys_only.rest[0].security.as_ref().expect("security");
        assert!(security.service.is_empty());
        assert!(security.description.is_some());
    }

    #[test]
    fn content_depends_only_on_base_and_version() {
        assert_eq!(statement(), statement());
        assert_ne!(
            statement(),
            capability_statement(BASE, "1.2.4", &Security::Off)
        );
        assert_ne!(
            statement(),
            capability_statement("http://other/fhir", "1.2.3", &Security::Off)
        );
    }
}
