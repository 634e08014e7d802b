//! Output: aligned tables, `key: value` lines, pretty JSON.
//!
//! Everything goes to standard output through one locked handle; a closed
//! pipe (`canopy ... | head`) ends the output quietly instead of panicking.

use std::io::Write as _;

use canopy_api_types::{
    ApiKey, Binding, EffectiveAccess, ExpiringAccess, Group, GroupMember, HistoryEvent, Member, MyProject, MyWorkspace,
    Project, ProjectRole, RoleRequest, SearchResult, Settings, User, Workspace, WorkspaceFourEye,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Write lines to standard output, ignoring a closed pipe.
pub fn lines<I: IntoIterator<Item = String>>(lines: I) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}

pub fn json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => lines([s]),
        Err(_) => lines([v.to_string()]),
    }
}

/// Columns padded to their widest cell, a header row first; the last
/// column is not padded so lines carry no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            s.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(width(cell)) + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s
    };
    let mut out = vec![line(&mut headers.iter().copied())];
    out.extend(rows.iter().map(|r| line(&mut r.iter().map(String::as_str))));
    out
}

/// `key: value` lines, values aligned.
pub fn fields(fields: &[(&str, String)]) -> Vec<String> {
    let w = fields.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    fields.iter().map(|(k, v)| format!("{k}:{} {v}", " ".repeat(w - k.chars().count()))).collect()
}

/// An instant for people: UTC, to the second (JSON output keeps the server's precision).
pub fn time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub fn opt_time(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "-".into(), time)
}

pub fn opt(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned()
}

pub fn list(items: &[String]) -> String {
    if items.is_empty() { "-".into() } else { items.join(",") }
}

pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// How an API type shows as a table row and as a single object.
pub trait Render: DeserializeOwned {
    const HEADERS: &'static [&'static str];
    fn row(&self) -> Vec<String>;
    fn fields(&self) -> Vec<(&'static str, String)>;
}

/// `on, 2 approvals` or `off`.
pub fn four_eye(enabled: bool, approvals: u32) -> String {
    match (enabled, approvals) {
        (false, _) => "off".into(),
        (true, 1) => "on, 1 approval".into(),
        (true, n) => format!("on, {n} approvals"),
    }
}

/// A workspace's four-eye setting and where it comes from.
fn workspace_four_eye(f: &WorkspaceFourEye) -> String {
    let source = match f.source.as_str() {
        "installation" => "the installation's",
        "workspace" => "the workspace's own",
        other => other,
    };
    format!("{} ({source})", four_eye(f.enabled, f.approvals))
}

impl Render for Workspace {
    const HEADERS: &'static [&'static str] = &["IDENTIFIER", "NAME", "MY ROLE", "CREATED", "FOUR-EYE"];
    fn row(&self) -> Vec<String> {
        vec![
            self.identifier.clone(),
            self.display_name.clone(),
            opt(self.my_role.as_deref()),
            time(self.created_at),
            four_eye(self.four_eye.enabled, self.four_eye.approvals),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("identifier", self.identifier.clone()),
            ("display_name", self.display_name.clone()),
            ("my_role", opt(self.my_role.as_deref())),
            ("created_at", time(self.created_at)),
            ("four_eye", workspace_four_eye(&self.four_eye)),
        ]
    }
}

impl Render for RoleRequest {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "WORKSPACE",
        "PROJECT",
        "KIND",
        "SUBJECT",
        "ROLE",
        "EXPIRES",
        "APPROVALS",
        "NEEDS ADMIN",
        "REQUESTED BY",
        "STATE",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.workspace.clone(),
            self.project.clone(),
            self.kind.clone(),
            self.subject.clone(),
            self.role.clone(),
            opt_time(self.expires_at),
            format!("{}/{}", self.approvals.len(), self.approvals_required),
            yes_no(self.needs_admin),
            self.requested_by.clone(),
            self.state.clone(),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        let approved_by: Vec<String> =
            self.approvals.iter().map(|a| format!("{} ({})", a.approver, time(a.approved_at))).collect();
        let mut out = vec![
            ("id", self.id.to_string()),
            ("workspace", self.workspace.clone()),
            ("project", self.project.clone()),
            ("kind", self.kind.clone()),
            ("state", self.state.clone()),
            ("subject", self.subject.clone()),
            ("role", self.role.clone()),
            ("expires_at", opt_time(self.expires_at)),
        ];
        if self.kind == "change" {
            out.push(("from_role", opt(self.from_role.as_deref())));
            out.push(("from_expires_at", opt_time(self.from_expires_at)));
        }
        out.extend([
            ("binding", self.binding.map_or_else(|| "-".into(), |b| b.to_string())),
            ("justification", opt(Some(&self.justification))),
            ("requested_by", self.requested_by.clone()),
            ("requested_at", time(self.requested_at)),
            ("approvals", format!("{}/{}", self.approvals.len(), self.approvals_required)),
            ("approved_by", list(&approved_by)),
            ("needs_admin", yes_no(self.needs_admin)),
            ("decided_by", opt(self.decided_by.as_deref())),
            ("decided_at", opt_time(self.decided_at)),
            ("reason", opt(self.reason.as_deref())),
        ]);
        out
    }
}

impl Render for Settings {
    const HEADERS: &'static [&'static str] = &["FOUR-EYE", "MAX BINDING DAYS", "PAYMENT SUBSTITUTES"];
    fn row(&self) -> Vec<String> {
        vec![
            four_eye(self.four_eye.enabled, self.four_eye.approvals),
            self.max_binding_days.map_or_else(|| "none".into(), |d| d.to_string()),
            yes_no(self.payment_substitutes),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("four_eye", if self.four_eye.enabled { "on" } else { "off" }.into()),
            ("four_eye_approvals", self.four_eye.approvals.to_string()),
            ("max_binding_days", self.max_binding_days.map_or_else(|| "none".into(), |d| d.to_string())),
            ("payment_substitutes", yes_no(self.payment_substitutes)),
        ]
    }
}

impl Render for Member {
    const HEADERS: &'static [&'static str] = &["SUBJECT", "NAME", "ROLE", "GRANTED BY", "GRANTED AT"];
    fn row(&self) -> Vec<String> {
        vec![
            self.subject.clone(),
            self.display_name.clone(),
            self.role.clone(),
            self.granted_by.clone(),
            time(self.granted_at),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("subject", self.subject.clone()),
            ("kind", self.kind.clone()),
            ("name", self.name.clone()),
            ("display_name", self.display_name.clone()),
            ("role", self.role.clone()),
            ("granted_by", self.granted_by.clone()),
            ("granted_at", time(self.granted_at)),
        ]
    }
}

impl Render for SearchResult {
    const HEADERS: &'static [&'static str] = &["SUBJECT", "NAME", "EMAIL"];
    fn row(&self) -> Vec<String> {
        vec![self.subject.clone(), self.display_name.clone(), opt(self.email.as_deref())]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("subject", self.subject.clone()),
            ("display_name", self.display_name.clone()),
            ("email", opt(self.email.as_deref())),
        ]
    }
}

impl Render for User {
    const HEADERS: &'static [&'static str] = &["USERNAME", "EMAIL", "FIRST NAME", "LAST NAME", "ACTIVE", "ROLES"];
    fn row(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            self.email.clone(),
            opt(Some(&self.first_name)),
            opt(Some(&self.last_name)),
            yes_no(self.active),
            list(&self.installation_roles),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("username", self.username.clone()),
            ("email", self.email.clone()),
            ("first_name", opt(Some(&self.first_name))),
            ("last_name", opt(Some(&self.last_name))),
            ("active", yes_no(self.active)),
            ("installation_roles", list(&self.installation_roles)),
            ("created_at", time(self.created_at)),
        ]
    }
}

/// Who manages a group: Canopy, or the identity provider through SCIM.
fn managed_by(g: &Group) -> String {
    if g.provisioned { "identity provider (SCIM)" } else { "canopy" }.to_owned()
}

impl Render for Group {
    const HEADERS: &'static [&'static str] = &["IDENTIFIER", "NAME", "MEMBERS", "MANAGED BY", "CREATED"];
    fn row(&self) -> Vec<String> {
        vec![
            self.identifier.clone(),
            self.display_name.clone(),
            self.member_count.to_string(),
            managed_by(self),
            time(self.created_at),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("identifier", self.identifier.clone()),
            ("display_name", self.display_name.clone()),
            ("member_count", self.member_count.to_string()),
            ("managed_by", managed_by(self)),
            ("created_at", time(self.created_at)),
        ]
    }
}

impl Render for GroupMember {
    const HEADERS: &'static [&'static str] = &["USERNAME", "FIRST NAME", "LAST NAME", "EMAIL", "ACTIVE"];
    fn row(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            opt(Some(&self.first_name)),
            opt(Some(&self.last_name)),
            self.email.clone().unwrap_or_default(),
            yes_no(self.active),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("username", self.username.clone()),
            ("first_name", opt(Some(&self.first_name))),
            ("last_name", opt(Some(&self.last_name))),
            ("email", self.email.clone().unwrap_or_default()),
            ("active", yes_no(self.active)),
        ]
    }
}

impl Render for Project {
    const HEADERS: &'static [&'static str] = &["IDENTIFIER", "NAME", "PAYMENT METHOD", "CREATED"];
    fn row(&self) -> Vec<String> {
        vec![
            self.identifier.clone(),
            self.display_name.clone(),
            opt(self.payment_method.as_deref()),
            time(self.created_at),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        vec![
            ("workspace", self.workspace.clone()),
            ("identifier", self.identifier.clone()),
            ("display_name", self.display_name.clone()),
            ("payment_method", opt(self.payment_method.as_deref())),
            ("substitute_payment_method", opt(self.substitute_payment_method.as_deref())),
            ("tags", list(&tags)),
            ("created_at", time(self.created_at)),
        ]
    }
}

impl Render for Binding {
    const HEADERS: &'static [&'static str] =
        &["ID", "SUBJECT", "ROLE", "EXPIRES", "IN FORCE", "GRANTED BY", "GRANTED AT"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.subject.clone(),
            self.role.clone(),
            opt_time(self.expires_at),
            yes_no(self.in_force),
            self.granted_by.clone(),
            time(self.granted_at),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.to_string()),
            ("subject", self.subject.clone()),
            ("display_name", self.display_name.clone()),
            ("role", self.role.clone()),
            ("expires_at", opt_time(self.expires_at)),
            ("in_force", yes_no(self.in_force)),
            ("justification", opt(self.justification.as_deref())),
            ("granted_by", self.granted_by.clone()),
            ("granted_at", time(self.granted_at)),
        ]
    }
}

impl Render for ExpiringAccess {
    const HEADERS: &'static [&'static str] =
        &["STATE", "EXPIRES", "WORKSPACE", "PROJECT", "SUBJECT", "ROLE", "BINDING"];
    fn row(&self) -> Vec<String> {
        vec![
            self.state.clone(),
            time(self.expires_at),
            self.workspace.clone(),
            self.project.clone(),
            self.subject.clone(),
            self.role.clone(),
            self.binding.to_string(),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("binding", self.binding.to_string()),
            ("state", self.state.clone()),
            ("expires_at", time(self.expires_at)),
            ("workspace", self.workspace.clone()),
            ("project", self.project.clone()),
            ("subject", self.subject.clone()),
            ("display_name", self.display_name.clone()),
            ("role", self.role.clone()),
        ]
    }
}

impl Render for ProjectRole {
    const HEADERS: &'static [&'static str] = &["IDENTIFIER", "NAME", "DESCRIPTION"];
    fn row(&self) -> Vec<String> {
        vec![self.identifier.clone(), self.display_name.clone(), opt(Some(&self.description))]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("identifier", self.identifier.clone()),
            ("display_name", self.display_name.clone()),
            ("description", opt(Some(&self.description))),
        ]
    }
}

impl Render for HistoryEvent {
    const HEADERS: &'static [&'static str] = &["SEQ", "AT", "KIND", "INITIATOR", "ID", "DETAILS"];
    fn row(&self) -> Vec<String> {
        vec![
            self.seq.to_string(),
            time(self.at),
            self.kind.clone(),
            format!("{}:{}", self.initiator.kind, self.initiator.name),
            self.id.to_string(),
            self.details.to_string(),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        let details = serde_json::from_str::<serde_json::Value>(self.details.get())
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| self.details.to_string());
        vec![
            ("id", self.id.to_string()),
            ("seq", self.seq.to_string()),
            ("kind", self.kind.clone()),
            ("at", time(self.at)),
            ("initiator", format!("{}:{}", self.initiator.kind, self.initiator.name)),
            ("details", details),
        ]
    }
}

impl Render for ApiKey {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "SCOPE", "WORKSPACE", "ROLE", "EXPIRES", "CREATED BY"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.name.clone(),
            self.scope.clone(),
            opt(self.workspace.as_deref()),
            self.role.clone(),
            opt_time(self.expires_at),
            self.created_by.clone(),
        ]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.to_string()),
            ("name", self.name.clone()),
            ("scope", self.scope.clone()),
            ("workspace", opt(self.workspace.as_deref())),
            ("role", self.role.clone()),
            ("expires_at", opt_time(self.expires_at)),
            ("created_by", self.created_by.clone()),
            ("created_at", time(self.created_at)),
        ]
    }
}

impl Render for EffectiveAccess {
    const HEADERS: &'static [&'static str] = &["USERNAME", "ROLES"];
    fn row(&self) -> Vec<String> {
        vec![self.username.clone(), list(&self.roles)]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("username", self.username.clone()), ("roles", list(&self.roles))]
    }
}

impl Render for MyWorkspace {
    const HEADERS: &'static [&'static str] = &["WORKSPACE", "NAME", "ROLE", "REQUESTS TO DECIDE"];
    fn row(&self) -> Vec<String> {
        vec![self.identifier.clone(), self.display_name.clone(), self.role.clone(), self.requests_to_decide.to_string()]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("identifier", self.identifier.clone()),
            ("display_name", self.display_name.clone()),
            ("role", self.role.clone()),
            ("requests_to_decide", self.requests_to_decide.to_string()),
        ]
    }
}

impl Render for MyProject {
    const HEADERS: &'static [&'static str] = &["WORKSPACE", "PROJECT", "ROLES"];
    fn row(&self) -> Vec<String> {
        vec![self.workspace.clone(), self.project.clone(), list(&self.roles)]
    }
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("workspace", self.workspace.clone()), ("project", self.project.clone()), ("roles", list(&self.roles))]
    }
}

/// A titled table inside a single object's output (e.g. a project's bindings).
pub fn section<T: Render>(title: &str, items: &[T]) -> Vec<String> {
    let mut out = vec![String::new(), format!("{title}:")];
    if items.is_empty() {
        out.push("  (none)".into());
    } else {
        let rows: Vec<Vec<String>> = items.iter().map(Render::row).collect();
        out.extend(table(T::HEADERS, &rows).into_iter().map(|l| format!("  {l}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["bbbb".to_owned(), "v".to_owned(), "y".to_owned()],
        ];
        let out = table(&["ID", "VALUE", "LAST"], &rows);
        assert_eq!(out, vec!["ID    VALUE       LAST", "a     long value  x", "bbbb  v           y"]);
    }

    #[test]
    fn fields_align_values() {
        let out = fields(&[("id", "1".into()), ("display_name", "Acme".into())]);
        assert_eq!(out, vec!["id:           1", "display_name: Acme"]);
    }
}
