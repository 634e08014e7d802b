//! SCIM 2.0 resources as Canopy reads and writes them (RFC 7643, RFC 7644):
//! what a User or a Group sent by an identity provider gives Canopy
//! ([`read_user`], [`read_group`]), PATCH operations applied to a resource's
//! JSON ([`read_patch`], [`apply`], [`take_member_changes`]), the resource as
//! it is answered ([`render_user`], [`render_group`]) and trimmed to the
//! attributes asked for ([`project`]).
//!
//! A resource is kept as the provider wrote it (its attributes Canopy has no
//! use for too, such as `title` or the enterprise extension, up to
//! [`MAX_DOCUMENT`] bytes), so that the provider reads back what it wrote
//! and does not send the same change at every synchronisation. The
//! attributes Canopy owns (`id`, `meta`, `active`, `userName`, `externalId`,
//! a group's `displayName` and `members`) are always answered from Canopy's
//! own records.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::scim_filter::{self, Filter, Op};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The largest resource kept, as JSON.
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;
/// The longest `userName`, `externalId` or member id read.
pub const MAX_NAME: usize = 256;
/// The most values a multi-valued attribute of a kept document holds
/// (`emails`, `phoneNumbers`, ...; a Group's members are not kept there).
pub const MAX_VALUES: usize = 100;

/// SCIM's `scimType` of an error (RFC 7644, section 3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::TooMany => "tooMany",
            Self::Uniqueness => "uniqueness",
            Self::Mutability => "mutability",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
        }
    }
}

/// Why a SCIM request was refused, in SCIM's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub scim_type: ScimType,
    pub detail: String,
}

fn refuse(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
    ScimError { scim_type, detail: detail.into() }
}

impl From<scim_filter::FilterError> for ScimError {
    fn from(e: scim_filter::FilterError) -> Self {
        refuse(ScimType::InvalidFilter, e.0)
    }
}

/// The value under `name` in `obj`, its name matched without regard to case.
fn get<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// The key `obj` holds `name` under, matched without regard to case.
fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn remove_key(obj: &mut Map<String, Value>, name: &str) -> Option<Value> {
    key_of(obj, name).and_then(|k| obj.remove(&k))
}

/// A short string attribute: trimmed of nothing, at most [`MAX_NAME`]
/// characters, without control characters.
fn short_string(attr: &str, v: &Value) -> Result<String, ScimError> {
    let s = v.as_str().ok_or_else(|| refuse(ScimType::InvalidValue, format!("{attr} must be a string")))?;
    if s.trim().is_empty() {
        return Err(refuse(ScimType::InvalidValue, format!("{attr} must not be empty")));
    }
    if s.chars().count() > MAX_NAME {
        return Err(refuse(ScimType::InvalidValue, format!("{attr} must be at most {MAX_NAME} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(refuse(ScimType::InvalidValue, format!("{attr} must not contain control characters")));
    }
    Ok(s.to_owned())
}

fn optional_string(obj: &Map<String, Value>, attr: &str) -> Result<Option<String>, ScimError> {
    match get(obj, attr) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => short_string(attr, v).map(Some),
    }
}

/// A boolean, also as the strings `"True"` and `"False"` (Microsoft Entra ID
/// sends `active` so).
pub fn boolean(attr: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(refuse(ScimType::InvalidValue, format!("{attr} must be true or false"))),
    }
}

fn object<'a>(doc: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ScimError> {
    doc.as_object().ok_or_else(|| refuse(ScimType::InvalidSyntax, format!("a {what} must be a JSON object")))
}

/// Refuse a resource whose `schemas` do not name `schema` (a resource
/// without `schemas` is read as the kind its endpoint serves).
fn require_schema(obj: &Map<String, Value>, schema: &str) -> Result<(), ScimError> {
    let named = match get(obj, "schemas") {
        None | Some(Value::Null) => true,
        Some(Value::Array(s)) => s.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(schema))),
        Some(_) => false,
    };
    if named { Ok(()) } else { Err(refuse(ScimType::InvalidSyntax, format!("schemas must name {schema}"))) }
}

/// The document kept: without what Canopy answers from its own records,
/// and never a password.
fn kept(obj: &Map<String, Value>, owned: &[&str]) -> Result<Value, ScimError> {
    let mut kept = obj.clone();
    for name in ["id", "meta", "password", "schemas"].iter().chain(owned) {
        remove_key(&mut kept, name);
    }
    let doc = Value::Object(kept);
    if doc.to_string().len() > MAX_DOCUMENT {
        return Err(refuse(ScimType::InvalidValue, format!("a resource may be at most {MAX_DOCUMENT} bytes")));
    }
    Ok(doc)
}

/// What Canopy takes from a SCIM User.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFields {
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: String,
    pub family_name: String,
    /// The primary address (else the first): Canopy's account holds one.
    pub email: String,
    /// `None` when the resource does not say (RFC 7643 leaves its meaning to
    /// the service provider): Canopy's default, active, as for a new account.
    pub active: Option<bool>,
    /// The rest of the resource, kept as given (with `active`, so that an
    /// account whose provider never set it is answered without it).
    pub document: Value,
}

/// Read a User as created or replaced (POST, PUT, or after a PATCH).
pub fn read_user(doc: &Value) -> Result<UserFields, ScimError> {
    let obj = object(doc, "User")?;
    require_schema(obj, USER)?;
    let user_name = match get(obj, "userName") {
        None | Some(Value::Null) => return Err(refuse(ScimType::InvalidValue, "userName is required")),
        Some(v) => short_string("userName", v)?,
    };
    let external_id = optional_string(obj, "externalId")?;
    let active = match get(obj, "active") {
        None | Some(Value::Null) => None,
        Some(v) => Some(boolean("active", v)?),
    };
    let name = match get(obj, "name") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(n)) => n.clone(),
        Some(_) => return Err(refuse(ScimType::InvalidValue, "name must be an object")),
    };
    let given_name = optional_string(&name, "givenName")?.unwrap_or_default();
    let family_name = optional_string(&name, "familyName")?.unwrap_or_default();
    let email = primary_email(obj)?;
    let document = kept(obj, &["userName", "externalId"])?;
    Ok(UserFields { user_name, external_id, given_name, family_name, email, active, document })
}

fn primary_email(obj: &Map<String, Value>) -> Result<String, ScimError> {
    let missing = || refuse(ScimType::InvalidValue, "emails must hold an address: each Canopy account has one");
    let emails = match get(obj, "emails") {
        None | Some(Value::Null) => return Err(missing()),
        Some(Value::Array(e)) => e,
        Some(_) => return Err(refuse(ScimType::InvalidValue, "emails must be a list")),
    };
    let mut first = None;
    for e in emails {
        let e = e.as_object().ok_or_else(|| refuse(ScimType::InvalidValue, "each of emails must be an object"))?;
        let Some(value) = optional_string(e, "value")? else { continue };
        let primary = match get(e, "primary") {
            None | Some(Value::Null) => false,
            Some(p) => boolean("emails.primary", p)?,
        };
        if primary {
            return Ok(value);
        }
        first.get_or_insert(value);
    }
    first.ok_or_else(missing)
}

/// What Canopy takes from a SCIM Group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFields {
    pub display_name: String,
    pub external_id: Option<String>,
    /// The ids of its members (SCIM Users), as given.
    pub members: BTreeSet<String>,
    /// The rest of the resource, kept as given.
    pub document: Value,
}

/// Read a Group as created or replaced.
pub fn read_group(doc: &Value) -> Result<GroupFields, ScimError> {
    let obj = object(doc, "Group")?;
    require_schema(obj, GROUP)?;
    let display_name = match get(obj, "displayName") {
        None | Some(Value::Null) => return Err(refuse(ScimType::InvalidValue, "displayName is required")),
        Some(v) => short_string("displayName", v)?,
    };
    let external_id = optional_string(obj, "externalId")?;
    let members = match get(obj, "members") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(v) => member_values(v)?,
    };
    let document = kept(obj, &["displayName", "externalId", "members"])?;
    Ok(GroupFields { display_name, external_id, members, document })
}

/// The `value`s of a list of members (or of one member).
fn member_values(v: &Value) -> Result<BTreeSet<String>, ScimError> {
    let items = match v {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        Value::Object(_) => vec![v],
        _ => return Err(refuse(ScimType::InvalidValue, "members must be a list of {\"value\": id}")),
    };
    items
        .into_iter()
        .map(|m| {
            let m = m.as_object().ok_or_else(|| refuse(ScimType::InvalidValue, "each member must be an object"))?;
            match get(m, "value") {
                Some(v) => short_string("members.value", v),
                None => Err(refuse(ScimType::InvalidValue, "each member needs a value (the id of a User)")),
            }
        })
        .collect()
}

// ------------------------------------------------------------ PATCH

/// A PATCH operation's kind. Names are read without regard to case
/// (Microsoft Entra ID sends `Add`, `Replace`, `Remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Add,
    Remove,
    Replace,
}

/// Where a PATCH operation applies: `attr`, `attr.sub`, `attr[filter]`,
/// `attr[filter].sub`, each maybe behind an extension schema's URN.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The extension schema holding the attribute (never the core one's).
    pub extension: Option<String>,
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub kind: PatchKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

/// Read a PATCH path.
pub fn read_path(raw: &str) -> Result<PatchPath, ScimError> {
    let bad = |why: &str| refuse(ScimType::InvalidPath, format!("{raw:?} is not a path: {why}"));
    if raw.len() > scim_filter::MAX_LEN {
        return Err(bad("too long"));
    }
    let raw_t = raw.trim();
    // a whole extension: `urn:...:enterprise:2.0:User`
    if raw_t.eq_ignore_ascii_case(ENTERPRISE_USER) {
        return Ok(PatchPath {
            extension: Some(ENTERPRISE_USER.to_owned()),
            attr: String::new(),
            filter: None,
            sub: None,
        });
    }
    // the schema URN ends at the last ':' before any value filter
    let head_end = raw_t.find('[').unwrap_or(raw_t.len());
    let (extension, rest) = match raw_t[..head_end].rfind(':') {
        Some(i) => {
            let urn = &raw_t[..i];
            let core = urn.eq_ignore_ascii_case(USER) || urn.eq_ignore_ascii_case(GROUP);
            (if core { None } else { Some(urn.to_owned()) }, &raw_t[i + 1..])
        }
        None => (None, raw_t),
    };
    let (attr, filter, sub) = match rest.find('[') {
        Some(open) => {
            let close = rest.rfind(']').ok_or_else(|| bad("a \"[\" is not closed"))?;
            if close < open {
                return Err(bad("a \"[\" is not closed"));
            }
            let filter = scim_filter::parse(&rest[open + 1..close])
                .map_err(|e| refuse(ScimType::InvalidPath, format!("{raw:?}: {e}")))?;
            let after = &rest[close + 1..];
            let sub = match after.strip_prefix('.') {
                Some(s) => Some(s.to_owned()),
                None if after.is_empty() => None,
                None => return Err(bad("only \".sub-attribute\" may follow \"]\"")),
            };
            (rest[..open].to_owned(), Some(filter), sub)
        }
        None => match rest.split_once('.') {
            Some((a, s)) => (a.to_owned(), None, Some(s.to_owned())),
            None => (rest.to_owned(), None, None),
        },
    };
    if !valid_name(&attr) || sub.as_deref().is_some_and(|s| !valid_name(s)) {
        return Err(bad("attribute names are letters, digits, '_', '-' and '$'"));
    }
    Ok(PatchPath { extension, attr, filter, sub })
}

/// Read a PATCH request's body (RFC 7644, section 3.5.2).
pub fn read_patch(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let obj = object(body, "PATCH request")?;
    require_schema(obj, PATCH_OP)?;
    let ops = get(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse(ScimType::InvalidSyntax, "Operations must be a list"))?;
    if ops.is_empty() || ops.len() > MAX_OPERATIONS {
        return Err(refuse(ScimType::InvalidSyntax, format!("Operations must hold 1 to {MAX_OPERATIONS} operations")));
    }
    ops.iter()
        .map(|op| {
            let op = object(op, "PATCH operation")?;
            let kind = match get(op, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("add") => PatchKind::Add,
                Some("remove") => PatchKind::Remove,
                Some("replace") => PatchKind::Replace,
                _ => return Err(refuse(ScimType::InvalidSyntax, "op must be add, remove or replace")),
            };
            let path = match get(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(read_path(p)?),
                Some(_) => return Err(refuse(ScimType::InvalidPath, "path must be a string")),
            };
            let value = get(op, "value").filter(|v| !v.is_null()).cloned();
            match (kind, &path, &value) {
                (PatchKind::Remove, None, _) => Err(refuse(ScimType::NoTarget, "remove needs a path")),
                (PatchKind::Add | PatchKind::Replace, _, None) => {
                    Err(refuse(ScimType::InvalidValue, "add and replace need a value"))
                }
                (PatchKind::Add | PatchKind::Replace, None, Some(v)) if !v.is_object() => {
                    Err(refuse(ScimType::InvalidValue, "without a path, the value must be an object of attributes"))
                }
                _ => Ok(PatchOp { kind, path, value }),
            }
        })
        .collect()
}

/// What a PATCH does to a Group's members, taken out of its operations so
/// that a group of many members is never read whole to add one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChanges {
    /// The members replaced by these (then `add` and `remove` are empty).
    pub replace: Option<BTreeSet<String>>,
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
}

impl MemberChanges {
    fn added(&mut self, ids: BTreeSet<String>) {
        for id in ids {
            match &mut self.replace {
                Some(all) => {
                    all.insert(id);
                }
                None => {
                    self.remove.remove(&id);
                    self.add.insert(id);
                }
            }
        }
    }

    fn removed(&mut self, ids: BTreeSet<String>) {
        for id in ids {
            match &mut self.replace {
                Some(all) => {
                    all.remove(&id);
                }
                None => {
                    self.add.remove(&id);
                    self.remove.insert(id);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.replace.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// The member ids `members[value eq "a" or value eq "b"]` names.
fn ids_of_member_filter(f: &Filter) -> Option<BTreeSet<String>> {
    match f {
        Filter::Compare { path, op: Op::Eq, value: Value::String(id) }
            if path.attr.eq_ignore_ascii_case("value") && path.sub.is_none() =>
        {
            Some([id.clone()].into())
        }
        Filter::Or(a, b) => {
            let mut ids = ids_of_member_filter(a)?;
            ids.extend(ids_of_member_filter(b)?);
            Some(ids)
        }
        _ => None,
    }
}

/// Take a Group PATCH's changes of `members` out of `ops`, in their order:
/// `add` of members (by value lists), `remove` of `members[value eq "id"]`
/// or of `members` with a value list (Microsoft Entra ID), `remove` of all
/// members, `replace` of them, and `members` inside a path-less value.
pub fn take_member_changes(ops: Vec<PatchOp>) -> Result<(MemberChanges, Vec<PatchOp>), ScimError> {
    let mut changes = MemberChanges::default();
    let mut rest = Vec::new();
    for mut op in ops {
        let targets_members =
            |p: &PatchPath| p.extension.is_none() && p.attr.eq_ignore_ascii_case("members") && p.sub.is_none();
        match &op.path {
            Some(p) if targets_members(p) => {
                let ids = op.value.as_ref().map(member_values).transpose()?;
                match (op.kind, &p.filter, ids) {
                    (PatchKind::Add, None, Some(ids)) => changes.added(ids),
                    (PatchKind::Replace, None, Some(ids)) => {
                        changes = MemberChanges { replace: Some(ids), ..Default::default() };
                    }
                    (PatchKind::Remove, None, Some(ids)) => changes.removed(ids),
                    (PatchKind::Remove, None, None) => {
                        changes = MemberChanges { replace: Some(BTreeSet::new()), ..Default::default() };
                    }
                    (PatchKind::Remove, Some(f), _) => {
                        let ids = ids_of_member_filter(f).ok_or_else(|| {
                            refuse(ScimType::InvalidFilter, "members are removed by members[value eq \"id\"]")
                        })?;
                        changes.removed(ids);
                    }
                    _ => return Err(refuse(ScimType::InvalidPath, "members are added by value, not by a filter")),
                }
            }
            Some(p) if p.extension.is_none() && p.attr.eq_ignore_ascii_case("members") => {
                return Err(refuse(ScimType::Mutability, "a member's attributes cannot be changed"));
            }
            None => {
                if let Some(Value::Object(v)) = &mut op.value
                    && let Some(members) = remove_key(v, "members")
                {
                    let ids = member_values(&members)?;
                    match op.kind {
                        PatchKind::Replace => changes = MemberChanges { replace: Some(ids), ..Default::default() },
                        _ => changes.added(ids),
                    }
                }
                rest.push(op);
            }
            Some(_) => rest.push(op),
        }
    }
    Ok((changes, rest))
}

/// Apply PATCH operations to a resource's JSON (RFC 7644, section 3.5.2).
/// `id`, `schemas` and `meta` in a path-less value are left alone.
pub fn apply(doc: &mut Value, ops: &[PatchOp]) -> Result<(), ScimError> {
    let root = doc.as_object_mut().ok_or_else(|| refuse(ScimType::InvalidSyntax, "not an object"))?;
    for op in ops {
        match (&op.path, &op.value) {
            (None, Some(Value::Object(values))) => {
                for (name, value) in values {
                    if ["id", "schemas", "meta"].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                        continue;
                    }
                    let path = read_path(name)?;
                    apply_at(root, op.kind, &path, Some(value))?;
                }
            }
            (Some(path), value) => apply_at(root, op.kind, path, value.as_ref())?,
            (None, _) => return Err(refuse(ScimType::NoTarget, "an operation without a path needs an object value")),
        }
    }
    Ok(())
}

fn apply_at(
    root: &mut Map<String, Value>,
    kind: PatchKind,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if path.attr.eq_ignore_ascii_case("id") || path.attr.eq_ignore_ascii_case("meta") {
        return Err(refuse(ScimType::Mutability, format!("{} is read-only", path.attr)));
    }
    if let (Some(urn), true) = (&path.extension, path.attr.is_empty()) {
        return apply_to_extension(root, kind, urn, value);
    }
    let container = match &path.extension {
        None => root,
        Some(urn) => {
            let key = key_of(root, urn).unwrap_or_else(|| urn.clone());
            if kind == PatchKind::Remove && !root.contains_key(&key) {
                return Ok(());
            }
            let ext = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            ext.as_object_mut().ok_or_else(|| refuse(ScimType::InvalidPath, "not an object"))?
        }
    };
    let key = key_of(container, &path.attr).unwrap_or_else(|| path.attr.clone());
    match (&path.filter, &path.sub, kind) {
        (None, None, PatchKind::Remove) => {
            container.remove(&key);
        }
        (None, None, PatchKind::Add) => {
            let value = value.cloned().unwrap_or(Value::Null);
            match (container.get_mut(&key), value) {
                (Some(Value::Array(items)), new) => {
                    let new = match new {
                        Value::Array(new) => new,
                        v => vec![v],
                    };
                    for v in new {
                        if !items.contains(&v) {
                            // bounded before it is looked through again
                            if items.len() >= MAX_VALUES {
                                return Err(too_many_values(&path.attr));
                            }
                            items.push(v);
                        }
                    }
                }
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, v) => {
                    bounded(&path.attr, &v)?;
                    container.insert(key, v);
                }
            }
        }
        (None, None, PatchKind::Replace) => {
            let v = value.cloned().unwrap_or(Value::Null);
            bounded(&path.attr, &v)?;
            container.insert(key, v);
        }
        (None, Some(sub), kind) => match container.get_mut(&key) {
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    set_sub(item, sub, kind, value);
                }
            }
            Some(Value::Object(item)) => set_sub(item, sub, kind, value),
            _ if kind == PatchKind::Remove => {}
            _ => {
                let mut item = Map::new();
                set_sub(&mut item, sub, kind, value);
                container.insert(key, Value::Object(item));
            }
        },
        (Some(filter), sub, kind) => {
            let items = container.entry(key.clone()).or_insert_with(|| Value::Array(vec![]));
            let Value::Array(items) = items else {
                return Err(refuse(ScimType::InvalidPath, format!("{} is not multi-valued", path.attr)));
            };
            let matching: Vec<usize> = (0..items.len()).filter(|&i| filter.matches(&items[i])).collect();
            match (kind, sub) {
                (PatchKind::Remove, None) => {
                    for i in matching.into_iter().rev() {
                        items.remove(i);
                    }
                }
                (PatchKind::Remove, Some(sub)) => {
                    for i in matching {
                        if let Some(item) = items[i].as_object_mut() {
                            remove_key(item, sub);
                        }
                    }
                }
                (_, sub) if !matching.is_empty() => {
                    for i in matching {
                        match (sub, &mut items[i]) {
                            (Some(sub), Value::Object(item)) => set_sub(item, sub, kind, value),
                            (None, Value::Object(item)) if kind == PatchKind::Add => {
                                if let Some(Value::Object(new)) = value {
                                    item.extend(new.clone());
                                }
                            }
                            (None, item) => *item = value.cloned().unwrap_or(Value::Null),
                            (Some(_), _) => {}
                        }
                    }
                }
                (_, sub) => {
                    // nothing matches: the filter's equalities make the new value
                    // (RFC 7644: a replace of what does not exist is an add)
                    let mut item = equalities(filter).ok_or_else(|| {
                        refuse(ScimType::NoTarget, format!("no value of {} matches the path's filter", path.attr))
                    })?;
                    match (sub, value) {
                        (Some(sub), _) => set_sub(&mut item, sub, PatchKind::Replace, value),
                        (None, Some(Value::Object(new))) => item.extend(new.clone()),
                        (None, _) => return Err(refuse(ScimType::InvalidValue, "the value must be an object")),
                    }
                    if items.len() >= MAX_VALUES {
                        return Err(too_many_values(&path.attr));
                    }
                    items.push(Value::Object(item));
                }
            }
            if items.is_empty() {
                container.remove(&key);
            }
        }
    }
    Ok(())
}

/// An operation on a whole extension's attributes: `add` merges them,
/// `replace` sets them, `remove` takes them all away.
fn apply_to_extension(
    root: &mut Map<String, Value>,
    kind: PatchKind,
    urn: &str,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let key = key_of(root, urn).unwrap_or_else(|| urn.to_owned());
    if kind == PatchKind::Remove {
        root.remove(&key);
        return Ok(());
    }
    let Some(Value::Object(new)) = value else {
        return Err(refuse(ScimType::InvalidValue, format!("{urn} takes an object of its attributes")));
    };
    let mut new = new.clone();
    remove_key(&mut new, "schemas");
    match (kind, root.get_mut(&key)) {
        (PatchKind::Add, Some(Value::Object(old))) => old.extend(new),
        _ => {
            root.insert(key, Value::Object(new));
        }
    }
    Ok(())
}

fn too_many_values(attr: &str) -> ScimError {
    refuse(ScimType::InvalidValue, format!("{attr} may hold at most {MAX_VALUES} values"))
}

/// Refuse a list of more than [`MAX_VALUES`] values.
fn bounded(attr: &str, v: &Value) -> Result<(), ScimError> {
    match v {
        Value::Array(items) if items.len() > MAX_VALUES => Err(too_many_values(attr)),
        _ => Ok(()),
    }
}

fn set_sub(item: &mut Map<String, Value>, sub: &str, kind: PatchKind, value: Option<&Value>) {
    let key = key_of(item, sub).unwrap_or_else(|| sub.to_owned());
    match kind {
        PatchKind::Remove => {
            item.remove(&key);
        }
        _ => {
            item.insert(key, value.cloned().unwrap_or(Value::Null));
        }
    }
}

/// `type eq "work" and primary eq true` → `{"type": "work", "primary": true}`.
fn equalities(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare { path, op: Op::Eq, value } if path.sub.is_none() => {
            Some(Map::from_iter([(path.attr.clone(), value.clone())]))
        }
        Filter::And(a, b) => {
            let mut m = equalities(a)?;
            m.extend(equalities(b)?);
            Some(m)
        }
        _ => None,
    }
}

// ------------------------------------------------------------ answers

/// What every answered resource carries in `meta`.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    pub location: &'a str,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    pub version: i64,
}

/// The entity tag of a resource's version (a weak one: the JSON answered
/// is equivalent, not byte for byte the same).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

fn meta(resource_type: &str, m: &Meta<'_>) -> Value {
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    json!({
        "resourceType": resource_type,
        "created": at(m.created),
        "lastModified": at(m.last_modified),
        "location": m.location,
        "version": etag(m.version),
    })
}

/// A User's parts as Canopy holds them.
#[derive(Debug, Clone)]
pub struct UserParts<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub external_id: Option<&'a str>,
    pub active: bool,
    pub document: &'a Value,
}

/// What `If-Match` asks of a resource's version (RFC 7232): any version
/// (`*`), or one of these entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    Any,
    Versions(Vec<i64>),
}

impl Precondition {
    /// Read an `If-Match` header; tags Canopy never gave match nothing.
    pub fn parse(header: &str) -> Self {
        if header.trim() == "*" {
            return Self::Any;
        }
        let versions = header
            .split(',')
            .filter_map(|t| {
                let t = t.trim();
                let t = t.strip_prefix("W/").unwrap_or(t);
                t.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
            })
            .collect();
        Self::Versions(versions)
    }

    pub fn holds(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(v) => v.contains(&version),
        }
    }
}

/// A User as PATCH operations see it: the kept document under what
/// Canopy owns, without `meta`.
pub fn user_resource(u: &UserParts<'_>) -> Value {
    let mut obj = u.document.as_object().cloned().unwrap_or_default();
    let mut schemas = vec![json!(USER)];
    if key_of(&obj, ENTERPRISE_USER).is_some() {
        schemas.push(json!(ENTERPRISE_USER));
    }
    obj.insert("schemas".into(), Value::Array(schemas));
    obj.insert("id".into(), json!(u.id));
    if let Some(e) = u.external_id {
        obj.insert("externalId".into(), json!(e));
    }
    obj.insert("userName".into(), json!(u.user_name));
    // the account's state where the provider set it, and always once it is off
    let said = remove_key(&mut obj, "active").is_some_and(|v| !v.is_null());
    if said || !u.active {
        obj.insert("active".into(), json!(u.active));
    }
    Value::Object(obj)
}

/// A User as answered.
pub fn render_user(u: &UserParts<'_>, m: &Meta<'_>) -> Value {
    let mut r = user_resource(u);
    if let Some(obj) = r.as_object_mut() {
        obj.insert("meta".into(), meta("User", m));
    }
    r
}

/// A Group's parts as Canopy holds them; its members by id.
#[derive(Debug, Clone)]
pub struct GroupParts<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub external_id: Option<&'a str>,
    pub members: &'a [String],
    pub document: &'a Value,
}

/// A Group as PATCH operations see it, without members and `meta`.
pub fn group_resource(g: &GroupParts<'_>) -> Value {
    let mut obj = g.document.as_object().cloned().unwrap_or_default();
    obj.insert("schemas".into(), json!([GROUP]));
    obj.insert("id".into(), json!(g.id));
    if let Some(e) = g.external_id {
        obj.insert("externalId".into(), json!(e));
    }
    obj.insert("displayName".into(), json!(g.display_name));
    Value::Object(obj)
}

/// A Group as answered; `users_location` is where its member Users are,
/// by id; `members` are left out when not asked for.
pub fn render_group(g: &GroupParts<'_>, m: &Meta<'_>, users_location: &str, with_members: bool) -> Value {
    let mut r = group_resource(g);
    let Some(obj) = r.as_object_mut() else { return r };
    if with_members {
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|id| json!({"value": id, "type": "User", "$ref": format!("{users_location}/{id}")}))
            .collect();
        obj.insert("members".into(), Value::Array(members));
    }
    obj.insert("meta".into(), meta("Group", m));
    r
}

/// An attribute named in `attributes` or `excludedAttributes`:
/// `name.givenName`, `emails`, `urn:...:enterprise:2.0:User:department`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrName {
    pub extension: Option<String>,
    pub attr: Option<String>,
    pub sub: Option<String>,
}

/// Read a comma-separated list of attribute names.
pub fn read_attribute_list(raw: &str) -> Result<Vec<AttrName>, ScimError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            // a whole extension: `urn:...:User`
            if name.to_ascii_lowercase().starts_with("urn:") && !name.eq_ignore_ascii_case(USER) {
                let is_schema = name.eq_ignore_ascii_case(ENTERPRISE_USER) || name.eq_ignore_ascii_case(GROUP);
                if is_schema {
                    return Ok(AttrName { extension: Some(name.to_owned()), attr: None, sub: None });
                }
            }
            let p = read_path(name).map_err(|e| refuse(ScimType::InvalidValue, e.detail))?;
            if p.filter.is_some() {
                return Err(refuse(ScimType::InvalidValue, format!("{name:?}: attributes are named without filters")));
            }
            Ok(AttrName { extension: p.extension, attr: Some(p.attr), sub: p.sub })
        })
        .collect()
}

/// Whether `name` names the attribute `attr` of `extension` (or one of
/// its sub-attributes); without an attribute, the whole extension.
fn names(name: &AttrName, extension: Option<&str>, attr: &str) -> bool {
    let same_ext = match (&name.extension, extension) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    same_ext && name.attr.as_deref().is_none_or(|a| a.eq_ignore_ascii_case(attr))
}

/// Trim a resource to `attributes` (when given) or without
/// `excluded` (RFC 7644, section 3.9). `id` and `schemas` always stay.
pub fn project(resource: &mut Value, attributes: &[AttrName], excluded: &[AttrName]) {
    let Some(obj) = resource.as_object_mut() else { return };
    let always = |k: &str| k.eq_ignore_ascii_case("id") || k.eq_ignore_ascii_case("schemas");
    if !attributes.is_empty() {
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            if always(&k) {
                continue;
            }
            let is_ext = k.to_ascii_lowercase().starts_with("urn:");
            let (ext, inner) = if is_ext { (Some(k.as_str()), true) } else { (None, false) };
            let Some(v) = obj.get_mut(&k) else { continue };
            if inner {
                // keep the extension's attributes asked for
                if attributes.iter().any(|a| a.attr.is_none() && names(a, ext, "")) {
                    continue;
                }
                if let Some(inner) = v.as_object_mut() {
                    inner.retain(|a, iv| keep_asked(attributes, ext, a, iv));
                    if !inner.is_empty() {
                        continue;
                    }
                }
                obj.remove(&k);
            } else if !keep_asked(attributes, None, &k, v) {
                obj.remove(&k);
            }
        }
    }
    for name in excluded {
        let Some(attr) = &name.attr else {
            if let Some(ext) = &name.extension {
                remove_key(obj, ext);
            }
            continue;
        };
        if always(attr) && name.extension.is_none() {
            continue;
        }
        let container = match &name.extension {
            None => Some(&mut *obj),
            Some(ext) => key_of(obj, ext).and_then(|k| obj.get_mut(&k)).and_then(Value::as_object_mut),
        };
        let Some(container) = container else { continue };
        match &name.sub {
            None => {
                remove_key(container, attr);
            }
            Some(sub) => match key_of(container, attr).and_then(|k| container.get_mut(&k)) {
                Some(Value::Object(o)) => {
                    remove_key(o, sub);
                }
                Some(Value::Array(items)) => {
                    for o in items.iter_mut().filter_map(Value::as_object_mut) {
                        remove_key(o, sub);
                    }
                }
                _ => {}
            },
        }
    }
}

/// Whether the attribute `attr` (in `ext`) holding `v` is asked for; a
/// complex one asked for by sub-attribute keeps only those.
fn keep_asked(attributes: &[AttrName], ext: Option<&str>, attr: &str, v: &mut Value) -> bool {
    let asked: Vec<&AttrName> = attributes.iter().filter(|a| a.attr.is_some() && names(a, ext, attr)).collect();
    if asked.is_empty() {
        return false;
    }
    if asked.iter().any(|a| a.sub.is_none()) {
        return true;
    }
    let keep_sub = |o: &mut Map<String, Value>| {
        o.retain(|s, _| asked.iter().any(|a| a.sub.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(s))));
    };
    match v {
        Value::Object(o) => keep_sub(o),
        Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(keep_sub),
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn user() -> Value {
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "name": {"familyName": "familyName", "givenName": "givenName"},
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            ENTERPRISE_USER: {"department": "Dept", "manager": {"value": "123"}},
            "password": "never kept",
        })
    }

    fn patch(body: Value) -> Vec<PatchOp> {
        read_patch(&body).unwrap()
    }

    #[test]
    fn id2_a_user_gives_its_names_address_and_state_and_keeps_the_rest() {
        let u = read_user(&user()).unwrap();
        assert_eq!(u.user_name, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1");
        assert_eq!(u.email, "Test_User_fd0ea19b@testuser.com");
        assert_eq!((u.given_name.as_str(), u.family_name.as_str()), ("givenName", "familyName"));
        assert_eq!(u.active, Some(true));
        assert_eq!(u.document[ENTERPRISE_USER]["department"], "Dept");
        assert!(u.document.get("password").is_none() && u.document.get("userName").is_none());
        let mut no_mail = user();
        no_mail.as_object_mut().unwrap().remove("emails");
        assert_eq!(read_user(&no_mail).unwrap_err().scim_type, ScimType::InvalidValue);
        let mut no_schema = user();
        no_schema["schemas"] = json!([GROUP]);
        assert_eq!(read_user(&no_schema).unwrap_err().scim_type, ScimType::InvalidSyntax);
    }

    #[test]
    fn id2_entra_patch_shapes_apply() {
        let mut doc = user();
        let ops = patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@testuser.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "7"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
        ]}));
        apply(&mut doc, &ops).unwrap();
        let u = read_user(&doc).unwrap();
        assert_eq!(u.active, Some(false));
        assert_eq!(u.email, "new@testuser.com");
        assert_eq!(u.family_name, "updatedFamilyName");
        assert_eq!(doc[ENTERPRISE_USER]["employeeNumber"], "7");
        assert_eq!(doc["phoneNumbers"], json!([{"type": "mobile", "value": "+1 555"}]));
        // Okta: a path-less replace with an object
        apply(
            &mut doc,
            &patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "value": {"id": "ignored", "active": true, "name": {"givenName": "Ann"}}}]})),
        )
        .unwrap();
        assert_eq!(read_user(&doc).unwrap().active, Some(true));
        assert_eq!(doc["name"], json!({"givenName": "Ann"}));
        // remove by filter
        apply(
            &mut doc,
            &patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": "phoneNumbers[type eq \"mobile\"]"}]})),
        )
        .unwrap();
        assert!(doc.get("phoneNumbers").is_none());
    }

    #[test]
    fn id2_patch_refuses_what_it_cannot_apply() {
        let bad = |body: Value| read_patch(&body).unwrap_err().scim_type;
        assert_eq!(bad(json!({"Operations": []})), ScimType::InvalidSyntax);
        assert_eq!(
            bad(json!({"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "a"}]})),
            ScimType::InvalidSyntax
        );
        assert_eq!(bad(json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]})), ScimType::NoTarget);
        assert_eq!(
            bad(json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "a[", "value": 1}]})),
            ScimType::InvalidPath
        );
        let mut doc = user();
        let ops = patch(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "id", "value": "x"}]}));
        assert_eq!(apply(&mut doc, &ops).unwrap_err().scim_type, ScimType::Mutability);
        let ops = patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "emails[type co \"w\"].value", "value": "x@y.z"}]}));
        let mut no_mail = json!({"schemas": [USER], "userName": "a"});
        assert_eq!(apply(&mut no_mail, &ops).unwrap_err().scim_type, ScimType::NoTarget);
        // a list grows to a bound, never past it
        let many: Vec<Value> = (0..=MAX_VALUES).map(|i| json!({"value": format!("+{i}")})).collect();
        let ops =
            patch(json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "phoneNumbers", "value": many}]}));
        let mut doc = user();
        assert_eq!(apply(&mut doc, &ops).unwrap_err().scim_type, ScimType::InvalidValue);
        let ops = patch(
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "phoneNumbers", "value": many}]}),
        );
        assert_eq!(apply(&mut doc, &ops).unwrap_err().scim_type, ScimType::InvalidValue);
    }

    #[test]
    fn id2_member_changes_are_taken_in_order() {
        let ops = patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "a"}]},
            {"op": "remove", "path": "members[value eq \"c\"]"},
            {"op": "replace", "value": {"displayName": "Ops", "id": "x"}},
        ]}));
        let (m, rest) = take_member_changes(ops).unwrap();
        assert_eq!(m.add, BTreeSet::from(["b".to_owned()]));
        assert_eq!(m.remove, BTreeSet::from(["a".to_owned(), "c".to_owned()]));
        assert_eq!(rest.len(), 1);
        let ops = patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": "d"}]}]}));
        let (m, _) = take_member_changes(ops).unwrap();
        assert_eq!(m.replace, Some(BTreeSet::from(["d".to_owned()])));
        let ops = patch(json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "remove", "path": "members[display eq \"x\"]"}]}));
        assert_eq!(take_member_changes(ops).unwrap_err().scim_type, ScimType::InvalidFilter);
    }

    #[test]
    fn id2_attributes_trim_an_answer() {
        let u = read_user(&user()).unwrap();
        let parts =
            UserParts { id: "1", user_name: &u.user_name, external_id: None, active: true, document: &u.document };
        let at = OffsetDateTime::UNIX_EPOCH;
        let m = Meta { location: "/scim/v2/Users/1", created: at, last_modified: at, version: 3 };
        let full = render_user(&parts, &m);
        assert_eq!(full["meta"]["version"], "W/\"3\"");
        let mut r = full.clone();
        project(&mut r, &read_attribute_list("userName,name.givenName").unwrap(), &[]);
        assert_eq!(
            r,
            json!({"schemas": [USER, ENTERPRISE_USER], "id": "1", "userName": u.user_name, "name": {"givenName": "givenName"}})
        );
        let mut r = full.clone();
        let ext = format!("{ENTERPRISE_USER}:department");
        project(&mut r, &read_attribute_list(&ext).unwrap(), &[]);
        assert_eq!(r[ENTERPRISE_USER], json!({"department": "Dept"}));
        let mut r = full;
        project(&mut r, &[], &read_attribute_list("emails,name.familyName,id").unwrap());
        assert!(r.get("emails").is_none() && r["name"].get("familyName").is_none() && r["id"] == "1");
    }
}
