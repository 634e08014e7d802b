//! User-facing names, parsed once at the edge ("parse, don't validate").
//!
//! Each newtype can only hold a valid value; its `parse` explains what is
//! wrong in words a user understands. The API layer attaches the field name.

use std::fmt;

/// Why a value was refused. The message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(msg: impl Into<String>) -> InvalidValue {
    InvalidValue(msg.into())
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Identifier of a workspace, project, group or platform (WS1): lowercase
/// letters, digits and dashes, 1 to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);
string_newtype!(Identifier);

impl Identifier {
    pub const MAX_LEN: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(invalid(format!("must be at most {} characters", Self::MAX_LEN)));
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(invalid(format!("may only contain lowercase letters, digits and dashes, found {c:?}")));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The `n`th identifier made from a name given elsewhere (a group's
    /// display name at its identity provider): lowercased, every run of
    /// other characters a dash, `-n` appended from the second on.
    pub fn from_hint(hint: &str, n: u32) -> Option<Self> {
        let mut name = String::new();
        for c in hint.trim().to_lowercase().chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                name.push(c);
            } else if !name.ends_with('-') {
                name.push('-');
            }
        }
        let suffix = if n > 1 { format!("-{n}") } else { String::new() };
        let name: String = name.trim_matches('-').chars().take(Self::MAX_LEN - suffix.len()).collect();
        let name = name.trim_end_matches('-');
        if name.is_empty() {
            return None;
        }
        Self::parse(&format!("{name}{suffix}")).ok()
    }
}

/// A search term (type-ahead, user search): trimmed, 1 to
/// [`SearchTerm::MAX_LEN`] characters. Longer terms match nothing a name can
/// hold, and an unbounded one would reach the database's pattern limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchTerm(String);
string_newtype!(SearchTerm);

impl SearchTerm {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let t = raw.trim();
        if t.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if t.chars().count() > Self::MAX_LEN {
            return Err(invalid(format!("must be at most {} characters", Self::MAX_LEN)));
        }
        Ok(Self(t.to_owned()))
    }
}

/// Identifier of a project role (`project_reader`): like [`Identifier`] but
/// underscores are allowed, as the default role names use them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleIdentifier(String);
string_newtype!(RoleIdentifier);

impl RoleIdentifier {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if raw.chars().count() > 32 {
            return Err(invalid("must be at most 32 characters"));
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(invalid(format!(
                "may only contain lowercase letters, digits, dashes and underscores, found {c:?}"
            )));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// A local account's user name: lowercase letters, digits, `.`, `_`, `-`,
/// 1 to 64 characters, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let Some(first) = raw.chars().next() else {
            return Err(invalid("must not be empty"));
        };
        if raw.chars().count() > 64 {
            return Err(invalid("must be at most 64 characters"));
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(invalid("must start with a lowercase letter or a digit"));
        }
        if let Some(c) =
            raw.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
        {
            return Err(invalid(format!("may only contain lowercase letters, digits, '.', '_' and '-', found {c:?}")));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl Username {
    /// A user name for an account an identity provider signs in for the
    /// first time, made from what the provider calls the person (its
    /// `preferred_username`, else the e-mail's local part): lowercased, every
    /// other character a `-`, at most 64 characters; `n` > 1 appends `-n`
    /// for the n-th try when the name is taken. `None` when nothing usable
    /// is left.
    pub fn from_hint(hint: &str, n: u32) -> Option<Self> {
        let mut name: String = hint
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') { c } else { '-' })
            .collect();
        name = name.trim_start_matches(['.', '_', '-']).to_owned();
        let suffix = if n > 1 { format!("-{n}") } else { String::new() };
        let keep = 64 - suffix.len();
        name = name.chars().take(keep).collect::<String>();
        if name.is_empty() {
            return None;
        }
        Self::parse(&format!("{name}{suffix}")).ok()
    }
}

/// An e-mail address, kept as given but compared in lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);
string_newtype!(Email);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if raw.len() > 254 {
            return Err(invalid("must be at most 254 characters"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces"));
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(invalid("must be an e-mail address like name@example.org"));
        };
        if local.is_empty() || local.contains('@') {
            return Err(invalid("must be an e-mail address like name@example.org"));
        }
        if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(invalid("must have a valid domain after '@'"));
        }
        Ok(Self(raw.to_lowercase()))
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);
string_newtype!(DisplayName);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if trimmed.chars().count() > 100 {
            return Err(invalid("must be at most 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

/// A first or last name: trimmed, up to 100 characters; may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PersonName(String);
string_newtype!(PersonName);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > 100 {
            return Err(invalid("must be at most 100 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

/// The password policy for local accounts.
pub fn check_password(raw: &str) -> Result<(), InvalidValue> {
    let n = raw.chars().count();
    if n < 12 {
        return Err(invalid("must be at least 12 characters"));
    }
    if n > 256 {
        return Err(invalid("must be at most 256 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn id1_a_user_name_is_made_from_what_the_provider_calls_the_person() {
        use super::Username;
        let name = |hint: &str, n: u32| Username::from_hint(hint, n).map(Username::into_string);
        assert_eq!(name("Ann.Smith", 1).as_deref(), Some("ann.smith"));
        assert_eq!(name("ann smith@corp", 1).as_deref(), Some("ann-smith-corp"));
        assert_eq!(name("ann", 2).as_deref(), Some("ann-2"));
        assert_eq!(name("--Ann", 1).as_deref(), Some("ann"));
        assert_eq!(name("Åsa", 1).as_deref(), Some("sa"), "a leading replacement is trimmed");
        assert_eq!(name("", 1), None);
        assert_eq!(name("***", 1), None);
        let long = "a".repeat(100);
        assert_eq!(name(&long, 12).map(|n| n.len()), Some(64));
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ws1_identifier_rules() {
        assert!(Identifier::parse("team-a1").is_ok());
        assert!(Identifier::parse(&"a".repeat(32)).is_ok());
        assert!(Identifier::parse(&"a".repeat(33)).is_err());
        assert!(Identifier::parse("").is_err());
        assert!(Identifier::parse("Team").is_err());
        assert!(Identifier::parse("a_b").is_err());
        assert!(Identifier::parse("a b").is_err());
        assert!(Identifier::parse("é").is_err());
    }

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(Email::parse(" Ann@Example.org ").map(Email::into_string), Ok("ann@example.org".into()));
        for bad in ["", "ann", "@x.org", "ann@", "ann@.org", "a b@x.org", "ann@x..org"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_name_is_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Team A ").map(DisplayName::into_string), Ok("Team A".into()));
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
    }

    proptest! {
        #[test]
        fn ws1_identifier_accepts_exactly_the_allowed_alphabet(s in "\\PC{0,40}") {
            let ok = !s.is_empty()
                && s.chars().count() <= 32
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert_eq!(Identifier::parse(&s).is_ok(), ok);
        }

        #[test]
        fn ws1_valid_identifiers_round_trip(s in "[a-z0-9-]{1,32}") {
            prop_assert_eq!(Identifier::parse(&s).map(Identifier::into_string), Ok(s));
        }
    }
}
