//! Canopy's domain: the rules of workspaces, projects and access, with no I/O.
//!
//! Everything here is a pure function of its arguments. Time is a parameter
//! (see [`clock::Clock`] for the trait the outer crates implement), never read
//! here, so every rule can be tested for any instant.

pub mod access;
pub mod authz;
pub mod checkpoint;
pub mod clock;
pub mod deletion;
pub mod events;
pub mod four_eye;
pub mod history;
pub mod mail;
pub mod names;
pub mod payments;
pub mod platforms;
pub mod replication;
pub mod roles;
pub mod scim;
pub mod scim_filter;
pub mod signin;
pub mod tags;

pub use access::{Binding, Subject, SubjectKind};
pub use authz::{Action, Actor, Denied};
pub use events::Event;
pub use names::{DisplayName, Email, Identifier, InvalidValue, PersonName, RoleIdentifier, SearchTerm, Username};
pub use roles::{InstallationRole, WorkspaceRole};
