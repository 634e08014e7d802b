//! `sqlx::migrate!` embeds `migrations/` at compile time, but cargo does not
//! know the macro reads that folder: without this, a new or changed
//! migration would not rebuild the crate (sqlx's own advice, as
//! `sqlx migrate build-script` writes it).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
