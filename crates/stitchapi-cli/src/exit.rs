//! Exit codes: one per kind of failure, so a script can tell them apart.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 2 | usage: unknown flag or subcommand (clap) |
//! | 3 | config: the declarations file is invalid (file, line, field and fix on stderr) |
//! | 4 | input: unusable call input (missing template variable, bad `--json`, unknown stitch) |
//! | 5 | http: the server answered a non-success status after every retry |
//! | 6 | timeout: the total deadline or a per-attempt timeout ran out |
//! | 7 | validation: the response did not decode or failed its schema |
//! | 8 | transport: connection refused, reset, TLS, body too large |
//! | 9 | auth: authentication failed or a secret is missing |
//! | 10 | rejected: the circuit is open, or the server rate-limited a delegating stitch |
//! | 11 | store: the store failed |
//! | 1 | anything else (a hook failed, an unreadable log) |

use stitchapi::ErrorKind;

/// A process exit code (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExitCode(pub u8);

impl ExitCode {
    /// Success.
    pub const OK: ExitCode = ExitCode(0);
    /// Anything not listed.
    pub const OTHER: ExitCode = ExitCode(1);
    /// Bad flags (clap's own code).
    pub const USAGE: ExitCode = ExitCode(2);
    /// An invalid declarations file.
    pub const CONFIG: ExitCode = ExitCode(3);
    /// Unusable call input.
    pub const INPUT: ExitCode = ExitCode(4);
    /// A non-success HTTP status.
    pub const HTTP: ExitCode = ExitCode(5);
    /// A timeout.
    pub const TIMEOUT: ExitCode = ExitCode(6);
    /// A response that failed decoding or its schema.
    pub const VALIDATION: ExitCode = ExitCode(7);
    /// A transport failure.
    pub const TRANSPORT: ExitCode = ExitCode(8);
    /// An authentication failure.
    pub const AUTH: ExitCode = ExitCode(9);
    /// Refused without an answer: circuit open or delegated rate limit.
    pub const REJECTED: ExitCode = ExitCode(10);
    /// A store failure.
    pub const STORE: ExitCode = ExitCode(11);

    /// The code of an error kind.
    ///
    /// ```
    /// use stitchapi::ErrorKind;
    /// use stitchapi_cli::ExitCode;
    ///
    /// assert_eq!(ExitCode::of(ErrorKind::Timeout), ExitCode::TIMEOUT);
    /// ```
    pub fn of(kind: ErrorKind) -> ExitCode {
        match kind {
            ErrorKind::Http => ExitCode::HTTP,
            ErrorKind::Transport => ExitCode::TRANSPORT,
            ErrorKind::Timeout => ExitCode::TIMEOUT,
            ErrorKind::Validation => ExitCode::VALIDATION,
            ErrorKind::Input => ExitCode::INPUT,
            ErrorKind::Config => ExitCode::CONFIG,
            ErrorKind::Auth => ExitCode::AUTH,
            ErrorKind::CircuitOpen | ErrorKind::RateLimited => ExitCode::REJECTED,
            ErrorKind::Store => ExitCode::STORE,
            _ => ExitCode::OTHER,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.0)
    }
}

/// The table for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0 success            2 usage            3 config (declarations file)
  4 input              5 http status      6 timeout
  7 validation         8 transport        9 auth
  10 circuit open / rate-limited          11 store          1 other";
