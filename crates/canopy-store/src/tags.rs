//! Tag definitions (PR3) and projects' tags.

use crate::db::Row;
use canopy_domain::tags::TagDefinition;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, RowExt, StoreError, Tx, to_us};

fn from_row(r: &Row) -> Result<TagDefinition> {
    let json = |col: &str| -> Result<Option<Value>> {
        r.text_opt(col)?
            .map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{col} {t:?}: {e}"))))
            .transpose()
    };
    let options = match json("options")? {
        Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    Ok(TagDefinition {
        key: r.text("tag_key")?,
        display_name: r.text("display_name")?,
        kind: r.parse("kind")?,
        options,
        required: r.int("required")? != 0,
        default: json("default_value")?,
        admin_only: r.int("admin_only")? != 0,
        pattern: r.text_opt("pattern")?,
    })
}

const COLS: &str = "tag_key, display_name, kind, options, required, default_value, admin_only, pattern";

impl Tx {
    pub async fn tag_definitions(&mut self) -> Result<Vec<TagDefinition>> {
        let rows = crate::db::query(format!("SELECT {COLS} FROM tag_definitions ORDER BY tag_key"))
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// One page of the definitions by key, after `after`.
    pub async fn tag_definitions_page(&mut self, after: Option<&str>, limit: i64) -> Result<Vec<TagDefinition>> {
        let rows = crate::db::query(format!(
            "SELECT {COLS} FROM tag_definitions WHERE tag_key > $1 ORDER BY tag_key LIMIT CAST($2 AS BIGINT)"
        ))
        .bind(after.unwrap_or_default())
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn tag_definition(&mut self, key: &str) -> Result<Option<TagDefinition>> {
        let row = crate::db::query(format!("SELECT {COLS} FROM tag_definitions WHERE tag_key = $1"))
            .bind(key)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Insert a definition, or replace the one with its key.
    pub async fn put_tag_definition(&mut self, d: &TagDefinition, now: OffsetDateTime) -> Result<()> {
        let written = crate::db::query("DELETE FROM tag_definitions WHERE tag_key = $1")
            .bind(&d.key)
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "put_tag_definition");
        let written = crate::db::query(
            "INSERT INTO tag_definitions (tag_key, display_name, kind, options, required, default_value, admin_only, pattern, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&d.key)
        .bind(&d.display_name)
        .bind(d.kind.as_str())
        .bind(Value::from(d.options.clone()).to_string())
        .bind(i64::from(d.required))
        .bind(d.default.as_ref().map(Value::to_string))
        .bind(i64::from(d.admin_only))
        .bind(d.pattern.as_deref())
        .bind(to_us(now))
        .execute(self.conn())
        .await?;
        self.changed(written.rows_affected(), "put_tag_definition");
        Ok(())
    }

    pub async fn delete_tag_definition(&mut self, key: &str) -> Result<()> {
        let written =
            crate::db::query("DELETE FROM tag_definitions WHERE tag_key = $1").bind(key).execute(self.conn()).await?;
        self.changed(written.rows_affected(), "delete_tag_definition");
        Ok(())
    }

    pub async fn set_project_tags(&mut self, project_id: Uuid, tags: &Map<String, Value>) -> Result<()> {
        let written = crate::db::query("UPDATE projects SET tags = $2 WHERE id = $1")
            .bind(project_id.to_string())
            .bind(Value::Object(tags.clone()).to_string())
            .execute(self.conn())
            .await?;
        self.changed(written.rows_affected(), "set_project_tags");
        Ok(())
    }
}
