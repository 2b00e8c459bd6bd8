//! The FHIR interactions the proxy serves, named once: what a route does, which resource type it
//! touches and which SMART permission (`c`, `r`, `u`, `d`, `s`) it needs. Authorization, the audit
//! trail and the metrics all speak of requests in these terms, so they agree on the names.

/// One kind of FHIR interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `GET [base]/metadata`.
    Capabilities,
    /// `POST [base]/Appointment`: book.
    Create,
    /// `GET [base]/Appointment/{id}`: the appointment as Salesforce holds it now.
    Read,
    /// `GET [base]/Appointment?…`, `POST [base]/Appointment/_search`: appointments in Salesforce.
    Search,
    /// `PUT [base]/Appointment/{id}`: reschedule, or cancel by status; `PUT
    /// [base]/Appointment?identifier=…`: the same, conditionally.
    Update,
    /// `PATCH [base]/Appointment/{id}`: cancel by patch.
    Patch,
    /// `POST [base]/Appointment/$validate`: a dry run.
    Validate,
    /// `GET|POST [base]/Appointment/$find`: proposed appointments from free slots.
    Find,
    /// `GET [base]/Slot`: free slots.
    SlotSearch,
    /// `POST [base]`: a batch or transaction Bundle; each entry is its own interaction.
    Bundle,
}

/// A SMART v2 permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `c`: create.
    Create,
    /// `r`: read.
    Read,
    /// `u`: update and patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search.
    Search,
}

impl Permission {
    /// The v2 scope letter.
    pub fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
        }
    }
}

impl Interaction {
    /// Every interaction, for metrics that list them all.
    pub const ALL: [Interaction; 10] = [
        Interaction::Capabilities,
        Interaction::Create,
        Interaction::Read,
        Interaction::Search,
        Interaction::Update,
        Interaction::Patch,
        Interaction::Validate,
        Interaction::Find,
        Interaction::SlotSearch,
        Interaction::Bundle,
    ];

    /// A stable lower-case name for logs, audit lines and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Interaction::Capabilities => "capabilities",
            Interaction::Create => "create",
            Interaction::Read => "read",
            Interaction::Search => "search-type",
            Interaction::Update => "update",
            Interaction::Patch => "patch",
            Interaction::Validate => "validate",
            Interaction::Find => "find",
            Interaction::SlotSearch => "search-slot",
            Interaction::Bundle => "bundle",
        }
    }

    /// The resource type a scope must cover, and the permission it must grant; `None` for
    /// interactions that need no resource scope (`metadata` is open; a Bundle is authorized entry
    /// by entry).
    ///
    /// `$validate` needs `c`: it answers whether a create would be accepted, which is the create
    /// right's business. `$find` is a search over Appointments.
    pub fn requirement(self) -> Option<(&'static str, Permission)> {
        match self {
            Interaction::Capabilities | Interaction::Bundle => None,
            Interaction::Create | Interaction::Validate => {
                Some(("Appointment", Permission::Create))
            }
            Interaction::Update | Interaction::Patch => Some(("Appointment", Permission::Update)),
            Interaction::Read => Some(("Appointment", Permission::Read)),
            Interaction::Find | Interaction::Search => Some(("Appointment", Permission::Search)),
            Interaction::SlotSearch => Some(("Slot", Permission::Search)),
        }
    }

    /// The interaction one Bundle entry asks for, from its `request.method` and `request.url`
    /// (relative, e.g. `Appointment/123`). `None` for entries the proxy does not serve.
    pub fn from_entry(method: &str, url: &str) -> Option<Interaction> {
        let path = url.split('?').next().unwrap_or(url).trim_start_matches('/');
        let mut segments = path.split('/');
        let (kind, id, extra) = (segments.next(), segments.next(), segments.next());
        let interaction = match (method, kind, id, extra) {
            ("POST", Some("Appointment"), None, None) => Interaction::Create,
            ("POST", Some("Appointment"), Some("$validate"), None) => Interaction::Validate,
            ("GET" | "POST", Some("Appointment"), Some("$find"), None) => Interaction::Find,
            ("PUT", Some("Appointment"), Some(_), None) => Interaction::Update,
            ("PATCH", Some("Appointment"), Some(_), None) => Interaction::Patch,
            ("GET", Some("Slot"), None, None) => Interaction::SlotSearch,
            _ => return None,
        };
        Some(interaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_entries_are_named_by_method_and_url() {
        assert_eq!(
            Interaction::from_entry("POST", "Appointment"),
            Some(Interaction::Create)
        );
        assert_eq!(
            Interaction::from_entry("PUT", "Appointment/abc"),
            Some(Interaction::Update)
        );
        assert_eq!(
            Interaction::from_entry("PATCH", "/Appointment/abc"),
            Some(Interaction::Patch)
        );
        assert_eq!(
            Interaction::from_entry("GET", "Slot?start=ge2026-01-01"),
            Some(Interaction::SlotSearch)
        );
        assert_eq!(Interaction::from_entry("DELETE", "Appointment/abc"), None);
        assert_eq!(Interaction::from_entry("POST", "Patient"), None);
    }

    #[test]
    fn every_interaction_has_a_distinct_name() {
        let names: std::collections::HashSet<_> =
            Interaction::ALL.iter().map(|i| i.name()).collect();
        assert_eq!(names.len(), Interaction::ALL.len());
    }
}
