//! Reading a file of history checkpoints kept from earlier (SE7), in any of
//! the forms Canopy writes one: the answer of `GET
//! /admin/history/checkpoints` as `canopy history verify --save-checkpoints`
//! saves it, a JSON array of checkpoints, or the JSON lines `canopy serve
//! --checkpoint-file` appends (each a checkpoint, or a whole answer).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The checkpoints in `path`, each once, in the order they appear.
pub fn read<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the checkpoints in {}", path.display()))?;
    parse(&text).with_context(|| format!("reading the checkpoints in {}", path.display()))
}

/// The checkpoints of a file's text.
pub fn parse<T: DeserializeOwned>(text: &str) -> anyhow::Result<Vec<T>> {
    let mut values = Vec::new();
    match serde_json::from_str::<Value>(text) {
        Ok(v) => flatten(v, &mut values),
        Err(_) => {
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value =
                    serde_json::from_str(line).map_err(|e| anyhow::anyhow!("line {}: not JSON: {e}", n + 1))?;
                flatten(v, &mut values);
            }
        }
    }
    if values.is_empty() {
        bail!("it holds no checkpoints");
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        if !seen.insert(v.to_string()) {
            continue;
        }
        out.push(serde_json::from_value(v).map_err(|e| anyhow::anyhow!("checkpoint #{}: {e}", i + 1))?);
    }
    Ok(out)
}

/// An answer's `checkpoints`, an array's items, or the value itself.
fn flatten(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => out.extend(items),
        Value::Object(mut o) if o.get("checkpoints").is_some_and(Value::is_array) => {
            if let Some(Value::Array(items)) = o.remove("checkpoints") {
                out.extend(items);
            }
        }
        other => out.push(other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed set-up is a failed test
mod tests {
    use super::*;

    #[test]
    fn every_form_canopy_writes_is_read() {
        let cp = |n: i64| serde_json::json!({"chain": "c", "seq": n});
        let answer = serde_json::json!({"public_key": "k", "key_id": "i", "checkpoints": [cp(1), cp(2)]});
        let read =
            |text: &str| parse::<Value>(text).unwrap().iter().map(|v| v["seq"].as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(read(&serde_json::to_string_pretty(&answer).unwrap()), [1, 2]);
        assert_eq!(read(&serde_json::json!([cp(3)]).to_string()), [3]);
        assert_eq!(read(&format!("{}\n\n{}\n{}\n{answer}\n", cp(1), cp(4), cp(1))), [1, 4, 2]);
        assert!(parse::<Value>("").is_err());
        assert!(parse::<Value>("{\"chain\": 1}\nnot json\n").is_err());
    }
}
