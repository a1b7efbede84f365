//! upload-http's integration tests: the real server on a free port, real files in a TempDir.
#![allow(unreachable_pub)] // helpers are `pub` for the sibling modules only

mod auth;
mod binary;
mod browser;
mod common;
mod compute;
mod crash;
mod files;
mod full_disk;
mod fuzz_corpus;
mod handlers;
mod hostile;
mod http_hygiene;
mod limits;
mod links;
mod openapi;
mod quotas;
mod s3;
mod s3_tus;
mod tus;
mod tus_client;
mod tus_extensions;
mod ui;
