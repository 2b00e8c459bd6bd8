use super::*;
use crate::salesforce::token::Advice;

#[test]
fn each_failure_gets_its_status_and_issue_code() {
    let cases: Vec<(ProxyError, u16, &str)> = vec![
        (ProxyError::PayloadTooLarge { limit: 10 }, 413, "too-long"),
        (ProxyError::HeadersTooLarge { limit: 10 }, 431, "too-long"),
        (
            ProxyError::RequestTimeout {
                secs: 1,
                may_have_acted: true,
            },
            504,
            "timeout",
        ),
        (
            ProxyError::RequestTimeout {
                secs: 1,
                may_have_acted: false,
            },
            503,
            "transient",
        ),
        (ProxyError::Overloaded { max: 2 }, 503, "transient"),
        (
            ProxyError::ReloadRefused {
                generation: 1,
                problems: vec!["x".into()],
            },
            422,
            "invalid",
        ),
        (ProxyError::NothingToReload, 409, "not-supported"),
        (ProxyError::NotFound, 404, "not-supported"),
        (ProxyError::MethodNotAllowed, 405, "not-supported"),
        (
            ProxyError::Salesforce(SalesforceError::Rejected {
                messages: vec!["x".into()],
            }),
            422,
            "business-rule",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Unsuccessful {
                status: None,
                messages: vec![],
            }),
            422,
            "business-rule",
        ),
        (
            ProxyError::Salesforce(SalesforceError::SessionRefused),
            502,
            "exception",
        ),
        (
            ProxyError::Unparseable(Issue::general(IssueCode::Transient, "no parser")),
            503,
            "transient",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Throttled {
                retry_after_secs: 30,
            }),
            503,
            "throttled",
        ),
        (
            ProxyError::Salesforce(SalesforceError::BackingOff {
                retry_after_secs: 7,
            }),
            503,
            "throttled",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Busy {
                max_in_flight: 20,
                retry_after_secs: 5,
            }),
            503,
            "throttled",
        ),
        (
            ProxyError::Salesforce(SalesforceError::RowLocked),
            503,
            "transient",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Server { status: 500 }),
            502,
            "exception",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Unreachable),
            502,
            "transient",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Timeout),
            504,
            "timeout",
        ),
        (
            ProxyError::Salesforce(SalesforceError::Token(TokenError::Refused {
                error: "invalid_client".into(),
                advice: Advice::ClientCredentials,
            })),
            502,
            "exception",
        ),
    ];
    for (error, status, code) in cases {
        let o = error.outcome();
        assert_eq!(o.status.as_u16(), status, "{error:?}");
        assert_eq!(o.issues[0].code.as_str(), code, "{error:?}");
    }
    let o = ProxyError::Salesforce(SalesforceError::Throttled {
        retry_after_secs: 30,
    })
    .outcome();
    assert_eq!(o.retry_after, Some(30));
}

#[test]
fn salesforce_messages_are_passed_on() {
    let o = ProxyError::Salesforce(SalesforceError::Unsuccessful {
        status: Some("Rejected".into()),
        messages: vec!["Slot is no longer available".into()],
    })
    .outcome();
    assert!(
        o.issues[0]
            .diagnostics
            .contains("Slot is no longer available")
    );
}

#[test]
fn token_errors_say_which_setting_to_check() {
    let o = ProxyError::Salesforce(SalesforceError::Token(TokenError::Refused {
        error: "invalid_client".into(),
        advice: Advice::ClientCredentials,
    }))
    .outcome();
    assert!(o.issues[0].diagnostics.contains("salesforce.client_id"));
    assert!(o.issues[0].diagnostics.contains("invalid_client"));
    let o = ProxyError::Salesforce(SalesforceError::Token(TokenError::Refused {
        error: "invalid_grant".into(),
        advice: Advice::Audience,
    }))
    .outcome();
    assert_eq!(o.status.as_u16(), 502);
    assert!(o.issues[0].diagnostics.contains("salesforce.audience"));
    let o = ProxyError::Salesforce(SalesforceError::Token(TokenError::Signing)).outcome();
    assert_eq!(o.status.as_u16(), 502);
    assert!(
        o.issues[0]
            .diagnostics
            .contains("salesforce.private_key_file")
    );
}

#[test]
fn lookup_failures_say_nothing_was_booked() {
    let cases: Vec<(SalesforceError, u16, &str)> = vec![
        (SalesforceError::Timeout, 504, "timeout"),
        (SalesforceError::Unreachable, 502, "transient"),
        (
            SalesforceError::Rejected {
                messages: vec!["INVALID_FIELD: No such column".into()],
            },
            502,
            "exception",
        ),
        (SalesforceError::Server { status: 500 }, 502, "exception"),
    ];
    for (error, status, code) in cases {
        let o = ProxyError::Lookup(error.clone()).outcome();
        assert_eq!(o.status.as_u16(), status, "{error:?}");
        assert_eq!(o.issues[0].code.as_str(), code, "{error:?}");
        assert!(
            o.issues[0].diagnostics.contains("nothing was booked"),
            "{:?}",
            o.issues
        );
    }
    let o = ProxyError::Lookup(SalesforceError::Throttled {
        retry_after_secs: 30,
    })
    .outcome();
    assert_eq!((o.status.as_u16(), o.retry_after), (503, Some(30)));
}
