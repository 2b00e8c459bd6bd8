//! Which Salesforce id an actor has, and which external-id lookups an Appointment (or a Slot
//! search) needs before it can be mapped.
//!
//! An actor's id comes from the first of these that applies:
//! 1. the static table, by reference (`ids.table` `reference`);
//! 2. a lookup rule for the reference's type (`[[ids.lookup]]` `type`): the reference's id is
//!    looked up, and that answer decides: a type with a rule is never passed through, because the
//!    rule says what that type's ids are (an EHR id can look like a Salesforce id: 15 digits);
//! 3. passthrough of a reference id that already is a Salesforce id (`ids.passthrough`);
//! 4. the static table, by identifier (`ids.table` `identifier`);
//! 5. a lookup rule for the identifier's system (`[[ids.lookup]]` `identifier_system`).
//!
//! Static entries come first because they name one value exactly. Pure: [`needed_lookups`] lists
//! the keys, something outside `mapping` answers them, and the mapping functions read the
//! answers from a [`ResolvedIds`].

use fhirbolt::model::r4::resources::Appointment;
use fhirbolt::model::r4::types::Reference;

use super::file::{LookupRule, LookupSource, Mapping};
use super::reference::{actor_type, reference, type_and_id};
use crate::fhir::outcome::{Issue, IssueCode, Severity};
use crate::salesforce::id::is_salesforce_id;
pub use crate::salesforce::lookup::{LookupAnswer, LookupKey, ResolvedIds};

/// How an actor gets its Salesforce id.
pub(crate) enum Plan<'m> {
    /// Known without asking Salesforce (static table or passthrough).
    Known(String),
    /// To be looked up under this rule.
    Lookup {
        /// What to ask.
        key: LookupKey,
        /// The rule that says so.
        rule: &'m LookupRule,
    },
    /// No way to tell.
    Unknown,
}

/// Decides how `actor`, of FHIR type `fhir_type`, gets its id (see the module docs for the order).
pub(crate) fn plan<'m>(actor: &Reference, fhir_type: &str, mapping: &'m Mapping) -> Plan<'m> {
    if let Some((t, id)) = reference(actor).and_then(type_and_id) {
        if let Some(found) = mapping.references.get(&format!("{t}/{id}")) {
            return Plan::Known(found.clone());
        }
        if t == fhir_type {
            let rule = mapping.lookups.iter().find(
                |r| matches!(&r.source, LookupSource::Reference { fhir_type: rt } if rt == t),
            );
            if let Some(rule) = rule {
                return Plan::Lookup {
                    key: key(rule, id),
                    rule,
                };
            }
            if mapping.passthrough && is_salesforce_id(id) {
                return Plan::Known(id.to_owned());
            }
        }
    }
    let Some(identifier) = actor.identifier.as_deref() else {
        return Plan::Unknown;
    };
    let (Some(system), Some(value)) = (
        identifier.system.as_ref().and_then(|s| s.value.as_deref()),
        identifier.value.as_ref().and_then(|v| v.value.as_deref()),
    ) else {
        return Plan::Unknown;
    };
    if let Some(found) = mapping.identifiers.get(&format!("{system}|{value}")) {
        return Plan::Known(found.clone());
    }
    let rule = mapping
        .lookups
        .iter()
        .find(|r| matches!(&r.source, LookupSource::Identifier { system: rs } if rs == system));
    match rule {
        Some(rule) if !value.is_empty() => Plan::Lookup {
            key: key(rule, value),
            rule,
        },
        _ => Plan::Unknown,
    }
}

fn key(rule: &LookupRule, value: &str) -> LookupKey {
    LookupKey {
        object: rule.object.clone(),
        field: rule.external_id_field.clone(),
        value: value.to_owned(),
    }
}

/// Why an actor has no Salesforce id.
pub(crate) enum Unresolved<'m> {
    /// No table entry, no rule, not a Salesforce id.
    NoEntry,
    /// The lookup found no record.
    NotFound(&'m LookupRule),
    /// The lookup found several records.
    Ambiguous(&'m LookupRule),
    /// The lookup was not made (`$validate`, which asks Salesforce nothing).
    Pending(&'m LookupRule),
}

/// The actor's Salesforce id, from the mapping and the lookup answers.
pub(crate) fn salesforce_id_with<'m>(
    actor: &Reference,
    fhir_type: &str,
    mapping: &'m Mapping,
    resolved: &ResolvedIds,
) -> Result<String, Unresolved<'m>> {
    match plan(actor, fhir_type, mapping) {
        Plan::Known(id) => Ok(id),
        Plan::Unknown => Err(Unresolved::NoEntry),
        Plan::Lookup { key, rule } => match resolved.get(&key) {
            Some(LookupAnswer::Found(id)) => Ok(id.clone()),
            Some(LookupAnswer::NotFound) => Err(Unresolved::NotFound(rule)),
            Some(LookupAnswer::Ambiguous) => Err(Unresolved::Ambiguous(rule)),
            None => Err(Unresolved::Pending(rule)),
        },
    }
}

impl Unresolved<'_> {
    /// The issue for a lookup that did not give an id, about `what` (e.g. "the Patient reference
    /// at Appointment.participant[0].actor"), or `None` for [`Unresolved::NoEntry`], whose text
    /// each caller words itself. Names the rule's object and field, never the value looked for.
    pub(crate) fn lookup_issue(&self, what: &str, expression: Option<&str>) -> Option<Issue> {
        let (severity, code, text) = match self {
            Unresolved::NoEntry => return None,
            Unresolved::NotFound(rule) => (
                Severity::Error,
                IssueCode::NotFound,
                format!(
                    "{what} has no Salesforce id: no {} record has its {} in {} (the mapping's \
                     ids.lookup rule)",
                    rule.object,
                    source_word(rule),
                    rule.external_id_field
                ),
            ),
            Unresolved::Ambiguous(rule) => (
                Severity::Error,
                IssueCode::MultipleMatches,
                format!(
                    "{what} is ambiguous: several {} records have its {} in {}, so none can be \
                     chosen (the field is not unique in Salesforce)",
                    rule.object,
                    source_word(rule),
                    rule.external_id_field
                ),
            ),
            Unresolved::Pending(rule) => (
                Severity::Information,
                IssueCode::Informational,
                format!(
                    "{what} gets its Salesforce id when booked, by looking up the {} record \
                     whose {} holds its {}; that was not done here (no call to Salesforce)",
                    rule.object,
                    rule.external_id_field,
                    source_word(rule)
                ),
            ),
        };
        Some(Issue {
            severity,
            code,
            diagnostics: text,
            expression: expression.map(str::to_owned),
        })
    }
}

fn source_word(rule: &LookupRule) -> String {
    match &rule.source {
        LookupSource::Reference { .. } => "id".to_owned(),
        LookupSource::Identifier { system } => format!("identifier of system {system}"),
    }
}

/// Whether an issue only says a lookup was not made (see [`Unresolved::Pending`]).
pub fn is_pending_lookup(issue: &Issue) -> bool {
    issue.severity == Severity::Information && issue.code == IssueCode::Informational
}

/// The external-id lookups mapping `appointment` needs: one key per participant whose id comes
/// from an `[[ids.lookup]]` rule, each key once, in participant order. Participants the mapping
/// leaves out (declined, type-only, kinds it does not book) need none.
pub fn needed_lookups(appointment: &Appointment, mapping: &Mapping) -> Vec<LookupKey> {
    let mut keys = Vec::new();
    for participant in &appointment.participant {
        if participant.status.value.as_deref() == Some("declined") {
            continue;
        }
        let Some(actor) = participant.actor.as_deref() else {
            continue;
        };
        let Some(fhir_type) = actor_type(actor) else {
            continue;
        };
        if !mapping.kinds.contains_key(&fhir_type) {
            continue;
        }
        if let Plan::Lookup { key, .. } = plan(actor, &fhir_type, mapping) {
            push_once(&mut keys, key);
        }
    }
    keys
}

/// The lookups for references given as text (Slot search `schedule.actor`, `$find`
/// `practitioner`).
pub(crate) fn needed_for_references<'a>(
    references: impl IntoIterator<Item = &'a String>,
    mapping: &Mapping,
) -> Vec<LookupKey> {
    let mut keys = Vec::new();
    for value in references {
        let Some((fhir_type, _)) = type_and_id(value) else {
            continue;
        };
        let actor = Reference {
            reference: Some(value.as_str().into()),
            ..Default::default()
        };
        if let Plan::Lookup { key, .. } = plan(&actor, fhir_type, mapping) {
            push_once(&mut keys, key);
        }
    }
    keys
}

fn push_once(keys: &mut Vec<LookupKey>, key: LookupKey) {
    if !keys.contains(&key) {
        keys.push(key);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const PATIENT: &str = "001xx000012udqQxxQ";
    const MRN: &str = "http://hospital.example.org/mrn";

    fn mapping(extra: &str) -> Mapping {
        Mapping::from_toml(extra, "test.toml").unwrap()
    }

    fn appointment(participants: Value) -> Appointment {
        fhirbolt::json::from_json_value(
            json!({"resourceType": "Appointment", "status": "booked", "participant": participants}),
            None,
        )
        .unwrap()
    }

    fn values(keys: &[LookupKey]) -> Vec<(&str, &str, &str)> {
        keys.iter()
            .map(|k| (k.object.as_str(), k.field.as_str(), k.value.as_str()))
            .collect()
    }

    const RULES: &str = "[[ids.lookup]]\ntype = \"Patient\"\nobject = \"Account\"\n\
                         external_id_field = \"EHR_Patient_Id__c\"\n\
                         [[ids.lookup]]\nidentifier_system = \"http://hospital.example.org/mrn\"\n\
                         object = \"Account\"\nexternal_id_field = \"MRN__c\"\n";

    #[test]
    fn lists_one_key_per_looked_up_participant() {
        let a = appointment(json!([
            {"actor": {"reference": "Patient/p-1"}, "status": "accepted"},
            {"actor": {"reference": "https://ehr.example/fhir/Patient/p-1"}, "status": "accepted"},
            {"actor": {"type": "Practitioner", "identifier": {"system": MRN, "value": "42"}}, "status": "accepted"},
            {"actor": {"reference": "Patient/p-2"}, "status": "declined"},
            {"actor": {"reference": "RelatedPerson/r-1", "identifier": {"system": MRN, "value": "7"}}, "status": "accepted"},
            {"actor": {"reference": "Location/001xx000012udqhxxA"}, "status": "accepted"}
        ]));
        assert_eq!(
            values(&needed_lookups(&a, &mapping(RULES))),
            vec![
                ("Account", "EHR_Patient_Id__c", "p-1"),
                ("Account", "MRN__c", "42")
            ]
        );
        assert!(needed_lookups(&a, &mapping("")).is_empty());
    }

    #[test]
    fn static_table_comes_first_and_a_rule_beats_passthrough() {
        let m = mapping(&format!(
            "{RULES}[[ids.table]]\nreference = \"Patient/p-1\"\nsalesforce_id = \"{PATIENT}\"\n\
             [[ids.table]]\nidentifier = \"{MRN}|42\"\nsalesforce_id = \"{PATIENT}\"\n"
        ));
        let a = appointment(json!([
            {"actor": {"reference": "Patient/p-1"}, "status": "accepted"},
            {"actor": {"type": "Patient", "identifier": {"system": MRN, "value": "42"}}, "status": "accepted"},
            // Shaped like a Salesforce id, but Patient ids are external ids under the rule.
            {"actor": {"reference": "Patient/123456789012345"}, "status": "accepted"}
        ]));
        assert_eq!(
            values(&needed_lookups(&a, &m)),
            vec![("Account", "EHR_Patient_Id__c", "123456789012345")]
        );
    }

    #[test]
    fn reference_rule_decides_before_the_identifier() {
        let a = appointment(json!([{
            "actor": {"reference": "Patient/p-9", "identifier": {"system": MRN, "value": "42"}},
            "status": "accepted"
        }]));
        assert_eq!(
            values(&needed_lookups(&a, &mapping(RULES))),
            vec![("Account", "EHR_Patient_Id__c", "p-9")]
        );
    }

    #[test]
    fn answers_become_ids_or_issues_that_name_the_rule_not_the_value() {
        let m = mapping(RULES);
        let actor = Reference {
            reference: Some("Patient/MRN-SECRET".into()),
            ..Default::default()
        };
        let key = LookupKey {
            object: "Account".into(),
            field: "EHR_Patient_Id__c".into(),
            value: "MRN-SECRET".into(),
        };
        let with = |answer: Option<LookupAnswer>| {
            let resolved: ResolvedIds = answer.map(|a| (key.clone(), a)).into_iter().collect();
            match salesforce_id_with(&actor, "Patient", &m, &resolved) {
                Ok(id) => Err(id),
                Err(u) => Ok(u.lookup_issue("the Patient", Some("X")).unwrap()),
            }
        };
        assert_eq!(
            with(Some(LookupAnswer::Found(PATIENT.into()))),
            Err(PATIENT.to_owned())
        );
        for (answer, code) in [
            (Some(LookupAnswer::NotFound), IssueCode::NotFound),
            (Some(LookupAnswer::Ambiguous), IssueCode::MultipleMatches),
            (None, IssueCode::Informational),
        ] {
            let issue = with(answer).unwrap();
            assert_eq!(issue.code, code);
            assert_eq!(issue.expression.as_deref(), Some("X"));
            assert!(issue.diagnostics.contains("Account"), "{issue:?}");
            assert!(issue.diagnostics.contains("EHR_Patient_Id__c"), "{issue:?}");
            assert!(!issue.diagnostics.contains("MRN-SECRET"), "{issue:?}");
        }
    }
}
