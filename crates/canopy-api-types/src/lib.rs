//! The REST API's request and response bodies (see `shared/spec/api.md`).
//!
//! Shared by the server (which documents them in OpenAPI), the CLI and the
//! tests. Requests refuse unknown fields so that a typo is an error, not a
//! silently ignored setting. Field names here are the public contract.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub mod problem;
pub use problem::{FieldError, Problem};

/// A page of a list. Pass `next_cursor` as `?cursor=` to get the next page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- auth

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(max_length = 1000)]
    pub username: String,
    #[schema(max_length = 1000)]
    pub password: String,
}

/// `canopy login --sso`: the one-time code the sign-in through the identity
/// provider left on the CLI's loopback address, and the PKCE verifier of
/// the challenge the CLI started it with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SsoTokenRequest {
    #[schema(max_length = 200)]
    pub code: String,
    #[schema(max_length = 200)]
    pub verifier: String,
}

/// How many sessions a sign-out everywhere ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionsEnded {
    pub sessions_ended: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The caller: their account, roles, and where they have access.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// `user` for a person, `api_key` for an API key.
    pub kind: String,
    pub name: String,
    pub user: Option<User>,
    pub installation_roles: Vec<String>,
    pub workspaces: Vec<MyWorkspace>,
    pub projects: Vec<MyProject>,
    /// Bindings expiring within 7 days in the workspaces the caller manages
    /// (AC12), soonest first, at most 50.
    pub notices: Vec<ExpiringAccess>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyWorkspace {
    pub identifier: String,
    pub display_name: String,
    pub role: String,
    /// Pending four-eye requests of the workspace that wait for the caller's
    /// decision (managers: not their own, not approved by them yet).
    #[serde(default)]
    pub requests_to_decide: u64,
}

/// A project where the caller effectively holds roles now (directly or through groups).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyProject {
    pub workspace: String,
    pub project: String,
    pub roles: Vec<String>,
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub username: String,
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub first_name: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub last_name: String,
    /// At least 12 characters. Without one the account cannot sign in locally.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
    /// `admin`, `platform_engineer`.
    #[serde(default)]
    pub installation_roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
    /// A new password. Changing one's own needs `current_password`; an
    /// admin resetting another's does not (recorded in the history). Every
    /// session of the account ends.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
    /// The password now, required to change one's own (SE6).
    #[schema(max_length = 1000)]
    pub current_password: Option<String>,
    /// `false` deactivates the account: it loses all access (AC10).
    pub active: Option<bool>,
    pub installation_roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
    pub installation_roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

// ---------------------------------------------------------------- groups

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    #[schema(pattern = "^[a-z0-9-]{1,32}$")]
    pub identifier: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub identifier: String,
    pub display_name: String,
    pub member_count: i64,
    /// Provisioned by the identity provider through SCIM, which owns its name
    /// and members: admins cannot change it here.
    #[serde(default)]
    pub provisioned: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddGroupMember {
    /// Username of the user to add.
    pub user: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupMember {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// Shown to admins only: anyone may make a workspace and invite a group
    /// into it, so managing a workspace does not entitle one to the members'
    /// addresses.
    pub email: Option<String>,
    pub active: bool,
}

// ---------------------------------------------------------------- API keys

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// Scope the key to this workspace; without it the key is scoped to the installation.
    pub workspace: Option<String>,
    /// In a workspace: `workspace_manager` or `workspace_member`.
    /// For the installation: `admin`, `platform_engineer`, or `scim_provisioner` (a key that may only provision through SCIM, `/scim/v2`).
    pub role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// `installation` or `workspace`.
    pub scope: String,
    pub workspace: Option<String>,
    pub role: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A new key: `secret` is shown this once and stored only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

// ---------------------------------------------------------------- workspaces

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Lowercase letters, digits and dashes, 1 to 32 characters, unique.
    #[schema(pattern = "^[a-z0-9-]{1,32}$")]
    pub identifier: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// The workspace's own four-eye setting (admins only); `null` makes it
    /// follow the installation's again.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FourEyeChange>)]
    pub four_eye: Option<Option<FourEyeChange>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    pub identifier: String,
    pub display_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The caller's effective workspace role, if they are a member.
    pub my_role: Option<String>,
    /// The four-eye setting in force for the workspace's bindings (FE1).
    pub four_eye: WorkspaceFourEye,
}

/// A four-eye setting (FE1): whether binding changes need approval, and by
/// how many managers other than the requester (1 to 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FourEyeSetting {
    pub enabled: bool,
    pub approvals: u32,
}

/// A change to a four-eye setting; what is left out stays as it is (for a
/// workspace that follows the installation: as the installation has it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FourEyeChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// 1 to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u32>,
}

/// The four-eye setting a workspace follows, and whether it is its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceFourEye {
    pub enabled: bool,
    pub approvals: u32,
    /// `installation` (it follows the installation's setting) or `workspace`.
    pub source: String,
}

/// `PATCH` fields that may be cleared with `null`: absent = unchanged.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------- settings

/// The installation's settings (admins).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// Whether binding changes need approval, unless a workspace sets its own (FE1).
    pub four_eye: FourEyeSetting,
    /// The longest access, in days, that a new or changed binding may grant;
    /// `null`: no maximum. With a maximum, every new binding needs an expiration.
    pub max_binding_days: Option<u32>,
    /// Whether projects may name a substitute payment method (PM2).
    pub payment_substitutes: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub four_eye: Option<FourEyeChange>,
    /// Days, 1 to 36500; `null` removes the maximum.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u32>)]
    pub max_binding_days: Option<Option<u32>>,
    pub payment_substitutes: Option<bool>,
}

// ---------------------------------------------------------------- four-eye requests

/// A change to a project binding waiting for approval, or decided (FE1–FE4).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleRequest {
    pub id: Uuid,
    pub workspace: String,
    pub project: String,
    /// `add`, `change` or `remove`.
    pub kind: String,
    /// `pending`, `approved` (and applied), `declined` or `void` (approved,
    /// but it could no longer apply; see `reason`).
    pub state: String,
    /// The binding it changes or removes; for an approved add, the binding it made.
    pub binding: Option<Uuid>,
    /// `user:NAME` or `group:IDENTIFIER`.
    pub subject: String,
    /// The role it binds (add, change) or removes.
    pub role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// For a change: the role and expiration the binding had.
    pub from_role: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub from_expires_at: Option<OffsetDateTime>,
    pub justification: String,
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Approvals it needs from managers other than the requester; one admin's is enough.
    pub approvals_required: u32,
    pub approvals: Vec<RequestApproval>,
    /// Fewer managers other than the requester exist than it needs: it
    /// waits for an admin (FE3).
    pub needs_admin: bool,
    pub decided_by: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestApproval {
    pub approver: String,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
}

/// The body of an approval or a decline; it may be left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Why; recorded in the history and sent to the requester.
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

/// Invite a user (`user`: username), an e-mail address (`email`: a pending
/// invitation when no account has it) or a group (`group`: identifier).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteMember {
    pub user: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    pub group: Option<String>,
    /// `workspace_owner`, `workspace_manager` or `workspace_member`.
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: String,
}

/// One row of a workspace's current access (WS5).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// `user:NAME`, `group:IDENTIFIER` or `email:ADDRESS` (a pending invitation);
    /// use it in `/members/{subject}`.
    pub subject: String,
    /// `user`, `group` or `invitation`.
    pub kind: String,
    pub name: String,
    pub display_name: String,
    pub role: String,
    pub granted_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
}

/// A type-ahead match (AC9).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    /// `user` or `group`.
    pub kind: String,
    pub subject: String,
    pub name: String,
    pub display_name: String,
    pub email: Option<String>,
}

// ---------------------------------------------------------------- projects

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Lowercase letters, digits and dashes, 1 to 32 characters, unique in the workspace.
    #[schema(pattern = "^[a-z0-9-]{1,32}$")]
    pub identifier: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    /// Tags by key, checked against the tag definitions (PR3); defaults fill the rest.
    #[serde(default)]
    pub tags: serde_json::Map<String, serde_json::Value>,
    /// The id of one of the workspace's payment methods (PM2).
    #[serde(default)]
    pub payment_method: Option<Uuid>,
    /// The payment method that replaces it when it expires (PM3).
    #[serde(default)]
    pub substitute_payment_method: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// Tags to set (a `null` value removes one); others stay as they are.
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
    /// A payment method id; `null` removes it (and the substitute).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<Option<Uuid>>,
    /// A substitute payment method id; `null` removes it.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub substitute_payment_method: Option<Option<Uuid>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub workspace: String,
    pub identifier: String,
    pub display_name: String,
    pub payment_method: Option<String>,
    pub substitute_payment_method: Option<String>,
    pub tags: BTreeMap<String, serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A project's page (PR2): the project, its bindings, and who effectively has
/// which roles now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectDetails {
    #[serde(flatten)]
    pub project: Project,
    pub bindings: Vec<Binding>,
    pub effective_access: Vec<EffectiveAccess>,
    /// The project's tenants with their replication status (PR2, TN5).
    pub tenants: Vec<Tenant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EffectiveAccess {
    pub username: String,
    pub roles: Vec<String>,
}

// ---------------------------------------------------------------- bindings

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBinding {
    pub user: Option<String>,
    pub group: Option<String>,
    /// A project role identifier, e.g. `project_user`.
    pub role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[schema(max_length = 1000)]
    pub justification: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBinding {
    pub role: Option<String>,
    /// A new expiration date; `null` removes it.
    #[serde(
        default,
        deserialize_with = "double_option_rfc3339",
        serialize_with = "serialize_double_option_rfc3339",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// Why; required where the change needs four-eye approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1000)]
    pub justification: Option<String>,
}

/// `PATCH` fields that may be cleared: absent = unchanged (`None`), `null` =
/// clear (`Some(None)`), a value = set (`Some(Some(v))`).
fn double_option_rfc3339<'de, D>(d: D) -> Result<Option<Option<OffsetDateTime>>, D::Error>
where
    D: Deserializer<'de>,
{
    time::serde::rfc3339::option::deserialize(d).map(Some)
}

fn serialize_double_option_rfc3339<S: serde::Serializer>(
    v: &Option<Option<OffsetDateTime>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::option::serialize(&v.flatten(), s)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Binding {
    pub id: Uuid,
    /// `user:NAME` or `group:IDENTIFIER`.
    pub subject: String,
    pub kind: String,
    pub name: String,
    pub display_name: String,
    pub role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Whether the binding grants its role now (not expired).
    pub in_force: bool,
    pub justification: Option<String>,
    pub granted_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
}

// ---------------------------------------------------------------- project roles

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRole {
    #[schema(pattern = "^[a-z0-9_-]{1,32}$")]
    pub identifier: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRole {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectRole {
    pub identifier: String,
    pub display_name: String,
    pub description: String,
}

// ---------------------------------------------------------------- history

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEvent {
    pub id: Uuid,
    /// Position in the workspace's chain, from 1.
    pub seq: i64,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub initiator: Initiator,
    /// Recipient, old and new values, ...: depends on `kind`.
    // passed through as stored: a page of events is not parsed into trees
    #[schema(value_type = Value)]
    pub details: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Initiator {
    /// `user`, `api_key` or `system`.
    pub kind: String,
    pub name: String,
}

/// What verifying the history found (HI3, SE7).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryVerification {
    /// Every link holds, no chain is missing, and every checkpoint given holds.
    pub ok: bool,
    pub chains_checked: u64,
    /// Events of the chains whose every link holds.
    pub events_checked: u64,
    /// How many checkpoints were given (`POST`), each checked.
    #[serde(default)]
    pub checkpoints_checked: u64,
    /// The first of `problems` (`seq` 0 where no event is concerned).
    pub first_broken: Option<BrokenLink>,
    /// Everything found wrong: per chain its first broken link and the
    /// checkpoints of it that do not hold, then missing chains, then
    /// checkpoints of chains that are gone.
    #[serde(default)]
    pub problems: Vec<HistoryProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrokenLink {
    /// The workspace identifier, or `installation`.
    pub chain: String,
    pub seq: i64,
    pub event_id: Option<String>,
    pub reason: String,
}

/// One thing verification found wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryProblem {
    /// `broken_link`, `chain_missing` (a workspace without its chain, or a
    /// chain whose creation the installation history records and that is
    /// gone), `checkpoint_other_key`, `checkpoint_bad_signature`,
    /// `checkpoint_chain_gone`, `checkpoint_truncated` or `checkpoint_rewritten`.
    pub code: String,
    /// The chain's label: the workspace identifier, or `installation`.
    pub chain: String,
    /// The chain's id: the workspace's id, or `installation`.
    pub chain_id: String,
    /// The event concerned (a broken link's, a checkpoint's).
    pub seq: Option<i64>,
    pub event_id: Option<String>,
    pub reason: String,
}

/// A signed checkpoint (SE7): the installation states that chain `chain`
/// had `seq` events, the last with `hash`, at `at`. Signed with Ed25519 by
/// the key `key_id`, which the database does not hold. Keep checkpoints
/// outside Canopy and give them back to `POST /admin/history/verify`, as they are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryCheckpoint {
    /// The chain's id: a workspace's id, or `installation`.
    #[schema(min_length = 1, max_length = 100)]
    pub chain: String,
    /// The workspace identifier, or `installation`.
    #[schema(min_length = 1, max_length = 100)]
    pub label: String,
    /// The number of events the chain had.
    #[schema(minimum = 0)]
    pub seq: i64,
    /// The hash of the chain's event at `seq` (lowercase hex SHA-256; 64 zeros at 0).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The first 16 hex digits of the SHA-256 of the signing public key.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub key_id: String,
    /// Ed25519 signature, base64 of 64 bytes.
    #[schema(min_length = 88, max_length = 88)]
    pub signature: String,
}

/// A checkpoint of every chain's head now, and the key to check them with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryCheckpoints {
    /// The installation's Ed25519 public key for checkpoints, base64 of 32 bytes.
    pub public_key: String,
    pub key_id: String,
    pub checkpoints: Vec<HistoryCheckpoint>,
}

/// Checkpoints kept from earlier, to verify the history against.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyHistory {
    /// At most 10,000 checkpoints (`MAX_CHECKPOINTS`).
    #[schema(max_items = 10000)]
    pub checkpoints: Vec<HistoryCheckpoint>,
}

pub use canopy_domain::checkpoint::MAX_CHECKPOINTS;

// ---------------------------------------------------------------- platforms

/// Register a platform (TN1). `settings` and `secrets` depend on `type`:
/// aws `region`, `endpoint_url`? / `access_key_id`, `secret_access_key`;
/// openstack `auth_url`, `domain` / `username`, `password`; kubernetes and
/// openshift `api_url`, `ca_cert`? / `token`; azure `tenant_id`,
/// `billing_scope`?, `authority_url`?, `arm_url`?, `graph_url`?,
/// `arm_scope`?, `graph_scope`?, `ca_cert`? / `client_id`, `client_secret`;
/// gcp `parent` (`folders/N` or `organizations/N`), `crm_url`?, `asset_url`?,
/// `ca_cert`? / `service_account_key` (the key file's JSON); cloudfoundry
/// `api_url`, `organization`, `origin`?, `uaa_url`?, `ca_cert`? / `username`,
/// `password`;
/// osb `broker_url`, `service_id`, `plan_id` / `username`, `password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlatform {
    #[schema(pattern = "^[a-z0-9-]{1,32}$")]
    pub identifier: String,
    /// `aws`, `azure`, `gcp`, `kubernetes`, `openshift`, `openstack`, `cloudfoundry` or `osb`.
    #[serde(rename = "type")]
    pub platform_type: String,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Write-only: stored encrypted, never returned.
    #[serde(default)]
    pub secrets: serde_json::Map<String, serde_json::Value>,
    /// Project role identifier → the platform's role (e.g. a permission set, a ClusterRole).
    #[serde(default)]
    pub role_mapping: BTreeMap<String, String>,
    #[serde(default)]
    pub landing_zone_required: bool,
    /// `automatic` or `manual`; by default automatic for openstack,
    /// cloudfoundry and osb, manual for the others.
    pub deletion: Option<String>,
    /// What replication does with drift made outside Canopy: `repair`
    /// (default) restores the desired state, `report` only records it.
    pub drift_policy: Option<String>,
}

/// Change a platform. `settings` replaces all settings; `secrets` replaces
/// the secrets it names (rotate one without sending the others);
/// `role_mapping` replaces the mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlatform {
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub secrets: Option<serde_json::Map<String, serde_json::Value>>,
    pub role_mapping: Option<BTreeMap<String, String>>,
    pub landing_zone_required: Option<bool>,
    pub deletion: Option<String>,
    pub drift_policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Platform {
    pub identifier: String,
    #[serde(rename = "type")]
    pub platform_type: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The names of the secrets that are set; their values are never returned.
    pub secrets: Vec<String>,
    pub role_mapping: BTreeMap<String, String>,
    pub landing_zone_required: bool,
    pub deletion: String,
    pub drift_policy: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A landing zone: the settings a new tenant on its platform gets (TN2),
/// e.g. an AWS organizational unit, Kubernetes labels and quotas.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLandingZone {
    #[schema(pattern = "^[a-z0-9-]{1,32}$")]
    pub identifier: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLandingZone {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LandingZone {
    pub platform: String,
    pub identifier: String,
    pub display_name: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Add a tenant to a project (TN3).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The platform's identifier.
    pub platform: String,
    /// A landing zone of that platform; required where the platform says so.
    pub landing_zone: Option<String>,
}

/// A project's tenant on one platform and its replication status (TN5).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub workspace: String,
    pub project: String,
    pub platform: String,
    #[serde(rename = "platform_type")]
    pub platform_type: String,
    pub landing_zone: Option<String>,
    /// The name Canopy gives the tenant on the platform.
    pub name: String,
    /// The platform's id of the tenant (account id, project id, namespace), once created.
    pub external_id: Option<String>,
    /// `pending`, `in_progress`, `succeeded` or `failed`.
    pub status: String,
    /// The platform's error of the last failed attempt.
    pub last_error: Option<String>,
    /// While `failed` with work waiting (an error worth retrying, such as the
    /// platform unreachable or busy, or a change made since): when Canopy
    /// tries again, after any Retry-After the platform asked for (an instant
    /// already past: as soon as a worker is free). `null` after an error that
    /// retrying cannot mend (refused credentials, say) with no change since:
    /// tried again when the tenant's access changes, on a replicate request,
    /// or at the periodic reconcile.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_replicated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// While the tenant is being deleted: `requested`, `deleting`,
    /// `awaiting_engineer` or `declined`.
    pub deletion: Option<String>,
}

/// A platform account holding a platform role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct PlannedAssignment {
    pub account: String,
    pub platform_role: String,
}

/// What replication would change in a tenant now, without changing it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantPlan {
    pub platform: String,
    /// What Canopy's bindings give, in the platform's roles.
    pub desired: Vec<PlannedAssignment>,
    /// What the platform holds now (in every role, managed or not).
    pub actual: Vec<PlannedAssignment>,
    /// Canopy's own changes not yet applied.
    pub grant: Vec<PlannedAssignment>,
    pub revoke: Vec<PlannedAssignment>,
    /// Changes made outside Canopy: confirmed assignments gone missing, and
    /// managed roles Canopy never granted.
    pub drift_missing: Vec<PlannedAssignment>,
    pub drift_unexpected: Vec<PlannedAssignment>,
    /// `repair` (replication restores the drift) or `report`.
    pub drift_policy: String,
}

/// A tenant's part in a deletion (DL1-DL5).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantDeletionState {
    /// The id platform engineers confirm or decline it by.
    pub id: uuid::Uuid,
    pub platform: String,
    /// `automatic` (Canopy deletes it after the typed confirmation) or
    /// `manual` (a platform engineer does, and confirms or declines).
    pub mode: String,
    /// `requested`, `deleting`, `awaiting_engineer`, `declined`, or none.
    pub state: Option<String>,
    /// What the platform still holds in the tenant; remove it before confirming.
    pub resources: Vec<String>,
}

/// A project's deletion: of the whole project, or of some of its tenants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectDeletion {
    pub workspace: String,
    pub project: String,
    /// The whole project goes when every tenant deletion succeeded.
    pub project_deletion: bool,
    /// `none`, `awaiting_confirmation` (type the project identifier), or
    /// `in_progress` (tenants being deleted or waiting for platform engineers).
    pub state: String,
    pub tenants: Vec<TenantDeletionState>,
}

/// Confirm a deletion by typing the project's identifier (DL2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmDeletion {
    pub identifier: String,
}

/// A tenant deletion waiting for a platform engineer (DL3, AD5).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PendingDeletion {
    pub id: uuid::Uuid,
    pub workspace: String,
    pub project: String,
    pub platform: String,
    /// The tenant's id on the platform, to find and delete it by hand.
    pub external_id: Option<String>,
    pub name: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub requested_at: Option<OffsetDateTime>,
}

// ---------------------------------------------------------------- emergency access

/// Grant a person emergency access (AD3): workspace membership when they
/// lack it, and a project role until `expires_at`, in one step and without
/// four-eye approval. `expires_at` and `justification` are required.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyGrant {
    /// A username; or give `email`.
    pub user: Option<String>,
    pub email: Option<String>,
    pub workspace: String,
    pub project: String,
    /// A project role identifier, e.g. `project_admin`.
    pub role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub justification: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmergencyGrantResult {
    pub user: String,
    pub workspace: String,
    pub project: String,
    pub role: String,
    /// Until when the person holds the role: the requested expiration, or a
    /// later one (or none) they held already; emergency access never
    /// shortens access.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub binding: Uuid,
    /// Whether the person was made a member of the workspace for this.
    pub member_added: bool,
}

/// Revoke everything a person holds at once (AD4).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyRevoke {
    /// A username; or give `email`.
    pub user: Option<String>,
    pub email: Option<String>,
    pub justification: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokedMembership {
    pub workspace: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokedBinding {
    pub workspace: String,
    pub project: String,
    pub role: String,
}

/// One assignment the person held in a tenant, and when the platform
/// confirmed its removal (`null`: not yet).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokedAssignment {
    pub platform_role: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub confirmed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokedTenant {
    pub workspace: String,
    pub project: String,
    pub platform: String,
    pub external_id: Option<String>,
    pub assignments: Vec<RevokedAssignment>,
    /// When the last of its assignments was confirmed removed; `null` while
    /// any is still held.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// What an emergency revocation removed, per workspace, project and tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmergencyRevocation {
    pub id: Uuid,
    pub user: String,
    pub justification: Option<String>,
    pub initiator: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The account was deactivated: its sessions ended, it is removed from every tenant.
    pub deactivated: bool,
    pub memberships: Vec<RevokedMembership>,
    pub groups: Vec<String>,
    pub bindings: Vec<RevokedBinding>,
    /// Pending four-eye requests the person filed, or that would give them
    /// access: void, so that no later approval brings access back.
    pub requests: Vec<VoidedRequest>,
    /// The API keys the person created: deleted, so that none works again
    /// should the account be reactivated.
    pub api_keys: Vec<RevokedApiKey>,
    pub tenants: Vec<RevokedTenant>,
    /// Whether every tenant confirmed every removal.
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VoidedRequest {
    pub id: Uuid,
    pub workspace: String,
    pub project: String,
    /// `user:NAME` or `group:IDENTIFIER`.
    pub subject: String,
    pub role: String,
    /// `add`, `change` or `remove`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokedApiKey {
    pub id: Uuid,
    pub name: String,
    /// The key's workspace; none for an installation key.
    pub workspace: Option<String>,
}

// ---------------------------------------------------------------- expired access

/// A binding on the expired-access list (AC8): expired (`state` `expired`,
/// red) or expiring within 7 days (`soon`, yellow). Extend it in place with
/// `PATCH .../bindings/{binding}` and a new `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiringAccess {
    pub binding: Uuid,
    pub workspace: String,
    pub project: String,
    /// `user:NAME` or `group:IDENTIFIER`.
    pub subject: String,
    pub display_name: String,
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `expired` or `soon`.
    pub state: String,
}

// ---------------------------------------------------------------- tag definitions

/// A tag projects may carry (PR3). `type`: `string`, `number`, `boolean`,
/// `email`, `single_select` or `multi_select`; `options` for the selects;
/// `pattern` (a regular expression the whole value must match) for strings;
/// `admin_only`: only admins set or change it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagDefinition {
    pub key: String,
    pub display_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub admin_only: bool,
    #[serde(default)]
    pub pattern: Option<String>,
}

/// Change a tag definition; its key and type stay. `default` or `pattern`
/// `null` removes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTagDefinition {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    pub options: Option<Vec<String>>,
    pub required: Option<bool>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub default: Option<Option<serde_json::Value>>,
    pub admin_only: Option<bool>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Option<String>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------- payment methods

/// A workspace's payment method (PM1): a budget `amount`, the last day it
/// may be used (`expires_on`, `YYYY-MM-DD`) and free-form billing data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentMethod {
    pub id: Uuid,
    pub name: String,
    pub amount: f64,
    pub expires_on: String,
    pub billing_data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentMethod {
    pub name: String,
    pub amount: f64,
    /// `YYYY-MM-DD`.
    pub expires_on: String,
    #[serde(default)]
    pub billing_data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePaymentMethod {
    pub name: Option<String>,
    pub amount: Option<f64>,
    pub expires_on: Option<String>,
    pub billing_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A project whose payment method runs out within 30 days (or has) with no
/// substitute named (PM3's forecast).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentForecast {
    pub project: String,
    pub payment_method: Uuid,
    pub name: String,
    pub expires_on: String,
}

/// What confirming a tenant deleted by hand did (DL3): before Canopy forgot
/// the tenant, it revoked every assignment it manages there, since an
/// account said to be deleted may still be alive.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManualDeletionReceipt {
    pub workspace: String,
    pub project: String,
    pub platform: String,
    pub external_id: Option<String>,
    /// Each assignment revoked, with the instant the platform confirmed it.
    pub revoked: Vec<ConfirmedRevocation>,
    /// Why Canopy could not revoke there (the platform could not be reached,
    /// or refused): the access in the tenant is not confirmed removed.
    pub platform_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfirmedRevocation {
    pub account: String,
    pub platform_role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub confirmed_at: OffsetDateTime,
}
