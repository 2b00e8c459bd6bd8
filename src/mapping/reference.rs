//! Reading FHIR references: the type and id a reference names, the type of an actor, and the
//! identifier system that carries Salesforce's slot ids.

use fhirbolt::model::r4::types::Reference;

/// The identifier system under which each Slot carries Salesforce's `slotId` as it was sent.
pub const SLOT_IDENTIFIER_SYSTEM: &str = "urn:salesforce:slotId";

/// The literal reference of an actor, if it has one.
pub fn reference(actor: &Reference) -> Option<&str> {
    actor.reference.as_ref()?.value.as_deref()
}

/// `Type/id`, or the last two segments of an absolute URL, split into type and id.
pub fn type_and_id(reference: &str) -> Option<(&str, &str)> {
    let reference = reference.split(['?', '#']).next().unwrap_or(reference);
    let reference = match reference.find("/_history/") {
        Some(at) => &reference[..at],
        None => reference,
    };
    let mut segments = reference.rsplit('/');
    let id = segments.next()?;
    let fhir_type = segments.next()?;
    let plausible_type = fhir_type.starts_with(|c: char| c.is_ascii_uppercase())
        && fhir_type.chars().all(|c| c.is_ascii_alphabetic());
    (plausible_type && !id.is_empty()).then_some((fhir_type, id))
}

/// The resource type an actor names: its `type`, else its reference's.
pub fn actor_type(actor: &Reference) -> Option<String> {
    if let Some(t) = actor.r#type.as_ref().and_then(|t| t.value.as_deref()) {
        // `type` is a URI; for core resources it is the bare name or its canonical URL.
        return Some(t.rsplit('/').next().unwrap_or(t).to_owned());
    }
    reference(actor)
        .and_then(type_and_id)
        .map(|(t, _)| t.to_owned())
}
