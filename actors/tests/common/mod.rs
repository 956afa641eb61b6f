//! Helpers for the actors' tests: a fresh database per test ([`TestDb`]).

#![allow(dead_code)] // each test binary uses its own subset

mod testdb;

pub use testdb::*;
