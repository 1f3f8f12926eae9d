//! placeholder
/// placeholder
#[derive(Clone, Debug)]
pub struct PrefixedStore<S> {
    inner: S,
    prefix: String,
}
impl<S> PrefixedStore<S> {
    /// p
    pub fn new(inner: S, prefix: impl Into<String>) -> Self {
        PrefixedStore {
            inner,
            prefix: prefix.into(),
        }
    }
}
