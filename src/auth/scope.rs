//! SMART `system/` scopes: parsing v1 (`system/Appointment.read|write|*`) and v2
//! (`system/Appointment.cruds` and its subsets, `system/*.rs`) into one model, intersecting what
//! was asked for with what a client may have, and answering whether a set of scopes grants an
//! [`Interaction`](crate::interaction::Interaction)'s requirement.
//!
//! Only `system/` scopes mean anything to this proxy (it serves backend systems, never a user or
//! a patient context). A v2 scope with search-parameter constraints (`system/Appointment.rs?status=booked`)
//! grants nothing here: the proxy does not evaluate the constraint, and treating it as the
//! unconstrained scope would grant more than the authorization server meant.

use std::fmt;

use crate::interaction::Permission;

const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;
const ALL: u8 = C | R | U | D | S;
const LETTERS: [(char, u8); 5] = [('c', C), ('r', R), ('u', U), ('d', D), ('s', S)];

/// One `system/` scope: a resource type (or `*`) and the v2 permissions it grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `None` for `*` (every resource type).
    resource: Option<String>,
    /// Bits of `c`, `r`, `u`, `d`, `s`.
    permissions: u8,
}

/// Why a scope string grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not `system/…`: `user/`, `patient/`, `openid`, `launch` and the like.
    #[error("only system/ scopes are understood (e.g. system/Appointment.cu)")]
    NotSystem,
    /// `system/Resource.rs?param=value`: constraints are not evaluated, so the scope grants nothing.
    #[error(
        "scopes with search-parameter constraints (…?param=value) are not supported and grant nothing"
    )]
    Constrained,
    /// Anything else that does not read as `system/<Type|*>.<read|write|*|cruds subset>`.
    #[error(
        "must be system/<ResourceType or *>.<read, write, * (v1) or letters of cruds in that order (v2)>"
    )]
    Malformed,
}

impl Scope {
    /// Parses one scope in v1 or v2 syntax.
    ///
    /// # Errors
    /// A [`ScopeError`] saying why the scope grants nothing.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let rest = text.strip_prefix("system/").ok_or(ScopeError::NotSystem)?;
        if rest.contains('?') {
            return Err(ScopeError::Constrained);
        }
        let (resource, permissions) = rest.split_once('.').ok_or(ScopeError::Malformed)?;
        let resource = match resource {
            "*" => None,
            name if is_resource_type(name) => Some(name.to_owned()),
            _ => return Err(ScopeError::Malformed),
        };
        let permissions = match permissions {
            // v1, mapped as SMART v2 says: read = rs, write = cud, * = cruds.
            "read" => R | S,
            "write" => C | U | D,
            "*" => ALL,
            letters => parse_letters(letters).ok_or(ScopeError::Malformed)?,
        };
        Ok(Scope {
            resource,
            permissions,
        })
    }

    /// Whether this scope grants `permission` on `resource_type`.
    pub fn grants(&self, resource_type: &str, permission: Permission) -> bool {
        self.resource.as_deref().is_none_or(|r| r == resource_type)
            && self.permissions & bit(permission) != 0
    }

    /// What both scopes grant, if anything.
    fn intersect(&self, other: &Scope) -> Option<Scope> {
        let resource = match (&self.resource, &other.resource) {
            (None, r) | (r, None) => r.clone(),
            (Some(a), Some(b)) if a == b => Some(a.clone()),
            _ => return None,
        };
        let permissions = self.permissions & other.permissions;
        (permissions != 0).then_some(Scope {
            resource,
            permissions,
        })
    }

    /// Whether everything this scope grants is granted by `other`.
    fn within(&self, other: &Scope) -> bool {
        self.intersect(other).as_ref() == Some(self)
    }
}

impl fmt::Display for Scope {
    /// The v2 form, e.g. `system/Appointment.cu`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "system/{}.", self.resource.as_deref().unwrap_or("*"))?;
        for (letter, b) in LETTERS {
            if self.permissions & b != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// A set of scopes: what a client may have, or what a token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a space-separated scope string, keeping what grants something and dropping the rest
    /// (unknown or constrained scopes in a request are ignored, as OAuth lets a server grant less).
    pub fn parse_lenient(text: &str) -> Scopes {
        Scopes(
            text.split_ascii_whitespace()
                .filter_map(|s| Scope::parse(s).ok())
                .collect(),
        )
    }

    /// Parses a list where every scope must be understood (a client's configured scopes).
    ///
    /// # Errors
    /// The first scope that grants nothing, with the reason.
    pub fn parse_strict<'a>(
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Result<Scopes, (String, ScopeError)> {
        scopes
            .into_iter()
            .map(|s| Scope::parse(s).map_err(|e| (s.to_owned(), e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Scopes)
    }

    /// Whether any scope grants `permission` on `resource_type`.
    pub fn grants(&self, resource_type: &str, permission: Permission) -> bool {
        self.0.iter().any(|s| s.grants(resource_type, permission))
    }

    /// What both sets grant.
    pub fn intersect(&self, other: &Scopes) -> Scopes {
        let mut out: Vec<Scope> = Vec::new();
        for a in &self.0 {
            for b in &other.0 {
                if let Some(both) = a.intersect(b)
                    && !out.contains(&both)
                {
                    out.push(both);
                }
            }
        }
        Scopes(out)
    }

    /// Whether the set grants nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes in v2 syntax.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

/// The `scope` a token response names: each requested scope the client may fully have as it was
/// written (so v1 clients read their own syntax back), else the part it may have in v2 syntax.
pub fn granted_scope_string(requested: &str, allowed: &Scopes) -> (Scopes, String) {
    let mut granted = Vec::new();
    let mut words: Vec<String> = Vec::new();
    for word in requested.split_ascii_whitespace() {
        let Ok(scope) = Scope::parse(word) else {
            continue;
        };
        if allowed.0.iter().any(|a| scope.within(a)) {
            if !words.iter().any(|w| w == word) {
                words.push(word.to_owned());
            }
            granted.push(scope);
            continue;
        }
        for part in Scopes(vec![scope]).intersect(allowed).0 {
            let text = part.to_string();
            if !words.contains(&text) {
                words.push(text);
            }
            granted.push(part);
        }
    }
    (Scopes(granted), words.join(" "))
}

fn bit(permission: Permission) -> u8 {
    match permission {
        Permission::Create => C,
        Permission::Read => R,
        Permission::Update => U,
        Permission::Delete => D,
        Permission::Search => S,
    }
}

/// v2 letters: a non-empty subsequence of `cruds`, in that order, each at most once.
fn parse_letters(letters: &str) -> Option<u8> {
    let mut bits = 0;
    let mut next = 0;
    for ch in letters.chars() {
        let position = LETTERS[next..].iter().position(|(l, _)| *l == ch)? + next;
        bits |= LETTERS[position].1;
        next = position + 1;
    }
    (bits != 0).then_some(bits)
}

/// A FHIR resource type name: an upper-case letter, then letters and digits.
fn is_resource_type(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    fn letters(scope: &str) -> String {
        Scope::parse(scope).unwrap().to_string()
    }

    #[test]
    fn v1_scopes_map_to_their_v2_letters() {
        assert_eq!(letters("system/Appointment.read"), "system/Appointment.rs");
        assert_eq!(
            letters("system/Appointment.write"),
            "system/Appointment.cud"
        );
        assert_eq!(letters("system/Appointment.*"), "system/Appointment.cruds");
        assert_eq!(letters("system/*.read"), "system/*.rs");
    }

    #[test]
    fn v2_scopes_are_subsets_of_cruds_in_order() {
        assert_eq!(letters("system/Appointment.cu"), "system/Appointment.cu");
        assert_eq!(letters("system/*.rs"), "system/*.rs");
        assert_eq!(letters("system/Slot.s"), "system/Slot.s");
        for bad in [
            "system/Appointment.uc",
            "system/Appointment.cc",
            "system/Appointment.x",
            "system/Appointment.",
            "system/Appointment",
            "system/appointment.c",
            "system/.c",
        ] {
            assert_eq!(Scope::parse(bad), Err(ScopeError::Malformed), "{bad}");
        }
    }

    #[test]
    fn other_contexts_and_constraints_grant_nothing() {
        assert_eq!(
            Scope::parse("user/Appointment.read"),
            Err(ScopeError::NotSystem)
        );
        assert_eq!(Scope::parse("patient/*.rs"), Err(ScopeError::NotSystem));
        assert_eq!(Scope::parse("openid"), Err(ScopeError::NotSystem));
        assert_eq!(
            Scope::parse("system/Appointment.rs?status=booked"),
            Err(ScopeError::Constrained)
        );
        let s = Scopes::parse_lenient("system/Appointment.rs?status=booked user/Appointment.c");
        assert!(s.is_empty());
    }

    #[test]
    fn grants_follow_resource_and_letters() {
        let s = Scopes::parse_lenient("system/Appointment.cu system/Slot.read");
        assert!(s.grants("Appointment", Create));
        assert!(s.grants("Appointment", Update));
        assert!(!s.grants("Appointment", Search));
        assert!(s.grants("Slot", Search));
        assert!(!s.grants("Slot", Create));
        assert!(!s.grants("Patient", Read));
        let any = Scopes::parse_lenient("system/*.c");
        assert!(any.grants("Appointment", Create));
        assert!(!any.grants("Appointment", Update));
    }

    #[test]
    fn intersection_keeps_only_what_both_grant() {
        let client = Scopes::parse_lenient("system/Appointment.cu system/Slot.s");
        let token = Scopes::parse_lenient("system/*.*");
        let both = token.intersect(&client);
        assert!(both.grants("Appointment", Create));
        assert!(!both.grants("Appointment", Delete));
        assert!(both.grants("Slot", Search));
        assert!(!both.grants("Patient", Read));
        let none = Scopes::parse_lenient("system/Patient.*").intersect(&client);
        assert!(none.is_empty());
    }

    #[test]
    fn the_granted_string_echoes_covered_scopes_and_narrows_the_rest() {
        let client = Scopes::parse_lenient("system/Appointment.cud system/Slot.rs");
        let (granted, text) = granted_scope_string(
            "system/Appointment.write system/Slot.* system/Patient.read junk",
            &client,
        );
        assert_eq!(text, "system/Appointment.write system/Slot.rs");
        assert!(granted.grants("Appointment", Create));
        assert!(granted.grants("Slot", Search));
        assert!(!granted.grants("Slot", Create));
        let (granted, text) = granted_scope_string("system/Patient.read", &client);
        assert!(granted.is_empty());
        assert_eq!(text, "");
    }

    #[test]
    fn strict_parsing_names_the_bad_scope() {
        let e = Scopes::parse_strict(["system/Appointment.c", "system/Appointment.rs?x=1"])
            .unwrap_err();
        assert_eq!(e.0, "system/Appointment.rs?x=1");
        assert_eq!(e.1, ScopeError::Constrained);
    }
}
