//! `stitch from-curl`: a curl command line turned into a declaration, with its credentials
//! moved into environment references (the values are never printed).
//!
//! Understood: the URL, `-X/--request`, `-H/--header`, `-d/--data/--data-raw/--data-binary`,
//! `--json`, `-u/--user`, `-G/--get`; other flags are reported in a comment and ignored.
//! Credentials: `Authorization: Bearer` (`API_TOKEN`), `Authorization: Basic` and `-u`
//! (`API_USER`, `API_PASSWORD`), and headers or query parameters whose names look like keys
//! (`x-api-key`, `api_key`, `token`, ...) (`API_KEY`).

use std::fmt::Write as _;

use url::Url;

/// A curl command that cannot be turned into a declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}. Fix: {fix}")]
pub struct CurlError {
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

fn error(problem: impl Into<String>, fix: &str) -> CurlError {
    CurlError {
        problem: problem.into(),
        fix: fix.to_owned(),
    }
}

/// The declaration text (TOML) for `command`, its stitch named `name` (default: from the
/// method and the path).
///
/// ```
/// let toml = stitchapi_cli::from_curl::declaration(
///     "curl -H 'Authorization: Bearer s3cr3t' https://api.example.com/v1/users?limit=5",
///     None,
/// ).unwrap();
/// assert!(toml.contains("token = { env = \"API_TOKEN\" }"));
/// assert!(!toml.contains("s3cr3t"));
/// ```
pub fn declaration(command: &str, name: Option<&str>) -> Result<String, CurlError> {
    let words = shlex::split(command).ok_or_else(|| {
        error(
            "the command line has an unbalanced quote",
            "quote the whole curl command in single quotes",
        )
    })?;
    let mut words = words.into_iter().peekable();
    if words.peek().map(String::as_str) == Some("curl") {
        words.next();
    }
    let mut method = None;
    let mut url = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut data: Option<String> = None;
    let mut json = false;
    let mut user = false;
    let mut get = false;
    let mut ignored = Vec::new();
    while let Some(word) = words.next() {
        let mut value = |flag: &str| {
            words
                .next()
                .ok_or_else(|| error(format!("{flag} needs a value"), "give the flag its value"))
        };
        match word.as_str() {
            "-X" | "--request" => method = Some(value(&word)?.to_ascii_uppercase()),
            "-H" | "--header" => {
                let header = value(&word)?;
                let (name, text) = header.split_once(':').ok_or_else(|| {
                    error(
                        format!("the header {header:?} has no ':'"),
                        "write -H 'name: value'",
                    )
                })?;
                headers.push((name.trim().to_ascii_lowercase(), text.trim().to_owned()));
            }
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-ascii" => {
                data = Some(value(&word)?)
            }
            "--json" => {
                data = Some(value(&word)?);
                json = true;
            }
            "-u" | "--user" => {
                value(&word)?;
                user = true;
            }
            "-G" | "--get" => get = true,
            "--url" => url = Some(value(&word)?),
            flag if flag.starts_with('-') => ignored.push(flag.to_owned()),
            _ => url = Some(word),
        }
    }
    let url = url.ok_or_else(|| error("no URL in the command", "add the URL"))?;
    let mut parsed = Url::parse(&url).map_err(|e| {
        error(
            format!("the URL is not absolute ({e})"),
            "write it in full: https://host/path",
        )
    })?;
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let method = method.unwrap_or_else(|| {
        if data.is_some() && !get {
            "POST"
        } else {
            "GET"
        }
        .to_owned()
    });

    let mut auth: Option<String> = None;
    let mut removed = Vec::new();
    let mut set_auth = |text: String, what: String, removed: &mut Vec<String>| {
        if auth.is_none() {
            auth = Some(text);
        } else {
            removed.push(what);
        }
    };
    if user {
        set_auth(
            basic_auth(),
            "-u (set the second credential by hand)".to_owned(),
            &mut removed,
        );
    }
    let mut kept_headers = Vec::new();
    for (name, value) in headers {
        if name == "authorization" {
            let scheme = value
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let text = match scheme.as_str() {
                "bearer" => "{ type = \"bearer\", token = { env = \"API_TOKEN\" } }".to_owned(),
                "basic" => basic_auth(),
                _ => {
                    "{ type = \"api_key\", key = { env = \"API_KEY\" }, name = \"authorization\" }"
                        .to_owned()
                }
            };
            set_auth(text, "header authorization".to_owned(), &mut removed);
        } else if looks_like_key(&name) {
            set_auth(
                format!(
                    "{{ type = \"api_key\", key = {{ env = \"API_KEY\" }}, name = {} }}",
                    quoted(&name)
                ),
                format!("header {name}"),
                &mut removed,
            );
        } else if name == "content-type" && data.is_some() {
            // The body's type comes with the body (`--json` at run time).
        } else {
            kept_headers.push((name, value));
        }
    }
    let mut query: Vec<(String, String)> = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if looks_like_key(&key) {
            set_auth(
                format!(
                    "{{ type = \"api_key\", key = {{ env = \"API_KEY\" }}, in = \"query\", name = {} }}",
                    quoted(&key)
                ),
                format!("query parameter {key}"),
                &mut removed,
            );
        } else {
            query.push((key.into_owned(), value.into_owned()));
        }
    }
    if get && let Some(data) = data.take() {
        query.extend(form_urlencoded::parse(data.as_bytes()).into_owned());
    }

    let base = format!(
        "{}://{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default()
    ) + &parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let mut path = parsed.path().to_owned();
    if !query.is_empty() {
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        path = format!("{path}?{encoded}");
    }
    let name = name
        .map(str::to_owned)
        .unwrap_or_else(|| stitch_name(&method, parsed.path()));

    let mut out = String::new();
    let _ = writeln!(out, "# From: curl {method} {base}{}", parsed.path());
    let _ = writeln!(out, "base_url = {}", quoted(&base));
    if !kept_headers.is_empty() {
        let pairs: Vec<String> = kept_headers
            .iter()
            .map(|(n, v)| format!("{} = {}", quoted(n), quoted(v)))
            .collect();
        let _ = writeln!(out, "headers = {{ {} }}", pairs.join(", "));
    }
    if let Some(auth) = &auth {
        let _ = writeln!(out, "auth = {auth}");
    }
    let _ = writeln!(out, "\n[stitches.{name}]");
    let _ = writeln!(out, "method = {}", quoted(&method));
    let _ = writeln!(out, "path = {}", quoted(&path));
    if let Some(data) = &data {
        let flag = if json || serde_json::from_str::<serde_json::Value>(data).is_ok() {
            "--json"
        } else {
            "--json (the curl body was not JSON: send it as a JSON value)"
        };
        let _ = writeln!(
            out,
            "# The body is given per call: stitch run {name} {flag} '<body>'"
        );
    }
    if auth.is_some() {
        let _ = writeln!(
            out,
            "# Credentials were moved out of the file: set the environment variables named above."
        );
    }
    for what in removed {
        let _ = writeln!(
            out,
            "# Dropped a second credential ({what}): declare it by hand."
        );
    }
    if !ignored.is_empty() {
        let _ = writeln!(out, "# Ignored curl flags: {}", ignored.join(" "));
    }
    Ok(out)
}

fn basic_auth() -> String {
    "{ type = \"basic\", user = { env = \"API_USER\" }, password = { env = \"API_PASSWORD\" } }"
        .to_owned()
}

/// Header or parameter names that carry a credential.
fn looks_like_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('_', "-");
    [
        "api-key",
        "apikey",
        "x-api-key",
        "key",
        "token",
        "access-token",
        "x-auth-token",
        "auth-token",
        "x-access-token",
        "secret",
        "client-secret",
        "x-api-token",
        "api-token",
        "password",
        "sig",
        "signature",
    ]
    .contains(&name.as_str())
        || name.ends_with("-api-key")
        || name.ends_with("-token")
        || name.ends_with("-secret")
}

/// A TOML string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `get_users`, `post_orders`: the method and the last path segment.
fn stitch_name(method: &str, path: &str) -> String {
    let segment = path
        .split('/')
        .rev()
        .find(|s| !s.is_empty() && !s.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or("root");
    let clean: String = segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{}_{clean}", method.to_ascii_lowercase())
}
