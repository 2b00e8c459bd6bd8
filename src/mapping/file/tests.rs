use super::*;

fn refused(text: &str) -> MappingFileError {
    Mapping::from_toml(text, "test.toml").expect_err("mapping should be refused")
}

#[test]
fn empty_file_gives_documented_defaults() {
    let m = Mapping::from_toml("", "empty.toml").unwrap();
    assert_eq!(m.kinds["Location"], "Facility");
    assert_eq!(m.kinds["PractitionerRole"], "Practitioner");
    assert!(m.passthrough);
    assert_eq!(m.statuses["scheduled"], "booked");
    assert_eq!(m.default_status, "booked");
    assert!(m.codes.is_empty());
}

#[test]
fn bad_files_are_refused_with_line_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        ("[defaults]\nsource_sistem = \"x\"\n", 2, "unknown field"),
        (
            "\n[defaults]\nchannel_id = \"0eFxx\"\n",
            3,
            "not a Salesforce id",
        ),
        (
            "[participants.kinds]\nPatient = \"Patient\"\nLocation = \"Site\"\n",
            3,
            "not a Salesforce reference kind",
        ),
        (
            "[participants.kinds]\nOrganization = \"Facility\"\n",
            2,
            "not an Appointment actor type",
        ),
        (
            "[[ids.table]]\nreference = \"Patient/1\"\nsalesforce_id = \"001xx000012udqQxxQ\"\n\
             [[ids.table]]\nreference = \"Patient/1\"\nsalesforce_id = \"001xx000012udqQxxQ\"\n",
            4,
            "duplicate entry",
        ),
        (
            "[[ids.table]]\nreference = \"Patient/1\"\nidentifier = \"a|b\"\nsalesforce_id = \"001xx000012udqQxxQ\"\n",
            1,
            "exactly one of reference or identifier",
        ),
        (
            "[[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxxG000000Axq6xxC\"\n",
            1,
            "work_type_id is not a Salesforce id",
        ),
        (
            "[[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxx000000Axq6xxC\"\n\
             [[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxx000000Axq6xxD\"\n",
            6,
            "duplicate rule",
        ),
        (
            "[[work_types.rule]]\nelement = \"reasonCode\"\nsystem = \"s\"\ncode = \"c\"\nwork_type_id = \"08qxx000000Axq6xxC\"\n",
            2,
            "unknown variant",
        ),
        (
            "[codes.service_type]\nsystems = []\n",
            1,
            "systems is empty",
        ),
        (
            "[codes.service_type]\nsystems = [\"s\"]\nunmapped = \"ignore\"\n",
            3,
            "unknown variant",
        ),
        (
            "[response.status]\nscheduled = \"done\"\n",
            2,
            "not an R4 Appointment status",
        ),
        ("[defaults]\ntime_zone = \"Eastern\"\n", 2, "IANA time zone"),
        ("not toml at all", 1, ""),
    ];
    for (text, line, reason) in cases {
        let err = refused(text);
        assert_eq!(err.line, Some(*line), "line for {text:?}: {err}");
        assert!(err.reason.contains(reason), "reason for {text:?}: {err}");
        assert!(err.to_string().starts_with("mapping file test.toml, line"));
    }
}

#[test]
fn lookup_rules_and_cache_settings_are_read() {
    let m = Mapping::from_toml(
        "[[ids.lookup]]\ntype = \"Patient\"\nobject = \"Account\"\n\
         external_id_field = \"EHR_Patient_Id__c\"\n\
         [[ids.lookup]]\nidentifier_system = \"urn:npi\"\n\
         object = \"HealthCloudGA__EhrPractitioner__c\"\nexternal_id_field = \"NPI__c\"\n\
         [ids.lookup_cache]\nfound_ttl_secs = 600\nnot_found_ttl_secs = 0\nmax_entries = 5\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        m.lookups,
        vec![
            LookupRule {
                source: LookupSource::Reference {
                    fhir_type: "Patient".into()
                },
                object: "Account".into(),
                external_id_field: "EHR_Patient_Id__c".into(),
            },
            LookupRule {
                source: LookupSource::Identifier {
                    system: "urn:npi".into()
                },
                object: "HealthCloudGA__EhrPractitioner__c".into(),
                external_id_field: "NPI__c".into(),
            },
        ]
    );
    assert_eq!(
        m.lookup_cache,
        LookupCacheSettings {
            found_ttl: Duration::from_secs(600),
            not_found_ttl: Duration::ZERO,
            max_entries: 5,
        }
    );
    let defaults = Mapping::from_toml("", "t").unwrap();
    assert!(defaults.lookups.is_empty());
    assert_eq!(defaults.lookup_cache, LookupCacheSettings::default());
}

#[test]
fn bad_lookup_rules_are_refused_with_line_and_reason() {
    let rule = |body: &str| format!("[defaults]\n\n[[ids.lookup]]\n{body}");
    let cases: Vec<(String, usize, &str)> = vec![
        (
            rule("type = \"Patient\"\nobject = \"Account\"\nexternal_id_field = \"MRN c\"\n"),
            6,
            "external_id_field is not a Salesforce API name",
        ),
        (
            rule("type = \"Patient\"\nobject = \"Acc/ount\"\nexternal_id_field = \"MRN__c\"\n"),
            5,
            "object is not a Salesforce API name",
        ),
        (
            rule("type = \"Patient\"\nobject = \"Account\"\nexternal_id_field = \"MRN___c\"\n"),
            6,
            "not a Salesforce API name",
        ),
        (
            rule("type = \"Organization\"\nobject = \"Account\"\nexternal_id_field = \"MRN__c\"\n"),
            4,
            "not an Appointment actor type",
        ),
        (
            rule(
                "type = \"RelatedPerson\"\nobject = \"Account\"\nexternal_id_field = \"MRN__c\"\n",
            ),
            4,
            "no Salesforce reference kind",
        ),
        (
            rule("object = \"Account\"\nexternal_id_field = \"MRN__c\"\n"),
            3,
            "exactly one of type or identifier_system",
        ),
        (
            rule(
                "type = \"Patient\"\nobject = \"Account\"\nexternal_id_field = \"MRN__c\"\n\
                  [[ids.lookup]]\ntype = \"Patient\"\nobject = \"Contact\"\nexternal_id_field = \"MRN__c\"\n",
            ),
            7,
            "a second rule for type Patient",
        ),
        (
            rule("type = \"Patient\"\nobject = \"Account\"\nexternal_id = \"MRN__c\"\n"),
            6,
            "unknown field",
        ),
        (
            "[ids.lookup_cache]\nmax_entries = 0\n".to_owned(),
            2,
            "at least 1",
        ),
        (
            "[ids.lookup_cache]\nfound_ttl_secs = 99999999\n".to_owned(),
            2,
            "30 days",
        ),
        (
            "[ids.lookup_cache]\nfound_ttl_secs = -1\n".to_owned(),
            2,
            "",
        ),
    ];
    for (text, line, reason) in cases {
        let err = refused(&text);
        assert_eq!(err.line, Some(line), "line for {text:?}: {err}");
        assert!(err.reason.contains(reason), "reason for {text:?}: {err}");
    }
}

#[test]
fn api_names_are_salesforce_shaped() {
    for good in [
        "Account",
        "EHR_Patient_Id__c",
        "HealthCloudGA__EhrPatient__c",
        "MRN__pc",
        "Name",
    ] {
        assert!(is_api_name(good), "{good}");
    }
    for bad in [
        "",
        "1Account",
        "_Account",
        "Account_",
        "MRN___c",
        "MRN__q",
        "a__b__c__c",
        "Acc ount",
        "Accoünt",
        "MRN__c/x",
    ] {
        assert!(!is_api_name(bad), "{bad}");
    }
}

#[test]
fn status_table_is_case_insensitive_and_overridable() {
    let m = Mapping::from_toml(
        "[response]\ndefault_status = \"pending\"\n[response.status]\nScheduled = \"pending\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(m.statuses["scheduled"], "pending");
    assert_eq!(m.default_status, "pending");
}
