//! SCIM 2.0 provisioning (ID2, AC10): the identity provider creates,
//! changes and removes accounts and groups, and Canopy answers with the
//! resources as SCIM shows them (RFC 7643/7644).
//!
//! Only what SCIM made is SCIM's: `/Users` and `/Groups` list the accounts
//! and groups an identity provider provisioned, never the local ones, so
//! that a provider cannot take over an admin's account by naming it. A
//! provisioned account is changed through the same steps as any other
//! ([`crate::users::change`]): deprovisioning (`active: false`, or DELETE)
//! deactivates it at once, ends its sessions and takes it out of every
//! tenant, recorded with the SCIM client (its API key) as initiator. Group
//! members come and go through [`crate::groups`]' own steps, so that a
//! member who leaves loses what the group gave (AC3).
//!
//! Every change records [`ScimChanged`] beside the events of what it did.

use std::collections::BTreeSet;

use canopy_domain::authz::Action;
use canopy_domain::events::{GroupCreated, ScimChanged, UserCreated};
use canopy_domain::scim::{
    self, GroupFields, GroupParts, Meta, PatchOp, Precondition, ScimError, ScimType, UserFields, UserParts,
};
use canopy_domain::scim_filter::{Filter, Op};
use canopy_domain::{DisplayName, Email, Identifier, PersonName, Username};
use canopy_store::{
    GroupRecord, NewUser, ScimGroupQuery, ScimGroupRecord, ScimLink, ScimUserQuery, ScimUserRecord, Store, Tx,
    UserChanges, UserRecord,
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::groups;
use crate::principal::Principal;

/// The most resources one list answers (`count`), as ServiceProviderConfig says.
pub const MAX_RESULTS: i64 = 200;
/// The most resources a filter that no index answers is decided on.
pub const MAX_SCAN: i64 = 10_000;
/// How many names are tried for a new account or group before giving up.
const NAME_TRIES: u32 = 50;

/// Where the answered resources are: the SCIM root, e.g.
/// `https://canopy.example.org/scim/v2`.
#[derive(Debug, Clone, Copy)]
pub struct Base<'a>(pub &'a str);

impl Base<'_> {
    fn users(&self) -> String {
        format!("{}/Users", self.0)
    }
    fn groups(&self) -> String {
        format!("{}/Groups", self.0)
    }
}

/// A resource as answered, with its version (for the `ETag` header) and
/// where it is (for `Location`).
#[derive(Debug, Clone)]
pub struct Resource {
    pub body: Value,
    pub version: i64,
    pub location: String,
}

/// A page of a list (`ListResponse`).
#[derive(Debug, Clone)]
pub struct Listed {
    pub total: i64,
    pub start_index: i64,
    pub resources: Vec<Value>,
}

/// How a list is asked for: its filter, 1-based start and page size.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub start_index: i64,
    pub count: i64,
}

impl ListQuery {
    fn offset(&self) -> i64 {
        self.start_index.max(1) - 1
    }
    fn count(&self) -> i64 {
        self.count.clamp(0, MAX_RESULTS)
    }
}

fn scim_err(scim_type: ScimType, detail: impl Into<String>) -> Error {
    Error::Scim(ScimError { scim_type, detail: detail.into() })
}

fn uniqueness(detail: impl Into<String>) -> Error {
    Error::Conflict { detail: detail.into(), field: Some("uniqueness".into()) }
}

/// A unique key refusing a create made at the same time as another of the
/// same resource (PostgreSQL): SCIM's `uniqueness`.
fn race_is_uniqueness(e: impl Into<Error>) -> Error {
    match e.into() {
        Error::Conflict { detail, field: None } => uniqueness(detail),
        other => other,
    }
}

fn document(raw: &str) -> Result<Value> {
    serde_json::from_str(raw).map_err(|e| Error::internal(format!("a stored SCIM document is not JSON: {e}")))
}

fn require_version(current: i64, if_match: Option<&Precondition>) -> Result<()> {
    match if_match {
        Some(p) if !p.holds(current) => Err(Error::PreconditionFailed(format!(
            "the resource changed: it is at version {} now; read it again",
            scim::etag(current)
        ))),
        _ => Ok(()),
    }
}

fn resource_id(id: &str, what: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::not_found(format!("no {what} has the id {id:?}")))
}

// ------------------------------------------------------------ users

fn user_parts(u: &ScimUserRecord, doc: &Value) -> Result<Value> {
    let id = u.user.id.to_string();
    let parts = UserParts {
        id: &id,
        user_name: &u.user_name,
        external_id: u.external_id.as_deref(),
        active: u.user.active,
        document: doc,
    };
    Ok(scim::user_resource(&parts))
}

fn render_user(base: Base<'_>, u: &ScimUserRecord) -> Result<Resource> {
    let doc = document(&u.document)?;
    let id = u.user.id.to_string();
    let location = format!("{}/{id}", base.users());
    let parts = UserParts {
        id: &id,
        user_name: &u.user_name,
        external_id: u.external_id.as_deref(),
        active: u.user.active,
        document: &doc,
    };
    let meta = Meta { location: &location, created: u.created_at, last_modified: u.updated_at, version: u.version };
    Ok(Resource { body: scim::render_user(&parts, &meta), version: u.version, location })
}

/// A User's fields checked as Canopy's account needs them.
struct CheckedUser {
    fields: UserFields,
    email: Email,
    first_name: PersonName,
    last_name: PersonName,
    document: String,
}

fn check_user(doc: &Value) -> Result<CheckedUser> {
    let fields = scim::read_user(doc).map_err(Error::Scim)?;
    crate::validate! {
        email: "emails" => Email::parse(&fields.email),
        first_name: "name.givenName" => PersonName::parse(fields.given_name.trim()),
        last_name: "name.familyName" => PersonName::parse(fields.family_name.trim()),
    }
    let document = fields.document.to_string();
    Ok(CheckedUser { fields, email, first_name, last_name, document })
}

async fn load_user(tx: &mut Tx, id: &str) -> Result<ScimUserRecord> {
    let id = resource_id(id, "User")?;
    tx.scim_user(id).await?.ok_or_else(|| Error::not_found(format!("no User has the id {id}")))
}

/// A User to change: its row locked first, so that two changes made from
/// one version wait in turn and the second sees the first (`If-Match`).
async fn load_user_to_change(tx: &mut Tx, id: &str, if_match: Option<&Precondition>) -> Result<ScimUserRecord> {
    tx.lock_scim_user(resource_id(id, "User")?).await?;
    let u = load_user(tx, id).await?;
    require_version(u.version, if_match)?;
    Ok(u)
}

/// Refuse a `userName` or an e-mail address another account holds.
async fn require_unique_user(tx: &mut Tx, c: &CheckedUser, me: Option<Uuid>) -> Result<()> {
    let by_name = tx.scim_users(&ScimUserQuery::UserName(c.fields.user_name.clone()), 0, 1).await?;
    if by_name.first().is_some_and(|u| Some(u.user.id) != me) {
        return Err(uniqueness(format!("another User has the userName {:?}", c.fields.user_name)));
    }
    if let Some(other) = tx.user_by_email(c.email.as_str()).await?
        && Some(other.id) != me
    {
        return Err(uniqueness(format!(
            "an account of Canopy has the e-mail address {} already; an admin of Canopy must change or remove it \
             before the identity provider can provision this User",
            c.email
        )));
    }
    Ok(())
}

/// A username for a new account, made from its `userName`.
async fn new_username(tx: &mut Tx, user_name: &str) -> Result<Username> {
    let hint = user_name.split('@').next().unwrap_or(user_name);
    for n in 1..=NAME_TRIES {
        let Some(candidate) = Username::from_hint(hint, n).or_else(|| Username::from_hint("user", n)) else { break };
        if tx.user_by_username(candidate.as_str()).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(uniqueness(format!("every username made from {user_name:?} is taken")))
}

fn record(tx: &mut Tx, by: &Principal, now: OffsetDateTime, what: (&str, Uuid, &str, &str, Option<i64>)) -> Result<()> {
    let (resource, id, name, operation, version) = what;
    let event = ScimChanged {
        resource: resource.into(),
        id,
        name: name.into(),
        operation: operation.into(),
        version: version.and_then(|v| u64::try_from(v).ok()),
    };
    tx.record(None, now, &by.initiator(), event.into())?;
    Ok(())
}

/// Create a User: a new account without a password, which signs in
/// through the identity provider.
pub async fn create_user(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    base: Base<'_>,
    doc: &Value,
) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let c = check_user(doc)?;
    let mut tx = store.write().await?;
    require_unique_user(&mut tx, &c, None).await?;
    let username = new_username(&mut tx, &c.fields.user_name).await?;
    let no_roles = Default::default();
    let user = tx
        .insert_user(
            NewUser {
                username: username.as_str(),
                email: c.email.as_str(),
                first_name: c.first_name.as_str(),
                last_name: c.last_name.as_str(),
                password_hash: None,
                installation_roles: &no_roles,
            },
            now,
        )
        .await
        .map_err(race_is_uniqueness)?;
    let link =
        ScimLink { name: &c.fields.user_name, external_id: c.fields.external_id.as_deref(), document: &c.document };
    tx.insert_scim_user(user.id, link, now).await.map_err(race_is_uniqueness)?;
    let created = UserCreated { user: user.username.clone(), email: user.email.clone(), installation_roles: vec![] };
    tx.record(None, now, &by.initiator(), created.into())?;
    if c.fields.active == Some(false) {
        let changes = UserChanges { active: Some(false), ..Default::default() };
        crate::users::change(&mut tx, by, &user, changes, now, Some("provisioned inactive through SCIM")).await?;
    }
    let after = load_user(&mut tx, &user.id.to_string()).await?;
    record(&mut tx, by, now, ("User", user.id, &user.username, "created", Some(after.version)))?;
    tx.commit().await.map_err(race_is_uniqueness)?;
    render_user(base, &after)
}

/// One User.
pub async fn get_user(store: &Store, by: &Principal, base: Base<'_>, id: &str) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.read().await?;
    render_user(base, &load_user(&mut tx, id).await?)
}

/// Write a User anew from `c`: the account follows (its names, address and
/// state; a deactivation ends its access everywhere, AC10).
async fn write_user(
    tx: &mut Tx,
    by: &Principal,
    now: OffsetDateTime,
    before: &ScimUserRecord,
    c: &CheckedUser,
    operation: &str,
) -> Result<ScimUserRecord> {
    let u = &before.user;
    // not saying is saying the default: active (a PUT replaces the whole resource)
    let active = c.fields.active.unwrap_or(true);
    if active && !u.active && before.held {
        return Err(scim_err(
            ScimType::Mutability,
            format!(
                "the account {} was deactivated in Canopy (by an admin, or an emergency revocation): only an admin \
                 of Canopy can reactivate it",
                u.username
            ),
        ));
    }
    let unchanged_link = c.fields.user_name == before.user_name
        && c.fields.external_id == before.external_id
        && c.document == before.document;
    require_unique_user(tx, c, Some(before.user.id)).await?;
    let differs = |new: &str, old: &str| (new != old).then(|| new.to_owned());
    let changes = UserChanges {
        email: differs(c.email.as_str(), &u.email),
        first_name: differs(c.first_name.as_str(), &u.first_name),
        last_name: differs(c.last_name.as_str(), &u.last_name),
        active: (active != u.active).then_some(active),
        ..Default::default()
    };
    let account_changed = changes.email.is_some()
        || changes.first_name.is_some()
        || changes.last_name.is_some()
        || changes.active.is_some();
    if !account_changed && unchanged_link {
        // nothing to write: the same version, and no event for no change
        return Ok(before.clone());
    }
    if account_changed {
        crate::users::change(tx, by, u, changes, now, Some("deprovisioned through SCIM")).await?;
    }
    let link =
        ScimLink { name: &c.fields.user_name, external_id: c.fields.external_id.as_deref(), document: &c.document };
    tx.update_scim_user(u.id, link, now).await?;
    let after = load_user(tx, &u.id.to_string()).await?;
    record(tx, by, now, ("User", u.id, &u.username, operation, Some(after.version)))?;
    Ok(after)
}

/// Replace a User (PUT).
pub async fn replace_user(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    base: Base<'_>,
    (id, if_match): (&str, Option<&Precondition>),
    doc: &Value,
) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let c = check_user(doc)?;
    let mut tx = store.write().await?;
    let before = load_user_to_change(&mut tx, id, if_match).await?;
    let after = write_user(&mut tx, by, now, &before, &c, "replaced").await?;
    tx.commit().await?;
    render_user(base, &after)
}

/// Change a User by PATCH operations.
pub async fn patch_user(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    base: Base<'_>,
    (id, if_match): (&str, Option<&Precondition>),
    ops: &[PatchOp],
) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.write().await?;
    let before = load_user_to_change(&mut tx, id, if_match).await?;
    let mut doc = user_parts(&before, &document(&before.document)?)?;
    scim::apply(&mut doc, ops).map_err(Error::Scim)?;
    let c = check_user(&doc)?;
    let after = write_user(&mut tx, by, now, &before, &c, "patched").await?;
    tx.commit().await?;
    render_user(base, &after)
}

/// Delete a User: the account is deactivated at once (its access ends
/// everywhere, AC10) and is no longer SCIM's; an admin may delete it.
pub async fn delete_user(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (id, if_match): (&str, Option<&Precondition>),
) -> Result<()> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.write().await?;
    let before = load_user_to_change(&mut tx, id, if_match).await?;
    let u = &before.user;
    if u.active {
        let changes = UserChanges { active: Some(false), ..Default::default() };
        crate::users::change(&mut tx, by, u, changes, now, Some("deleted through SCIM")).await?;
    }
    // no longer a User, so no longer a member of the provider's groups (AC3)
    for gid in tx.scim_groups_of_user(u.id).await? {
        if let Some(g) = tx.group_by_id(gid).await? {
            groups::remove_member_in(&mut tx, by, &g, u, now).await?;
        }
    }
    tx.delete_scim_user(u.id).await?;
    record(&mut tx, by, now, ("User", u.id, &u.username, "deleted", None))?;
    tx.commit().await?;
    Ok(())
}

/// The index query that narrows a User filter: a conjunct that compares
/// `id`, `userName`, `externalId` or `emails.value` for equality.
fn narrow_users(f: &Filter) -> Option<ScimUserQuery> {
    match f {
        Filter::Compare { path, op: Op::Eq, value: Value::String(v) } => {
            let attr = path.attr.to_ascii_lowercase();
            match (attr.as_str(), path.sub.as_deref().map(str::to_ascii_lowercase).as_deref()) {
                // an id that is no UUID names nothing: the nil one is no account's
                ("id", None) => Some(ScimUserQuery::Id(Uuid::parse_str(v).unwrap_or(Uuid::nil()))),
                ("username", None) => Some(ScimUserQuery::UserName(v.clone())),
                ("externalid", None) => Some(ScimUserQuery::ExternalId(v.clone())),
                ("emails", None | Some("value")) => Some(ScimUserQuery::Email(v.clone())),
                _ => None,
            }
        }
        Filter::ValuePath { attr, filter } if attr.eq_ignore_ascii_case("emails") => {
            value_eq(filter).map(ScimUserQuery::Email)
        }
        Filter::And(a, b) => narrow_users(a).or_else(|| narrow_users(b)),
        _ => None,
    }
}

/// The string a value filter's conjunct `value eq "..."` names
/// (`emails[type eq "work" and value eq "x"]`).
fn value_eq(f: &Filter) -> Option<String> {
    match f {
        Filter::Compare { path, op: Op::Eq, value: Value::String(v) }
            if path.attr.eq_ignore_ascii_case("value") && path.sub.is_none() =>
        {
            Some(v.clone())
        }
        Filter::And(a, b) => value_eq(a).or_else(|| value_eq(b)),
        _ => None,
    }
}

/// A page of Users, filtered: by an index where the filter allows, else
/// over at most [`MAX_SCAN`] Users.
pub async fn list_users(store: &Store, by: &Principal, base: Base<'_>, q: &ListQuery) -> Result<Listed> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.read().await?;
    let Some(filter) = &q.filter else {
        let total = tx.count_scim_users(&ScimUserQuery::All).await?;
        let page = tx.scim_users(&ScimUserQuery::All, q.offset(), q.count()).await?;
        let resources = page.iter().map(|u| render_user(base, u).map(|r| r.body)).collect::<Result<_>>()?;
        return Ok(Listed { total, start_index: q.offset() + 1, resources });
    };
    let narrowed = narrow_users(filter);
    let query = narrowed.clone().unwrap_or(ScimUserQuery::All);
    if narrowed.is_none() && tx.count_scim_users(&ScimUserQuery::All).await? > MAX_SCAN {
        return Err(too_many("Users"));
    }
    let mut window = Window::new(q);
    let mut offset = 0;
    loop {
        let batch = tx.scim_users(&query, offset, MAX_RESULTS).await?;
        for u in &batch {
            let r = render_user(base, u)?;
            if filter.matches(&r.body) {
                window.offer(r.body);
            }
        }
        if (batch.len() as i64) < MAX_RESULTS {
            break;
        }
        offset += MAX_RESULTS;
        if offset >= MAX_SCAN {
            return Err(too_many("Users"));
        }
    }
    Ok(window.listed(q))
}

/// The answers of a filter decided resource by resource: how many match,
/// and the bodies of the page asked for only.
struct Window {
    skip: i64,
    take: usize,
    total: i64,
    page: Vec<Value>,
}

impl Window {
    fn new(q: &ListQuery) -> Self {
        Self { skip: q.offset(), take: usize::try_from(q.count()).unwrap_or(0), total: 0, page: Vec::new() }
    }

    fn offer(&mut self, body: Value) {
        if self.total >= self.skip && self.page.len() < self.take {
            self.page.push(body);
        }
        self.total += 1;
    }

    fn listed(self, q: &ListQuery) -> Listed {
        Listed { total: self.total, start_index: q.offset() + 1, resources: self.page }
    }
}

fn too_many(what: &str) -> Error {
    scim_err(
        ScimType::TooMany,
        format!(
            "this filter would be decided on more than {MAX_SCAN} {what}: filter by an attribute compared with eq \
             (id, externalId, and userName or emails.value of Users, displayName or members.value of Groups)"
        ),
    )
}

// ------------------------------------------------------------ groups

async fn render_group(tx: &mut Tx, base: Base<'_>, g: &ScimGroupRecord, with_members: bool) -> Result<Resource> {
    let doc = document(&g.document)?;
    let id = g.group.id.to_string();
    let location = format!("{}/{id}", base.groups());
    let members: Vec<String> = if with_members {
        tx.scim_group_members(g.group.id).await?.into_iter().map(|id| id.to_string()).collect()
    } else {
        Vec::new()
    };
    let parts = GroupParts {
        id: &id,
        display_name: &g.group.display_name,
        external_id: g.external_id.as_deref(),
        members: &members,
        document: &doc,
    };
    let meta = Meta { location: &location, created: g.created_at, last_modified: g.updated_at, version: g.version };
    Ok(Resource { body: scim::render_group(&parts, &meta, &base.users(), with_members), version: g.version, location })
}

struct CheckedGroup {
    fields: GroupFields,
    display_name: DisplayName,
    document: String,
}

fn check_group(doc: &Value) -> Result<CheckedGroup> {
    let fields = scim::read_group(doc).map_err(Error::Scim)?;
    crate::validate! { display_name: "displayName" => DisplayName::parse(&fields.display_name) }
    let document = fields.document.to_string();
    Ok(CheckedGroup { fields, display_name, document })
}

async fn load_group(tx: &mut Tx, id: &str) -> Result<ScimGroupRecord> {
    let id = resource_id(id, "Group")?;
    tx.scim_group(id).await?.ok_or_else(|| Error::not_found(format!("no Group has the id {id}")))
}

async fn require_unique_group(tx: &mut Tx, name: &DisplayName, me: Option<Uuid>) -> Result<()> {
    let same = tx.scim_groups(&ScimGroupQuery::DisplayName(name.as_str().to_owned()), 0, 1).await?;
    if same.first().is_some_and(|g| Some(g.group.id) != me) {
        return Err(uniqueness(format!("another Group has the displayName {:?}", name.as_str())));
    }
    Ok(())
}

/// The provisioned accounts `ids` name, each checked.
async fn member_users(tx: &mut Tx, ids: &BTreeSet<String>) -> Result<Vec<UserRecord>> {
    let mut users = Vec::with_capacity(ids.len());
    for id in ids {
        let user = match Uuid::parse_str(id) {
            Ok(uuid) => tx.scim_user(uuid).await?.map(|u| u.user),
            Err(_) => None,
        };
        users
            .push(user.ok_or_else(|| scim_err(ScimType::InvalidValue, format!("members: no User has the id {id:?}")))?);
    }
    Ok(users)
}

/// Make the group's members `wanted`: those missing are added, the others removed.
async fn set_members(
    tx: &mut Tx,
    by: &Principal,
    g: &GroupRecord,
    wanted: &BTreeSet<String>,
    now: OffsetDateTime,
) -> Result<()> {
    let current: BTreeSet<String> = tx.scim_group_members(g.id).await?.into_iter().map(|id| id.to_string()).collect();
    let add: BTreeSet<String> = wanted.difference(&current).cloned().collect();
    let remove: BTreeSet<String> = current.difference(wanted).cloned().collect();
    change_members(tx, by, g, (&add, &remove), now).await
}

/// Add the members `add` (those not members yet) and remove `remove`
/// (those who are), each through the groups' own steps.
async fn change_members(
    tx: &mut Tx,
    by: &Principal,
    g: &GroupRecord,
    (add, remove): (&BTreeSet<String>, &BTreeSet<String>),
    now: OffsetDateTime,
) -> Result<()> {
    for user in member_users(tx, add).await? {
        if !tx.is_group_member(g.id, user.id).await? {
            groups::add_member_in(tx, by, g, &user, now).await?;
        }
    }
    for id in remove {
        // a member who is gone already needs no removal
        let Ok(uuid) = Uuid::parse_str(id) else { continue };
        let Some(user) = tx.user_by_id(uuid).await? else { continue };
        if tx.is_group_member(g.id, user.id).await? {
            groups::remove_member_in(tx, by, g, &user, now).await?;
        }
    }
    Ok(())
}

/// A new group's identifier, made from its display name.
async fn new_identifier(tx: &mut Tx, display_name: &str) -> Result<Identifier> {
    for n in 1..=NAME_TRIES {
        let Some(candidate) = Identifier::from_hint(display_name, n).or_else(|| Identifier::from_hint("group", n))
        else {
            break;
        };
        if tx.group_by_identifier(candidate.as_str()).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(uniqueness(format!("every identifier made from {display_name:?} is taken")))
}

/// Create a Group with its members: a group the identity provider owns
/// (admins see it and do not change it).
pub async fn create_group(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    base: Base<'_>,
    doc: &Value,
) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let c = check_group(doc)?;
    let mut tx = store.write().await?;
    require_unique_group(&mut tx, &c.display_name, None).await?;
    let identifier = new_identifier(&mut tx, c.display_name.as_str()).await?;
    let g = tx.insert_group(identifier.as_str(), c.display_name.as_str(), now).await.map_err(race_is_uniqueness)?;
    let created = GroupCreated { group: g.identifier.clone(), display_name: g.display_name.clone() };
    tx.record(None, now, &by.initiator(), created.into())?;
    let link =
        ScimLink { name: c.display_name.as_str(), external_id: c.fields.external_id.as_deref(), document: &c.document };
    tx.insert_scim_group(g.id, link, now).await.map_err(race_is_uniqueness)?;
    change_members(&mut tx, by, &g, (&c.fields.members, &BTreeSet::new()), now).await?;
    let after = load_group(&mut tx, &g.id.to_string()).await?;
    record(&mut tx, by, now, ("Group", g.id, &g.identifier, "created", Some(after.version)))?;
    let r = render_group(&mut tx, base, &after, true).await?;
    tx.commit().await.map_err(race_is_uniqueness)?;
    Ok(r)
}

/// One Group, with its members unless they are left out.
pub async fn get_group(
    store: &Store,
    by: &Principal,
    base: Base<'_>,
    id: &str,
    with_members: bool,
) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.read().await?;
    let g = load_group(&mut tx, id).await?;
    render_group(&mut tx, base, &g, with_members).await
}

/// Write a Group's name, externalId and kept document anew.
async fn write_group(
    tx: &mut Tx,
    by: &Principal,
    now: OffsetDateTime,
    before: &ScimGroupRecord,
    c: &CheckedGroup,
) -> Result<()> {
    require_unique_group(tx, &c.display_name, Some(before.group.id)).await?;
    if c.display_name.as_str() != before.group.display_name {
        groups::rename_in(tx, by, &before.group, c.display_name.clone(), now).await?;
    }
    let unchanged = c.display_name.as_str() == before.group.display_name
        && c.fields.external_id == before.external_id
        && c.document == before.document;
    if !unchanged {
        let link = ScimLink {
            name: c.display_name.as_str(),
            external_id: c.fields.external_id.as_deref(),
            document: &c.document,
        };
        tx.update_scim_group(before.group.id, link, now).await?;
    }
    Ok(())
}

/// A Group to change: its row locked first (see [`load_user_to_change`]).
async fn load_group_to_change(tx: &mut Tx, id: &str, if_match: Option<&Precondition>) -> Result<ScimGroupRecord> {
    tx.lock_scim_group(resource_id(id, "Group")?).await?;
    let g = load_group(tx, id).await?;
    require_version(g.version, if_match)?;
    Ok(g)
}

/// Record a change of a Group, if it changed at all (its version grew).
fn record_group(
    tx: &mut Tx,
    by: &Principal,
    now: OffsetDateTime,
    before: &ScimGroupRecord,
    after: &ScimGroupRecord,
    operation: &str,
) -> Result<()> {
    if after.version == before.version {
        return Ok(());
    }
    record(tx, by, now, ("Group", before.group.id, &before.group.identifier, operation, Some(after.version)))
}

/// Replace a Group (PUT), its members included.
pub async fn replace_group(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    base: Base<'_>,
    (id, if_match): (&str, Option<&Precondition>),
    doc: &Value,
) -> Result<Resource> {
    by.require(Action::ProvisionIdentities)?;
    let c = check_group(doc)?;
    let mut tx = store.write().await?;
    let before = load_group_to_change(&mut tx, id, if_match).await?;
    write_group(&mut tx, by, now, &before, &c).await?;
    set_members(&mut tx, by, &before.group, &c.fields.members, now).await?;
    let after = load_group(&mut tx, id).await?;
    record_group(&mut tx, by, now, &before, &after, "replaced")?;
    let r = render_group(&mut tx, base, &after, true).await?;
    tx.commit().await?;
    Ok(r)
}

/// Change a Group by PATCH operations; member changes are applied one by
/// one, so that a large group is never read whole to add a member.
pub async fn patch_group(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (id, if_match): (&str, Option<&Precondition>),
    ops: Vec<PatchOp>,
) -> Result<()> {
    by.require(Action::ProvisionIdentities)?;
    let (members, rest) = scim::take_member_changes(ops).map_err(Error::Scim)?;
    let mut tx = store.write().await?;
    let before = load_group_to_change(&mut tx, id, if_match).await?;
    if !rest.is_empty() {
        let doc = document(&before.document)?;
        let gid = before.group.id.to_string();
        let parts = GroupParts {
            id: &gid,
            display_name: &before.group.display_name,
            external_id: before.external_id.as_deref(),
            members: &[],
            document: &doc,
        };
        let mut doc = scim::group_resource(&parts);
        scim::apply(&mut doc, &rest).map_err(Error::Scim)?;
        if doc.get("members").is_some_and(|m| !m.is_null()) {
            return Err(scim_err(ScimType::InvalidPath, "members are changed by the path members"));
        }
        let c = check_group(&doc)?;
        write_group(&mut tx, by, now, &before, &c).await?;
    }
    match &members.replace {
        Some(all) => set_members(&mut tx, by, &before.group, all, now).await?,
        None => change_members(&mut tx, by, &before.group, (&members.add, &members.remove), now).await?,
    }
    let after = load_group(&mut tx, id).await?;
    record_group(&mut tx, by, now, &before, &after, "patched")?;
    tx.commit().await?;
    Ok(())
}

/// Delete a Group: its memberships and the bindings it held end.
pub async fn delete_group(
    store: &Store,
    by: &Principal,
    now: OffsetDateTime,
    (id, if_match): (&str, Option<&Precondition>),
) -> Result<()> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.write().await?;
    let before = load_group_to_change(&mut tx, id, if_match).await?;
    groups::delete_in(&mut tx, by, &before.group, now).await?;
    record(&mut tx, by, now, ("Group", before.group.id, &before.group.identifier, "deleted", None))?;
    tx.commit().await?;
    Ok(())
}

/// The index query that narrows a Group filter.
fn narrow_groups(f: &Filter) -> Option<ScimGroupQuery> {
    match f {
        Filter::Compare { path, op: Op::Eq, value: Value::String(v) } => {
            let attr = path.attr.to_ascii_lowercase();
            match (attr.as_str(), path.sub.as_deref().map(str::to_ascii_lowercase).as_deref()) {
                ("id", None) => Some(ScimGroupQuery::Id(Uuid::parse_str(v).unwrap_or(Uuid::nil()))),
                ("displayname", None) => Some(ScimGroupQuery::DisplayName(v.clone())),
                ("externalid", None) => Some(ScimGroupQuery::ExternalId(v.clone())),
                ("members", None | Some("value")) => {
                    Some(ScimGroupQuery::Member(Uuid::parse_str(v).unwrap_or(Uuid::nil())))
                }
                _ => None,
            }
        }
        Filter::ValuePath { attr, filter } if attr.eq_ignore_ascii_case("members") => {
            value_eq(filter).map(|v| ScimGroupQuery::Member(Uuid::parse_str(&v).unwrap_or(Uuid::nil())))
        }
        Filter::And(a, b) => narrow_groups(a).or_else(|| narrow_groups(b)),
        _ => None,
    }
}

/// A page of Groups, filtered as [`list_users`] filters Users; members
/// answered unless left out.
pub async fn list_groups(
    store: &Store,
    by: &Principal,
    base: Base<'_>,
    q: &ListQuery,
    with_members: bool,
) -> Result<Listed> {
    by.require(Action::ProvisionIdentities)?;
    let mut tx = store.read().await?;
    let Some(filter) = &q.filter else {
        let total = tx.count_scim_groups(&ScimGroupQuery::All).await?;
        let page = tx.scim_groups(&ScimGroupQuery::All, q.offset(), q.count()).await?;
        let mut resources = Vec::with_capacity(page.len());
        for g in &page {
            resources.push(render_group(&mut tx, base, g, with_members).await?.body);
        }
        return Ok(Listed { total, start_index: q.offset() + 1, resources });
    };
    let narrowed = narrow_groups(filter);
    let query = narrowed.clone().unwrap_or(ScimGroupQuery::All);
    if narrowed.is_none() && tx.count_scim_groups(&ScimGroupQuery::All).await? > MAX_SCAN {
        return Err(too_many("Groups"));
    }
    // a filter on members needs them; otherwise they are read only for the answer
    let needs_members = filter_names(filter, "members");
    let mut window = Window::new(q);
    let mut offset = 0;
    loop {
        let batch = tx.scim_groups(&query, offset, MAX_RESULTS).await?;
        for g in &batch {
            let r = render_group(&mut tx, base, g, needs_members || with_members).await?;
            if filter.matches(&r.body) {
                let mut body = r.body;
                if !with_members && let Some(o) = body.as_object_mut() {
                    o.remove("members");
                }
                window.offer(body);
            }
        }
        if (batch.len() as i64) < MAX_RESULTS {
            break;
        }
        offset += MAX_RESULTS;
        if offset >= MAX_SCAN {
            return Err(too_many("Groups"));
        }
    }
    Ok(window.listed(q))
}

/// Whether the filter reads the attribute `attr`.
fn filter_names(f: &Filter, attr: &str) -> bool {
    match f {
        Filter::Compare { path, .. } | Filter::Present(path) => path.attr.eq_ignore_ascii_case(attr),
        Filter::ValuePath { attr: a, .. } => a.eq_ignore_ascii_case(attr),
        Filter::And(a, b) | Filter::Or(a, b) => filter_names(a, attr) || filter_names(b, attr),
        Filter::Not(f) => filter_names(f, attr),
    }
}
