//! Project tags in a form (PR3): one field per tag definition, shaped by its
//! type, and the posted fields read back into the JSON object the use cases
//! take (the domain then checks each value against its definition).

use canopy_domain::tags::{TagDefinition, TagKind};
use serde_json::{Map, Value};

use super::form::Problems;

/// One option of a select or a group of checkboxes.
pub struct Choice {
    pub value: String,
    pub chosen: bool,
}

/// A tag's field as a form shows it.
pub struct TagField {
    /// The form field's name: `tags.KEY`.
    pub name: String,
    pub id: String,
    pub label: String,
    /// `text`, `number`, `email`, `checkbox`, `select` or `multi`.
    pub input: &'static str,
    pub value: String,
    pub checked: bool,
    pub choices: Vec<Choice>,
    pub required: bool,
    /// Admin-only tags are shown to others but cannot be changed by them.
    pub locked: bool,
    pub error: Option<String>,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The fields of `defs` showing `values` (the project's tags, or what was
/// posted), with `problems` next to each.
pub fn fields(defs: &[TagDefinition], values: &Map<String, Value>, admin: bool, problems: &Problems) -> Vec<TagField> {
    defs.iter()
        .map(|d| {
            let name = format!("tags.{}", d.key);
            let current = values.get(&d.key).or(d.default.as_ref());
            let chosen: Vec<String> = match current {
                Some(Value::Array(a)) => a.iter().map(text_of).collect(),
                Some(v) => vec![text_of(v)],
                None => vec![],
            };
            let input = match d.kind {
                TagKind::String => "text",
                TagKind::Number => "number",
                TagKind::Boolean => "checkbox",
                TagKind::Email => "email",
                TagKind::SingleSelect => "select",
                TagKind::MultiSelect => "multi",
            };
            TagField {
                id: format!("tag-{}", d.key),
                error: problems.get(&name).map(str::to_owned),
                name,
                label: d.display_name.clone(),
                input,
                value: chosen.first().cloned().unwrap_or_default(),
                checked: matches!(current, Some(Value::Bool(true))),
                choices: d
                    .options
                    .iter()
                    .map(|o| Choice { value: o.clone(), chosen: chosen.iter().any(|c| c == o) })
                    .collect(),
                required: d.required,
                locked: d.admin_only && !admin,
            }
        })
        .collect()
}

/// The tags a form posted, as the API takes them: a number as a number
/// (or as typed, for the domain to refuse), a checkbox as a boolean, a
/// multi select as a list; an empty field is left out. Tags the poster may
/// not change are left out, so that they keep their value or default.
pub fn posted(defs: &[TagDefinition], fields: &[(String, String)], admin: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for d in defs {
        if d.admin_only && !admin {
            continue;
        }
        let name = format!("tags.{}", d.key);
        let values: Vec<&str> = fields.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.trim()).collect();
        let value = match d.kind {
            TagKind::Boolean => Some(Value::Bool(values.contains(&"true"))),
            TagKind::MultiSelect => {
                let picked: Vec<Value> =
                    values.iter().filter(|v| !v.is_empty()).map(|v| Value::String((*v).to_owned())).collect();
                (!picked.is_empty()).then_some(Value::Array(picked))
            }
            TagKind::Number => values.first().filter(|v| !v.is_empty()).map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Value::String((*v).to_owned()), Value::Number)
            }),
            _ => values.first().filter(|v| !v.is_empty()).map(|v| Value::String((*v).to_owned())),
        };
        if let Some(v) = value {
            out.insert(d.key.clone(), v);
        }
    }
    out
}
