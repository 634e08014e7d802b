//! `canopy login`, `logout`, `whoami`.

use canopy_api_types::{Me, TokenRequest, TokenResponse};
use clap::Args;
use serde_json::json;

use super::api::{self, Api, CliError, Profile};
use super::{Ctx, read_secret, render};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username of a local account.
    #[arg(long)]
    pub username: String,
    /// Read the password from the first line of standard input (else from CANOPY_PASSWORD).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Sign in and keep server, token and username in the profile (mode 0600).
pub async fn login(ctx: &Ctx, args: LoginArgs) -> Result<(), CliError> {
    let path = ctx.profile_path()?;
    let mut profile = Profile::load(&path)?;
    let server = ctx
        .server
        .clone()
        .or_else(|| profile.server.clone())
        .ok_or_else(|| CliError::Usage("give the server: canopy login --server URL --username NAME".into()))?;
    let password = read_secret(args.password_stdin, "CANOPY_PASSWORD").await?.ok_or_else(|| {
        CliError::Usage("give the password on standard input with --password-stdin, or in CANOPY_PASSWORD".into())
    })?;
    let client = Api::new(&server, None)?;
    let answer = client.post(&["auth", "token"], &TokenRequest { username: args.username.clone(), password }).await?;
    let token: TokenResponse = api::decode(answer)?;
    let server = client.server();
    profile.server = Some(server.clone());
    profile.token = Some(token.token);
    profile.username = Some(args.username.clone());
    profile.save(&path)?;
    if ctx.json() {
        render::json(
            &json!({"server": server, "username": args.username, "expires_at": render::time(token.expires_at)}),
        );
    } else {
        render::lines([format!("Signed in to {server} as {}", args.username)]);
    }
    Ok(())
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
