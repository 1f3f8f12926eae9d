//! Resilience policies: what to retry and how long to wait, how long a call may take, which
//! statuses count as success, idempotency keys for writes, how many redirects to follow, and the
//! extension points: a retry classifier and per-attempt request/response hooks.

pub(crate) mod backoff;
pub(crate) mod classifier;
pub(crate) mod hooks;
pub(crate) mod idempotency;
pub(crate) mod redirects;
pub(crate) mod retry;
pub(crate) mod status;
pub(crate) mod timeout;

pub use backoff::Backoff;
pub use classifier::{AttemptOutcome, AttemptResponse, RetryClassifier, RetryDecision};
pub use hooks::{AttemptRequest, RequestHook, ResponseHook};
pub use idempotency::{Idempotency, KeyContext};
pub use redirects::Redirects;
pub use retry::{DEFAULT_MAX_RETRY_AFTER, DEFAULT_RETRY_ON, MAX_BACKOFF, Retry};
pub use status::{StatusMatch, StatusSpec};
pub use timeout::{DEFAULT_TOTAL_TIMEOUT, Timeout};
