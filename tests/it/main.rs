//! One integration-test binary: each module was once its own binary, and
//! linking the whole crate 23 times was a large part of CI's time.
#![allow(clippy::unwrap_used)] // a test that cannot go on should stop loudly

mod common;

mod alerts;
mod app_webhook_crash;
mod app_webhooks;
mod architecture;
mod bad_input;
mod billing_fixtures;
mod browser;
mod chaos;
mod corpus;
mod delivery_order;
mod demo;
mod email_crash;
mod emails;
mod event_store;
mod fuzz_smoke;
mod gap_safety;
mod group_commit;
mod hash_chain;
mod immutability;
mod notifications;
mod pages;
mod plans;
mod processor_sim;
mod projection_crash;
mod projection_rebuild;
mod projection_runner;
mod projections;
mod reconcile;
mod reconcile_schedule;
mod renewal_crash;
mod renewal_rules;
mod renewals;
mod rules;
mod rules_more;
mod situations;
mod store_contract;
mod stripe_fixtures;
mod support;
mod support_races;
mod webhook;
