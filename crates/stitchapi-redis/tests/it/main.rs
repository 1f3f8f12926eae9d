//! The Redis stores' integration tests: one binary, one module per area, each against real
//! `redis-server` processes the tests start (`support`).

mod support;

mod cluster;
mod conformance;
mod faults;
mod gcra;
mod round_trips;
mod upstash;
