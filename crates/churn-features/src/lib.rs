//! Feature and label definitions at an as-of time.
//!
//! **Architecture invariant:** everything here that looks at a learner at as-of
//! time `t` reads features only from events with `ts ≤ t` and labels only from
//! events with `ts > t`. No polars: the server links this crate.

pub mod label;
