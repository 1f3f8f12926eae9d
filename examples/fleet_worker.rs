//! `fleet-worker '<plan JSON>'`: one worker of a fleet run; see `stitchapi_examples::fleet`.

fn main() {
    let plan = std::env::args().nth(1).unwrap_or_default();
    stitchapi_examples::fleet::run_worker(&plan)
}
