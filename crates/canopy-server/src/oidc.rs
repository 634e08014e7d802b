//! The relying party of an OpenID Connect provider (ID1): discovery (cached,
//! fetched again when the provider's keys rotate), the authorization code
//! flow with PKCE, and the checks of the ID token (signature, issuer,
//! audience, expiry against Canopy's clock, nonce, the access token's hash).
//! What it yields is an [`OidcIdentity`]; accounts and sessions are the
//! application layer's (`canopy_app::sso`).
//!
//! Every answer of the provider is treated as hostile: the HTTP client
//! follows no redirect, waits a bounded time, and reads at most
//! [`MAX_ANSWER`] bytes of a body.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use canopy_app::sso::OidcIdentity;
use canopy_domain::clock::Clock;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKey, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    JsonWebKey, JwsSigningAlgorithm, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    Scope, TokenResponse,
};
use time::OffsetDateTime;

/// The most of a provider's answer that is read.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// How long discovered metadata (endpoints and signing keys) is used before
/// it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The provider Canopy signs people in with (`--oidc-issuer`, ...).
#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// What the sign-in page's button names: "Sign in with NAME".
    pub display_name: String,
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// Why a sign-in through the provider failed, in words for the person.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be used now (unreachable, its metadata wrong).
    #[error("{0}")]
    Unavailable(String),
    /// The provider's answer about this sign-in was refused.
    #[error("{0}")]
    Refused(String),
}

/// A sign-in to send the person's browser to the provider with.
pub struct Start {
    pub url: String,
    pub state: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

/// The provider, as the server talks to it.
pub struct Oidc {
    pub settings: OidcSettings,
    redirect: String,
    http: OnceLock<Result<reqwest::Client, String>>,
    metadata: Arc<tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>>,
    /// A background fetch of the metadata is under way.
    refreshing: Arc<AtomicBool>,
}

/// One HTTP exchange with the provider, through reqwest, bounded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

async fn send(client: reqwest::Client, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let mut out = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
    out = out.timeout(Duration::from_secs(10));
    let mut res = out
        .send()
        .await
        .map_err(|e| HttpError(format!("the identity provider did not answer: {}", with_causes(&e))))?;
    let status = res.status();
    let headers = res.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| HttpError(format!("the identity provider's answer broke off: {}", with_causes(&e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(HttpError(format!("the identity provider answered more than {MAX_ANSWER} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let mut answer = HttpResponse::new(body);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// `e` with every error under it ("Request failed: the identity provider did
/// not answer: ... timed out"): openidconnect's own messages name only the
/// kind of failure.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// The provider's metadata from its discovery document: refused when its
/// issuer is not `issuer` (the crate checks) or an endpoint is not HTTPS.
async fn discover(issuer: &str, http: reqwest::Client) -> Result<CoreProviderMetadata, OidcError> {
    let issuer = IssuerUrl::new(issuer.to_owned())
        .map_err(|e| OidcError::Unavailable(format!("the issuer URL is not a URL: {e}")))?;
    let call = move |req: HttpRequest| send(http.clone(), req);
    let m = CoreProviderMetadata::discover_async(issuer, &call)
        .await
        .map_err(|e| OidcError::Unavailable(format!("its discovery failed: {}", with_causes(&e))))?;
    let endpoints = [Some(m.authorization_endpoint().url()), m.token_endpoint().map(|u| u.url())]
        .into_iter()
        .chain([Some(m.jwks_uri().url()), m.userinfo_endpoint().map(|u| u.url())]);
    let insecure = endpoints.flatten().find(|u| !secure_url(u.as_str())).map(|u| u.to_string());
    match insecure {
        Some(u) => Err(OidcError::Unavailable(format!("it names {u}, which is not HTTPS"))),
        None => Ok(m),
    }
}

/// HTTPS, or plain HTTP to this machine's loopback (a provider beside
/// Canopy, the tests'): what the provider's addresses may be.
pub fn secure_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| format!("{h}]"))
    } else {
        host.split(':').next().map(str::to_owned)
    };
    match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => matches!(host.as_deref(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    }
}

fn chrono_of(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    let nanos = t.unix_timestamp_nanos();
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, sub).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

impl Oidc {
    /// The provider of `settings`, its callback at `public_url`.
    pub fn new(settings: OidcSettings, public_url: &str) -> Self {
        let redirect = format!("{}/auth/oidc/callback", public_url.trim_end_matches('/'));
        Oidc {
            settings,
            redirect,
            http: OnceLock::new(),
            metadata: Arc::new(tokio::sync::Mutex::new(None)),
            refreshing: Arc::new(AtomicBool::new(false)),
        }
    }

    fn http(&self) -> Result<reqwest::Client, OidcError> {
        let built = self.http.get_or_init(|| {
            reqwest::Client::builder()
                // following redirects would let the provider's answers lead Canopy elsewhere
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())
        });
        built.clone().map_err(|e| OidcError::Unavailable(format!("no HTTP client: {e}")))
    }

    /// The provider's metadata. Cached metadata is used as long as it is
    /// young; once it is old it is still used while a fetch runs in the
    /// background, so that a slow or unreachable provider never holds up
    /// sign-ins that the metadata at hand serves. `fresh` (new keys are
    /// needed, or nothing is cached) waits for a fetch.
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        let cached = self.metadata.lock().await.clone();
        match cached {
            Some((m, at)) if !fresh && at.elapsed() < METADATA_TTL => Ok(m),
            Some((m, _)) if !fresh => {
                if !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (issuer, http) = (self.settings.issuer.clone(), self.http()?);
                    let (cache, refreshing) = (self.metadata.clone(), self.refreshing.clone());
                    tokio::spawn(async move {
                        match discover(&issuer, http).await {
                            Ok(m) => *cache.lock().await = Some((m, Instant::now())),
                            Err(e) => {
                                tracing::warn!(error = %e, %issuer, "OpenID Connect discovery failed; the metadata fetched before stays in use")
                            }
                        }
                        refreshing.store(false, Ordering::Release);
                    });
                }
                Ok(m)
            }
            _ => match discover(&self.settings.issuer, self.http()?).await {
                Ok(m) => {
                    *self.metadata.lock().await = Some((m.clone(), Instant::now()));
                    Ok(m)
                }
                Err(e) => {
                    tracing::warn!(error = %e, issuer = %self.settings.issuer, "OpenID Connect discovery failed");
                    Err(e)
                }
            },
        }
    }

    fn client(
        &self,
        m: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.redirect.clone())
            .map_err(|e| OidcError::Unavailable(format!("the callback address is not a URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the person's browser, with a fresh `state`, nonce and
    /// PKCE verifier to keep until the provider sends them back.
    pub async fn start(&self) -> Result<Start, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Start {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        })
    }

    /// Exchange the code the provider sent back, check the ID token it
    /// answers with against Canopy's clock, and say who signed in. Keys the
    /// provider rotated since discovery are fetched once more.
    pub async fn finish(
        &self,
        clock: Arc<dyn Clock>,
        code: &str,
        pkce_verifier: String,
        nonce: String,
    ) -> Result<OidcIdentity, OidcError> {
        let http = self.http()?;
        let call = move |req: HttpRequest| send(http.clone(), req);
        let m = self.metadata(false).await?;
        let client = self.client(m)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Unavailable(format!("it names no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&call)
            .await
            .map_err(|e| {
                OidcError::Refused(format!("the identity provider did not accept the sign-in: {}", with_causes(&e)))
            })?;
        let id_token =
            token.id_token().ok_or_else(|| OidcError::Refused("the identity provider sent no ID token".into()))?;
        let nonce = Nonce::new(nonce);
        let checked = {
            let clock = clock.clone();
            let verifier = client.id_token_verifier().set_time_fn(move || chrono_of(clock.now()));
            id_token.claims(&verifier, &nonce).cloned()
        };
        let (claims, client) = match checked {
            Ok(c) => (c, client),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // the provider may have rotated its keys since they were fetched
                let client = self.client(self.metadata(true).await?)?;
                let c = {
                    let verifier = client.id_token_verifier().set_time_fn(move || chrono_of(clock.now()));
                    id_token.claims(&verifier, &nonce).cloned().map_err(refused_token)?
                };
                (c, client)
            }
            Err(e) => return Err(refused_token(e)),
        };
        if let Some(expected) = claims.access_token_hash() {
            let refused = |e: &dyn fmt::Display| OidcError::Refused(format!("the ID token: {e}"));
            let alg = id_token.signing_alg().map_err(|e| refused(&e))?;
            let actual = if alg.uses_shared_secret() {
                // HS256 and kin: signed with the client secret, not a published key
                let key = CoreJsonWebKey::new_symmetric(self.settings.client_secret.as_bytes().to_vec());
                AccessTokenHash::from_token(token.access_token(), alg, &key)
            } else {
                let verifier = client.id_token_verifier();
                let key = id_token.signing_key(&verifier).map_err(|e| refused(&e))?;
                AccessTokenHash::from_token(token.access_token(), alg, key)
            }
            .map_err(|e| refused(&e))?;
            if actual != *expected {
                return Err(OidcError::Refused("the access token does not belong to the ID token".into()));
            }
        }
        let mut who = OidcIdentity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            preferred_username: claims.preferred_username().map(|u| u.to_string()),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            given_name: claims.given_name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            family_name: claims.family_name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            object_id: extra_claim(&id_token.to_string(), "oid"),
        };
        if who.email.is_none() {
            // many providers put the e-mail address in userinfo only
            if let Ok(request) = client.user_info(token.access_token().clone(), Some(claims.subject().clone())) {
                let info: CoreUserInfoClaims = request.request_async(&call).await.map_err(|e| {
                    OidcError::Refused(format!("the identity provider's userinfo: {}", with_causes(&e)))
                })?;
                who.email = info.email().map(|e| e.to_string());
                who.email_verified = info.email_verified().unwrap_or(false);
                if who.preferred_username.is_none() {
                    who.preferred_username = info.preferred_username().map(|u| u.to_string());
                }
            }
        }
        Ok(who)
    }
}

/// A claim of an ID token that `openidconnect`'s standard claims leave out,
/// such as Microsoft Entra ID's `oid` (the person's object id, the same for
/// every application, where its `sub` differs per application). Read only
/// from a token whose signature and claims were checked: the payload is
/// what was signed.
fn extra_claim(compact: &str, name: &str) -> Option<String> {
    use base64::Engine;
    let payload = compact.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(name)?.as_str().filter(|v| !v.is_empty() && v.len() <= 256).map(str::to_owned)
}

fn refused_token(e: openidconnect::ClaimsVerificationError) -> OidcError {
    OidcError::Refused(format!("the ID token was refused: {e}"))
}

#[cfg(test)]
mod tests {
    use super::{secure_url, with_causes};

    #[test]
    fn id1_a_failed_exchange_names_its_cause() {
        // what openidconnect returns when the token endpoint's call failed
        let e: openidconnect::RequestTokenError<
            super::HttpError,
            openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
        > = openidconnect::RequestTokenError::Request(super::HttpError(
            "the identity provider did not answer: operation timed out".into(),
        ));
        assert_eq!(with_causes(&e), "Request failed: the identity provider did not answer: operation timed out");
    }

    #[test]
    fn id1_the_providers_addresses_are_https_or_loopback() {
        for ok in [
            "https://login.example.org",
            "https://login.example.org:8443/tenant/v2.0",
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]:9000/",
        ] {
            assert!(secure_url(ok), "{ok}");
        }
        for bad in [
            "http://login.example.org",
            "http://127.0.0.1.evil.example/",
            "http://localhost@evil.example/",
            "ftp://127.0.0.1/",
            "login.example.org",
            "http://10.0.0.1/",
        ] {
            assert!(!secure_url(bad), "{bad}");
        }
    }
}
