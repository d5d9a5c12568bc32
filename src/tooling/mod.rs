//! Tooling the binary offers beside the product — `demo`, `chaos`, `bench` —
//! kept in the binary crate so the production library never carries it.

pub mod app_receiver;
pub mod bench;
pub mod chaos;
pub mod demo;
