//! upload-core's integration tests: real files, each test in its own TempDir.
#![allow(unreachable_pub)] // helpers are `pub` for the sibling modules only

mod common;
mod failures;
mod listing;
mod names;
mod put;
mod resumable;
mod retention;
