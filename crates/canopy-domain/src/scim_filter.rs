//! SCIM 2.0 filters (RFC 7644, section 3.4.2.2) as identity providers send
//! them: `userName eq "ann"`, `emails[type eq "work" and value co "@corp"]`,
//! `not (active eq false) or meta.lastModified gt "2026-01-01T00:00:00Z"`.
//!
//! [`parse`] reads one into a [`Filter`] (bounded in length and depth: the
//! text comes from outside); [`Filter::matches`] decides it for a resource
//! as its JSON representation. Attribute names are matched without regard
//! to case, and so are string values, except where the attribute is
//! case-exact (`id`, `externalId`, `members.value`, `meta.*`), as RFC 7643
//! defines them for the core schemas.

use std::fmt;

use serde_json::Value;

/// The longest filter read.
pub const MAX_LEN: usize = 4096;
/// The deepest nesting of parentheses and brackets read.
pub const MAX_DEPTH: usize = 16;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "ge" => Op::Ge,
            "le" => Op::Le,
            _ => return None,
        })
    }
}

/// An attribute path: an attribute and maybe one of its sub-attributes,
/// with the schema URN prefix, if any, removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub attr: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sub {
            Some(s) => write!(f, "{}.{s}", self.attr),
            None => f.write_str(&self.attr),
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: Op,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: some value of a multi-valued attribute
    /// matches the inner filter.
    ValuePath {
        attr: String,
        filter: Box<Filter>,
    },
}

/// Why a filter was refused: SCIM's `invalidFilter`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

fn err(msg: impl Into<String>) -> FilterError {
    FilterError(msg.into())
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokens(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenBracket,
                    _ => Token::CloseBracket,
                });
            }
            '"' => {
                chars.next();
                let mut raw = String::from("\"");
                let mut closed = false;
                while let Some(c) = chars.next() {
                    raw.push(c);
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            raw.push(n);
                        }
                    } else if c == '"' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(err("a string is not closed with \""));
                }
                let s: String = serde_json::from_str(&raw).map_err(|e| err(format!("a string is not valid: {e}")))?;
                out.push(Token::Str(s));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

/// Read a filter.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_LEN {
        return Err(err(format!("a filter may be at most {MAX_LEN} bytes long")));
    }
    let tokens = tokens(input)?;
    let mut p = Parser { tokens, at: 0, depth: 0 };
    let f = p.or()?;
    if p.at != p.tokens.len() {
        return Err(err(format!("unexpected {} after a complete filter", p.describe())));
    }
    Ok(f)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(Token::Word(w)) => format!("{w:?}"),
            Some(Token::Str(s)) => format!("the string {s:?}"),
            Some(Token::Open) => "\"(\"".into(),
            Some(Token::Close) => "\")\"".into(),
            Some(Token::OpenBracket) => "\"[\"".into(),
            Some(Token::CloseBracket) => "\"]\"".into(),
        }
    }

    fn keyword(&mut self, k: &str) -> bool {
        if let Some(Token::Word(w)) = self.peek()
            && w.eq_ignore_ascii_case(k)
        {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, t: Token, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(&t) {
            self.at += 1;
            Ok(())
        } else {
            Err(err(format!("expected {what}, found {}", self.describe())))
        }
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(format!("a filter may nest at most {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.deeper()?;
            self.expect(Token::Open, "\"(\" after not")?;
            let f = self.or()?;
            self.expect(Token::Close, "\")\"")?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(f)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            self.deeper()?;
            let f = self.or()?;
            self.expect(Token::Close, "\")\"")?;
            self.depth -= 1;
            return Ok(f);
        }
        self.attr_exp()
    }

    fn attr_exp(&mut self) -> Result<Filter, FilterError> {
        let Some(Token::Word(raw)) = self.peek().cloned() else {
            return Err(err(format!("expected an attribute, found {}", self.describe())));
        };
        self.at += 1;
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            self.deeper()?;
            let inner = self.or()?;
            self.expect(Token::CloseBracket, "\"]\"")?;
            self.depth -= 1;
            let attr = attr_path(&raw)?;
            if attr.sub.is_some() {
                return Err(err(format!("{raw:?}: a value filter applies to an attribute, not a sub-attribute")));
            }
            // `emails[type eq "work"].value eq "x"`, as Microsoft Entra ID
            // sends it: a value of `emails` of type work whose value is x
            if let Some(Token::Word(w)) = self.peek().cloned()
                && let Some(sub) = w.strip_prefix('.')
            {
                self.at += 1;
                let sub = attr_path(sub)?;
                let compared = self.comparison(&format!("{raw}[...].{}", sub.attr), sub)?;
                let both = Filter::And(Box::new(inner), Box::new(compared));
                return Ok(Filter::ValuePath { attr: attr.attr, filter: Box::new(both) });
            }
            return Ok(Filter::ValuePath { attr: attr.attr, filter: Box::new(inner) });
        }
        let path = attr_path(&raw)?;
        self.comparison(&raw, path)
    }

    /// The operator and value after the attribute path `raw`.
    fn comparison(&mut self, raw: &str, path: AttrPath) -> Result<Filter, FilterError> {
        let Some(Token::Word(op)) = self.peek().cloned() else {
            return Err(err(format!("expected an operator after {raw}, found {}", self.describe())));
        };
        self.at += 1;
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = Op::parse(&op)
            .ok_or_else(|| err(format!("{op:?} is not an operator (eq, ne, co, sw, ew, gt, lt, ge, le, pr)")))?;
        let value = match self.peek().cloned() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => serde_json::from_str::<serde_json::Number>(n).map(Value::Number).map_err(|_| {
                    err(format!("{n:?} is not a value: quote a string, or give true, false, null or a number"))
                })?,
            },
            _ => {
                return Err(err(
                    format!("expected a value after {raw} {op:?}, found {}", self.describe()).to_lowercase()
                ));
            }
        };
        self.at += 1;
        Ok(Filter::Compare { path, op, value })
    }
}

/// `urn:...:User:name.givenName` → `name` / `givenName`.
fn attr_path(raw: &str) -> Result<AttrPath, FilterError> {
    // a schema URN prefix ends at the last ':' (attribute names have none)
    let name = raw.rsplit_once(':').map_or(raw, |(_, n)| n);
    let mut parts = name.split('.');
    let attr = parts.next().unwrap_or_default();
    let sub = parts.next();
    let valid = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) || parts.next().is_some() {
        return Err(err(format!("{raw:?} is not an attribute path")));
    }
    Ok(AttrPath { attr: attr.to_owned(), sub: sub.map(str::to_owned) })
}

/// The value under `name` in `obj`, its name matched without regard to case.
fn get<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// Attributes whose string values compare case-exactly (RFC 7643).
fn case_exact(path: &AttrPath) -> bool {
    let a = path.attr.to_ascii_lowercase();
    matches!(a.as_str(), "id" | "externalid" | "meta")
        || (a == "members" && path.sub.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("value")))
}

impl Filter {
    /// Whether `resource` (a SCIM resource as JSON) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        self.eval(resource, None)
    }

    /// Decided on `resource`, which is an item of the attribute `parent`
    /// inside a value filter (`members[value eq "..."]`).
    fn eval(&self, resource: &Value, parent: Option<&str>) -> bool {
        match self {
            Filter::And(a, b) => a.eval(resource, parent) && b.eval(resource, parent),
            Filter::Or(a, b) => a.eval(resource, parent) || b.eval(resource, parent),
            Filter::Not(f) => !f.eval(resource, parent),
            Filter::ValuePath { attr, filter } => match get(resource, attr) {
                Some(Value::Array(items)) => items.iter().any(|i| filter.eval(i, Some(attr))),
                Some(v @ Value::Object(_)) => filter.eval(v, Some(attr)),
                _ => false,
            },
            Filter::Present(path) => values(resource, path).iter().any(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            }),
            Filter::Compare { path, op, value } => {
                let exact = match parent {
                    Some(p) => case_exact(&AttrPath { attr: p.to_owned(), sub: Some(path.attr.clone()) }),
                    None => case_exact(path),
                };
                let found = values(resource, path);
                match op {
                    // `ne` holds where no value equals, absent attributes included
                    Op::Ne => !found.iter().any(|v| compare(v, Op::Eq, value, exact)),
                    _ => found.iter().any(|v| compare(v, *op, value, exact)),
                }
            }
        }
    }
}

/// The values `path` reaches: a multi-valued attribute's items (or their
/// sub-attribute), a complex attribute's sub-attribute.
fn values<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(top) = get(resource, &path.attr) else { return vec![] };
    let items: Vec<&Value> = match top {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        None => items,
        Some(sub) => items.into_iter().filter_map(|i| get(i, sub)).collect(),
    }
}

fn compare(found: &Value, op: Op, wanted: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    match (found, wanted) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact { (a.clone(), b.clone()) } else { (a.to_lowercase(), b.to_lowercase()) };
            match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Lt => a < b,
                Op::Ge => a >= b,
                Op::Le => a <= b,
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else { return false };
            let Some(o) = a.partial_cmp(&b) else { return false };
            match op {
                Op::Eq => o == Ordering::Equal,
                Op::Ne => o != Ordering::Equal,
                Op::Gt => o == Ordering::Greater,
                Op::Lt => o == Ordering::Less,
                Op::Ge => o != Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Co | Op::Sw | Op::Ew => false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            _ => false,
        },
        (Value::Null, Value::Null) => op == Op::Eq,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Ann-42",
            "userName": "Ann@Example.org",
            "name": {"givenName": "Ann", "familyName": "Smith"},
            "displayName": "Ann Smith",
            "active": true,
            "emails": [{"type": "work", "value": "ann@corp.example", "primary": true},
                       {"type": "home", "value": "ann@home.example"}],
            "meta": {"lastModified": "2026-11-23T10:00:00Z"}
        })
    }

    fn yes(f: &str) -> bool {
        parse(f).unwrap().matches(&user())
    }

    #[test]
    fn id2_filters_identity_providers_send_are_read_and_decided() {
        // Entra ID and Okta
        assert!(yes(r#"userName eq "ann@example.org""#), "userName is not case-exact");
        assert!(yes(r#"externalId eq "Ann-42""#));
        assert!(!yes(r#"externalId eq "ann-42""#), "externalId is case-exact");
        assert!(yes(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ann@example.org""#));
        assert!(yes(r#"emails.value eq "ann@corp.example""#));
        assert!(yes(r#"emails[type eq "work" and value co "@corp"]"#));
        assert!(!yes(r#"emails[type eq "home" and value co "@corp"]"#));
        // Entra ID's own shape: a value filter, then a sub-attribute compared
        assert!(yes(r#"emails[type eq "work"].value eq "ann@corp.example""#));
        assert!(!yes(r#"emails[type eq "home"].value eq "ann@corp.example""#));
        assert!(yes(r#"name.givenName sw "an" and name.familyName ew "ITH""#));
        assert!(yes(r#"displayName co "Smi" or userName eq "nobody""#));
        assert!(yes("active eq true"));
        assert!(yes("not (active eq false)"));
        assert!(yes("title ne \"boss\""), "ne holds for an absent attribute");
        assert!(yes("externalId pr") && !yes("title pr"));
        assert!(yes(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
        assert!(yes(r#"userName eq "x" or (active eq true and displayName sw "Ann")"#));
        assert!(yes(r#"USERNAME EQ "ann@example.org""#), "names and operators in any case");
        let members = json!({"members": [{"value": "abc"}, {"value": "DEF"}]});
        assert!(parse(r#"members[value eq "DEF"]"#).unwrap().matches(&members));
        assert!(!parse(r#"members[value eq "def"]"#).unwrap().matches(&members), "members.value is case-exact");
        assert!(parse(r#"members.value eq "abc""#).unwrap().matches(&members));
        // and binds tighter than or
        assert_eq!(parse("a eq 1 or b eq 2 and c eq 3").unwrap(), parse("a eq 1 or (b eq 2 and c eq 3)").unwrap());
    }

    #[test]
    fn id2_a_malformed_or_hostile_filter_is_refused_with_its_reason() {
        for (f, says) in [
            ("userName", "expected an operator"),
            ("userName eq", "expected a value"),
            ("userName zz \"a\"", "not an operator"),
            ("userName eq ann", "not a value"),
            ("userName eq \"ann", "not closed"),
            ("(userName eq \"a\"", "expected \")\""),
            ("userName eq \"a\" )", "unexpected"),
            ("a.b.c eq 1", "not an attribute path"),
            ("emails[type eq \"work\"", "expected \"]\""),
            ("", "expected an attribute"),
        ] {
            let e = parse(f).unwrap_err().0;
            assert!(e.contains(says), "{f:?}: {e}");
        }
        let deep = format!("{}a eq 1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().0.contains("nest"));
        let long = format!("a eq \"{}\"", "x".repeat(MAX_LEN));
        assert!(parse(&long).unwrap_err().0.contains("at most"));
    }
}
