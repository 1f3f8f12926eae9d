//! An event log file: [`EventLine`]s appended as JSON lines by a long-running front door
//! (`serve --events FILE`, `mcp --events FILE`), for `stitch trace`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::events::EventLine;

/// A file that event lines are appended to, one whole line per write, so concurrent calls
/// never interleave inside a line.
#[derive(Debug)]
pub struct EventLog {
    file: Mutex<File>,
}

impl EventLog {
    /// Opens `path` for appending (creating it).
    pub fn append(path: &Path) -> std::io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one line; a failed write is reported on stderr and the call goes on.
    pub fn write(&self, line: &EventLine) {
        let Ok(mut text) = serde_json::to_string(line) else {
            return;
        };
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            eprintln!("stitch: cannot append to the event log: {e}");
        }
    }
}
