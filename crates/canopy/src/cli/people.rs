//! `canopy user ...`, `canopy group ...`, `canopy api-key ...`.

use canopy_api_types::{
    AddGroupMember, ApiKey, CreateApiKey, CreateGroup, CreateUser, CreatedApiKey, Group, GroupMember, UpdateGroup,
    UpdateUser, User,
};
use clap::Subcommand;
use time::OffsetDateTime;

use super::api::{self, CliError};
use super::{Ctx, ListOpts, read_secret, render, rfc3339, workspace_role};

/// Where a new password comes from when not on standard input.
const NEW_PASSWORD_ENV: &str = "CANOPY_NEW_PASSWORD";

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users (admins).
    List {
        /// Only users whose username, e-mail, first or last name matches.
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a user (admins, or yourself).
    Show {
        /// The username.
        user: String,
    },
    /// Create a local account (admins).
    Create {
        /// Username.
        user: String,
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// First name.
        #[arg(long, default_value = "", hide_default_value = true)]
        first_name: String,
        /// Last name.
        #[arg(long, default_value = "", hide_default_value = true)]
        last_name: String,
        /// Read the password (12 characters or more) from the first line of
        /// standard input; else it comes from CANOPY_NEW_PASSWORD; without
        /// one the account cannot sign in with a password.
        #[arg(long)]
        password_stdin: bool,
        /// An installation role: admin or platform_engineer (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Change a user's e-mail, names or installation roles (names: also yourself).
    Update {
        /// The username.
        user: String,
        /// A new e-mail address (admins).
        #[arg(long)]
        email: Option<String>,
        /// A new first name.
        #[arg(long)]
        first_name: Option<String>,
        /// A new last name.
        #[arg(long)]
        last_name: Option<String>,
        /// Replace the installation roles with these (repeatable; admins).
        #[arg(long = "role", value_name = "ROLE", conflicts_with = "no_roles")]
        roles: Vec<String>,
        /// Take every installation role away (admins).
        #[arg(long)]
        no_roles: bool,
    },
    /// Deactivate an account: it loses all access at once, its sessions end.
    Deactivate {
        /// The username.
        user: String,
    },
    /// Activate a deactivated account again.
    Activate {
        /// The username.
        user: String,
    },
    /// Delete an account; its memberships and bindings end.
    Delete {
        /// The username.
        user: String,
    },
    /// Set a user's password (admins, or yourself); their sessions end.
    /// Setting your own needs your current password, from CANOPY_PASSWORD.
    SetPassword {
        /// The username.
        user: String,
        /// Read the password from the first line of standard input (else from CANOPY_NEW_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
    },
}

pub async fn user(ctx: &Ctx, cmd: UserCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        UserCommand::List { query, list } => {
            let q: Vec<(&str, String)> = query.into_iter().map(|q| ("q", q)).collect();
            let (items, _) = client.list(&["users"], &q, list.limit, list.page_size).await?;
            ctx.print_list::<User>(items)
        }
        UserCommand::Show { user } => ctx.print_one::<User>(client.get(&["users", &user], &[]).await?),
        UserCommand::Create { user, email, first_name, last_name, password_stdin, roles } => {
            let password = read_secret(password_stdin, NEW_PASSWORD_ENV).await?;
            let body = CreateUser { username: user, email, first_name, last_name, password, installation_roles: roles };
            ctx.print_one::<User>(client.post(&["users"], &body).await?)
        }
        UserCommand::Update { user, email, first_name, last_name, roles, no_roles } => {
            let installation_roles = if no_roles { Some(Vec::new()) } else { Some(roles).filter(|r| !r.is_empty()) };
            let body = UpdateUser { email, first_name, last_name, installation_roles, ..UpdateUser::default() };
            if body.email.is_none()
                && body.first_name.is_none()
                && body.last_name.is_none()
                && body.installation_roles.is_none()
            {
                return Err(CliError::Usage(
                    "nothing to change: give --email, --first-name, --last-name, --role or --no-roles".into(),
                ));
            }
            ctx.print_one::<User>(client.patch(&["users", &user], &body).await?)
        }
        UserCommand::Deactivate { user } => {
            client.patch(&["users", &user], &UpdateUser { active: Some(false), ..UpdateUser::default() }).await?;
            ctx.done(format!("Deactivated user {user}"));
            Ok(())
        }
        UserCommand::Activate { user } => {
            client.patch(&["users", &user], &UpdateUser { active: Some(true), ..UpdateUser::default() }).await?;
            ctx.done(format!("Activated user {user}"));
            Ok(())
        }
        UserCommand::Delete { user } => {
            client.delete(&["users", &user]).await?;
            ctx.done(format!("Deleted user {user}"));
            Ok(())
        }
        UserCommand::SetPassword { user, password_stdin } => {
            let password = read_secret(password_stdin, NEW_PASSWORD_ENV).await?.ok_or_else(|| {
                CliError::Usage(format!(
                    "give the new password on standard input with --password-stdin, or in {NEW_PASSWORD_ENV}"
                ))
            })?;
            // one's own password needs the current one (the server asks for it)
            let me: canopy_api_types::Me = api::decode(client.get(&["me"], &[]).await?)?;
            let yourself = me.kind == "user" && me.name == user;
            let current_password =
                if yourself { std::env::var("CANOPY_PASSWORD").ok().filter(|p| !p.is_empty()) } else { None };
            if yourself && current_password.is_none() {
                return Err(CliError::Usage(
                    "changing your own password needs your current one: set CANOPY_PASSWORD".into(),
                ));
            }
            let body = UpdateUser { password: Some(password), current_password, ..UpdateUser::default() };
            client.patch(&["users", &user], &body).await?;
            ctx.done(format!("Set the password of {user}"));
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the groups.
    List {
        #[command(flatten)]
        list: ListOpts,
    },
    /// Show a group.
    Show {
        /// The group's identifier.
        group: String,
    },
    /// Create a group (admins).
    Create {
        /// Identifier: lowercase letters, digits and dashes, 1 to 32 characters.
        group: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Change a group's display name (admins).
    Rename {
        /// The group's identifier.
        group: String,
        /// The new display name.
        #[arg(long)]
        name: String,
    },
    /// Delete a group (admins); its members lose what it gave them.
    Delete {
        /// The group's identifier.
        group: String,
    },
    /// List the members of a group.
    Members {
        /// The group's identifier.
        group: String,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Add a user to a group (admins).
    AddMember {
        /// The group's identifier.
        group: String,
        /// The username.
        user: String,
    },
    /// Remove a user from a group (admins).
    RemoveMember {
        /// The group's identifier.
        group: String,
        /// The username.
        user: String,
    },
}

pub async fn group(ctx: &Ctx, cmd: GroupCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        GroupCommand::List { list } => {
            let (items, _) = client.list(&["groups"], &[], list.limit, list.page_size).await?;
            ctx.print_list::<Group>(items)
        }
        GroupCommand::Show { group } => ctx.print_one::<Group>(client.get(&["groups", &group], &[]).await?),
        GroupCommand::Create { group, name } => ctx.print_one::<Group>(
            client.post(&["groups"], &CreateGroup { identifier: group, display_name: name }).await?,
        ),
        GroupCommand::Rename { group, name } => {
            ctx.print_one::<Group>(client.patch(&["groups", &group], &UpdateGroup { display_name: Some(name) }).await?)
        }
        GroupCommand::Delete { group } => {
            client.delete(&["groups", &group]).await?;
            ctx.done(format!("Deleted group {group}"));
            Ok(())
        }
        GroupCommand::Members { group, list } => {
            let (items, _) = client.list(&["groups", &group, "members"], &[], list.limit, list.page_size).await?;
            ctx.print_list::<GroupMember>(items)
        }
        GroupCommand::AddMember { group, user } => {
            ctx.print_one::<GroupMember>(client.post(&["groups", &group, "members"], &AddGroupMember { user }).await?)
        }
        GroupCommand::RemoveMember { group, user } => {
            client.delete(&["groups", &group, "members", &user]).await?;
            ctx.done(format!("Removed {user} from group {group}"));
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// List your API keys (admins: every key), or with --workspace every key
    /// scoped to that workspace (its managers).
    List {
        /// Every key scoped to this workspace, whoever made it.
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        list: ListOpts,
    },
    /// Create an API key; its secret is printed this once.
    Create {
        /// A name telling what the key is for.
        name: String,
        /// In a workspace: manager or member; for the installation: admin, platform_engineer or scim_provisioner.
        #[arg(long)]
        role: String,
        /// Scope the key to this workspace (default: the installation).
        #[arg(long)]
        workspace: Option<String>,
        /// When the key stops working (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        expires_at: Option<OffsetDateTime>,
    },
    /// Delete an API key: it stops working at once.
    Delete {
        /// The key's id (see `canopy api-key list`).
        id: String,
    },
}

pub async fn api_key(ctx: &Ctx, cmd: ApiKeyCommand) -> Result<(), CliError> {
    let client = ctx.api()?;
    match cmd {
        ApiKeyCommand::List { workspace, list } => {
            let q: Vec<(&str, String)> = workspace.map(|w| ("workspace", w)).into_iter().collect();
            let (items, _) = client.list(&["api-keys"], &q, list.limit, list.page_size).await?;
            ctx.print_list::<ApiKey>(items)
        }
        ApiKeyCommand::Create { name, role, workspace, expires_at } => {
            let role = if workspace.is_some() { workspace_role(&role) } else { role };
            let created = client.post(&["api-keys"], &CreateApiKey { name, workspace, role, expires_at }).await?;
            if ctx.json() {
                render::json(&created);
                return Ok(());
            }
            let created: CreatedApiKey = api::decode(created)?;
            let mut fields = render::Render::fields(&created.key);
            fields.push(("secret", created.secret));
            render::lines(render::fields(&fields));
            ctx.note("Keep the secret now: it is not shown again. Use it as the token (--token or CANOPY_TOKEN).");
            Ok(())
        }
        ApiKeyCommand::Delete { id } => {
            client.delete(&["api-keys", &id]).await?;
            ctx.done(format!("Deleted API key {id}"));
            Ok(())
        }
    }
}
