//! The fleet tests: one binary, one module per area; each starts worker processes sharing one
//! real Redis (`common`).

mod common;

mod fleet;
mod fleet_faults;
mod fleet_pacing;
mod fleet_stall;
mod fleet_throttle;
