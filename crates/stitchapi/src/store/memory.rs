//! placeholder
use super::*;
/// placeholder
#[derive(Clone, Debug, Default)]
pub struct MemoryStore;
impl MemoryStore {
    /// p
    pub fn new() -> Self {
        MemoryStore
    }
    /// p
    pub fn with_clock(_c: std::sync::Arc<dyn crate::time::Clock>) -> Self {
        MemoryStore
    }
}

#[async_trait::async_trait]
impl StitchStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Process)
    }
    async fn get(&self, _key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(None)
    }
    async fn set(
        &self,
        _key: &str,
        _value: Option<Bytes>,
        _ttl: Option<std::time::Duration>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn increment(
        &self,
        _key: &str,
        _ttl: Option<std::time::Duration>,
    ) -> Result<i64, StoreError> {
        Ok(1)
    }
}
