//! `stitch`: run declared HTTP endpoints from a file. See the crate README.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode as ProcessExit;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{CommandFactory, Parser, Subcommand};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use stitchapi_cli::event_log::EventLog;
use stitchapi_cli::events::{EventKind, EventLine, kind_name};
use stitchapi_cli::exit::EXIT_CODES_HELP;
use stitchapi_cli::mcp::StitchTools;
use stitchapi_cli::serve::Front;
use stitchapi_cli::trace::Summary;
use stitchapi_cli::{CallInput, Declarations, ExitCode, from_curl, invoke};

/// Run declared HTTP endpoints (retry, timeouts, throttle, cache, auth) from a file.
#[derive(Parser)]
#[command(name = "stitch", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// The declarations file.
    #[arg(long, short, global = true, default_value = "stitch.toml")]
    file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the declared stitches.
    List,
    /// Show what a stitch takes (template variables, body) and checks (pick, schema).
    Describe {
        /// The stitch.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a stitch; the result JSON goes to stdout.
    #[command(after_help = EXIT_CODES_HELP)]
    Run {
        /// The stitch.
        name: String,
        /// A template variable, `name=value` (repeatable).
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// A query parameter, `name=value` (repeatable).
        #[arg(long = "query", short = 'q', value_name = "NAME=VALUE")]
        query: Vec<String>,
        /// The JSON body.
        #[arg(long)]
        json: Option<String>,
        /// Stream the call's events as JSON lines on stderr.
        #[arg(long)]
        events: bool,
        /// Make N calls and print a latency summary instead of the result.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Calls in flight at once with --repeat.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: u32,
    },
    /// Serve the stitches over HTTP: POST /stitches/NAME, GET /stitches, GET /openapi.json.
    Serve {
        /// Where to listen (loopback unless told otherwise; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Append the calls' events to this file as JSON lines (for `stitch trace`).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
    },
    /// Serve the stitches as MCP tools over stdio (for agents); logs go to stderr.
    Mcp {
        /// Append the calls' events to this file as JSON lines (for `stitch trace`).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
    },
    /// Run a declared file against a local misbehaving API: retry, validation, timeout,
    /// cache, throttle and OAuth2, with no setup.
    Demo,
    /// Summarise an event log written by `run --events` or `serve --events`.
    Trace {
        /// The log (JSON lines).
        log: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Turn a curl command line into a declaration to paste into the file.
    FromCurl {
        /// The curl command, quoted: 'curl -H "..." https://...'.
        command: String,
        /// The stitch's name (default: method and last path segment).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ProcessExit {
    let cli = Cli::parse();
    // A command printing to a pipe that closes early (`stitch list | head -1`) ends quietly,
    // as Unix tools do, instead of panicking on the broken pipe. The front doors keep the
    // default: a closed client is an error they handle, never a signal.
    if !matches!(cli.command, Command::Serve { .. } | Command::Mcp { .. }) {
        sigpipe::reset();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stitch: cannot start the runtime: {e}");
            return ExitCode::OTHER.into();
        }
    };
    runtime.block_on(run(cli)).into()
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::List => with_declarations(&cli.file, |d| {
            for name in d.stitches.keys() {
                if let Ok(inputs) = d.inputs(name) {
                    println!("{name:<24} {:<6} {}", inputs.method, inputs.template);
                }
            }
            ExitCode::OK
        }),
        Command::Describe { name, json } => {
            with_declarations(&cli.file, |d| match d.inputs(&name) {
                Ok(inputs) if json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&inputs).unwrap_or_default()
                    );
                    ExitCode::OK
                }
                Ok(inputs) => {
                    println!("{} {} {}", inputs.name, inputs.method, inputs.template);
                    if inputs.params.is_empty() {
                        println!("  params: none");
                    }
                    for param in &inputs.params {
                        println!("  --param {param}=<value>");
                    }
                    println!("  --query name=<value>   (any query parameter)");
                    if inputs.body {
                        println!("  --json '<body>'        (a JSON body)");
                    }
                    if let Some(pick) = &inputs.pick {
                        println!("  output: picks {pick:?}");
                    }
                    if let Some(schema) = &inputs.schema {
                        println!("  output schema: {schema}");
                    }
                    ExitCode::OK
                }
                Err(message) => {
                    eprintln!("stitch: {message}");
                    ExitCode::INPUT
                }
            })
        }
        Command::Run {
            name,
            params,
            query,
            json,
            events,
            repeat,
            concurrency,
        } => {
            let declarations = match Declarations::load(&cli.file) {
                Ok(d) => d,
                Err(e) => return config_error(&e),
            };
            let input = match call_input(&params, &query, json.as_deref()) {
                Ok(input) => input,
                Err(message) => {
                    eprintln!("stitch: {message}");
                    return ExitCode::INPUT;
                }
            };
            run_calls(&declarations, &name, &input, events, repeat, concurrency).await
        }
        Command::Serve { addr, events } => match front(&cli.file, events.as_deref()) {
            Ok(front) => serve(addr, front).await,
            Err(code) => code,
        },
        Command::Mcp { events } => match front(&cli.file, events.as_deref()) {
            Ok(front) => match StitchTools::new(front).serve_stdio().await {
                Ok(()) => ExitCode::OK,
                Err(e) => {
                    eprintln!("stitch: the MCP session failed: {e}");
                    ExitCode::OTHER
                }
            },
            Err(code) => code,
        },
        Command::Demo => demo().await,
        Command::Trace { log, json } => match std::fs::read_to_string(&log) {
            Ok(text) => {
                let summary = Summary::of_log(&text);
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&summary).unwrap_or_default()
                    );
                } else {
                    print!("{summary}");
                }
                ExitCode::OK
            }
            Err(e) => {
                eprintln!("stitch: cannot read {}: {e}", log.display());
                ExitCode::OTHER
            }
        },
        Command::FromCurl { command, name } => {
            match from_curl::declaration(&command, name.as_deref()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::OK
                }
                Err(e) => {
                    eprintln!("stitch: {e}");
                    ExitCode::INPUT
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "stitch", &mut std::io::stdout());
            ExitCode::OK
        }
    }
}

fn with_declarations(
    file: &std::path::Path,
    then: impl FnOnce(&Declarations) -> ExitCode,
) -> ExitCode {
    match Declarations::load(file) {
        Ok(declarations) => then(&declarations),
        Err(e) => config_error(&e),
    }
}

/// The declarations and the event log a long-running front door serves.
fn front(file: &std::path::Path, events: Option<&std::path::Path>) -> Result<Arc<Front>, ExitCode> {
    let declarations = Declarations::load(file).map_err(|e| config_error(&e))?;
    let log = match events {
        Some(path) => Some(EventLog::append(path).map_err(|e| {
            eprintln!("stitch: cannot open the event log {}: {e}", path.display());
            ExitCode::OTHER
        })?),
        None => None,
    };
    Ok(Arc::new(Front { declarations, log }))
}

async fn serve(addr: std::net::SocketAddr, front: Arc<Front>) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("stitch: cannot listen on {addr}: {e}. Fix: pass --addr with a free port");
            return ExitCode::OTHER;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    println!("stitch serve: listening on http://{bound}");
    let _ = std::io::stdout().flush();
    for name in front.declarations.stitches.keys() {
        eprintln!("  POST http://{bound}/stitches/{name}");
    }
    let app = stitchapi_cli::serve::router(front);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::OK,
        Err(e) => {
            eprintln!("stitch: the server stopped: {e}");
            ExitCode::OTHER
        }
    }
}

/// `stitch demo`; the demo file reads its OAuth2 secret from the environment, so without it
/// the demo runs itself with the demo API's (public) secret set.
async fn demo() -> ExitCode {
    use stitchapi_cli::demo::{DEMO_SECRET, DEMO_SECRET_ENV};
    if std::env::var_os(DEMO_SECRET_ENV).is_some() {
        return stitchapi_cli::demo::run().await;
    }
    let status = match std::env::current_exe() {
        Ok(exe) => {
            tokio::process::Command::new(exe)
                .arg("demo")
                .env(DEMO_SECRET_ENV, DEMO_SECRET)
                .status()
                .await
        }
        Err(e) => Err(e),
    };
    match status {
        Ok(status) => ExitCode(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
        ),
        Err(e) => {
            eprintln!("stitch: cannot start the demo: {e}");
            ExitCode::OTHER
        }
    }
}

fn config_error(error: &stitchapi_cli::DeclarationError) -> ExitCode {
    eprintln!("stitch: {error}");
    ExitCode::CONFIG
}

/// `name=value` pairs and a JSON body into a call input; values that parse as JSON numbers
/// or booleans stay strings (the URL carries text).
fn call_input(
    params: &[String],
    query: &[String],
    json: Option<&str>,
) -> Result<CallInput, String> {
    let pairs = |flag: &str, items: &[String]| -> Result<Map<String, Value>, String> {
        items
            .iter()
            .map(|item| {
                item.split_once('=')
                    .map(|(k, v)| (k.to_owned(), Value::from(v)))
                    .ok_or_else(|| {
                        format!(
                            "--{flag} {item:?} is not name=value. Fix: write --{flag} name=value"
                        )
                    })
            })
            .collect()
    };
    let body = match json {
        Some(text) => Some(serde_json::from_str(text).map_err(|e| {
            format!("--json is not JSON ({e}). Fix: quote it: --json '{{\"a\": 1}}'")
        })?),
        None => None,
    };
    Ok(CallInput {
        params: pairs("param", params)?,
        query: pairs("query", query)?,
        body,
    })
}

async fn run_calls(
    declarations: &Declarations,
    name: &str,
    input: &CallInput,
    events: bool,
    repeat: u32,
    concurrency: u32,
) -> ExitCode {
    let stitch = match declarations.stitch(name) {
        Ok(stitch) => stitch,
        Err(message) => {
            eprintln!("stitch: {message}");
            return ExitCode::INPUT;
        }
    };
    let progress = !events && std::io::stderr().is_terminal();
    let lines: Arc<Mutex<Vec<EventLine>>> = Arc::default();
    let sink = |line: EventLine| {
        if events {
            if let Ok(text) = serde_json::to_string(&line) {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        } else if progress {
            show_progress(&line);
        }
        if repeat > 1 {
            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    };
    if repeat == 1 {
        let outcome = invoke::call(name, stitch, input, sink).await;
        if progress {
            eprint!("\r\x1b[2K");
        }
        return match outcome {
            Ok(value) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
                ExitCode::OK
            }
            Err(error) if error.kind() == stitchapi::ErrorKind::Store => {
                eprintln!(
                    "stitch: store error: {error}. Fix: {}",
                    declarations.store_fix()
                );
                ExitCode::STORE
            }
            Err(error) => {
                eprintln!("stitch: {} error: {error}", kind_name(error.kind()));
                ExitCode::of(error.kind())
            }
        };
    }
    let started = Instant::now();
    let outcomes: Vec<_> = futures_util::stream::iter(0..repeat)
        .map(|_| invoke::call(name, stitch, input, &sink))
        .buffer_unordered(concurrency as usize)
        .collect()
        .await;
    let wall = started.elapsed();
    if progress {
        eprint!("\r\x1b[2K");
    }
    let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
    let summary = Summary::of(&lines);
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    println!(
        "{repeat} calls, concurrency {concurrency}: {ok} ok, {} failed in {:.2}s ({:.1} calls/s)",
        outcomes.len() - ok,
        wall.as_secs_f64(),
        f64::from(repeat) / wall.as_secs_f64().max(1e-9)
    );
    print!("{summary}");
    match outcomes.iter().find_map(|o| o.as_ref().err()) {
        Some(error) => ExitCode::of(error.kind()),
        None => ExitCode::OK,
    }
}

/// A one-line progress note on a terminal, for calls that wait.
fn show_progress(line: &EventLine) {
    let note = match &line.kind {
        EventKind::Retry {
            attempt,
            reason,
            delay_ms,
        } => format!(
            "{}: attempt {attempt} failed ({reason}), retrying in {delay_ms}ms",
            line.stitch
        ),
        EventKind::Throttle { detail, .. } => format!("{}: throttled, {detail}", line.stitch),
        EventKind::Auth { detail } => format!("{}: {detail}", line.stitch),
        _ => return,
    };
    eprint!("\r\x1b[2K{note}");
}
