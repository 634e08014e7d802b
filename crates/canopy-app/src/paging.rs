//! Pages of a list, the same for every interface: a page size, an opaque
//! cursor naming where the previous page stopped, and the page itself with
//! the cursor of the next.
//!
//! A cursor is the sort key of the last item shown, encoded so that callers
//! treat it as opaque; each list decodes the key it wrote. A list asks the
//! store for one row more than the page holds, to know whether another page
//! follows without counting.

use base64::Engine;

use crate::error::{Error, FieldError, Result};

/// Items per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items one page holds.
pub const MAX_LIMIT: u32 = 500;

/// Which page a caller asks for: its size and the decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub limit: u32,
    /// The sort key of the last item of the previous page.
    pub after: Option<String>,
}

impl Paging {
    /// Parse `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and a
    /// cursor this API returned, naming the field that is wrong.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self> {
        let limit = check_limit(limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        Ok(Paging { limit, after: decode(cursor)? })
    }

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Paging { limit, after: None }
    }

    /// Rows to fetch: one more than the page, to know whether one follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The cursor split into its two parts at `/`, each parsed, or the
    /// "not a cursor" error.
    pub fn after_pair<A, B>(
        &self,
        first: impl FnOnce(&str) -> Option<A>,
        second: impl FnOnce(&str) -> Option<B>,
    ) -> Result<Option<(A, B)>> {
        let Some(c) = self.after.as_deref() else { return Ok(None) };
        let (a, b) = c.split_once('/').ok_or_else(bad_cursor)?;
        match (first(a), second(b)) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            _ => Err(bad_cursor()),
        }
    }
}

/// A page size between 1 and `max`, `default` when not given.
pub fn check_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(Error::Invalid(vec![FieldError::new("limit", format!("must be between 1 and {max}"))])),
    }
}

/// One page of a list and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that is never paged (bounded by its nature).
    pub fn whole(items: Vec<T>) -> Self {
        Page { items, next_cursor: None }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

/// Cut the extra row the store fetched and make the page, its next cursor
/// being the key of its last item.
pub fn page<R>(mut rows: Vec<R>, limit: u32, key: impl Fn(&R) -> String) -> Page<R> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| encode(&key(r))) } else { None };
    Page { items: rows, next_cursor }
}

/// The cursor of a page that ends at the item with this key.
pub fn encode(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode(cursor: Option<&str>) -> Result<Option<String>> {
    let Some(c) = cursor else { return Ok(None) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|c| !c.contains('\0'))
        .map(Some)
        .ok_or_else(bad_cursor)
}

pub fn bad_cursor() -> Error {
    Error::Invalid(vec![FieldError::new("cursor", "is not a cursor this API returned")])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed set-up is a failed test
mod tests {
    use super::*;

    #[test]
    fn if1_a_cursor_round_trips_and_a_forged_one_is_refused() {
        let p = page(vec![1, 2, 3], 2, |n| format!("k{n}"));
        assert_eq!(p.items, vec![1, 2]);
        let next = Paging::parse(Some(2), p.next_cursor.as_deref()).unwrap();
        assert_eq!(next.after.as_deref(), Some("k2"));
        assert!(Paging::parse(None, Some("%%%")).is_err());
        assert!(Paging::parse(Some(0), None).is_err());
        assert!(Paging::parse(Some(MAX_LIMIT + 1), None).is_err());
        assert_eq!(page(vec![1], 2, |n| n.to_string()).next_cursor, None);
    }
}
