//! What a sandbox accepts and answers with: its client, token lifetime, cancellation statuses,
//! Get Slots' spelling, JWT bearer grant, external-id records and query batch size.

use std::time::Duration;

use secrecy::SecretString;

use crate::sobjects::ExternalIdRecords;
use crate::{DEFAULT_AUDIENCE, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

/// What the sandbox accepts as a client and how long its tokens live.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The only client id the token endpoint accepts.
    pub client_id: String,
    /// The only client secret the token endpoint accepts.
    pub client_secret: SecretString,
    /// How long an issued token is accepted. Counted from issue, not from last use (Salesforce's
    /// timeout is idle-based): the stricter rule makes a proxy that trusts a token too long fail.
    pub token_lifetime: Duration,
    /// The org's cancellation statuses: the only `status` values Cancel Appointment accepts,
    /// compared exactly, as a restricted picklist is. Salesforce's pages spell the word both
    /// `Canceled` and `Cancelled` (§2.2), so set this to what the proxy's mapping is meant to send.
    pub cancel_statuses: Vec<String>,
    /// Which documented spelling Get Slots answers its outer array under.
    pub slots_key: SlotsKey,
    /// The JWT bearer grant's key, user and audience; `None` refuses that grant as unsupported.
    pub jwt_bearer: Option<SandboxJwtBearer>,
    /// Records found by external id (`GET …/sobjects/{Object}/{Field}/{value}`); none by default.
    pub external_ids: Vec<ExternalIdRecords>,
    /// The most rows one query batch answers (Salesforce may answer fewer than asked for): set it
    /// low to make a few records span several batches. Default 2,000, Salesforce's maximum.
    pub query_batch_size: usize,
}

/// What the sandbox's JWT bearer grant accepts: the connected app's certificate stands here as
/// its public key.
#[derive(Debug, Clone)]
pub struct SandboxJwtBearer {
    /// The PEM public key assertions must verify with (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`).
    pub public_key_pem: String,
    /// The only username (`sub`) tokens are issued for; any other is "not approved".
    pub username: String,
    /// The only `aud` accepted.
    pub audience: String,
}

impl SandboxJwtBearer {
    /// Accepts assertions for `username` signed by the key of `public_key_pem`, with the
    /// production login URL as audience.
    pub fn new(public_key_pem: &str, username: &str) -> Self {
        SandboxJwtBearer {
            public_key_pem: public_key_pem.to_owned(),
            username: username.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
        }
    }
}

impl Default for SandboxSettings {
    /// `sandbox-client` / `sandbox-secret`, tokens living 2 h (Salesforce's usual session timeout),
    /// `Canceled` as the only cancellation status (the ServiceAppointment picklist's default
    /// spelling), Get Slots answering under `resourceSlotDetails`, no JWT bearer grant.
    fn default() -> Self {
        SandboxSettings {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
            token_lifetime: Duration::from_secs(2 * 60 * 60),
            cancel_statuses: vec!["Canceled".to_owned()],
            slots_key: SlotsKey::default(),
            jwt_bearer: None,
            external_ids: Vec::new(),
            query_batch_size: 2000,
        }
    }
}

/// The name of Get Slots' outer array. The documentation disagrees with itself (§2.3): the
/// property table says `resourceSlots`, the example and the Action page `resourceSlotDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotsKey {
    /// `resourceSlotDetails`, as in the documented example and the Action page.
    #[default]
    ResourceSlotDetails,
    /// `resourceSlots`, as in the Get Slots output property table.
    ResourceSlots,
}

impl SlotsKey {
    /// The JSON property name.
    pub fn field_name(self) -> &'static str {
        match self {
            SlotsKey::ResourceSlotDetails => "resourceSlotDetails",
            SlotsKey::ResourceSlots => "resourceSlots",
        }
    }
}
