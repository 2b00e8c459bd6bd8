//! The JSON reader: one checked pass over the text (duplicate keys, nesting, numbers), then the
//! Appointment from the checked value.

use super::*;

// ---------------------------------------------------------------------------------------------
// JSON

pub(super) fn parse_json(text: &str) -> Result<Appointment, Issue> {
    let value = read_json(text, "Appointment")?;
    json_to_appointment(value)
}

/// Reads a JSON resource in one pass: the value, built while every R4 JSON rule fhirbolt does not
/// enforce is checked (unique property names, no `null` property values, no empty arrays or
/// objects, property names that look like element names) and the `resourceType` is the one
/// expected. `root` is the FHIRPath of the resource (`Appointment`, `Bundle`, `Parameters`).
///
/// The first problem is reported, in the order the separate passes of earlier versions found
/// them: a syntax error anywhere, then a duplicate property, then the resource type, then the
/// first shape problem in document order.
///
/// # Errors
/// A `structure` issue (with the element's FHIRPath for shape problems), or `invalid` for
/// another resource type.
pub(crate) fn read_json(text: &str, root: &str) -> Result<Value, Issue> {
    let mut state = JsonState::strict(root);
    // serde_json's recursion limit (128) bounds the depth, before anything recurses further.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = CheckedJson { state: &mut state }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| json_syntax_issue(&e))?;
    if let Some(duplicate) = state.duplicate {
        return Err(duplicate);
    }
    let Value::Object(object) = &value else {
        return Err(structure(
            "the JSON body must be an object (a FHIR resource)",
        ));
    };
    // R4 json.html: parsers cannot assume resourceType comes first, so look it up by name.
    match object.get("resourceType") {
        None => {
            return Err(structure(format!(
                "the resource has no `resourceType` property; expected \"resourceType\": \"{root}\""
            )));
        }
        Some(Value::String(kind)) if kind == root => {}
        Some(Value::String(kind)) if root == "Appointment" => {
            return Err(wrong_resource_type(kind));
        }
        Some(Value::String(_)) => {
            return Err(Issue::general(
                IssueCode::Invalid,
                format!("expected a {root}"),
            ));
        }
        Some(_) => return Err(structure("`resourceType` must be a string")),
    }
    match state.shape {
        Some(issue) => Err(issue),
        None => Ok(value),
    }
}

/// Reads a Bundle's JSON in one pass, its frame as it is and each entry's `resource` checked as
/// [`read_json`] checks a resource: the Bundle, and each entry resource's first problem (its
/// expression relative to the resource, `Appointment…`), by entry index, so that one bad entry of
/// a batch fails alone.
///
/// # Errors
/// A `structure` issue for a body that is not JSON.
pub(crate) fn read_json_bundle(text: &str) -> Result<(Value, Vec<(usize, Issue)>), Issue> {
    let mut state = JsonState {
        strict: false,
        ..JsonState::strict("Bundle")
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = CheckedJson { state: &mut state }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| json_syntax_issue(&e))?;
    Ok((value, state.entry_issues))
}

/// What [`CheckedJson`] learns on its way: where it is, and the first problems of each kind.
pub(super) struct JsonState {
    /// The FHIRPath of the value being read.
    path: String,
    /// The first shape problem.
    shape: Option<Issue>,
    /// The first repeated property name.
    duplicate: Option<Issue>,
    /// Whether the rules apply here (not in a Bundle's frame, where only entry resources are
    /// checked).
    strict: bool,
    /// In a Bundle's frame: each entry resource's first problem, by entry index.
    entry_issues: Vec<(usize, Issue)>,
}

impl JsonState {
    fn strict(root: &str) -> JsonState {
        JsonState {
            path: String::from(root),
            shape: None,
            duplicate: None,
            strict: true,
            entry_issues: Vec::new(),
        }
    }

    fn shape_issue(&mut self, path: &str, diagnostics: String) {
        if self.strict && self.shape.is_none() {
            self.shape = Some(Issue::at(IssueCode::Structure, path, diagnostics));
        }
    }

    /// The index of the entry whose `resource` starts here, in a Bundle's frame
    /// (`Bundle.entry[3]` → 3).
    fn entry_at(&self, key: &str) -> Option<usize> {
        if self.strict || key != "resource" {
            return None;
        }
        self.path
            .strip_prefix("Bundle.entry[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    }
}

/// serde_json's name for an arbitrary-precision number, which arrives as a one-entry map (fhirbolt
/// turns on `arbitrary_precision` so that decimals keep their exact digits).
pub(super) const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Builds a [`Value`] while checking it (see [`read_json`]).
pub(super) struct CheckedJson<'s> {
    state: &'s mut JsonState,
}

impl<'de> DeserializeSeed<'de> for CheckedJson<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CheckedJson<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let base = self.state.path.len();
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            use std::fmt::Write as _;
            let _ = write!(self.state.path, "[{}]", items.len());
            let item = seq.next_element_seed(CheckedJson {
                state: &mut *self.state,
            })?;
            self.state.path.truncate(base);
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let state = self.state;
        let base = state.path.len();
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == JSON_NUMBER_TOKEN && object.is_empty() {
                let digits: String = map.next_value()?;
                return digits
                    .parse::<serde_json::Number>()
                    .map(Value::Number)
                    .map_err(serde::de::Error::custom);
            }
            if let Some(index) = state.entry_at(&key) {
                // An entry's resource is checked on its own, relative to itself.
                let mut entry = JsonState::strict("Appointment");
                let value = map.next_value_seed(CheckedJson { state: &mut entry })?;
                if let Some(issue) = entry.duplicate.or(entry.shape) {
                    state.entry_issues.push((index, issue));
                }
                object.insert(key, value);
                continue;
            }
            if state.strict && object.contains_key(&key) && state.duplicate.is_none() {
                let name = if is_element_name(&key) {
                    format!("`{key}`")
                } else {
                    "name".to_string()
                };
                state.duplicate = Some(structure(format!(
                    "the JSON has a duplicate property {name}; R4 JSON property names SHALL be \
                     unique"
                )));
            }
            if !is_element_name(&key) {
                let at = state.path[..base].to_owned();
                state.shape_issue(&at, "a property name is not a FHIR element name".to_owned());
            }
            state.path.push('.');
            state.path.push_str(&key);
            let value = map.next_value_seed(CheckedJson { state: &mut *state })?;
            match &value {
                Value::Null => {
                    let at = state.path.clone();
                    state.shape_issue(
                        &at,
                        format!(
                            "`{key}` is null; R4 JSON leaves an element out instead of sending null"
                        ),
                    );
                }
                Value::Array(items) if items.is_empty() => {
                    let at = state.path.clone();
                    state.shape_issue(
                        &at,
                        format!(
                            "`{key}` is an empty array; R4 JSON leaves an element out instead of \
                             sending an empty array"
                        ),
                    );
                }
                _ => {}
            }
            state.path.truncate(base);
            object.insert(key, value);
        }
        if object.is_empty() {
            let at = state.path[..base].to_owned();
            state.shape_issue(
                &at,
                "an empty object; R4 JSON objects are never empty".to_owned(),
            );
        }
        Ok(Value::Object(object))
    }
}

/// fhirbolt's half of JSON parsing, on a parser thread: a value [`read_json`] checked.
pub(crate) fn json_to_appointment(mut value: Value) -> Result<Appointment, Issue> {
    // fhirbolt refuses a resource whose required `status` (or a participant's) is missing, with a
    // message that cannot say which one; R4's cardinality is a rule the rules module reports with
    // the element's FHIRPath (a 422). So a placeholder lets parsing finish and is removed again.
    fill_missing_statuses(&mut value);
    let appointment = guarded(move || {
        fhirbolt::json::from_json_value::<Appointment>(value, strict())
            .map_err(|e| does_not_match(&e.to_string()))
    })?;
    Ok(clear_missing_statuses(appointment))
}

/// Removes the [`MISSING_STATUS`] placeholders again, leaving the statuses without a value.
pub(super) fn clear_missing_statuses(mut appointment: Appointment) -> Appointment {
    let clear = |code: &mut fhirbolt::model::r4::types::Code| {
        if code.value.as_deref() == Some(MISSING_STATUS) {
            code.value = None;
        }
    };
    clear(&mut appointment.status);
    for participant in &mut appointment.participant {
        clear(&mut participant.status);
    }
    appointment
}

/// Stands in for a missing required `status` while fhirbolt parses; never leaves this module.
/// The private-use character keeps it from looking like any valid code (a sender who sends it
/// anyway just gets "status is required"), and is legal in XML, where the same placeholder is
/// inserted (see [`StatusPlaceholders`]).
pub(super) const MISSING_STATUS: &str = "\u{E000}missing-status";

pub(super) fn fill_missing_statuses(value: &mut Value) {
    fn fill(object: &mut serde_json::Map<String, Value>) {
        // `_status` alone (an extension without a value) also lacks the value itself.
        if !object.contains_key("status") {
            object.insert(
                "status".to_owned(),
                Value::String(MISSING_STATUS.to_owned()),
            );
        }
    }
    let Value::Object(appointment) = value else {
        return;
    };
    fill(appointment);
    if let Some(Value::Array(participants)) = appointment.get_mut("participant") {
        for participant in participants {
            if let Value::Object(p) = participant {
                fill(p);
            }
        }
    }
}

pub(super) fn json_syntax_issue(error: &serde_json::Error) -> Issue {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", error.line(), error.column());
    // serde_json's own text is not passed on: some of its messages quote the input.
    let diagnostics = match error.classify() {
        Category::Eof => format!("the JSON body ends unexpectedly ({at})"),
        // A fixed phrase from serde_json, matched (not echoed) to give a clearer message.
        Category::Syntax if error.to_string().starts_with("recursion limit exceeded") => {
            format!("the JSON is nested too deeply ({at})")
        }
        _ => format!("the body is not valid JSON ({at})"),
    };
    structure(diagnostics)
}

pub(crate) fn wrong_resource_type(kind: &str) -> Issue {
    // A resource type name is not patient data, but only echo something that looks like one.
    let named =
        !kind.is_empty() && kind.len() <= 64 && kind.bytes().all(|b| b.is_ascii_alphabetic());
    let got = if named {
        format!("a {kind}")
    } else {
        "an unknown resource type".to_string()
    };
    Issue::general(
        IssueCode::Invalid,
        format!("expected an Appointment, got {got}"),
    )
}

/// What a FHIR element (or `_element`) name looks like; used to decide what may be echoed.
pub(super) fn is_element_name(name: &str) -> bool {
    let name = name.strip_prefix('_').unwrap_or(name);
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}
