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

/// Remove the token from the profile (server and username stay for the next login).
pub fn logout(ctx: &Ctx) -> Result<(), CliError> {
    let path = ctx.profile_path()?;
    let mut profile = Profile::load(&path)?;
    if profile.token.take().is_none() {
        ctx.done("Not signed in");
        return Ok(());
    }
    profile.save(&path)?;
    ctx.done(format!("Signed out of {}", profile.server.as_deref().unwrap_or("the server")));
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
