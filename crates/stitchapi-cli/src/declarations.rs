//! The declarations file: a seam and its stitches in TOML (`stitch.toml`), built into callable
//! stitches over the declared store, with the output schemas attached.
//!
//! Every problem is a [`DeclarationError`] naming the file, the line (when the field is in
//! the file), the field, the problem and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use stitchapi::config::{Catalog, SeamConfig, StoreSpec};
use stitchapi::store::{StoreError, StoreErrorKind};
use stitchapi::{BuildError, Secret, Stitch, StitchStore};
use stitchapi_deno_kv::DenoKvStore;

/// A problem found while building: field, problem, fix (located in the file by the caller).
struct Problem {
    field: String,
    problem: String,
    fix: String,
}

impl Problem {
    fn new(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            field: field.to_owned(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl From<BuildError> for Problem {
    fn from(error: BuildError) -> Problem {
        Problem::new(error.field(), error.problem(), error.fix())
    }
}

/// A loaded declarations file.
#[derive(Debug)]
pub struct Declarations {
    /// The file it came from.
    pub file: PathBuf,
    /// The declarations as written.
    pub config: SeamConfig,
    /// The built stitches, by name (with their output schemas attached).
    pub stitches: BTreeMap<String, Stitch<Value>>,
}

/// A file that cannot be used: where, what and how to fix it. Never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DeclarationError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line of the field, when it is in the file.
    pub line: Option<usize>,
    /// The field (`stitches.get_user.timeout.total`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for DeclarationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}. Fix: {}", self.field, self.problem, self.fix)
    }
}

impl Declarations {
    /// Reads, parses and builds `file`, connecting its store (a Redis store needs to be
    /// connected inside a Tokio runtime; outside one it is an error on `store`).
    ///
    /// ```no_run
    /// let declarations = stitchapi_cli::Declarations::load("stitch.toml".as_ref())?;
    /// for name in declarations.stitches.keys() {
    ///     println!("{name}");
    /// }
    /// # Ok::<(), stitchapi_cli::DeclarationError>(())
    /// ```
    pub fn load(file: &Path) -> Result<Declarations, DeclarationError> {
        let text = std::fs::read_to_string(file).map_err(|e| DeclarationError {
            file: file.to_owned(),
            line: None,
            field: "--file".to_owned(),
            problem: format!("cannot read the declarations file ({e})"),
            fix: "create it, or pass --file with the path of a declarations file".to_owned(),
        })?;
        Declarations::parse(file, &text)
    }

    /// Parses and builds declarations held in `text` (errors name `file`).
    pub fn parse(file: &Path, text: &str) -> Result<Declarations, DeclarationError> {
        let config = parse_config(file, text)?;
        let located = |error: Problem| DeclarationError {
            file: file.to_owned(),
            line: line_of(text, &error.field),
            field: error.field,
            problem: error.problem,
            fix: error.fix,
        };
        let store = connect_store(&config).map_err(located)?;
        let catalog: Catalog = config
            .build_with_store(store)
            .map_err(|e| located(e.into()))?;
        let mut stitches = BTreeMap::new();
        for (name, stitch) in catalog.stitches {
            let stitch = match config.stitches.get(&name).and_then(|s| s.schema.as_ref()) {
                Some(schema) => with_schema(&name, stitch, schema).map_err(located)?,
                None => stitch,
            };
            stitches.insert(name, stitch);
        }
        Ok(Declarations {
            file: file.to_owned(),
            config,
            stitches,
        })
    }

    /// The fix to print after a `Store` error: check the declared store (named by its
    /// redacted URL, never a password) is running and reachable.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let text = "base_url = \"http://127.0.0.1:1\"\nstore = \"redis://:pw@127.0.0.1:1/0\"\n";
    /// let declarations = stitchapi_cli::Declarations::parse("stitch.toml".as_ref(), text).unwrap();
    /// assert_eq!(
    ///     declarations.store_fix(),
    ///     "check that the store redis://:<redacted>@127.0.0.1:1/0 (stitch.toml) is running, \
    ///      reachable and takes these credentials"
    /// );
    /// # });
    /// ```
    pub fn store_fix(&self) -> String {
        let store = self
            .config
            .store
            .as_ref()
            .map_or_else(|| "memory".into(), |store| store.redacted_url());
        format!(
            "check that the store {store} ({}) is running, reachable and takes these credentials",
            self.file.display()
        )
    }

    /// A stitch by name; an unknown name is an error listing the declared ones.
    pub fn stitch(&self, name: &str) -> Result<&Stitch<Value>, String> {
        self.stitches.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.stitches.keys().map(String::as_str).collect();
            format!(
                "no stitch named {name:?} in {}. Fix: use one of: {}",
                self.file.display(),
                known.join(", ")
            )
        })
    }
}

fn parse_config(file: &Path, text: &str) -> Result<SeamConfig, DeclarationError> {
    let deserializer =
        toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, &e, ""))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        toml_error(file, text, e.inner(), &path)
    })
}

fn toml_error(file: &Path, text: &str, error: &toml::de::Error, path: &str) -> DeclarationError {
    let message = error.message().trim().to_owned();
    // The field: the unknown one the message names, else the path serde reached.
    let named = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (named, path) {
        (Some(name), "" | ".") => name.to_owned(),
        (Some(name), path) if !path.ends_with(name) => format!("{path}.{name}"),
        (_, "" | ".") => "(file)".to_owned(),
        (_, path) => path.to_owned(),
    };
    let fix = if named.is_some() {
        "remove it or correct its spelling (the crate README lists the fields)"
    } else {
        "see the stitchapi-cli README for the declaration forms"
    };
    DeclarationError {
        file: file.to_owned(),
        // An unknown key is found by its path (the span covers its whole table); anything
        // else by the span of the offending value.
        line: if named.is_some() {
            line_of(text, &field)
        } else {
            None
        }
        .or_else(|| error.span().map(|span| line_at(text, span.start))),
        field,
        problem: message,
        fix: fix.to_owned(),
    }
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of a dotted field (`stitches.get_user.timeout.total`): the deepest key of the path
/// found in the file.
fn line_of(text: &str, field: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut found = None;
    for segment in field.split('.') {
        let Some((key, value)) = table.get_key_value(segment) else {
            break;
        };
        found = Some(key.span().start);
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found.map(|offset| line_at(text, offset))
}

/// The store the file declares, connected; `None` for the default in-process store. Every
/// message names the store by its redacted URL (never a password).
fn connect_store(config: &SeamConfig) -> Result<Option<Arc<dyn StitchStore>>, Problem> {
    let Some(store) = &config.store else {
        return Ok(None);
    };
    let spec = store.spec().map_err(|e| build_error(&e, "store"))?;
    let shown = store.redacted_url();
    let problem = |what: String, fix: &str| Problem::new("store", what, fix);
    let unusable =
        |what: &str, error: &StoreError| format!("the {what} {shown} is not usable ({error})");
    Ok(match spec {
        StoreSpec::Memory => None,
        StoreSpec::Redis { url, password } => {
            let fix = "write redis://[:password@]host:port[/db] or rediss://…, or keep the \
                       password out of the URL: { url = \"redis://host:6379\", password = { env = \"REDIS_PASSWORD\" } }";
            let store = redis_store(&url, password.as_ref()).map_err(|e| match e {
                RedisSetup::Password(e) => build_error(&e, "store.password"),
                RedisSetup::Store(e) => problem(unusable("Redis URL", &e), fix),
            })?;
            Some(Arc::new(store))
        }
        StoreSpec::Upstash { url, token } => {
            let token = token.expose().map_err(|e| build_error(&e, "store.token"))?;
            let store = stitchapi_redis::UpstashStore::new(&url, token).map_err(|e| {
                problem(
                    unusable("Upstash store", &e),
                    "write upstash+https://<your database>.upstash.io",
                )
            })?;
            Some(Arc::new(store))
        }
        StoreSpec::DenoKv {
            location,
            token: Some(token),
        } => {
            let store = DenoKvStore::connect(&location, token).map_err(|e| {
                problem(
                    unusable("Deno KV URL", &e),
                    "write denokv+https://<database URL> (or denokv+http://127.0.0.1:<port> for a local denokv serve)",
                )
            })?;
            Some(Arc::new(store))
        }
        StoreSpec::DenoKv {
            location,
            token: None,
        } => {
            let store = DenoKvStore::open(&location).map_err(|e| {
                problem(
                    unusable("Deno KV file", &e),
                    "point denokv:<path> at a SQLite file in a writable directory",
                )
            })?;
            Some(Arc::new(store))
        }
        StoreSpec::WorkersKv { .. } | StoreSpec::DurableObject { .. } => {
            return Err(problem(
                format!(
                    "{shown} is a Cloudflare binding, which exists only inside a Worker, not in a stitch process"
                ),
                "to share state with a Worker, use a store both can reach (upstash+https://… or \
                 denokv+https://… with a token); inside a Worker, build the seam with \
                 stitchapi-cloudflare's store and SeamConfig::build_with_store",
            ));
        }
        _ => {
            return Err(problem(
                format!("the store {shown} is not supported by the stitch CLI"),
                "use \"memory\", redis://, rediss://, upstash+https://, denokv+https:// or denokv:<path>",
            ));
        }
    })
}

enum RedisSetup {
    Password(stitchapi::Error),
    Store(StoreError),
}

/// A Redis store on `url`, with `password` (given beside the URL) set on the connection.
fn redis_store(
    url: &str,
    password: Option<&Secret>,
) -> Result<stitchapi_redis::RedisStore, RedisSetup> {
    // redis-rs's connection manager spawns on the current Tokio runtime (and panics without one).
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(RedisSetup::Store(StoreError::new(
            "redis",
            "connect",
            StoreErrorKind::Unavailable,
            "a Redis store is connected on a Tokio runtime, and none is running: \
             load the declarations inside one",
        )));
    }
    let Some(password) = password else {
        return stitchapi_redis::RedisStore::from_url(url).map_err(RedisSetup::Store);
    };
    let password = password.expose().map_err(RedisSetup::Password)?;
    let invalid = |e: redis::RedisError| {
        RedisSetup::Store(StoreError::new(
            "redis",
            "connect",
            StoreErrorKind::InvalidData,
            e.to_string(),
        ))
    };
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(invalid)?;
    let settings = info.redis_settings().clone().set_password(password);
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)?;
    stitchapi_redis::RedisStore::from_client(client).map_err(RedisSetup::Store)
}

fn build_error(error: &stitchapi::Error, field: &str) -> Problem {
    match error.build_error() {
        Some(build) => build.clone().into(),
        None => Problem::new(field, error.message(), "check the store declaration"),
    }
}

/// Attaches a JSON Schema check to a built stitch: a response that does not match is a
/// `Validation` error naming the first failing place.
fn with_schema(
    name: &str,
    stitch: Stitch<Value>,
    schema: &Value,
) -> Result<Stitch<Value>, Problem> {
    let field = format!("stitches.{name}.schema");
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        Problem::new(
            &field,
            format!("not a valid JSON Schema ({e})"),
            "write a JSON Schema (draft 2020-12), e.g. { type = \"object\", required = [\"id\"] }",
        )
    })?;
    let validator = Arc::new(validator);
    stitch
        .with(|builder| {
            builder.validate(move |output: &Value| {
                validator.validate(output).map_err(|e| {
                    let at = e.instance_path().to_string();
                    let at = if at.is_empty() { "/".to_owned() } else { at };
                    format!("schema: {e} at {at}")
                })
            })
        })
        .map_err(|e| Problem::new(&field, e.problem(), e.fix()))
}

/// What a declared stitch takes and checks: the form `stitch describe` prints.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StitchInputs {
    /// The stitch's name.
    pub name: String,
    /// The HTTP method.
    pub method: String,
    /// The URL template.
    pub template: String,
    /// Template variables (`--param name=value`), required unless listed in `allow_empty`.
    pub params: Vec<String>,
    /// Whether the method sends a body (`--json`).
    pub body: bool,
    /// The dot-path picked out of the response.
    pub pick: Option<String>,
    /// The JSON Schema the output must match.
    pub schema: Option<Value>,
}

impl Declarations {
    /// What `name` takes and checks.
    pub fn inputs(&self, name: &str) -> Result<StitchInputs, String> {
        let stitch = self.stitch(name)?;
        let declared = self.config.stitches.get(name);
        let method = stitch.method().clone();
        Ok(StitchInputs {
            name: name.to_owned(),
            method: method.to_string(),
            template: stitch.template().as_str().to_owned(),
            params: stitch.template().variables().map(str::to_owned).collect(),
            body: matches!(
                method.as_str(),
                "POST" | "PUT" | "PATCH" | "QUERY" | "DELETE"
            ),
            pick: declared.and_then(|d| d.pick.clone()),
            schema: declared.and_then(|d| d.schema.clone()),
        })
    }
}
