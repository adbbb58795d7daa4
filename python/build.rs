//! No build step: this file exists so that `[build-dependencies]` (the
//! workspace hack for proc-macros, see Cargo.toml) take part in resolution.
fn main() {}
