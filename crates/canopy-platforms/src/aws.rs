//! AWS through Organizations and IAM Identity Center: a tenant is an AWS
//! account, created through Organizations and placed in the landing zone's
//! organizational unit; people are users in the Identity Store; a platform
//! role is a permission set (one per mapped role, made when missing); an
//! assignment is an IAM Identity Center account assignment, whose
//! asynchronous status is polled until AWS settles it.
//!
//! Landing zone settings (TN2):
//! - `account_email` (required to create accounts): the e-mail address of a
//!   new account, where `{name}` stands for the tenant's name, e.g.
//!   `aws+{name}@example.com` (AWS wants one address per account);
//! - `organizational_unit` (optional): the id of the OU (`ou-...`) new
//!   accounts are moved into; without it they stay at the root;
//! - `permission_sets` (optional): `{NAME: [MANAGED_POLICY_ARN, ...]}`, the
//!   permission sets this landing zone provides, made and given their
//!   policies when a tenant is created.
//!
//! The SDK's own retries are off: the engine retries whole runs with its
//! backoff, so a failing call costs one attempt, not four.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_identitystore::types::{AlternateIdentifier, Email, Name, UniqueAttribute};
use aws_sdk_organizations::types::{AccountStatus, CreateAccountState};
use aws_sdk_ssoadmin::types::{PrincipalType, StatusValues, TargetType};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_types::Document;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use crate::{Held, Platform, PlatformError, PlatformUser, Scope, TenantRef, TenantSpec};

/// One error type for every AWS SDK crate (they all re-export smithy's).
type SdkError<E> = aws_sdk_organizations::error::SdkError<E>;

/// Connection settings and credentials of an AWS platform.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The region of the IAM Identity Center instance.
    pub region: String,
    /// An endpoint that speaks the AWS APIs instead of AWS's own (e.g. a
    /// test double); none for AWS.
    pub endpoint_url: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The IAM Identity Center instance Canopy assigns through.
#[derive(Debug, Clone)]
struct Instance {
    arn: String,
    identity_store_id: String,
}

pub struct Aws {
    organizations: aws_sdk_organizations::Client,
    sso: aws_sdk_ssoadmin::Client,
    identity: aws_sdk_identitystore::Client,
    instance: OnceCell<Instance>,
    /// Permission set ARNs by name and names by ARN (`name:N`, `arn:A`):
    /// asked once, forgotten when AWS says one is gone.
    permission_sets: Mutex<HashMap<String, String>>,
    /// Identity Store user names by user id.
    usernames: Mutex<HashMap<String, String>>,
}

/// How long to wait for AWS to finish an asynchronous request within one
/// run; after that the run fails retryably and the next one looks again.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);
const POLL_EVERY: Duration = Duration::from_millis(500);

fn permanent(message: impl Into<String>) -> PlatformError {
    PlatformError::Permanent { message: message.into() }
}

fn retryable(message: impl Into<String>) -> PlatformError {
    PlatformError::Retryable { message: message.into(), retry_after: None }
}

/// Error codes AWS uses for "slow down" and "busy, try again".
const RETRYABLE_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ConcurrentModificationException",
    "ServiceException",
    "InternalServerException",
    "ConflictException",
];

/// Sort an SDK failure into retryable (unreachable, throttled, 5xx, busy)
/// or permanent (refused), keeping AWS's own message.
fn classify<E>(call: &str, e: SdkError<E>) -> PlatformError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let retry_after = e.raw_response().and_then(|r| r.headers().get("retry-after")).and_then(crate::retry_after);
    let code = e.code().map(str::to_owned);
    let message = match (&code, e.message()) {
        (Some(code), Some(m)) => format!("AWS {call}: {code}: {m}"),
        (Some(code), None) => format!("AWS {call}: {code}"),
        _ => format!("AWS {call}: {}", DisplayErrorContext(&e)),
    };
    let service_error = matches!(e, aws_sdk_organizations::error::SdkError::ServiceError(_));
    let construction = matches!(e, aws_sdk_organizations::error::SdkError::ConstructionFailure(_));
    let busy = code.as_deref().is_some_and(|c| RETRYABLE_CODES.contains(&c));
    if construction {
        permanent(message)
    } else if !service_error || busy || status.is_some_and(|s| s == 429 || s >= 500) {
        PlatformError::Retryable { message, retry_after }
    } else {
        permanent(message)
    }
}

fn has_code<E>(e: &SdkError<E>, code: &str) -> bool
where
    E: ProvideErrorMetadata,
{
    e.code() == Some(code)
}

/// The SDK configuration for a platform's settings: no SDK retries, bounded
/// timeouts, rustls with ring.
pub fn sdk_config(config: AwsConfig) -> SdkConfig {
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    let mut sdk = SdkConfig::builder()
        .region(Region::new(config.region))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            config.access_key_id,
            config.secret_access_key,
            None,
            None,
            "canopy-platform",
        )))
        .http_client(http)
        .behavior_version(aws_sdk_organizations::config::BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(url) = config.endpoint_url {
        sdk = sdk.endpoint_url(url);
    }
    sdk.build()
}

impl Aws {
    pub fn new(config: AwsConfig) -> Self {
        let sdk = sdk_config(config);
        Self {
            organizations: aws_sdk_organizations::Client::new(&sdk),
            sso: aws_sdk_ssoadmin::Client::new(&sdk),
            identity: aws_sdk_identitystore::Client::new(&sdk),
            instance: OnceCell::new(),
            permission_sets: Mutex::default(),
            usernames: Mutex::default(),
        }
    }

    /// The organisation's IAM Identity Center instance (there is one).
    async fn instance(&self) -> Result<&Instance, PlatformError> {
        self.instance
            .get_or_try_init(|| async {
                let out = self.sso.list_instances().send().await.map_err(|e| classify("ListInstances", e))?;
                let first = out.instances().first().ok_or_else(|| {
                    permanent(
                        "AWS has no IAM Identity Center instance in this region: enable IAM Identity Center first",
                    )
                })?;
                match (first.instance_arn(), first.identity_store_id()) {
                    (Some(arn), Some(store)) => {
                        Ok(Instance { arn: arn.to_owned(), identity_store_id: store.to_owned() })
                    }
                    _ => Err(permanent("AWS ListInstances answered an instance without its ARN or Identity Store")),
                }
            })
            .await
    }

    /// The ACTIVE account named `name`, if there is one.
    async fn find_account(&self, name: &str) -> Result<Option<String>, PlatformError> {
        let mut pages = self.organizations.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListAccounts", e))?;
            for a in page.accounts() {
                if a.name() == Some(name) && a.status() == Some(&AccountStatus::Active) {
                    return Ok(a.id().map(str::to_owned));
                }
            }
        }
        Ok(None)
    }

    /// The id of a creation of an account named `name` still in progress
    /// (started by an earlier run whose answer was lost).
    async fn creation_in_progress(&self, name: &str) -> Result<Option<String>, PlatformError> {
        let mut pages = self
            .organizations
            .list_create_account_status()
            .states(CreateAccountState::InProgress)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListCreateAccountStatus", e))?;
            for s in page.create_account_statuses() {
                if s.account_name() == Some(name) {
                    return Ok(s.id().map(str::to_owned));
                }
            }
        }
        Ok(None)
    }

    /// Wait for an account creation to finish: the new account's id.
    async fn await_account(&self, request_id: &str) -> Result<String, PlatformError> {
        let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
        loop {
            let out = self
                .organizations
                .describe_create_account_status()
                .create_account_request_id(request_id)
                .send()
                .await
                .map_err(|e| classify("DescribeCreateAccountStatus", e))?;
            let status = out.create_account_status();
            match status.and_then(|s| s.state()) {
                Some(CreateAccountState::Succeeded) => {
                    return status
                        .and_then(|s| s.account_id())
                        .map(str::to_owned)
                        .ok_or_else(|| permanent("AWS reports the account created but does not name it".to_owned()));
                }
                Some(CreateAccountState::Failed) => {
                    let reason = status.and_then(|s| s.failure_reason()).map_or("unknown".into(), |r| r.to_string());
                    return Err(permanent(format!("AWS could not create the account: {reason}")));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(retryable(format!("AWS is still creating the account (request {request_id})")));
                }
                _ => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }

    /// Move the account into the organizational unit unless it is there.
    async fn place(&self, account: &str, ou: &str) -> Result<(), PlatformError> {
        let out =
            self.organizations.list_parents().child_id(account).send().await.map_err(|e| classify("ListParents", e))?;
        let Some(parent) = out.parents().first().and_then(|p| p.id()) else {
            return Err(permanent(format!("AWS names no parent of account {account}")));
        };
        if parent == ou {
            return Ok(());
        }
        match self
            .organizations
            .move_account()
            .account_id(account)
            .source_parent_id(parent)
            .destination_parent_id(ou)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // moved by an earlier run whose answer was lost
            Err(e) if has_code(&e, "DuplicateAccountException") => Ok(()),
            Err(e) => Err(classify("MoveAccount", e)),
        }
    }

    /// Every permission set of the instance: name → ARN.
    async fn load_permission_sets(&self) -> Result<HashMap<String, String>, PlatformError> {
        let instance = self.instance().await?;
        let mut out_map = HashMap::new();
        let mut arns = self.sso.list_permission_sets().instance_arn(&instance.arn).into_paginator().items().send();
        while let Some(arn) = arns.next().await {
            let arn = arn.map_err(|e| classify("ListPermissionSets", e))?;
            let set = self
                .sso
                .describe_permission_set()
                .instance_arn(&instance.arn)
                .permission_set_arn(&arn)
                .send()
                .await
                .map_err(|e| classify("DescribePermissionSet", e))?;
            if let Some(name) = set.permission_set().and_then(|p| p.name()) {
                out_map.insert(name.to_owned(), arn);
            }
        }
        Ok(out_map)
    }

    /// The ARN of the permission set `name`, made when `create` and missing.
    async fn permission_set(&self, name: &str, create: bool) -> Result<Option<String>, PlatformError> {
        let mut cache = self.permission_sets.lock().await;
        if let Some(arn) = cache.get(&format!("name:{name}")) {
            return Ok(Some(arn.clone()));
        }
        let all = self.load_permission_sets().await?;
        cache.clear();
        for (n, arn) in &all {
            cache.insert(format!("name:{n}"), arn.clone());
            cache.insert(format!("arn:{arn}"), n.clone());
        }
        if let Some(arn) = all.get(name) {
            return Ok(Some(arn.clone()));
        }
        if !create {
            return Ok(None);
        }
        let instance = self.instance().await?;
        let made = self
            .sso
            .create_permission_set()
            .instance_arn(&instance.arn)
            .name(name)
            .description("Made by Canopy for a mapped project role")
            // an explicit ISO-8601 duration: AWS's own default, said aloud
            .session_duration("PT1H")
            .send()
            .await
            .map_err(|e| classify("CreatePermissionSet", e))?;
        let arn = made
            .permission_set()
            .and_then(|p| p.permission_set_arn())
            .ok_or_else(|| permanent(format!("AWS made permission set {name:?} but does not name its ARN")))?
            .to_owned();
        cache.insert(format!("name:{name}"), arn.clone());
        cache.insert(format!("arn:{arn}"), name.to_owned());
        Ok(Some(arn))
    }

    async fn permission_set_name(&self, arn: &str) -> Result<Option<String>, PlatformError> {
        if let Some(name) = self.permission_sets.lock().await.get(&format!("arn:{arn}")) {
            return Ok(Some(name.clone()));
        }
        let instance = self.instance().await?;
        let set = self
            .sso
            .describe_permission_set()
            .instance_arn(&instance.arn)
            .permission_set_arn(arn)
            .send()
            .await
            .map_err(|e| classify("DescribePermissionSet", e))?;
        let name = set.permission_set().and_then(|p| p.name()).map(str::to_owned);
        if let Some(n) = &name {
            let mut cache = self.permission_sets.lock().await;
            cache.insert(format!("arn:{arn}"), n.clone());
            cache.insert(format!("name:{n}"), arn.to_owned());
        }
        Ok(name)
    }

    /// Give the permission set the managed policies it lacks.
    async fn attach_policies(&self, set_arn: &str, policies: &[String]) -> Result<(), PlatformError> {
        let instance = self.instance().await?;
        let attached = self
            .sso
            .list_managed_policies_in_permission_set()
            .instance_arn(&instance.arn)
            .permission_set_arn(set_arn)
            .send()
            .await
            .map_err(|e| classify("ListManagedPoliciesInPermissionSet", e))?;
        let have: BTreeSet<&str> = attached.attached_managed_policies().iter().filter_map(|p| p.arn()).collect();
        for policy in policies {
            if have.contains(policy.as_str()) {
                continue;
            }
            match self
                .sso
                .attach_managed_policy_to_permission_set()
                .instance_arn(&instance.arn)
                .permission_set_arn(set_arn)
                .managed_policy_arn(policy)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e)
                    if has_code(&e, "ConflictException")
                        && e.raw_response().is_some_and(|r| r.status().as_u16() == 409) =>
                {
                    // attached meanwhile
                }
                Err(e) => return Err(classify("AttachManagedPolicyToPermissionSet", e)),
            }
        }
        Ok(())
    }

    /// The Identity Store user id of `username`, if the user exists.
    async fn user_id(&self, username: &str) -> Result<Option<String>, PlatformError> {
        let instance = self.instance().await?;
        let key = UniqueAttribute::builder()
            .attribute_path("userName")
            .attribute_value(Document::String(username.to_owned()))
            .build()
            .map_err(|e| permanent(format!("building an Identity Store lookup: {e}")))?;
        match self
            .identity
            .get_user_id()
            .identity_store_id(&instance.identity_store_id)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(key))
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.user_id().to_owned())),
            Err(e) if has_code(&e, "ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("GetUserId", e)),
        }
    }

    async fn ensure_user(&self, user: &PlatformUser) -> Result<String, PlatformError> {
        if let Some(id) = self.user_id(&user.username).await? {
            return Ok(id);
        }
        let instance = self.instance().await?;
        let name = Name::builder().given_name(&user.username).family_name(&user.username).build();
        let email = Email::builder().value(&user.email).primary(true).r#type("work").build();
        match self
            .identity
            .create_user()
            .identity_store_id(&instance.identity_store_id)
            .user_name(&user.username)
            .display_name(&user.username)
            .name(name)
            .emails(email)
            .send()
            .await
        {
            Ok(out) => Ok(out.user_id().to_owned()),
            // made at the same moment by another call
            Err(e) if has_code(&e, "ConflictException") => self
                .user_id(&user.username)
                .await?
                .ok_or_else(|| retryable(format!("user {:?} is neither found nor created", user.username))),
            Err(e) => Err(classify("CreateUser", e)),
        }
    }

    async fn username(&self, user_id: &str) -> Result<Option<String>, PlatformError> {
        if let Some(name) = self.usernames.lock().await.get(user_id) {
            return Ok(Some(name.clone()));
        }
        let instance = self.instance().await?;
        match self.identity.describe_user().identity_store_id(&instance.identity_store_id).user_id(user_id).send().await
        {
            Ok(out) => {
                let name = out.user_name().map(str::to_owned);
                if let Some(n) = &name {
                    self.usernames.lock().await.insert(user_id.to_owned(), n.clone());
                }
                Ok(name)
            }
            Err(e) if has_code(&e, "ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("DescribeUser", e)),
        }
    }

    /// The users the permission set is assigned to in the account.
    async fn assigned(&self, account: &str, set_arn: &str) -> Result<BTreeSet<String>, PlatformError> {
        let instance = self.instance().await?;
        let mut users = BTreeSet::new();
        let mut assignments = self
            .sso
            .list_account_assignments()
            .instance_arn(&instance.arn)
            .account_id(account)
            .permission_set_arn(set_arn)
            .into_paginator()
            .items()
            .send();
        while let Some(a) = assignments.next().await {
            let a = match a {
                Ok(a) => a,
                Err(e) if has_code(&e, "ResourceNotFoundException") => {
                    // a permission set deleted outside Canopy: look again
                    self.permission_sets.lock().await.clear();
                    return Err(retryable(format!("AWS ListAccountAssignments: {}", DisplayErrorContext(&e))));
                }
                Err(e) => return Err(classify("ListAccountAssignments", e)),
            };
            // group assignments are not Canopy's
            if a.principal_type() == Some(&PrincipalType::User)
                && let Some(principal) = a.principal_id()
            {
                users.insert(principal.to_owned());
            }
        }
        Ok(users)
    }

    /// Wait for an account assignment's creation or deletion to settle.
    async fn await_assignment(&self, request_id: &str, deletion: bool) -> Result<(), PlatformError> {
        let instance = self.instance().await?;
        let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
        loop {
            let status = if deletion {
                self.sso
                    .describe_account_assignment_deletion_status()
                    .instance_arn(&instance.arn)
                    .account_assignment_deletion_request_id(request_id)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeAccountAssignmentDeletionStatus", e))?
                    .account_assignment_deletion_status
            } else {
                self.sso
                    .describe_account_assignment_creation_status()
                    .instance_arn(&instance.arn)
                    .account_assignment_creation_request_id(request_id)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeAccountAssignmentCreationStatus", e))?
                    .account_assignment_creation_status
            };
            match status.as_ref().and_then(|s| s.status()) {
                Some(StatusValues::Succeeded) => return Ok(()),
                Some(StatusValues::Failed) => {
                    let reason = status.as_ref().and_then(|s| s.failure_reason()).unwrap_or("no reason given");
                    return Err(permanent(format!("AWS could not change the account assignment: {reason}")));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(retryable(format!(
                        "AWS is still changing the account assignment (request {request_id})"
                    )));
                }
                _ => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }

    /// The landing zone's permission sets with their managed policies.
    async fn provide_permission_sets(
        &self,
        landing_zone: &serde_json::Map<String, Value>,
    ) -> Result<(), PlatformError> {
        let Some(sets) = landing_zone.get("permission_sets") else { return Ok(()) };
        let Some(sets) = sets.as_object() else {
            return Err(permanent("landing zone setting permission_sets must map names to lists of policy ARNs"));
        };
        for (name, policies) in sets {
            let policies: Option<Vec<String>> =
                policies.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect());
            let Some(policies) = policies else {
                return Err(permanent(format!("landing zone permission set {name:?} must list policy ARNs")));
            };
            if let Some(arn) = self.permission_set(name, true).await? {
                self.attach_policies(&arn, &policies).await?;
            }
        }
        Ok(())
    }
}

impl Platform for Aws {
    async fn ensure_tenant(&self, spec: &TenantSpec) -> Result<TenantRef, PlatformError> {
        let account = match self.find_account(&spec.name).await? {
            Some(id) => id,
            None => {
                let request = match self.creation_in_progress(&spec.name).await? {
                    Some(request) => request,
                    None => {
                        let template =
                            spec.landing_zone.get("account_email").and_then(Value::as_str).ok_or_else(|| {
                                permanent(
                                    "the landing zone sets no account_email (e.g. aws+{name}@example.com): \
                                 every AWS account needs an e-mail address of its own",
                                )
                            })?;
                        let email = template.replace("{name}", &spec.name);
                        let out = self
                            .organizations
                            .create_account()
                            .account_name(&spec.name)
                            .email(email)
                            .send()
                            .await
                            .map_err(|e| classify("CreateAccount", e))?;
                        out.create_account_status().and_then(|s| s.id()).map(str::to_owned).ok_or_else(|| {
                            permanent("AWS accepted CreateAccount but gave no request id to follow".to_owned())
                        })?
                    }
                };
                self.await_account(&request).await?
            }
        };
        if let Some(ou) = spec.landing_zone.get("organizational_unit").and_then(Value::as_str) {
            self.place(&account, ou).await?;
        }
        self.provide_permission_sets(&spec.landing_zone).await?;
        Ok(TenantRef { external_id: account })
    }

    /// The assignments of every permission set provisioned to the account
    /// and of every mapped one (provisioning can lag behind, and some
    /// AWS-compatible endpoints do not track it per account).
    async fn observe(&self, tenant: &TenantRef, scope: &Scope) -> Result<BTreeSet<Held>, PlatformError> {
        let account = &tenant.external_id;
        match self.organizations.describe_account().account_id(account).send().await {
            Ok(out) => {
                let status = out.account().and_then(|a| a.status());
                if status != Some(&AccountStatus::Active) {
                    let status = status.map_or("unknown", |s| s.as_str());
                    return Err(permanent(format!("account {account} is {status} (closed outside Canopy?)")));
                }
            }
            Err(e) if has_code(&e, "AccountNotFoundException") => {
                return Err(permanent(format!("account {account} does not exist (closed outside Canopy?)")));
            }
            Err(e) => return Err(classify("DescribeAccount", e)),
        }
        let instance = self.instance().await?;
        let mut sets = Vec::new();
        let mut provisioned = self
            .sso
            .list_permission_sets_provisioned_to_account()
            .instance_arn(&instance.arn)
            .account_id(account)
            .into_paginator()
            .items()
            .send();
        while let Some(arn) = provisioned.next().await {
            sets.push(arn.map_err(|e| classify("ListPermissionSetsProvisionedToAccount", e))?);
        }
        for role in &scope.roles {
            if let Some(arn) = self.permission_set(role, false).await?
                && !sets.contains(&arn)
            {
                sets.push(arn);
            }
        }
        let mut held = BTreeSet::new();
        for set_arn in sets {
            let Some(role) = self.permission_set_name(&set_arn).await? else { continue };
            for principal in self.assigned(account, &set_arn).await? {
                if let Some(username) = self.username(&principal).await? {
                    held.insert(Held { username, platform_role: role.clone() });
                }
            }
        }
        Ok(held)
    }

    async fn grant(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let instance = self.instance().await?;
        let user_id = self.ensure_user(user).await?;
        let set_arn = self
            .permission_set(platform_role, true)
            .await?
            .ok_or_else(|| retryable(format!("permission set {platform_role:?} is neither found nor made")))?;
        // AWS answers a repeated assignment with success, but not every
        // AWS-compatible endpoint does (moto stores it twice): ask first
        if self.assigned(&tenant.external_id, &set_arn).await?.contains(&user_id) {
            return Ok(());
        }
        let out = self
            .sso
            .create_account_assignment()
            .instance_arn(&instance.arn)
            .target_id(&tenant.external_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&set_arn)
            .principal_type(PrincipalType::User)
            .principal_id(&user_id)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if has_code(&e, "ResourceNotFoundException") => {
                // the permission set may have been deleted outside Canopy:
                // the next attempt looks it up (and makes it) again
                self.permission_sets.lock().await.clear();
                return Err(retryable(format!("AWS CreateAccountAssignment: {}", DisplayErrorContext(&e))));
            }
            Err(e) => return Err(classify("CreateAccountAssignment", e)),
        };
        match out.account_assignment_creation_status().and_then(|s| s.request_id()) {
            Some(request) => self.await_assignment(request, false).await,
            None => Err(permanent("AWS accepted CreateAccountAssignment but gave no request id to follow")),
        }
    }

    async fn revoke(&self, tenant: &TenantRef, user: &PlatformUser, platform_role: &str) -> Result<(), PlatformError> {
        let username = user.username.as_str();
        let instance = self.instance().await?;
        let Some(user_id) = self.user_id(username).await? else { return Ok(()) };
        let Some(set_arn) = self.permission_set(platform_role, false).await? else { return Ok(()) };
        let out = self
            .sso
            .delete_account_assignment()
            .instance_arn(&instance.arn)
            .target_id(&tenant.external_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&set_arn)
            .principal_type(PrincipalType::User)
            .principal_id(&user_id)
            .send()
            .await;
        match out {
            Ok(out) => match out.account_assignment_deletion_status().and_then(|s| s.request_id()) {
                Some(request) => self.await_assignment(request, true).await,
                None => Err(permanent("AWS accepted DeleteAccountAssignment but gave no request id to follow")),
            },
            // not held (any more): what was asked for
            Err(e) if has_code(&e, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(classify("DeleteAccountAssignment", e)),
        }
    }

    /// Canopy cannot look inside an account (that would take a role in
    /// every account): AWS tenants are for platform engineers to delete
    /// (DL3), and a platform registered with automatic deletion is refused
    /// here rather than closing an account blind.
    async fn find_resources(&self, tenant: &TenantRef) -> Result<Vec<String>, PlatformError> {
        Err(permanent(format!(
            "Canopy cannot see the resources inside AWS account {}: register the platform with manual deletion",
            tenant.external_id
        )))
    }

    /// Close the account (AWS keeps it SUSPENDED for 90 days, then deletes it).
    async fn delete_tenant(&self, tenant: &TenantRef) -> Result<(), PlatformError> {
        match self.organizations.close_account().account_id(&tenant.external_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if has_code(&e, "AccountAlreadyClosedException") || has_code(&e, "AccountNotFoundException") => {
                Ok(())
            }
            Err(e) => Err(classify("CloseAccount", e)),
        }
    }
}
