//! What follows a tenant deletion (DL1, DL5): the project goes when its last
//! tenant went, or stays with the declined ones. The rule's one home is the
//! application layer's deletion use cases; the engine calls it there after
//! deleting a tenant on an automatic platform.

pub use canopy_app::deletion::{delete_project, settle_project};
