//! The mapping file as written: serde models that refuse unknown keys, checked into [`Mapping`] by
//! its loader.

use super::*;

// ---- The file as written -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModel {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) defaults: DefaultsModel,
    #[serde(default)]
    pub(super) participants: ParticipantsModel,
    #[serde(default)]
    pub(super) ids: IdsModel,
    #[serde(default)]
    pub(super) codes: CodesModel,
    #[serde(default)]
    pub(super) work_types: WorkTypesModel,
    #[serde(default)]
    pub(super) slots: SlotsModel,
    #[serde(default)]
    pub(super) dates: DatesModel,
    #[serde(default)]
    pub(super) response: ResponseModel,
    #[serde(default)]
    pub(super) cancel: CancelModel,
    #[serde(default)]
    pub(super) read: ReadModel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadModel {
    #[serde(default)]
    pub(super) appointments: ReadableAppointments,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelModel {
    pub(super) status: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultsModel {
    pub(super) source_system: Option<Spanned<String>>,
    pub(super) time_zone: Option<Spanned<String>>,
    pub(super) channel_id: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ParticipantsModel {
    pub(super) kinds: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    pub(super) other_actors: OtherActors,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdsModel {
    pub(super) passthrough: Option<bool>,
    #[serde(default)]
    pub(super) table: Vec<Spanned<IdEntryModel>>,
    #[serde(default)]
    pub(super) lookup: Vec<Spanned<LookupRuleModel>>,
    pub(super) lookup_cache: Option<Spanned<LookupCacheModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupRuleModel {
    pub(super) r#type: Option<Spanned<String>>,
    pub(super) identifier_system: Option<Spanned<String>>,
    pub(super) object: Spanned<String>,
    pub(super) external_id_field: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupCacheModel {
    pub(super) found_ttl_secs: Option<Spanned<u64>>,
    pub(super) not_found_ttl_secs: Option<Spanned<u64>>,
    pub(super) max_entries: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdEntryModel {
    pub(super) reference: Option<String>,
    pub(super) identifier: Option<String>,
    pub(super) salesforce_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CodesModel {
    #[serde(default)]
    pub(super) send: SendCodes,
    pub(super) service_category: Option<Spanned<CodeRuleModel>>,
    pub(super) service_type: Option<Spanned<CodeRuleModel>>,
    pub(super) appointment_type: Option<Spanned<CodeRuleModel>>,
    pub(super) specialty: Option<Spanned<CodeRuleModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CodeRuleModel {
    pub(super) systems: Vec<String>,
    #[serde(default)]
    pub(super) unmapped: UnmappedCode,
    #[serde(default)]
    pub(super) translate: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkTypesModel {
    pub(super) default: Option<Spanned<String>>,
    pub(super) default_channel_id: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) rule: Vec<Spanned<WorkTypeRuleModel>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkTypeRuleModel {
    pub(super) element: CodedElement,
    pub(super) system: String,
    pub(super) code: String,
    pub(super) work_type_id: String,
    pub(super) channel_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlotsModel {
    #[serde(default)]
    pub(super) reference: SlotReferenceStyle,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatesModel {
    #[serde(default)]
    pub(super) end_from_duration: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResponseModel {
    pub(super) identifier_system: Option<String>,
    pub(super) status: Option<BTreeMap<String, Spanned<String>>>,
    pub(super) status_category: Option<BTreeMap<String, Spanned<String>>>,
    pub(super) default_status: Option<Spanned<String>>,
}
