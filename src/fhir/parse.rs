//! (in progress)
#[cfg(test)]
mod scratch {
    use fhirbolt::model::r4::resources::Appointment;
    use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
    fn cfg() -> Option<DeserializationConfig> { Some(DeserializationConfig { mode: DeserializationMode::Strict }) }
    fn j(s: &str) {
        let v: serde_json::Value = match serde_json::from_str(s) { Ok(v) => v, Err(e) => { println!("JSONERR {e} {:?}", e.classify()); return; } };
        let r = std::panic::catch_unwind(|| fhirbolt::json::from_json_value::<Appointment>(v, cfg()));
        match r { Ok(Ok(a)) => println!("OK {:?} start={:?}", a.status.value, a.start), Ok(Err(e)) => println!("ERR {e}"), Err(_) => println!("PANIC") }
    }
    fn x(s: &str) {
        let r = std::panic::catch_unwind(|| fhirbolt::xml::from_slice::<Appointment>(s.as_bytes(), cfg()));
        match r { Ok(Ok(a)) => println!("OK {:?}", a.status.value), Ok(Err(e)) => println!("ERR {e}"), Err(_) => println!("PANIC") }
    }
    fn silent_x(b: &[u8]) -> &'static str {
        match std::panic::catch_unwind(|| fhirbolt::xml::from_slice::<Appointment>(b, cfg())) { Ok(Ok(_)) => "ok", Ok(Err(_)) => "err", Err(_) => "PANIC" }
    }
    fn silent_j(b: &[u8]) -> &'static str {
        let v: serde_json::Value = match serde_json::from_slice(b) { Ok(v) => v, Err(_) => return "jsonerr" };
        match std::panic::catch_unwind(|| fhirbolt::json::from_json_value::<Appointment>(v, cfg())) { Ok(Ok(_)) => "ok", Ok(Err(_)) => "err", Err(_) => "PANIC" }
    }
    #[test]
    fn fuzz() {
        std::panic::set_hook(Box::new(|_| {}));
        for f in ["appointment-example.xml", "appointment-example-request.xml", "appointment-example2doctors.xml"] {
            let b = std::fs::read(format!("tests/fixtures/fhir/{f}")).unwrap();
            for n in 0..b.len() { if silent_x(&b[..n]) == "PANIC" { println!("XML TRUNC PANIC {f} {n}: {:?}", String::from_utf8_lossy(&b[n.saturating_sub(40)..n])); } }
            for i in 0..b.len() { for x in [b'<', b'>', b'/', b'"', b'&', b' ', b'a', 0u8, b':', b'='] { let mut c = b.clone(); c[i] = x; if silent_x(&c) == "PANIC" { println!("XML FLIP PANIC {f} {i} {:?}", x as char); } } }
        }
        for f in ["appointment-example.json", "appointment-example-request.json"] {
            let b = std::fs::read(format!("tests/fixtures/fhir/{f}")).unwrap();
            for n in 0..b.len() { if silent_j(&b[..n]) == "PANIC" { println!("JSON TRUNC PANIC {f} {n}"); } }
            for i in 0..b.len() { for x in [b'{', b'}', b'[', b']', b'"', b'0', b'n', b':', b','] { let mut c = b.clone(); c[i] = x; if silent_j(&c) == "PANIC" { println!("JSON FLIP PANIC {f} {i} {:?}: {}", x as char, String::from_utf8_lossy(&c[i.saturating_sub(30)..(i+30).min(c.len())])); } } }
        }
        let _ = std::panic::take_hook();
    }
    #[test]
    fn probe() {
        let d: usize = match std::env::var("DEPTH") { Ok(v) => v.parse().unwrap(), Err(_) => return };
        let kind = std::env::var("KIND").unwrap();
        let (open, close, jopen, jclose) = match kind.as_str() {
            "ext" => (r#"<extension url="u">"#, "</extension>", r#"[{"url":"u","extension":"#, "}]"),
            "assigner" => ("<identifier><assigner>", "</assigner></identifier>", r#"[{"assigner":{"identifier":"#, "}}]"),
            "contained" => ("<contained><Patient>", "</Patient></contained>", r#"[{"resourceType":"Patient","contained":"#, "}]"),
            _ => panic!(),
        };
        let fmt = std::env::var("FMT").unwrap();
        let r = std::thread::Builder::new().stack_size(std::env::var("STACK").map(|v| v.parse::<usize>().unwrap() << 20).unwrap_or(2 << 20)).spawn(move || {
            if fmt == "xml" {
                let mut x = String::from(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/>"#);
                let wrap = kind != "assigner";
                if !wrap { x.push_str("<participant><actor>"); }
                for _ in 0..d { x.push_str(open); }
                for _ in 0..d { x.push_str(close); }
                if !wrap { x.push_str("</actor><status value=\"accepted\"/></participant>"); } else { x.push_str(r#"<participant><status value="accepted"/></participant>"#); }
                x.push_str("</Appointment>");
                silent_x(x.as_bytes())
            } else {
                let mut s = String::from(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}],"extension":"#);
                if kind == "contained" { s = String::from(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}],"contained":"#); }
                if kind == "assigner" { s = String::from(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","actor":{"identifier":"#); }
                for _ in 0..d { s.push_str(jopen); }
                s.push_str(if kind != "assigner" {"[]"} else {"{}"});
                for _ in 0..d { s.push_str(jclose); }
                s.push_str(if kind != "assigner" {"}"} else {"}}]}"});
                silent_j(s.as_bytes())
            }
        }).unwrap().join().unwrap();
        println!("RESULT {r}");
    }
    #[test]
    fn deep() {
        for d in [16usize, 32, 48, 60, 64, 100] {
            let mut s = String::from(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}],"extension":"#);
            for _ in 0..d { s.push_str(r#"[{"url":"u","extension":"#); }
            s.push_str("[]");
            for _ in 0..d { s.push_str("}]"); }
            s.push('}');
            println!("json ext depth {d}: {}", silent_j(s.as_bytes()));
            let mut x = String::from(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><status value="accepted"/></participant>"#);
            for _ in 0..d { x.push_str(r#"<extension url="u">"#); }
            for _ in 0..d { x.push_str("</extension>"); }
            x.push_str("</Appointment>");
            println!("xml ext depth {d}: {}", silent_x(x.as_bytes()));
        }
    }
    #[test]
    fn explore() {
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":null,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"","participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","description":{"x":"Smith"},"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","priority":"Smith","participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","priority":123456789012,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","priority":-5,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","priority":1.5,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":12345,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":true,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":["a"],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","foo":1,"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","bar":"Smith"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":{"status":"accepted"}}"#);
        j(r#"{"resourceType":"Appointment","status":"booked"}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[null]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[{}]}"#);
        j(r#"{"resourceType":"Appointment","_status":{"extension":[{"url":"http://x","valueString":"Smith"}]},"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","start":"John Smith","participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","text":{"status":"generated","div":"Smith"},"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Smith"}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","name":[{"family":5}]}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","contained":[{}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","extension":[{"valueString":"x"}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","extension":[{"url":"u","valueString":"x","valueInteger":3}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","extension":[{"url":"u","valueSmith":"x"}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","extension":[{"url":"u","valueDecimal":"Smith"}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","extension":[{"url":"u","valueDecimal":1e400}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","extension":[{"url":"u","valueBoolean":"Smith"}],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","identifier":[{"value":"123-45-6789"}],"_identifier":[null],"participant":[{"status":"accepted"}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","_status":{"id":"x"}}]}"#);
        j(r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}],"_participant":5}"#);
        j(r#"{"resourceType":"Patient","status":"booked","participant":[{"status":"accepted"}]}"#);
        j(r#"{"status":"booked","participant":[{"status":"accepted"}]}"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<?xml version="1.0" encoding="utf-8"?><Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="a b"><status value="booked"/><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><priority value="Smith"/><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><status value="accepted"/><foo value="Smith"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><status value="accepted"/></participant><status value="x"/></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status/><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"><x/></status><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant/></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/></Appointment>"#);
        x(r#"<Patient xmlns="http://hl7.org/fhir"><status value="booked"/></Patient>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Smith</p></div></text><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"></div></text><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><text><status value="generated"/><div/></text><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><contained><Patient><name><family value="Smith"/></name></Patient></contained><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><contained></contained><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><contained><Smith/></contained><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><extension url="u"><valueString value="a"/><valueString value="b"/></extension><participant><status value="accepted"/></participant></Appointment>"#);
        x(r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><status value="accepted"/></participant></Appointment><Appointment xmlns="http://hl7.org/fhir"/>"#);
    }
}
