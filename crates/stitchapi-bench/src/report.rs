//! Versions of the compared crates, read from the workspace's `Cargo.lock`.

/// `name version` of each crate in `names`, as resolved in the workspace's `Cargo.lock`
/// (`name ?` when it is not there).
pub fn versions(names: &[&str]) -> Vec<String> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
        .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            let needle = format!("name = \"{name}\"\nversion = \"");
            let version = lock
                .find(&needle)
                .map(|at| &lock[at + needle.len()..])
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("?");
            format!("{name} {version}")
        })
        .collect()
}
