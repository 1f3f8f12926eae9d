//! stitchapi: declare an HTTP endpoint once, call it as a typed, resilient async function.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod duration;
pub mod error;
pub mod event;
mod input;
mod output;
mod pipeline;
pub mod policy;
mod query;
pub mod runtime;
mod seam;
mod settings;
mod stitch;
pub mod store;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod transport;

pub use error::{Error, ErrorKind, Result};
pub use event::{Event, EventStream, Phase, Progress};
pub use input::Input;
pub use output::OutputValidator;
pub use policy::{Backoff, Idempotency, Retry, StatusMatch, Timeout};
pub use query::ArrayFormat;
pub use seam::{Seam, SeamBuilder};
pub use settings::DEFAULT_MAX_RESPONSE_BYTES;
pub use stitch::{Reply, Stitch, StitchBuilder};
pub use store::{MemoryStore, StitchStore, StitchStoreExt};
