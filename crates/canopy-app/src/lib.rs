//! Canopy's application layer: one module per use case.
//!
//! Every interface (the REST API of `canopy-server`, the web UI, SCIM) and
//! every job of `canopy-engine` that changes access runs the same functions
//! here, so that a rule, its authorisation, its history event and its
//! replication exist once. A use case takes the store or a transaction, the
//! acting [`Principal`] and the instant; it asks `canopy_domain::authz` and
//! the domain's rules, loads and saves through one `canopy_store::Tx` (the
//! change, its history event and its outbox rows commit together), and
//! returns a typed outcome or an [`Error`]. Nothing here knows HTTP or HTML.
//!
//! **Architecture Invariant:** an interface calls one use case per
//! operation; use cases share steps (e.g. [`bindings::end`], the one removal
//! of a binding) by calling each other here, never an interface's code.

pub mod api_keys;
pub mod bindings;
pub mod credentials;
pub mod deletion;
pub mod emergency;
pub mod error;
pub mod expired_access;
pub mod groups;
pub mod history;
pub mod load;
pub mod me;
pub mod members;
pub mod paging;
pub mod payment_methods;
pub mod platform_registry;
pub mod platforms;
pub mod principal;
pub mod project_roles;
pub mod projects;
pub mod requests;
pub mod scim;
pub mod session;
pub mod settings;
pub mod sso;
pub mod tag_definitions;
pub mod tenants;
pub mod users;
pub mod workspaces;

pub use error::{Error, FieldError, Result};
pub use principal::Principal;
