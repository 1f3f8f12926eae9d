//! Who a piece of state belongs to: the whole application, or one principal (end user).

use serde::{Deserialize, Serialize};

/// Whose state a cache entry, token or session is.
///
/// With `Principal`, state is kept apart per principal bound with `seam.as_principal("alice")`;
/// `App` shares it across every caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tenancy {
    /// One state for the whole application.
    App,
    /// One state per principal.
    #[default]
    Principal,
}
