//! Project tags (PR3): admin-defined tag definitions, and the one function
//! that checks a project's tags against them on create and update.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::Email;
use crate::names::InvalidValue;
use crate::platforms::FieldProblem;

/// What values a tag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    String,
    Number,
    Boolean,
    Email,
    SingleSelect,
    MultiSelect,
}

impl TagKind {
    pub const ALL: [TagKind; 6] =
        [Self::String, Self::Number, Self::Boolean, Self::Email, Self::SingleSelect, Self::MultiSelect];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Email => "email",
            Self::SingleSelect => "single_select",
            Self::MultiSelect => "multi_select",
        }
    }

    fn is_select(self) -> bool {
        matches!(self, Self::SingleSelect | Self::MultiSelect)
    }
}

impl FromStr for TagKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            InvalidValue("must be one of string, number, boolean, email, single_select, multi_select".into())
        })
    }
}

impl fmt::Display for TagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tag definition: its key, kind, the options of a select, whether a
/// project must carry it, its default, whether only admins set it, and for
/// strings a pattern (a regular expression the whole value must match).
#[derive(Debug, Clone, PartialEq)]
pub struct TagDefinition {
    pub key: String,
    pub display_name: String,
    pub kind: TagKind,
    pub options: Vec<String>,
    pub required: bool,
    pub default: Option<Value>,
    pub admin_only: bool,
    pub pattern: Option<String>,
}

/// A tag key: lowercase letters, digits, `-` and `_`, 1 to 64 characters,
/// starting with a letter.
pub fn check_key(key: &str) -> Result<(), InvalidValue> {
    let ok = key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(InvalidValue("must be 1 to 64 lowercase letters, digits, - or _, starting with a letter".into()))
    }
}

fn anchored(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("is not a valid regular expression: {e}"))
}

/// Check a definition; each problem names its field.
pub fn check_definition(d: &TagDefinition) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    if let Err(e) = check_key(&d.key) {
        problems.push(("key".into(), e.to_string()));
    }
    if d.display_name.trim().is_empty() || d.display_name.chars().count() > 200 {
        problems.push(("display_name".into(), "must be 1 to 200 characters".into()));
    }
    if d.kind.is_select() {
        let mut seen = std::collections::BTreeSet::new();
        if d.options.is_empty() {
            problems.push(("options".into(), format!("a {} tag needs at least one option", d.kind)));
        }
        for o in &d.options {
            if o.trim().is_empty() || o.chars().count() > 200 || !seen.insert(o) {
                problems.push(("options".into(), "must be distinct, non-empty, at most 200 characters".into()));
                break;
            }
        }
    } else if !d.options.is_empty() {
        problems.push(("options".into(), format!("only select tags have options, not {} tags", d.kind)));
    }
    match (&d.pattern, d.kind) {
        (Some(_), k) if k != TagKind::String => {
            problems.push(("pattern".into(), "only string tags have a pattern".into()));
        }
        (Some(p), _) => {
            if let Err(e) = anchored(p) {
                problems.push(("pattern".into(), e));
            }
        }
        (None, _) => {}
    }
    if d.required && d.admin_only && d.default.is_none() {
        problems.push((
            "default".into(),
            "a required tag that only admins set needs a default, or managers could not create projects".into(),
        ));
    }
    if problems.is_empty()
        && let Some(v) = &d.default
        && let Err(e) = check_value(d, v)
    {
        problems.push(("default".into(), e));
    }
    problems
}

/// Whether `v` is a valid value of the tag.
pub fn check_value(d: &TagDefinition, v: &Value) -> Result<(), String> {
    match d.kind {
        TagKind::String => {
            let s = v.as_str().ok_or("must be a string")?;
            if s.chars().count() > 1000 {
                return Err("must be at most 1000 characters".into());
            }
            if let Some(p) = &d.pattern
                && !anchored(p)?.is_match(s)
            {
                return Err(format!("must match the pattern {p}"));
            }
            Ok(())
        }
        TagKind::Number => v.as_f64().map(|_| ()).ok_or_else(|| "must be a number".into()),
        TagKind::Boolean => v.as_bool().map(|_| ()).ok_or_else(|| "must be true or false".into()),
        TagKind::Email => {
            let s = v.as_str().ok_or("must be an e-mail address")?;
            Email::parse(s).map(|_| ()).map_err(|e| format!("must be an e-mail address: {e}"))
        }
        TagKind::SingleSelect => match v.as_str() {
            Some(s) if d.options.iter().any(|o| o == s) => Ok(()),
            _ => Err(format!("must be one of {}", d.options.join(", "))),
        },
        TagKind::MultiSelect => {
            let items = v.as_array().ok_or("must be a list of options")?;
            let mut seen = std::collections::BTreeSet::new();
            for i in items {
                match i.as_str() {
                    Some(s) if d.options.iter().any(|o| o == s) && seen.insert(s) => {}
                    _ => return Err(format!("must list distinct options of {}", d.options.join(", "))),
                }
            }
            Ok(())
        }
    }
}

/// A project's tags after a create (`previous` empty, `creating`) or an
/// update: `given` sets tags (a `null` removes one), defaults fill what a
/// new project leaves out, required tags must be there, admin-only tags may
/// change only when `admin`. Tags kept from before that are no longer
/// defined stay as they were. Problems name `tags.KEY`.
pub fn apply_tags(
    defs: &[TagDefinition],
    given: &Map<String, Value>,
    previous: &Map<String, Value>,
    creating: bool,
    admin: bool,
) -> Result<Map<String, Value>, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut out = previous.clone();
    for key in given.keys() {
        if !defs.iter().any(|d| &d.key == key) {
            problems.push((format!("tags.{key}"), "is not a defined tag (see /api/v1/tag-definitions)".into()));
        }
    }
    for d in defs {
        let field = format!("tags.{}", d.key);
        let before = previous.get(&d.key);
        let after = match given.get(&d.key) {
            Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
            None if creating => d.default.clone(),
            None => before.cloned(),
        };
        // a value kept as it was is not checked again against a definition
        // tightened since (it was valid when set)
        if let Some(v) = &after
            && after.as_ref() != before
            && let Err(e) = check_value(d, v)
        {
            problems.push((field, e));
            continue;
        }
        let changed = after.as_ref() != before && !(creating && given.get(&d.key).is_none());
        if d.admin_only && changed && !admin {
            problems.push((field, "only admins may set this tag".into()));
            continue;
        }
        match after {
            Some(v) => {
                out.insert(d.key.clone(), v);
            }
            None if d.required => problems.push((field, "is required".into())),
            None => {
                out.remove(&d.key);
            }
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(key: &str, kind: TagKind) -> TagDefinition {
        TagDefinition {
            key: key.into(),
            display_name: key.into(),
            kind,
            options: vec![],
            required: false,
            default: None,
            admin_only: false,
            pattern: None,
        }
    }

    fn problems(r: Result<Map<String, Value>, Vec<FieldProblem>>) -> Vec<FieldProblem> {
        match r {
            Ok(m) => panic!("expected problems, got {m:?}"),
            Err(p) => p,
        }
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn pr3_definitions_are_checked_naming_the_field() {
        let mut select = def("tier", TagKind::SingleSelect);
        assert_eq!(check_definition(&select)[0].0, "options");
        select.options = vec!["gold".into(), "silver".into()];
        assert!(check_definition(&select).is_empty());
        select.default = Some(json!("bronze"));
        assert_eq!(check_definition(&select)[0].0, "default");
        let mut s = def("cost-centre", TagKind::String);
        s.pattern = Some("[0-9]{4}(".into());
        assert_eq!(check_definition(&s)[0].0, "pattern");
        let mut n = def("Bad Key", TagKind::Number);
        n.pattern = Some("x".into());
        let fields: Vec<_> = check_definition(&n).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["key", "pattern"]);
    }

    #[test]
    fn pr3_tags_are_typed_required_defaulted_and_admin_only() {
        let mut cc = def("cost-centre", TagKind::String);
        cc.pattern = Some("[0-9]{4}".into());
        cc.required = true;
        let mut env = def("env", TagKind::SingleSelect);
        env.options = vec!["dev".into(), "prod".into()];
        env.default = Some(json!("dev"));
        let mut owner = def("owner", TagKind::Email);
        owner.admin_only = true;
        let mut langs = def("languages", TagKind::MultiSelect);
        langs.options = vec!["rust".into(), "go".into()];
        let defs = [cc, env, owner, langs, def("budget", TagKind::Number), def("public", TagKind::Boolean)];
        let none = Map::new();
        // required and typed, each problem names its tag
        let e =
            apply_tags(&defs, &map(json!({"budget": "many", "nope": 1})), &none, true, false).err().unwrap_or_default();
        let fields: Vec<_> = e.into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["tags.nope", "tags.cost-centre", "tags.budget"]);
        let e = apply_tags(&defs, &map(json!({"cost-centre": "12345"})), &none, true, false).err().unwrap_or_default();
        assert!(e[0].1.contains("pattern"), "{e:?}");
        // defaults fill a new project's tags
        let t = apply_tags(&defs, &map(json!({"cost-centre": "1234", "languages": ["go"]})), &none, true, false)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t, map(json!({"cost-centre": "1234", "env": "dev", "languages": ["go"]})));
        // admin-only: a member cannot set it, an admin can; a later update keeps it
        let given = map(json!({"owner": "ann@example.org"}));
        assert_eq!(problems(apply_tags(&defs, &given, &t, false, false))[0].0, "tags.owner");
        let t2 = apply_tags(&defs, &given, &t, false, true).unwrap_or_else(|e| panic!("{e:?}"));
        let t3 =
            apply_tags(&defs, &map(json!({"public": true})), &t2, false, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t3["owner"], "ann@example.org");
        // null removes, but not a required tag
        assert_eq!(
            apply_tags(&defs, &map(json!({"cost-centre": null})), &t3, false, false).err().unwrap_or_default()[0].0,
            "tags.cost-centre"
        );
        let t4 =
            apply_tags(&defs, &map(json!({"languages": null})), &t3, false, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!t4.contains_key("languages"));
        assert!(apply_tags(&defs, &map(json!({"languages": ["go", "go"]})), &t3, false, false).is_err());
    }
}
