//! Talking to the REST API: the HTTP client, the profile file, and the
//! errors of the client with their exit codes.

use std::error::Error as StdError;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canopy_api_types::{FieldError, Problem};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What `canopy` prints when no server or token is configured.
pub const NOT_SIGNED_IN: &str = "not signed in: run `canopy login --server URL --username NAME`";

/// A failed client command. Each variant has its exit code (see [`CliError::exit_code`]).
#[derive(Debug)]
pub enum CliError {
    /// The command line is wrong in a way clap cannot see (exit 2).
    Usage(String),
    /// No server or token to call the API with (exit 3).
    NotSignedIn(String),
    /// The server could not be reached (exit 1).
    Unreachable { server: String, cause: String },
    /// The server refused the request with a problem (exit code by status).
    Api { status: u16, detail: String, errors: Vec<FieldError>, hint: Option<String> },
    /// Anything else: a bad profile, an unexpected answer, a broken history (exit 1).
    Failed(String),
}

impl CliError {
    /// The process exit code, documented in `canopy --help` of each command.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::NotSignedIn(_) => 3,
            Self::Unreachable { .. } | Self::Failed(_) => 1,
            Self::Api { status, .. } => match status {
                401 => 3,
                403 => 4,
                404 => 5,
                409 => 6,
                400 | 422 => 7,
                429 | 503 => 8,
                _ => 1,
            },
        }
    }

    /// Print the error on standard error: `error: DETAIL`, then one
    /// `  FIELD: MESSAGE` line per invalid field.
    pub fn report(&self) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {self}");
        if let Self::Api { errors, hint, .. } = self {
            for e in errors {
                let _ = writeln!(err, "  {}: {}", e.field, e.message);
            }
            if let Some(h) = hint {
                let _ = writeln!(err, "hint: {h}");
            }
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) | Self::NotSignedIn(m) | Self::Failed(m) => f.write_str(m),
            Self::Unreachable { server, cause } => write!(f, "cannot reach the Canopy server at {server}: {cause}"),
            Self::Api { detail, .. } => f.write_str(detail),
        }
    }
}

/// The causes of an error, innermost last, without the outermost message
/// when there are causes (reqwest's is only "error sending request for url").
fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() { e.to_string() } else { parts.join(": ") }
}

/// Decode an answer of the server into an API type.
pub fn decode<T: DeserializeOwned>(v: Value) -> Result<T, CliError> {
    serde_json::from_value(v).map_err(|e| CliError::Failed(format!("unexpected answer from the server: {e}")))
}

/// Parse and normalise a server URL: `http(s)://HOST[:PORT][/PREFIX]`, no trailing slash.
pub fn parse_server(raw: &str) -> Result<Url, CliError> {
    let bad = |why: &str| CliError::Usage(format!("invalid server URL {raw:?}: {why}"));
    let url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("use http:// or https://"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("it names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    Ok(url)
}

/// The text form of a server URL, as printed and stored in the profile.
pub fn server_text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// A client of one Canopy server, with or without a token.
pub struct Api {
    http: reqwest::Client,
    server: Url,
    token: Option<String>,
}

impl Api {
    pub fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        let server = parse_server(server)?;
        // reqwest is built without a default crypto provider: install ring's
        // (an error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("canopy-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(300))
            // the server closes a connection idle for its header timeout (10 s
            // by default): never reuse one that old
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot set up the HTTP client: {}", causes(&e))))?;
        Ok(Self { http, server, token })
    }

    /// The server's URL as text (no trailing slash).
    pub fn server(&self) -> String {
        server_text(&self.server)
    }

    /// `SERVER/api/v1/SEGMENT/...`, each segment percent-encoded.
    fn url(&self, path: &[&str]) -> Result<Url, CliError> {
        let mut url = self.server.clone();
        url.path_segments_mut()
            .map_err(|()| CliError::Usage(format!("invalid server URL {}", self.server)))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(path);
        Ok(url)
    }

    /// Send a request; answer its JSON body (`Null` when empty) or the problem as an error.
    pub async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        self.call_status(method, path, query, body).await.map(|(_, v)| v)
    }

    /// [`Api::call`], also answering the success status, for the answers
    /// whose meaning depends on it (`202 Accepted`: a pending four-eye
    /// request rather than the change done).
    pub async fn call_status(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<(u16, Value), CliError> {
        let mut req = self.http.request(method, self.url(path)?).header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| self.send_error(&e))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| self.send_error(&e))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok((status.as_u16(), Value::Null));
            }
            return serde_json::from_slice(&bytes).map(|v| (status.as_u16(), v)).map_err(|e| {
                CliError::Failed(format!(
                    "the server at {} answered {status} with a body that is not JSON: {e}",
                    self.server()
                ))
            });
        }
        let (detail, errors) = match serde_json::from_slice::<Problem>(&bytes) {
            Ok(p) if !p.detail.is_empty() => (p.detail, p.errors),
            Ok(p) => (p.title, p.errors),
            Err(_) => (format!("the server at {} answered {status}", self.server()), Vec::new()),
        };
        let hint = (status.as_u16() == 401 && self.token.is_some())
            .then(|| format!("the token may have expired or been revoked; sign in again with `canopy login --server {} --username NAME`", self.server()));
        Err(CliError::Api { status: status.as_u16(), detail, errors, hint })
    }

    fn send_error(&self, e: &reqwest::Error) -> CliError {
        if e.is_builder() {
            CliError::Usage(format!("cannot build the request: {}", causes(e)))
        } else {
            CliError::Unreachable { server: self.server(), cause: causes(e) }
        }
    }

    pub async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Value, CliError> {
        self.call(Method::GET, path, query, None).await
    }

    pub async fn post<B: Serialize>(&self, path: &[&str], body: &B) -> Result<Value, CliError> {
        self.call(Method::POST, path, &[], Some(to_json(body)?)).await
    }

    pub async fn patch<B: Serialize>(&self, path: &[&str], body: &B) -> Result<Value, CliError> {
        self.call(Method::PATCH, path, &[], Some(to_json(body)?)).await
    }

    pub async fn delete(&self, path: &[&str]) -> Result<(), CliError> {
        self.call(Method::DELETE, path, &[], None).await.map(drop)
    }

    /// A `DELETE` that may answer with a body (`Value::Null` when it has none).
    pub async fn delete_with_answer(&self, path: &[&str]) -> Result<Value, CliError> {
        self.call(Method::DELETE, path, &[], None).await
    }

    /// Every item of a paged list, following `next_cursor`, or the first
    /// `limit` items. Also answers whether more items were left.
    pub async fn list(
        &self,
        path: &[&str],
        query: &[(&str, String)],
        limit: Option<u32>,
        page_size: u32,
    ) -> Result<(Vec<Value>, bool), CliError> {
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let want = match limit {
                Some(l) => l.saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX)).min(page_size),
                None => page_size,
            };
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("limit", want.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let (page, next) = page_items(self.get(path, &q).await?)?;
            items.extend(page);
            let full = limit.is_some_and(|l| items.len() >= l as usize);
            match next {
                Some(n) if cursor.as_ref() == Some(&n) => {
                    return Err(CliError::Failed("unexpected answer from the server: the same page came twice".into()));
                }
                Some(n) if !full => cursor = Some(n),
                more => {
                    if let Some(l) = limit {
                        items.truncate(l as usize);
                    }
                    return Ok((items, more.is_some()));
                }
            }
        }
    }
}

/// The items and `next_cursor` of one page of a list.
pub fn page_items(page: Value) -> Result<(Vec<Value>, Option<String>), CliError> {
    let Value::Object(mut page) = page else {
        return Err(CliError::Failed("unexpected answer from the server: a list is not a page".into()));
    };
    let Some(Value::Array(items)) = page.remove("items") else {
        return Err(CliError::Failed("unexpected answer from the server: a page has no items".into()));
    };
    let next = match page.remove("next_cursor") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok((items, next))
}

/// A request body as JSON.
pub fn to_json<B: Serialize>(body: &B) -> Result<Value, CliError> {
    serde_json::to_value(body).map_err(|e| CliError::Failed(format!("cannot encode the request: {e}")))
}

/// The profile file: where `canopy login` keeps the server and the token.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Fields written by other versions, kept as they are.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

impl Profile {
    /// `--profile` / `CANOPY_PROFILE`, else `$XDG_CONFIG_HOME/canopy/profile.json`,
    /// else `$HOME/.config/canopy/profile.json`.
    pub fn path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
        if let Some(p) = explicit {
            return Ok(p.to_owned());
        }
        let from_env = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
        if let Some(dir) = from_env("XDG_CONFIG_HOME") {
            return Ok(dir.join("canopy").join("profile.json"));
        }
        if let Some(home) = from_env("HOME") {
            return Ok(home.join(".config").join("canopy").join("profile.json"));
        }
        Err(CliError::Failed(
            "cannot tell where the profile is: set --profile, CANOPY_PROFILE, XDG_CONFIG_HOME or HOME".into(),
        ))
    }

    /// The profile at `path`; empty when the file does not exist.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(CliError::Failed(format!("cannot read the profile {}: {e}", path.display()))),
        };
        serde_json::from_str(&text)
            .map_err(|e| CliError::Failed(format!("the profile {} is not valid: {e}", path.display())))
    }

    /// Write the profile, readable by its owner only (mode 0600), creating
    /// its directory; the file is replaced at once, never half written.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let fail = |what: &str, e: std::io::Error| {
            CliError::Failed(format!("cannot {what} the profile {}: {e}", path.display()))
        };
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| CliError::Failed(format!("cannot encode the profile: {e}")))?;
        text.push('\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| fail("create the directory of", e))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = write_private(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail("write", e));
        }
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // An older file keeps its mode on open: set it again.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
