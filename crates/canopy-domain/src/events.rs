//! Typed history events (HI1): what each kind of event records, written once.
//!
//! [`Event`] has one variant per [`EventKind`], each holding a struct with the
//! fields of that kind. An event serialises to its `details` object alone
//! (the kind, instant and initiator are columns of their own), with ids as
//! UUID strings and instants as RFC 3339 in UTC (or `null`), as the history
//! has always shown them.
//!
//! Every struct and field carries its meaning for a reader of the history;
//! [`documented_fields`] and [`markdown_table`] turn those into the table of
//! `docs/history-events.md`, so the table cannot drift from the code.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::history::EventKind;

// ------------------------------------------------------------------ field types

/// How a field's value reads in the history's JSON, for the documentation.
pub trait FieldType {
    /// The JSON type, e.g. `string`, `UUID`, `list of string`.
    fn describe() -> String;
    /// The type when present, for a field that may be left out: an optional
    /// value's own type.
    fn present() -> String {
        Self::describe()
    }
    /// The fields of an object, or of the objects of a list.
    fn fields() -> &'static [FieldDoc] {
        &[]
    }
}

/// What [`FieldType::describe`] says of an instant.
pub const INSTANT: &str = "instant (RFC 3339, UTC)";

macro_rules! plain_types {
    ($($ty:ty => $name:expr,)*) => {
        $(impl FieldType for $ty {
            fn describe() -> String {
                $name.to_owned()
            }
        })*
    };
}

plain_types! {
    String => "string",
    Uuid => "UUID",
    bool => "boolean",
    u32 => "integer",
    u64 => "integer",
    f64 => "number",
    OffsetDateTime => INSTANT,
    Date => "date (YYYY-MM-DD)",
    Value => "any JSON value",
    Map<String, Value> => "object",
    BTreeMap<String, String> => "object of strings",
}

impl<T: FieldType> FieldType for Option<T> {
    fn describe() -> String {
        format!("{}, or null", T::describe())
    }
    fn present() -> String {
        T::describe()
    }
    fn fields() -> &'static [FieldDoc] {
        T::fields()
    }
}

impl<T: FieldType> FieldType for Vec<T> {
    fn describe() -> String {
        format!("list of {}", T::describe())
    }
    fn fields() -> &'static [FieldDoc] {
        T::fields()
    }
}

/// One field of an event's details, as documented.
#[derive(Debug, Clone, Copy)]
pub struct FieldDoc {
    /// The Rust name (`r#type` for `type`).
    ident: &'static str,
    /// The lines of its `///` documentation.
    doc: &'static [&'static str],
    /// Its `#[serde(...)]` attributes, as written.
    serde: &'static str,
    ty: fn() -> String,
    present: fn() -> String,
    nested: fn() -> &'static [FieldDoc],
}

impl FieldDoc {
    /// The key in the details object.
    pub fn name(&self) -> &'static str {
        self.ident.trim_start_matches("r#")
    }

    /// What the field means, from its documentation.
    pub fn meaning(&self) -> String {
        join_doc(self.doc)
    }

    /// Its JSON type.
    pub fn json_type(&self) -> String {
        if self.omitted_when_absent() { format!("{}, or left out", (self.present)()) } else { (self.ty)() }
    }

    /// The fields of its object (or of the objects of its list).
    pub fn nested(&self) -> &'static [FieldDoc] {
        (self.nested)()
    }

    /// Its fields stand in the enclosing object (`#[serde(flatten)]`).
    pub fn flattened(&self) -> bool {
        self.serde.contains("flatten")
    }

    /// The key is left out rather than written as null or false.
    pub fn omitted_when_absent(&self) -> bool {
        self.serde.contains("skip_serializing_if")
    }

    /// Whether its value is an instant (checked by the tests to serialise as RFC 3339).
    pub fn is_instant(&self) -> bool {
        (self.present)() == INSTANT
    }
}

fn join_doc(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Instants as the history writes them: RFC 3339 in UTC, or null when the
/// instant cannot be written so.
mod instant {
    use serde::{Serialize, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    fn text(t: OffsetDateTime) -> Option<String> {
        t.to_offset(UtcOffset::UTC).format(&Rfc3339).ok()
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        text(*t).serialize(s)
    }

    pub mod option {
        use serde::{Serialize, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            t.and_then(super::text).serialize(s)
        }
    }
}

/// Dates as `YYYY-MM-DD`.
mod date {
    use serde::{Serialize, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        d.format(&format).unwrap_or_default().serialize(s)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A struct of event details: its fields documented once, for the
/// serialiser and for the table.
macro_rules! details {
    ($(
        $(#[doc = $when:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde($($attr:tt)*)])*
                pub $field:ident: $ty:ty,
            )*
        }
    )*) => {$(
        $(#[doc = $when])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                $(#[serde($($attr)*)])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// Its fields as the history shows them, with what they mean.
            pub const FIELDS: &'static [FieldDoc] = &[$(FieldDoc {
                ident: stringify!($field),
                doc: &[$($doc),*],
                serde: stringify!($($($attr)*)*),
                ty: <$ty as FieldType>::describe,
                present: <$ty as FieldType>::present,
                nested: <$ty as FieldType>::fields,
            }),*];
            /// When it is recorded, or what it holds.
            pub const WHEN: &'static [&'static str] = &[$($when),*];
        }

        impl FieldType for $name {
            fn describe() -> String {
                "object".to_owned()
            }
            fn fields() -> &'static [FieldDoc] {
                Self::FIELDS
            }
        }
    )*};
}

/// The typed event of every kind: `Event::X(X)` for each `EventKind::X`.
macro_rules! events {
    ($($kind:ident,)*) => {
        /// A history event's details, typed: one variant per [`EventKind`].
        /// Serialises to the details object alone.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Event {
            $($kind($kind),)*
        }

        impl Event {
            /// The kind this event is stored and filtered as.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Self::$kind(_) => EventKind::$kind,)*
                }
            }
        }

        $(impl From<$kind> for Event {
            fn from(e: $kind) -> Self {
                Self::$kind(e)
            }
        })*

        /// The fields an event of `kind` records in its details, documented.
        pub fn documented_fields(kind: EventKind) -> &'static [FieldDoc] {
            match kind {
                $(EventKind::$kind => $kind::FIELDS,)*
            }
        }

        /// When an event of `kind` is recorded.
        pub fn recorded_when(kind: EventKind) -> String {
            match kind {
                $(EventKind::$kind => join_doc($kind::WHEN),)*
            }
        }
    };
}

events! {
    WorkspaceCreated,
    WorkspaceRenamed,
    WorkspaceDeleted,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    InvitationSent,
    InvitationAccepted,
    InvitationWithdrawn,
    ProjectCreated,
    ProjectUpdated,
    ProjectDeleted,
    BindingCreated,
    BindingChanged,
    BindingRemoved,
    BindingExpired,
    RoleRequestCreated,
    RoleRequestApprovalGiven,
    RoleRequestApproved,
    RoleRequestDeclined,
    RoleRequestVoid,
    FourEyeChanged,
    SettingsChanged,
    EmergencyAccessGranted,
    EmergencyRevocation,
    TagDefinitionCreated,
    TagDefinitionUpdated,
    TagDefinitionDeleted,
    PaymentMethodCreated,
    PaymentMethodUpdated,
    PaymentMethodDeleted,
    PaymentMethodSubstituted,
    ApiKeyCreated,
    ApiKeyDeleted,
    UserCreated,
    UserSignedUp,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    SessionsEnded,
    SignInThrottled,
    ScimChanged,
    IdentityLinked,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    ProjectRoleCreated,
    ProjectRoleUpdated,
    ProjectRoleDeleted,
    PlatformCreated,
    PlatformUpdated,
    PlatformDeleted,
    LandingZoneCreated,
    LandingZoneUpdated,
    LandingZoneDeleted,
    TenantCreated,
    TenantReplicationRequested,
    TenantReplicated,
    TenantReplicationFailed,
    TenantDriftRepaired,
    TenantDriftDetected,
    TenantDeletionRequested,
    TenantDeletionConfirmed,
    TenantDeletionDeclined,
    TenantDeleted,
    ProjectDeletionRequested,
    ProjectDeletionDeclined,
    HistoryChainCreated,
}

// ------------------------------------------------------------------ workspaces and members

details! {
    /// A workspace was created (its own chain's first event).
    pub struct WorkspaceCreated {
        /// The workspace's identifier.
        pub workspace: String,
        /// Its display name.
        pub display_name: String,
    }

    /// A workspace's display name changed.
    pub struct WorkspaceRenamed {
        /// The display name before.
        pub old: Named,
        /// The display name after.
        pub new: Named,
    }

    /// A display name, before or after a change.
    pub struct Named {
        /// The display name.
        pub display_name: String,
    }

    /// A workspace was deleted (its chain's last event; the chain is kept).
    pub struct WorkspaceDeleted {
        /// The workspace's identifier.
        pub workspace: String,
    }

    /// A user or group became a member of the workspace: added by a
    /// manager, as the creator of the workspace, or by an emergency grant.
    pub struct MemberAdded {
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The workspace role given: `workspace_owner`, `workspace_manager` or `workspace_member`.
        pub role: String,
        /// True when an emergency grant made the person a member (AD3).
        pub emergency: bool,
    }

    /// A member's workspace role changed, or a pending invitation's.
    pub struct MemberRoleChanged {
        /// `user:NAME`, `group:IDENTIFIER`, or `email:ADDRESS` for an invitation.
        pub subject: String,
        /// The workspace role before.
        pub old_role: String,
        /// The workspace role after.
        pub new_role: String,
    }

    /// A membership ended: the member was removed, their account or group
    /// was deleted, or an emergency revocation took it (WS6).
    pub struct MemberRemoved {
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The workspace role the member held.
        pub old_role: String,
        /// Why, e.g. `removed from workspace`, `account deleted`, `group deleted`, `emergency revocation`.
        pub reason: String,
    }

    /// Someone without an account was invited to the workspace by e-mail (WS3).
    pub struct InvitationSent {
        /// The invited address.
        pub email: String,
        /// The workspace role they get on signing in.
        pub role: String,
    }

    /// An invited person signed in and became a member (WS3).
    pub struct InvitationAccepted {
        /// The invited address.
        pub email: String,
        /// The username of the account that accepted it.
        pub user: String,
        /// The workspace role they hold now (the stronger of the invitation's and one held already).
        pub role: String,
        /// Who sent the invitation.
        pub invited_by: String,
    }

    /// A pending invitation was withdrawn.
    pub struct InvitationWithdrawn {
        /// The invited address.
        pub email: String,
        /// The workspace role the invitation offered.
        pub role: String,
    }
}

// ------------------------------------------------------------------ projects

details! {
    /// A project was created in the workspace.
    pub struct ProjectCreated {
        /// The project's identifier.
        pub project: String,
        /// Its display name.
        pub display_name: String,
        /// Its tags, as a JSON object of tag key to value.
        pub tags: Map<String, Value>,
    }

    /// A project's display name, payment methods or tags changed: one event
    /// per aspect changed, whose `old` and `new` hold only that aspect.
    pub struct ProjectUpdated {
        /// The project's identifier.
        pub project: String,
        /// The aspect before the change.
        pub old: ProjectAspect,
        /// The aspect after the change.
        pub new: ProjectAspect,
    }

    /// What a project update changed: exactly one of its display name, its
    /// payment methods or its tags is present.
    pub struct ProjectAspect {
        /// The display name; left out unless it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub display_name: Option<String>,
        /// Present when the payment methods changed.
        #[serde(flatten)]
        pub payment: Option<ProjectPayment>,
        /// The tags, as a JSON object of tag key to value; left out unless they changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tags: Option<Map<String, Value>>,
    }

    /// A project's payment methods (PM1, PM2).
    pub struct ProjectPayment {
        /// The payment method's id; null: none.
        pub payment_method: Option<Uuid>,
        /// The substitute payment method's id; null: none.
        pub substitute_payment_method: Option<Uuid>,
    }

    /// A project was deleted, with its bindings (DL1).
    pub struct ProjectDeleted {
        /// The project's identifier.
        pub project: String,
    }

    /// A project's deletion was requested: its tenants' deletions begin (DL1).
    pub struct ProjectDeletionRequested {
        /// The project's identifier.
        pub project: String,
        /// The platforms of the tenants to delete.
        pub tenants: Vec<String>,
    }

    /// A project's deletion ended with only declined tenants left: the
    /// project stays with them (DL5).
    pub struct ProjectDeletionDeclined {
        /// The project's identifier.
        pub project: String,
        /// The platforms of the tenants kept.
        pub kept_tenants: Vec<String>,
    }
}

// ------------------------------------------------------------------ bindings

details! {
    /// A user or group was bound to a project role (AC1, AC2), directly,
    /// through an approved request (FE2) or by an emergency grant (AD3).
    pub struct BindingCreated {
        /// The binding's id.
        pub binding: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// When the access ends; null: it does not.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
        /// Why the access is needed, as given.
        pub justification: Option<String>,
        /// True when an emergency grant made it (AD3).
        pub emergency: bool,
        /// The approved four-eye request that made it; null: made directly.
        pub request: Option<Uuid>,
    }

    /// A binding's role or expiration changed (AC5, AC7).
    pub struct BindingChanged {
        /// The binding's id.
        pub binding: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The role and expiration before.
        pub old: BindingTerms,
        /// The role and expiration after.
        pub new: BindingTerms,
        /// Why, as given with an emergency grant; null otherwise.
        pub justification: Option<String>,
        /// True when an emergency grant extended it (AD3).
        pub emergency: bool,
        /// The approved four-eye request that made the change; null: made directly.
        pub request: Option<Uuid>,
    }

    /// A binding's role and expiration.
    pub struct BindingTerms {
        /// The project role's identifier.
        pub role: String,
        /// When the access ends; null: it does not.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
    }

    /// A binding was removed (AC6): by a manager, through an approved
    /// request, with its subject's membership, account, group or project, by
    /// an emergency revocation, or replaced when it had expired.
    pub struct BindingRemoved {
        /// The binding's id.
        pub binding: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// When the access would have ended; null: it would not have.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
        /// Why, when something other than a manager's removal ended it, e.g.
        /// `expired binding replaced`, `removed from workspace`, `project deleted`,
        /// `emergency revocation`; null: a manager removed it.
        pub reason: Option<String>,
        /// The approved four-eye request that removed it; null: removed directly.
        pub request: Option<Uuid>,
    }

    /// A binding's expiration passed and the expiry job ended it (AC7).
    pub struct BindingExpired {
        /// The binding's id.
        pub binding: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// The expiration that passed.
        #[serde(with = "instant")]
        pub expires_at: OffsetDateTime,
    }
}

// ------------------------------------------------------------------ four-eye requests

details! {
    /// A change to a binding was requested where four-eye approval is on (FE1).
    pub struct RoleRequestCreated {
        /// The request's id.
        pub request: Uuid,
        /// `add`, `change` or `remove`.
        pub kind: String,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role asked for (for a removal: the binding's role).
        pub role: String,
        /// The expiration asked for; null: none.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
        /// The binding a change or removal concerns; null for an addition.
        pub binding: Option<Uuid>,
        /// For a change: what the binding was when it was requested.
        pub from: RequestedFrom,
        /// Why, as the requester gave it.
        pub justification: String,
        /// How many approvals it needs.
        pub approvals_required: u32,
    }

    /// What a binding was when a change to it was requested.
    pub struct RequestedFrom {
        /// The project role's identifier; null unless the request is a change.
        pub role: Option<String>,
        /// The expiration; null: none, or the request is not a change.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
    }

    /// Someone approved a request (FE2); the approval that completes it is
    /// followed by `role_request_approved` or `role_request_void`.
    pub struct RoleRequestApprovalGiven {
        /// The request's id.
        pub request: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// Approvals given so far, this one included.
        pub approvals: u32,
        /// Approvals the request needs.
        pub approvals_required: u32,
        /// True when the approver is an installation admin.
        pub admin: bool,
        /// The approver's note; null: none.
        pub reason: Option<String>,
    }

    /// A request got its last approval and its change was applied (FE2).
    pub struct RoleRequestApproved {
        /// The request's id.
        pub request: Uuid,
        /// `add`, `change` or `remove`.
        pub kind: String,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// The usernames of everyone who approved it, in order.
        pub approved_by: Vec<String>,
        /// The last approver's note; null: none.
        pub reason: Option<String>,
    }

    /// A request was declined, or withdrawn by its requester (FE2).
    pub struct RoleRequestDeclined {
        /// The request's id.
        pub request: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// True when its requester withdrew it.
        pub withdrawn: bool,
        /// The note given; null: none.
        pub reason: Option<String>,
    }

    /// A request ended without effect because it can no longer apply: it
    /// lapsed, its binding or subject went, its requester may no longer ask,
    /// or an emergency revocation closed it.
    pub struct RoleRequestVoid {
        /// The request's id.
        pub request: Uuid,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// Why it is void.
        pub reason: String,
    }

    /// A workspace got its own four-eye setting, or follows the
    /// installation's again (FE1).
    pub struct FourEyeChanged {
        /// The workspace's own setting before; null: it followed the installation's.
        pub old: Option<FourEyeSetting>,
        /// The workspace's own setting after; null: it follows the installation's.
        pub new: Option<FourEyeSetting>,
    }

    /// A four-eye setting (FE1).
    pub struct FourEyeSetting {
        /// Whether binding changes need approval.
        pub enabled: bool,
        /// How many approvals a change needs.
        pub approvals: u32,
    }

    /// The installation's settings changed.
    pub struct SettingsChanged {
        /// The settings before.
        pub old: SettingsValues,
        /// The settings after.
        pub new: SettingsValues,
    }

    /// The installation's settings.
    pub struct SettingsValues {
        /// The installation's four-eye setting.
        pub four_eye: FourEyeSetting,
        /// The longest access in days a binding may grant; null: no maximum.
        pub max_binding_days: Option<u32>,
        /// Whether projects may name a substitute payment method (PM2).
        pub payment_substitutes: bool,
    }
}

// ------------------------------------------------------------------ emergency access

details! {
    /// A person was granted emergency access (AD3); the binding's and
    /// membership's own events come before it.
    pub struct EmergencyAccessGranted {
        /// The username.
        pub user: String,
        /// The project's identifier.
        pub project: String,
        /// The project role's identifier.
        pub role: String,
        /// When the access ends (the later of the grant's and one held already); null: never.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
        /// Why, as given.
        pub justification: Option<String>,
        /// True when the person was made a member of the workspace for it.
        pub member_added: bool,
    }

    /// Everything a person held was taken away at once (AD4). Recorded in
    /// every workspace concerned and in the installation chain, after the
    /// events of each removal.
    pub struct EmergencyRevocation {
        /// The revocation's id (`GET /api/v1/admin/emergency/revocations/{id}`).
        pub revocation: Uuid,
        /// The username.
        pub user: String,
        /// Why, as given; null: none.
        pub justification: Option<String>,
        /// What was removed.
        pub removed: RevokedAccess,
    }

    /// What an emergency revocation removed.
    pub struct RevokedAccess {
        /// The workspace memberships ended.
        pub memberships: Vec<RevokedMembership>,
        /// The identifiers of the groups the person left.
        pub groups: Vec<String>,
        /// The bindings removed.
        pub bindings: Vec<RevokedBinding>,
        /// The pending requests closed as void.
        pub requests: Vec<VoidedRequest>,
        /// The API keys deleted.
        pub api_keys: Vec<RevokedApiKey>,
    }

    /// A membership an emergency revocation ended.
    pub struct RevokedMembership {
        /// The workspace's identifier.
        pub workspace: String,
        /// The workspace role held.
        pub role: String,
    }

    /// A binding an emergency revocation removed.
    pub struct RevokedBinding {
        /// The workspace's identifier.
        pub workspace: String,
        /// The project's identifier.
        pub project: String,
        /// The project role's identifier.
        pub role: String,
    }

    /// A request an emergency revocation closed as void.
    pub struct VoidedRequest {
        /// The request's id.
        pub id: Uuid,
        /// The workspace's identifier.
        pub workspace: String,
        /// The project's identifier.
        pub project: String,
        /// `user:NAME` or `group:IDENTIFIER`.
        pub subject: String,
        /// The project role's identifier.
        pub role: String,
        /// `add`, `change` or `remove`.
        pub kind: String,
    }

    /// An API key an emergency revocation deleted.
    pub struct RevokedApiKey {
        /// The key's id.
        pub id: Uuid,
        /// The key's name.
        pub name: String,
        /// The workspace it was scoped to; null: the installation.
        pub workspace: Option<String>,
    }
}

// ------------------------------------------------------------------ tags and payment methods

details! {
    /// A tag was defined (PR3).
    pub struct TagDefinitionCreated {
        /// The definition.
        #[serde(flatten)]
        pub definition: TagDefinitionTerms,
    }

    /// A tag definition changed (PR3).
    pub struct TagDefinitionUpdated {
        /// The tag's key.
        pub tag: String,
        /// The definition before.
        pub old: TagDefinitionTerms,
        /// The definition after.
        pub new: TagDefinitionTerms,
    }

    /// A tag definition was removed; projects keep their values (PR3).
    pub struct TagDefinitionDeleted {
        /// The definition removed.
        #[serde(flatten)]
        pub definition: TagDefinitionTerms,
    }

    /// A tag definition, as the API shows it.
    pub struct TagDefinitionTerms {
        /// The tag's key.
        pub key: String,
        /// Its display name.
        pub display_name: String,
        /// `string`, `number`, `boolean`, `email`, `single_select` or `multi_select`.
        pub r#type: String,
        /// The values a `single_select` or `multi_select` tag may take.
        pub options: Vec<String>,
        /// Whether every project must carry it.
        pub required: bool,
        /// The value a project gets when it gives none; null: none.
        pub default: Option<Value>,
        /// Whether only admins set or change it.
        pub admin_only: bool,
        /// For strings, a regular expression the whole value must match; null: none.
        pub pattern: Option<String>,
    }

    /// A payment method was added to the workspace (PM1).
    pub struct PaymentMethodCreated {
        /// The payment method's id.
        pub payment_method: Uuid,
        /// Its name, amount and expiry.
        #[serde(flatten)]
        pub terms: PaymentMethodTerms,
    }

    /// A payment method changed (PM1).
    pub struct PaymentMethodUpdated {
        /// The payment method's id.
        pub payment_method: Uuid,
        /// Its name, amount and expiry before.
        pub old: PaymentMethodTerms,
        /// Its name, amount and expiry after.
        pub new: PaymentMethodTerms,
    }

    /// A payment method's name, amount and expiry.
    pub struct PaymentMethodTerms {
        /// Its name.
        pub name: String,
        /// The amount it covers.
        pub amount: f64,
        /// The day it expires.
        #[serde(with = "date")]
        pub expires_on: Date,
    }

    /// A payment method was removed (PM1).
    pub struct PaymentMethodDeleted {
        /// The payment method's id.
        pub payment_method: Uuid,
        /// Its name.
        pub name: String,
    }

    /// A project's payment method expired and the payment job switched it
    /// to its substitute (PM3).
    pub struct PaymentMethodSubstituted {
        /// The project's identifier.
        pub project: String,
        /// The method that expired.
        pub expired: ExpiredPaymentMethod,
        /// The project's payment method now (the former substitute).
        pub payment_method: Uuid,
        /// The project's substitute now; null: none (a substitute is used once).
        pub substitute_payment_method: Option<Uuid>,
    }

    /// A payment method that expired.
    pub struct ExpiredPaymentMethod {
        /// Its id.
        pub payment_method: Uuid,
        /// Its name.
        pub name: String,
        /// The day it expired.
        #[serde(with = "date")]
        pub expires_on: Date,
    }
}

// ------------------------------------------------------------------ accounts, keys and groups

details! {
    /// An API key was created, scoped to a workspace (its chain) or to the
    /// installation (the installation chain).
    pub struct ApiKeyCreated {
        /// The key's id.
        pub key: Uuid,
        /// The key's name.
        pub name: String,
        /// The role it acts with.
        pub role: String,
        /// When it stops working; null: never.
        #[serde(with = "instant::option")]
        pub expires_at: Option<OffsetDateTime>,
    }

    /// An API key was deleted, by a person or by an emergency revocation of
    /// its creator.
    pub struct ApiKeyDeleted {
        /// The key's id.
        pub key: Uuid,
        /// The key's name.
        pub name: String,
        /// Why, when it was not deleted on its own, e.g. `emergency revocation`; null otherwise.
        pub reason: Option<String>,
    }

    /// A user account was created (by an admin, or the first admin at installation).
    pub struct UserCreated {
        /// The username.
        pub user: String,
        /// The e-mail address.
        pub email: String,
        /// Installation roles given, e.g. `admin`.
        pub installation_roles: Vec<String>,
    }

    /// An account was made on a person's first sign-in through an OpenID
    /// Connect provider, from the claims it vouched for.
    pub struct UserSignedUp {
        /// The username given to the account.
        pub user: String,
        /// The e-mail address the provider gave, which it had verified.
        pub email: String,
        /// The provider's issuer URL.
        pub issuer: String,
        /// The provider's identifier of the person.
        pub subject: String,
    }

    /// A user account's e-mail, names, password or installation roles changed.
    pub struct UserUpdated {
        /// The username.
        pub user: String,
        /// What changed.
        #[serde(flatten)]
        pub change: UserChange,
    }

    /// An account as it was before and after a change.
    pub struct UserChange {
        /// The account before.
        pub old: UserProfile,
        /// The account after.
        pub new: UserProfile,
        /// Whether the password changed (never the password itself).
        pub password_changed: bool,
    }

    /// What an account is, its password aside.
    pub struct UserProfile {
        /// The e-mail address.
        pub email: String,
        /// The first name.
        pub first_name: String,
        /// The last name.
        pub last_name: String,
        /// Whether the account may sign in and holds access.
        pub active: bool,
        /// Its installation roles.
        pub installation_roles: Vec<String>,
    }

    /// An account was deactivated: it loses all access at once (AC10). In
    /// the installation chain, and in each workspace the person is a member of.
    pub struct UserDeactivated {
        /// The username.
        pub user: String,
        /// Why, for an emergency revocation (`emergency revocation`); null otherwise.
        pub reason: Option<String>,
        /// Present only in the installation chain's event of an admin's
        /// change: workspace chains do not see accounts.
        #[serde(flatten)]
        pub change: Option<UserChange>,
    }

    /// A deactivated account was activated again. In the installation
    /// chain, and in each workspace the person is a member of.
    pub struct UserReactivated {
        /// The username.
        pub user: String,
        /// Present only in the installation chain's event: workspace chains
        /// do not see accounts.
        #[serde(flatten)]
        pub change: Option<UserChange>,
    }

    /// A user account was deleted; its memberships and bindings ended first.
    pub struct UserDeleted {
        /// The username.
        pub user: String,
        /// The e-mail address it had.
        pub email: String,
    }

    /// Every session of an account was ended ("sign out everywhere").
    pub struct SessionsEnded {
        /// The username.
        pub user: String,
        /// How many sessions ended.
        pub sessions_ended: u64,
    }

    /// Sign-in attempts began to be refused for a while (SE2): guesses at
    /// one account spread over many addresses (`account`), or one address
    /// trying many names (`address`). Recorded when the lock begins, not
    /// for each refused attempt.
    pub struct SignInThrottled {
        /// `account` or `address`.
        pub scope: String,
        /// The name as typed (whether or not an account has it), or the
        /// client address (an IPv6 address as its /64 network).
        pub key: String,
        /// Attempts that did not succeed within the hour.
        pub failures: u64,
        /// Until when attempts are refused.
        #[serde(with = "instant")]
        pub locked_until: OffsetDateTime,
    }

    /// An identity provider changed a resource through SCIM (ID2): a User
    /// (an account) or a Group. What the change did in Canopy (an account
    /// created or deactivated, a member added) is recorded beside it by its
    /// own event; this one records the request itself, with the SCIM
    /// client (its API key) as initiator.
    pub struct ScimChanged {
        /// `User` or `Group`.
        pub resource: String,
        /// The resource's SCIM id (the account's or group's id in Canopy).
        pub id: Uuid,
        /// The account's username or the group's identifier.
        pub name: String,
        /// `created`, `replaced`, `patched` or `deleted`.
        pub operation: String,
        /// The resource's version after the change (its ETag); null once deleted.
        pub version: Option<u64>,
    }

    /// A person signed in through the OpenID Connect provider for the first
    /// time, and the account SCIM had provisioned for them became theirs:
    /// matched by what both name them by, never by e-mail.
    pub struct IdentityLinked {
        /// The account's username.
        pub user: String,
        /// The provider's issuer URL.
        pub issuer: String,
        /// The provider's identifier of the person.
        pub subject: String,
        /// What matched: `externalId` (the SCIM externalId is the ID token's
        /// subject) or `userName` (the SCIM userName is its preferred_username).
        pub matched_by: String,
    }

    /// A group was created.
    pub struct GroupCreated {
        /// The group's identifier.
        pub group: String,
        /// Its display name.
        pub display_name: String,
    }

    /// A group's display name changed.
    pub struct GroupUpdated {
        /// The group's identifier.
        pub group: String,
        /// The display name before.
        pub old: Named,
        /// The display name after.
        pub new: Named,
    }

    /// A group was deleted; its memberships and bindings ended first. In the
    /// installation chain, and in each workspace it was a member of.
    pub struct GroupDeleted {
        /// The group's identifier.
        pub group: String,
    }

    /// A user joined a group (AC3). In the installation chain, and in each
    /// workspace the group is a member of.
    pub struct GroupMemberAdded {
        /// The group's identifier.
        pub group: String,
        /// The username.
        pub user: String,
    }

    /// A user left a group (AC3), removed by an admin or by an emergency
    /// revocation. In the installation chain, and in each workspace the
    /// group is a member of.
    pub struct GroupMemberRemoved {
        /// The group's identifier.
        pub group: String,
        /// The username.
        pub user: String,
        /// Why, for an emergency revocation (`emergency revocation`); null otherwise.
        pub reason: Option<String>,
    }
}

// ------------------------------------------------------------------ project roles, platforms, landing zones

details! {
    /// A project role was defined (at installation for the default ones).
    pub struct ProjectRoleCreated {
        /// The role's identifier.
        pub role: String,
        /// Its display name.
        pub display_name: String,
    }

    /// A project role's display name or description changed.
    pub struct ProjectRoleUpdated {
        /// The role's identifier.
        pub role: String,
        /// Before.
        pub old: ProjectRoleTerms,
        /// After.
        pub new: ProjectRoleTerms,
    }

    /// A project role's display name and description.
    pub struct ProjectRoleTerms {
        /// The display name.
        pub display_name: String,
        /// The description.
        pub description: String,
    }

    /// A project role was removed.
    pub struct ProjectRoleDeleted {
        /// The role's identifier.
        pub role: String,
    }

    /// A cloud platform was registered.
    pub struct PlatformCreated {
        /// The platform's identifier.
        pub platform: String,
        /// Its type, e.g. `aws`, `kubernetes`, `openshift`, `openstack`, `osb`.
        pub r#type: String,
        /// The names of the secrets given (never their values).
        pub secrets_set: Vec<String>,
        /// Its settings, role mapping and policies.
        #[serde(flatten)]
        pub terms: PlatformTerms,
    }

    /// A platform's settings, role mapping, policies or secrets changed.
    pub struct PlatformUpdated {
        /// The platform's identifier.
        pub platform: String,
        /// Before.
        pub old: PlatformTerms,
        /// After.
        pub new: PlatformTerms,
        /// The names of the secrets given anew (never their values).
        pub secrets_rotated: Vec<String>,
        /// The settings that decide where secrets are sent and that changed (SE4).
        pub destination_changed: Vec<String>,
    }

    /// A platform's settings, role mapping and policies.
    pub struct PlatformTerms {
        /// Its settings, as the platform type defines them (free-form per type).
        pub settings: Map<String, Value>,
        /// Project role identifier to the platform's role.
        pub role_mapping: BTreeMap<String, String>,
        /// Whether every tenant needs a landing zone.
        pub landing_zone_required: bool,
        /// How its tenants are deleted: `automatic` or `manual`.
        pub deletion: String,
        /// What replication does with access made outside Canopy: `repair` or `report`.
        pub drift_policy: String,
    }

    /// A platform was removed, with its landing zones.
    pub struct PlatformDeleted {
        /// The platform's identifier.
        pub platform: String,
    }

    /// A landing zone was added to a platform.
    pub struct LandingZoneCreated {
        /// The platform's identifier.
        pub platform: String,
        /// The landing zone's identifier.
        pub landing_zone: String,
        /// Its settings (free-form per platform type).
        pub settings: Map<String, Value>,
    }

    /// A landing zone's display name or settings changed.
    pub struct LandingZoneUpdated {
        /// The platform's identifier.
        pub platform: String,
        /// The landing zone's identifier.
        pub landing_zone: String,
        /// Before.
        pub old: LandingZoneTerms,
        /// After.
        pub new: LandingZoneTerms,
    }

    /// A landing zone's display name and settings.
    pub struct LandingZoneTerms {
        /// The display name.
        pub display_name: String,
        /// Its settings (free-form per platform type).
        pub settings: Map<String, Value>,
    }

    /// A landing zone was removed.
    pub struct LandingZoneDeleted {
        /// The platform's identifier.
        pub platform: String,
        /// The landing zone's identifier.
        pub landing_zone: String,
    }
}

// ------------------------------------------------------------------ tenants

details! {
    /// A project got a tenant on a platform.
    pub struct TenantCreated {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The landing zone's identifier; null: none.
        pub landing_zone: Option<String>,
        /// The tenant's name on the platform.
        pub name: String,
    }

    /// Someone asked for a tenant to be replicated now.
    pub struct TenantReplicationRequested {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
    }

    /// A replication run created the tenant on its platform, or granted or
    /// revoked access there for changes made in Canopy.
    pub struct TenantReplicated {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The node that ran it.
        pub node: String,
        /// The tenant's id on the platform; null: not created yet.
        pub external_id: Option<String>,
        /// True when this run created the tenant on the platform.
        pub created: bool,
        /// The assignments granted.
        pub granted: Vec<PlatformAssignment>,
        /// The assignments revoked, with the instant the platform confirmed each.
        pub revoked: Vec<ConfirmedRevocation>,
    }

    /// An account holding a platform role in a tenant.
    pub struct PlatformAssignment {
        /// The account (the username) on the platform.
        pub account: String,
        /// The platform's role.
        pub platform_role: String,
    }

    /// An assignment the platform confirmed revoked.
    pub struct ConfirmedRevocation {
        /// The account (the username) on the platform.
        pub account: String,
        /// The platform's role.
        pub platform_role: String,
        /// When the platform confirmed the revocation.
        #[serde(with = "instant")]
        pub confirmed_at: OffsetDateTime,
    }

    /// A replication run failed (once per distinct failure, not per retry).
    pub struct TenantReplicationFailed {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The node that ran it.
        pub node: String,
        /// The platform's or adapter's message.
        pub error: String,
        /// Whether a retry can help (the engine retries with backoff).
        pub retryable: bool,
    }

    /// Replication undid access made outside Canopy (drift policy `repair`).
    pub struct TenantDriftRepaired {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The node that ran it.
        pub node: String,
        /// Assignments that had been removed outside Canopy and were granted again.
        pub restored: Vec<PlatformAssignment>,
        /// Assignments that had been made outside Canopy and were revoked.
        pub removed: Vec<PlatformAssignment>,
    }

    /// Replication found access made outside Canopy and left it (drift policy `report`).
    pub struct TenantDriftDetected {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The node that ran it.
        pub node: String,
        /// Assignments Canopy wants that the platform lacks.
        pub missing: Vec<PlatformAssignment>,
        /// Assignments the platform holds that Canopy does not want.
        pub unexpected: Vec<PlatformAssignment>,
    }

    /// A tenant's deletion was requested, alone or with its project's (DL1).
    pub struct TenantDeletionRequested {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// How it is deleted: `automatic` or `manual`.
        pub mode: String,
        /// Resources the platform reported in the tenant.
        pub resources: Vec<String>,
    }

    /// A manager confirmed a tenant's deletion (DL2).
    pub struct TenantDeletionConfirmed {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The tenant's deletion state now, e.g. `deleting`, `awaiting_engineer`; null: none.
        pub next: Option<String>,
    }

    /// A platform engineer declined a tenant's deletion: the tenant stays (DL5).
    pub struct TenantDeletionDeclined {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
    }

    /// A tenant is gone: deleted by Canopy on its platform, or confirmed
    /// deleted by hand by a platform engineer (DL3), after Canopy revoked
    /// what it managed there.
    pub struct TenantDeleted {
        /// The project's identifier.
        pub project: String,
        /// The platform's identifier.
        pub platform: String,
        /// The tenant's id on the platform; null: it was never created there.
        pub external_id: Option<String>,
        /// The node that deleted it; null: deleted by hand.
        pub node: Option<String>,
        /// True when a platform engineer deleted it by hand.
        pub by_hand: bool,
        /// For a deletion by hand, the assignments revoked first, with the
        /// instant the platform confirmed each; null for a deletion by Canopy.
        pub revoked: Option<Vec<ConfirmedRevocation>>,
        /// For a deletion by hand, why the platform could not be asked or a
        /// revocation failed; null: no failure.
        pub platform_error: Option<String>,
    }
}

// ------------------------------------------------------------------ the history itself

details! {
    /// A workspace's history chain was created (the installation chain
    /// records each, so that a chain deleted with its workspace is noticed, SE7).
    pub struct HistoryChainCreated {
        /// The workspace's identifier.
        pub workspace: String,
        /// The chain's id (the workspace's id).
        pub chain: String,
        /// True when the chain was older than this record (recorded at start
        /// by the system job `history`); left out otherwise.
        #[serde(skip_serializing_if = "is_false")]
        pub recorded_later: bool,
    }
}

impl From<&crate::tags::TagDefinition> for TagDefinitionTerms {
    fn from(d: &crate::tags::TagDefinition) -> Self {
        TagDefinitionTerms {
            key: d.key.clone(),
            display_name: d.display_name.clone(),
            r#type: d.kind.as_str().to_owned(),
            options: d.options.clone(),
            required: d.required,
            default: d.default.clone(),
            admin_only: d.admin_only,
            pattern: d.pattern.clone(),
        }
    }
}

impl From<crate::four_eye::FourEye> for FourEyeSetting {
    fn from(f: crate::four_eye::FourEye) -> Self {
        FourEyeSetting { enabled: f.enabled, approvals: f.approvals }
    }
}

impl From<&crate::replication::Assignment<String>> for PlatformAssignment {
    fn from(a: &crate::replication::Assignment<String>) -> Self {
        PlatformAssignment { account: a.user.clone(), platform_role: a.platform_role.clone() }
    }
}

// ------------------------------------------------------------------ the documentation

/// Where the table of history events is kept, relative to the repository.
pub const TABLE_PATH: &str = "docs/history-events.md";

/// The rows (name, type, meaning) of `fields`, nested objects' fields as
/// `outer.inner`, flattened ones in place. `absent`: the fields are those of
/// an optional flattened object, left out together, for the reason given.
fn rows(prefix: &str, fields: &[FieldDoc], absent: Option<&str>, out: &mut Vec<(String, String, String)>) {
    for f in fields {
        if f.flattened() {
            let optional = (f.ty)() != (f.present)();
            rows(prefix, f.nested(), optional.then_some(f.doc).map(join_doc).as_deref().or(absent), out);
            continue;
        }
        let name = format!("{prefix}{}", f.name());
        let (ty, meaning) = match absent {
            Some(why) => (format!("{}, or left out", f.json_type()), format!("{} {why}", f.meaning())),
            None => (f.json_type(), f.meaning()),
        };
        out.push((name.clone(), ty, meaning));
        rows(&format!("{name}."), f.nested(), None, out);
    }
}

/// `docs/history-events.md`: every kind of event, when it is recorded, and
/// the fields of its details (name, JSON type, meaning).
pub fn markdown_table() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "# History events\n\n\
         <!-- Generated from crates/canopy-domain/src/events.rs; do not edit by hand.\n     \
         Rewrite it with: CANOPY_BLESS=1 cargo test -p canopy --test e2e tidy_history_events_table -->\n\n\
         Every change Canopy makes is recorded as an event in a hash-chained history\n\
         (per workspace, and one for the installation). Besides its `kind`, `at`\n\
         (the instant, RFC 3339 in UTC), `initiator` (a user, an API key or a system\n\
         job) and sequence number, each event carries a `details` object whose\n\
         fields depend on its kind, as listed below. Ids are UUID strings; a key\n\
         shown as \"or null\" is always present.\n\n\
         | Kind | Recorded when |\n|---|---|\n",
    );
    for kind in EventKind::ALL {
        out.push_str(&format!("| [`{k}`](#{k}) | {} |\n", cell(&recorded_when(*kind)), k = kind.as_str()));
    }
    for kind in EventKind::ALL {
        out.push_str(&format!("\n## {}\n\n{}\n\n", kind.as_str(), recorded_when(*kind)));
        out.push_str("| Field | Type | Meaning |\n|---|---|---|\n");
        let mut table = Vec::new();
        rows("", documented_fields(*kind), None, &mut table);
        for (name, ty, meaning) in table {
            out.push_str(&format!("| `{}` | {} | {} |\n", cell(&name), cell(&ty), cell(&meaning)));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed set-up is a failed test
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_428_000).unwrap() // 2026-11-23T10:00:00Z
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn s(v: &str) -> String {
        v.to_owned()
    }

    fn day() -> Date {
        Date::from_calendar_date(2027, time::Month::January, 31).unwrap()
    }

    fn terms(role: &str) -> BindingTerms {
        BindingTerms { role: s(role), expires_at: Some(at()) }
    }

    fn profile(active: bool) -> UserProfile {
        UserProfile {
            email: s("bob@example.org"),
            first_name: s("Bob"),
            last_name: s("Builder"),
            active,
            installation_roles: vec![s("admin")],
        }
    }

    fn change() -> UserChange {
        UserChange { old: profile(true), new: profile(false), password_changed: false }
    }

    fn tag() -> TagDefinitionTerms {
        TagDefinitionTerms {
            key: s("owner"),
            display_name: s("Owner"),
            r#type: s("string"),
            options: vec![],
            required: true,
            default: Some(Value::from("nobody")),
            admin_only: false,
            pattern: Some(s(".+@.+")),
        }
    }

    fn payment() -> PaymentMethodTerms {
        PaymentMethodTerms { name: s("card"), amount: 100.5, expires_on: day() }
    }

    fn platform_terms() -> PlatformTerms {
        let mut settings = Map::new();
        settings.insert(s("auth_url"), Value::from("http://keystone:5000/v3"));
        PlatformTerms {
            settings,
            role_mapping: BTreeMap::from([(s("project_admin"), s("admin"))]),
            landing_zone_required: false,
            deletion: s("automatic"),
            drift_policy: s("repair"),
        }
    }

    fn assignment() -> PlatformAssignment {
        PlatformAssignment { account: s("ann"), platform_role: s("member") }
    }

    fn revoked() -> ConfirmedRevocation {
        ConfirmedRevocation { account: s("bob"), platform_role: s("admin"), confirmed_at: at() }
    }

    fn tags() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(s("owner"), Value::from("mia@example.org"));
        m
    }

    /// One event of every kind, with every optional field present.
    fn samples() -> Vec<Event> {
        let named = |n: &str| Named { display_name: s(n) };
        let four_eye = FourEyeSetting { enabled: true, approvals: 2 };
        let settings =
            SettingsValues { four_eye: four_eye.clone(), max_binding_days: Some(90), payment_substitutes: true };
        vec![
            WorkspaceCreated { workspace: s("ws"), display_name: s("Workspace") }.into(),
            WorkspaceRenamed { old: named("A"), new: named("B") }.into(),
            WorkspaceDeleted { workspace: s("ws") }.into(),
            MemberAdded { subject: s("user:ann"), role: s("workspace_owner"), emergency: false }.into(),
            MemberRoleChanged {
                subject: s("user:bob"),
                old_role: s("workspace_member"),
                new_role: s("workspace_manager"),
            }
            .into(),
            MemberRemoved {
                subject: s("user:bob"),
                old_role: s("workspace_member"),
                reason: s("removed from workspace"),
            }
            .into(),
            InvitationSent { email: s("new@example.org"), role: s("workspace_member") }.into(),
            InvitationAccepted {
                email: s("new@example.org"),
                user: s("new"),
                role: s("workspace_member"),
                invited_by: s("ann"),
            }
            .into(),
            InvitationWithdrawn { email: s("new@example.org"), role: s("workspace_member") }.into(),
            ProjectCreated { project: s("web"), display_name: s("Web"), tags: tags() }.into(),
            ProjectUpdated {
                project: s("web"),
                old: ProjectAspect {
                    display_name: Some(s("Web")),
                    payment: Some(ProjectPayment { payment_method: Some(id(1)), substitute_payment_method: None }),
                    tags: Some(Map::new()),
                },
                new: ProjectAspect {
                    display_name: Some(s("Website")),
                    payment: Some(ProjectPayment {
                        payment_method: Some(id(1)),
                        substitute_payment_method: Some(id(2)),
                    }),
                    tags: Some(tags()),
                },
            }
            .into(),
            ProjectDeleted { project: s("web") }.into(),
            BindingCreated {
                binding: id(3),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_user"),
                expires_at: Some(at()),
                justification: Some(s("on call")),
                emergency: true,
                request: Some(id(4)),
            }
            .into(),
            BindingChanged {
                binding: id(3),
                project: s("web"),
                subject: s("user:bob"),
                old: terms("project_user"),
                new: terms("project_admin"),
                justification: Some(s("incident")),
                emergency: true,
                request: Some(id(4)),
            }
            .into(),
            BindingRemoved {
                binding: id(3),
                project: s("web"),
                subject: s("group:ops"),
                role: s("project_user"),
                expires_at: Some(at()),
                reason: Some(s("project deleted")),
                request: Some(id(4)),
            }
            .into(),
            BindingExpired {
                binding: id(3),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_user"),
                expires_at: at(),
            }
            .into(),
            RoleRequestCreated {
                request: id(4),
                kind: s("change"),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_admin"),
                expires_at: Some(at()),
                binding: Some(id(3)),
                from: RequestedFrom { role: Some(s("project_user")), expires_at: Some(at()) },
                justification: s("needs more"),
                approvals_required: 1,
            }
            .into(),
            RoleRequestApprovalGiven {
                request: id(4),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_admin"),
                approvals: 1,
                approvals_required: 2,
                admin: false,
                reason: Some(s("fine")),
            }
            .into(),
            RoleRequestApproved {
                request: id(4),
                kind: s("add"),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_admin"),
                approved_by: vec![s("ann"), s("carl")],
                reason: None,
            }
            .into(),
            RoleRequestDeclined {
                request: id(4),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_admin"),
                withdrawn: true,
                reason: Some(s("not needed")),
            }
            .into(),
            RoleRequestVoid {
                request: id(4),
                project: s("web"),
                subject: s("user:bob"),
                role: s("project_admin"),
                reason: s("lapsed"),
            }
            .into(),
            FourEyeChanged { old: None, new: Some(four_eye) }.into(),
            SettingsChanged { old: settings.clone(), new: SettingsValues { max_binding_days: None, ..settings } }
                .into(),
            EmergencyAccessGranted {
                user: s("bob"),
                project: s("web"),
                role: s("project_admin"),
                expires_at: Some(at()),
                justification: Some(s("incident 42")),
                member_added: true,
            }
            .into(),
            EmergencyRevocation {
                revocation: id(5),
                user: s("bob"),
                justification: Some(s("stolen laptop")),
                removed: RevokedAccess {
                    memberships: vec![RevokedMembership { workspace: s("ws"), role: s("workspace_member") }],
                    groups: vec![s("ops")],
                    bindings: vec![RevokedBinding { workspace: s("ws"), project: s("web"), role: s("project_user") }],
                    requests: vec![VoidedRequest {
                        id: id(4),
                        workspace: s("ws"),
                        project: s("web"),
                        subject: s("user:bob"),
                        role: s("project_admin"),
                        kind: s("add"),
                    }],
                    api_keys: vec![RevokedApiKey { id: id(6), name: s("ci"), workspace: Some(s("ws")) }],
                },
            }
            .into(),
            TagDefinitionCreated { definition: tag() }.into(),
            TagDefinitionUpdated { tag: s("owner"), old: tag(), new: TagDefinitionTerms { required: false, ..tag() } }
                .into(),
            TagDefinitionDeleted { definition: tag() }.into(),
            PaymentMethodCreated { payment_method: id(1), terms: payment() }.into(),
            PaymentMethodUpdated {
                payment_method: id(1),
                old: payment(),
                new: PaymentMethodTerms { amount: 200.0, ..payment() },
            }
            .into(),
            PaymentMethodDeleted { payment_method: id(1), name: s("card") }.into(),
            PaymentMethodSubstituted {
                project: s("web"),
                expired: ExpiredPaymentMethod { payment_method: id(1), name: s("card"), expires_on: day() },
                payment_method: id(2),
                substitute_payment_method: None,
            }
            .into(),
            ApiKeyCreated { key: id(6), name: s("ci"), role: s("workspace_manager"), expires_at: Some(at()) }.into(),
            ApiKeyDeleted { key: id(6), name: s("ci"), reason: Some(s("emergency revocation")) }.into(),
            UserCreated { user: s("bob"), email: s("bob@example.org"), installation_roles: vec![] }.into(),
            UserSignedUp {
                user: s("bob"),
                email: s("bob@example.org"),
                issuer: s("https://login.example.org"),
                subject: s("248289761001"),
            }
            .into(),
            UserUpdated { user: s("bob"), change: change() }.into(),
            UserDeactivated { user: s("bob"), reason: Some(s("emergency revocation")), change: Some(change()) }.into(),
            UserReactivated { user: s("bob"), change: Some(change()) }.into(),
            UserDeleted { user: s("bob"), email: s("bob@example.org") }.into(),
            SessionsEnded { user: s("bob"), sessions_ended: 2 }.into(),
            SignInThrottled { scope: s("account"), key: s("admin"), failures: 20, locked_until: at() }.into(),
            ScimChanged { resource: s("User"), id: id(7), name: s("bob"), operation: s("patched"), version: Some(3) }
                .into(),
            IdentityLinked {
                user: s("bob"),
                issuer: s("https://login.example.org"),
                subject: s("248289761001"),
                matched_by: s("externalId"),
            }
            .into(),
            GroupCreated { group: s("ops"), display_name: s("Operations") }.into(),
            GroupUpdated { group: s("ops"), old: named("Ops"), new: named("Operations") }.into(),
            GroupDeleted { group: s("ops") }.into(),
            GroupMemberAdded { group: s("ops"), user: s("bob") }.into(),
            GroupMemberRemoved { group: s("ops"), user: s("bob"), reason: None }.into(),
            ProjectRoleCreated { role: s("project_user"), display_name: s("Project user") }.into(),
            ProjectRoleUpdated {
                role: s("project_user"),
                old: ProjectRoleTerms { display_name: s("User"), description: s("") },
                new: ProjectRoleTerms { display_name: s("Project user"), description: s("Uses it") },
            }
            .into(),
            ProjectRoleDeleted { role: s("project_user") }.into(),
            PlatformCreated {
                platform: s("os"),
                r#type: s("openstack"),
                secrets_set: vec![s("password")],
                terms: platform_terms(),
            }
            .into(),
            PlatformUpdated {
                platform: s("os"),
                old: platform_terms(),
                new: platform_terms(),
                secrets_rotated: vec![s("password")],
                destination_changed: vec![s("auth_url")],
            }
            .into(),
            PlatformDeleted { platform: s("os") }.into(),
            LandingZoneCreated { platform: s("os"), landing_zone: s("prod"), settings: Map::new() }.into(),
            LandingZoneUpdated {
                platform: s("os"),
                landing_zone: s("prod"),
                old: LandingZoneTerms { display_name: s("Prod"), settings: Map::new() },
                new: LandingZoneTerms { display_name: s("Production"), settings: Map::new() },
            }
            .into(),
            LandingZoneDeleted { platform: s("os"), landing_zone: s("prod") }.into(),
            TenantCreated {
                project: s("web"),
                platform: s("os"),
                landing_zone: Some(s("prod")),
                name: s("ws-web-1234abcd"),
            }
            .into(),
            TenantReplicationRequested { project: s("web"), platform: s("os") }.into(),
            TenantReplicated {
                project: s("web"),
                platform: s("os"),
                node: s("node-1"),
                external_id: Some(s("abc")),
                created: true,
                granted: vec![assignment()],
                revoked: vec![revoked()],
            }
            .into(),
            TenantReplicationFailed {
                project: s("web"),
                platform: s("os"),
                node: s("node-1"),
                error: s("503"),
                retryable: true,
            }
            .into(),
            TenantDriftRepaired {
                project: s("web"),
                platform: s("os"),
                node: s("node-1"),
                restored: vec![assignment()],
                removed: vec![],
            }
            .into(),
            TenantDriftDetected {
                project: s("web"),
                platform: s("os"),
                node: s("node-1"),
                missing: vec![],
                unexpected: vec![assignment()],
            }
            .into(),
            TenantDeletionRequested {
                project: s("web"),
                platform: s("os"),
                mode: s("manual"),
                resources: vec![s("vm-1")],
            }
            .into(),
            TenantDeletionConfirmed { project: s("web"), platform: s("os"), next: Some(s("deleting")) }.into(),
            TenantDeletionDeclined { project: s("web"), platform: s("os") }.into(),
            TenantDeleted {
                project: s("web"),
                platform: s("os"),
                external_id: Some(s("abc")),
                node: Some(s("node-1")),
                by_hand: true,
                revoked: Some(vec![revoked()]),
                platform_error: Some(s("unreachable")),
            }
            .into(),
            ProjectDeletionRequested { project: s("web"), tenants: vec![s("os")] }.into(),
            ProjectDeletionDeclined { project: s("web"), kept_tenants: vec![s("os")] }.into(),
            HistoryChainCreated { workspace: s("ws"), chain: id(7).to_string(), recorded_later: true }.into(),
        ]
    }

    /// The keys `fields` put in an object, flattened ones in place.
    fn keys(fields: &[FieldDoc]) -> BTreeSet<&'static str> {
        let mut out = BTreeSet::new();
        for f in fields {
            if f.flattened() {
                out.extend(keys(f.nested()));
            } else {
                out.insert(f.name());
            }
        }
        out
    }

    /// Every key of `value` is documented and every documented key is
    /// there, down through nested objects and lists; instants are RFC 3339.
    fn check(path: &str, value: &Value, fields: &[FieldDoc]) {
        let object = value.as_object().unwrap_or_else(|| panic!("{path} is not an object: {value}"));
        let found: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(found, keys(fields), "{path}: serialised keys against documented fields");
        let mut flat = Vec::new();
        let mut todo: Vec<&FieldDoc> = fields.iter().collect();
        while let Some(f) = todo.pop() {
            if f.flattened() {
                todo.extend(f.nested());
            } else {
                flat.push(f);
            }
        }
        for f in flat {
            let v = &object[f.name()];
            let here = format!("{path}.{}", f.name());
            if f.is_instant() && !v.is_null() {
                let text = v.as_str().unwrap_or_else(|| panic!("{here} is not an instant: {v}"));
                OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
                assert!(text.ends_with('Z'), "{here} is in UTC: {text}");
            }
            if !f.nested().is_empty() {
                match v {
                    Value::Array(items) => items.iter().for_each(|i| check(&here, i, f.nested())),
                    Value::Null => {}
                    other => check(&here, other, f.nested()),
                }
            }
        }
    }

    #[test]
    fn hi1_every_event_kind_serialises_its_documented_fields() {
        let samples = samples();
        let kinds: Vec<EventKind> = samples.iter().map(Event::kind).collect();
        assert_eq!(kinds, EventKind::ALL, "one sample of every kind, in the order of EventKind::ALL");
        for e in &samples {
            let fields = documented_fields(e.kind());
            assert!(!fields.is_empty(), "{} records fields", e.kind());
            check(e.kind().as_str(), &serde_json::to_value(e).unwrap(), fields);
            for f in fields {
                assert!(!f.meaning().is_empty(), "{}.{} is documented", e.kind(), f.name());
            }
            assert!(!recorded_when(e.kind()).is_empty(), "{} says when it is recorded", e.kind());
        }
    }

    #[test]
    fn hi1_details_keep_the_shape_clients_read() {
        // instants as RFC 3339 in UTC, or null; ids as strings
        let e: Event = BindingChanged {
            binding: id(3),
            project: s("web"),
            subject: s("user:bob"),
            old: BindingTerms { role: s("project_user"), expires_at: None },
            new: BindingTerms {
                role: s("project_admin"),
                expires_at: Some(at().to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())),
            },
            justification: None,
            emergency: false,
            request: None,
        }
        .into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["old"], serde_json::json!({"role": "project_user", "expires_at": null}));
        assert_eq!(v["new"], serde_json::json!({"role": "project_admin", "expires_at": "2026-11-23T10:00:00Z"}));
        assert_eq!(v["binding"], id(3).to_string());
        // a chain recorded at creation carries exactly these two keys
        let chain: Event = HistoryChainCreated { workspace: s("ws"), chain: s("c"), recorded_later: false }.into();
        assert_eq!(serde_json::to_value(&chain).unwrap(), serde_json::json!({"workspace": "ws", "chain": "c"}));
        // a project update names only the aspect it changed; no payment method is null
        let update: Event = ProjectUpdated {
            project: s("web"),
            old: ProjectAspect {
                display_name: None,
                payment: Some(ProjectPayment { payment_method: None, substitute_payment_method: None }),
                tags: None,
            },
            new: ProjectAspect {
                display_name: None,
                payment: Some(ProjectPayment { payment_method: Some(id(1)), substitute_payment_method: None }),
                tags: None,
            },
        }
        .into();
        assert_eq!(
            serde_json::to_value(&update).unwrap()["old"],
            serde_json::json!({"payment_method": null, "substitute_payment_method": null})
        );
        // a workspace chain's deactivation shows no account details
        let ws: Event = UserDeactivated { user: s("bob"), reason: None, change: None }.into();
        assert_eq!(serde_json::to_value(&ws).unwrap(), serde_json::json!({"user": "bob", "reason": null}));
        // dates as YYYY-MM-DD
        let created: Event = PaymentMethodCreated { payment_method: id(1), terms: payment() }.into();
        assert_eq!(serde_json::to_value(&created).unwrap()["expires_on"], "2027-01-31");
    }

    #[test]
    fn hi1_the_table_names_every_kind_and_field() {
        let table = markdown_table();
        for kind in EventKind::ALL {
            assert!(table.contains(&format!("\n## {}\n", kind.as_str())), "{kind} has its section");
        }
        assert!(table.contains("| `old.expires_at` | instant (RFC 3339, UTC), or null |"), "{table}");
        assert!(table.contains("| `recorded_later` | boolean, or left out |"), "{table}");
    }
}
