//! `canopy login`, `logout`, `whoami`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canopy_api_types::{Me, SsoTokenRequest, TokenRequest, TokenResponse};
use clap::Args;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::api::{self, Api, CliError, Profile};
use super::{Ctx, read_secret, render};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username of a local account.
    #[arg(long, required_unless_present = "sso", conflicts_with = "sso")]
    pub username: Option<String>,
    /// Read the password from the first line of standard input (else from CANOPY_PASSWORD).
    #[arg(long, conflicts_with = "sso")]
    pub password_stdin: bool,
    /// Sign in through the server's identity provider in a browser: the
    /// command prints an address to open, and the sign-in comes back to it
    /// on this machine's loopback address.
    #[arg(long)]
    pub sso: bool,
    /// How long --sso waits for the browser, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sso_wait_seconds: u64,
}

/// Sign in and keep server, token and username in the profile (mode 0600).
pub async fn login(ctx: &Ctx, args: LoginArgs) -> Result<(), CliError> {
    let path = ctx.profile_path()?;
    let profile = Profile::load(&path)?;
    let server = ctx
        .server
        .clone()
        .or_else(|| profile.server.clone())
        .ok_or_else(|| CliError::Usage("give the server: canopy login --server URL --username NAME".into()))?;
    let Some(username) = args.username.clone().filter(|_| !args.sso) else {
        return login_sso(ctx, &server, (profile, &path), Duration::from_secs(args.sso_wait_seconds)).await;
    };
    let password = read_secret(args.password_stdin, "CANOPY_PASSWORD").await?.ok_or_else(|| {
        CliError::Usage("give the password on standard input with --password-stdin, or in CANOPY_PASSWORD".into())
    })?;
    let client = Api::new(&server, None)?;
    let answer = client.post(&["auth", "token"], &TokenRequest { username: username.clone(), password }).await?;
    let token: TokenResponse = api::decode(answer)?;
    signed_in(ctx, client.server(), (profile, &path), &username, token)
}

/// Keep the new session in the profile and say so.
fn signed_in(
    ctx: &Ctx,
    server: String,
    (mut profile, path): (Profile, &std::path::Path),
    username: &str,
    token: TokenResponse,
) -> Result<(), CliError> {
    profile.server = Some(server.clone());
    profile.token = Some(token.token);
    profile.username = Some(username.to_owned());
    profile.save(path)?;
    if ctx.json() {
        render::json(&json!({"server": server, "username": username, "expires_at": render::time(token.expires_at)}));
    } else {
        render::lines([format!("Signed in to {server} as {username}")]);
    }
    Ok(())
}

/// `canopy login --sso`: the browser signs in at the identity provider
/// through the server, which hands this command a one-time code on a
/// loopback port it listens on (RFC 8252); the code and the PKCE verifier
/// only this command holds make a session token.
async fn login_sso(
    ctx: &Ctx,
    server: &str,
    profile: (Profile, &std::path::Path),
    wait: Duration,
) -> Result<(), CliError> {
    let client = Api::new(server, None)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CliError::Failed(format!("no random bytes: {e}")))?;
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on a loopback port: {e}")))?;
    let port = listener.local_addr().map_err(|e| CliError::Failed(e.to_string()))?.port();
    let url = format!("{}/auth/oidc/login?cli_port={port}&cli_challenge={challenge}", client.server());
    eprintln!("Open this address in a browser on this machine to sign in:\n  {url}");
    let code = tokio::time::timeout(wait, code_from_browser(&listener, &challenge))
        .await
        .map_err(|_| CliError::Failed(format!("no sign-in came back within {} s", wait.as_secs())))??;
    let answer = client.post(&["auth", "sso", "token"], &SsoTokenRequest { code, verifier }).await?;
    let token: TokenResponse = api::decode(answer)?;
    let me: Me = api::decode(Api::new(server, Some(token.token.clone()))?.get(&["me"], &[]).await?)?;
    signed_in(ctx, client.server(), profile, &me.name, token)
}

/// Wait for the browser to bring the code to `/callback?code=...&state=`
/// with this sign-in's `challenge` as the state; answer it a page to close.
/// Anything else (a page probing loopback ports, a stray request) is
/// answered 400 or 404 and the wait goes on.
async fn code_from_browser(listener: &tokio::net::TcpListener, challenge: &str) -> Result<String, CliError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(_) => {
                // e.g. out of file descriptors: do not spin
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // the request line and headers, at most 8 KiB within 5 s in all
        let read = async {
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while request.len() < 8192 && !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut chunk).await {
                    Ok(n) if n > 0 => request.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            request
        };
        let Ok(request) = tokio::time::timeout(Duration::from_secs(5), read).await else { continue };
        let text = String::from_utf8_lossy(&request);
        let target = text.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default();
        let param = |name: &str| {
            target.strip_prefix("/callback?").and_then(|query| {
                query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            })
        };
        let code = param("code").filter(|c| !c.is_empty() && c.len() <= 200);
        let ours = param("state").is_some_and(|s| s == challenge);
        let (status, body) = match (code, ours) {
            (Some(_), true) => ("200 OK", "Signed in to Canopy. You can close this tab and go back to the terminal."),
            (Some(_), false) => ("400 Bad Request", "This is not the sign-in this command is waiting for."),
            (None, _) => ("404 Not Found", "Not found."),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        let _ = socket.shutdown().await;
        if let (Some(code), true) = (code, ours) {
            return Ok(code.to_owned());
        }
    }
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// End every session of your account, on every machine, not only this one.
    #[arg(long)]
    pub everywhere: bool,
}

/// End the session on the server, then forget the token (server and
/// username stay for the next login). A session the server no longer knows
/// (expired) is forgotten quietly; one it cannot be asked about is forgotten
/// with an error, since it stays valid there until it expires.
pub async fn logout(ctx: &Ctx, args: LogoutArgs) -> Result<(), CliError> {
    let path = ctx.profile_path()?;
    let mut profile = Profile::load(&path)?;
    let Some(token) = profile.token.take() else {
        ctx.done("Not signed in");
        return Ok(());
    };
    let server = profile.server.clone();
    let ended = match &server {
        Some(server) => {
            let client = Api::new(server, Some(token))?;
            match (&args.everywhere, &profile.username) {
                (true, Some(user)) => client.delete_with_answer(&["users", user, "sessions"]).await.map(|_| ()),
                (true, None) => Err(CliError::Failed("the profile names no user to sign out everywhere".into())),
                (false, _) => client.delete(&["auth", "token"]).await,
            }
        }
        None => Ok(()),
    };
    profile.save(&path)?;
    match ended {
        Ok(()) => {}
        // the server no longer knows the session: nothing left to end
        Err(CliError::Api { status: 401, .. }) => {}
        Err(e) => {
            return Err(CliError::Failed(format!(
                "forgot the token here, but the server did not end the session (it stays valid until it expires): {e}"
            )));
        }
    }
    let place = server.as_deref().unwrap_or("the server");
    if args.everywhere {
        ctx.done(format!("Signed out of {place} everywhere"));
    } else {
        ctx.done(format!("Signed out of {place}"));
    }
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> Result<(), CliError> {
    let me = ctx.api()?.get(&["me"], &[]).await?;
    if ctx.json() {
        render::json(&me);
        return Ok(());
    }
    let me: Me = api::decode(me)?;
    let mut fields = vec![("name", me.name.clone()), ("kind", me.kind.clone())];
    if let Some(u) = &me.user {
        fields.push(("email", u.email.clone()));
        fields.push(("full_name", format!("{} {}", u.first_name, u.last_name).trim().to_owned()));
    }
    fields.push(("installation_roles", render::list(&me.installation_roles)));
    let mut out = render::fields(&fields);
    out.extend(render::section("Workspaces", &me.workspaces));
    out.extend(render::section("Projects", &me.projects));
    render::lines(out);
    Ok(())
}
