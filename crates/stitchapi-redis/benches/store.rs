//! RedisStore verbs against their peers, on one spawned redis-server, in one run:
//! `cargo bench -p stitchapi-redis --bench store`.
//!
//! - `increment` against raw redis-rs `INCR` on the same connection setup (a
//!   `ConnectionManager`), and against the other ways to count with a TTL set only on creation
//!   (a Lua script by `EVALSHA`, `MULTI`/`EXEC` transactions, a plain pipeline).
//! - `reserve` against the best-known Redis GCRA script, go-redis/redis_rate's `allowN`, as a
//!   peer (see [`PEER_GCRA`]).
//!
//! Each figure is the median of 9 interleaved rounds; the server's commands per operation come
//! from `INFO commandstats` around one extra round.

#[path = "../tests/it/support/server.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use stitchapi::store::StitchStore;
use stitchapi::time::Timestamp;
use stitchapi_redis::RedisStore;
use support::RedisServer;

const OPS: usize = 20_000;
const ROUNDS: usize = 9;
const TTL_MS: u64 = 60_000;

/// The peer for `reserve`: the GCRA step of go-redis/redis_rate's `allowN` script
/// (<https://github.com/go-redis/redis_rate>, `lua.go`, BSD-2-Clause; itself after Pavel
/// Pravosud's redis-gcra), re-stated here with the same Redis work per call: `TIME`, `GET` the
/// theoretical arrival time as a float of seconds since 2017, `SET` it back with `EX`, and a
/// four-element reply with two numbers as strings. `ARGV` = burst, rate, period (s), cost.
const PEER_GCRA: &str = r#"
redis.replicate_commands()
local burst, rate, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local interval = period / rate
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + t[2] / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval * cost
local slack = now - (next_tat - interval * burst)
local left = math.floor(slack / interval + 0.5)
if left < 0 then
  return {0, 0, tostring(-slack), tostring(tat - now)}
end
redis.call('SET', KEYS[1], next_tat, 'EX', math.ceil(next_tat - now))
return {cost, left, '-1', tostring(next_tat - now)}
"#;

async fn throughput<F, Fut>(tasks: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = OPS / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    op(t * per_task + i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    (per_task * tasks) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn redis_benchmark(port: u16, clients: usize) -> Option<f64> {
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "incr",
            "-n",
            "50000",
            "-q",
        ])
        .args(["-c", &clients.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "INCR: 74074.07 requests per second, p50=0.343 msec"
    let line = text
        .lines()
        .rev()
        .find(|line| line.contains("requests per second"))?;
    // Progress updates share the line, separated by carriage returns.
    let line = line.rsplit('\r').next()?;
    let after = line.split(':').nth(1)?.trim();
    after.split_whitespace().next()?.parse().ok()
}

/// One way of doing an operation, run by `tasks` concurrent tasks.
type Op = Arc<dyn Fn(usize) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Arc::new(move |i| Box::pin(f(i)))
}

/// The server's command counts and the microseconds it spent in them (`cmdstat_<name>`
/// `calls` and `usec`).
async fn commandstats(connection: &mut ConnectionManager) -> BTreeMap<String, (u64, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |field: &str| -> Option<u64> {
                let value = rest.split(',').find_map(|pair| pair.strip_prefix(field))?;
                value.parse().ok()
            };
            Some((name.to_owned(), (field("calls=")?, field("usec=")?)))
        })
        .collect()
}

/// What the server ran per operation (`"evalsha 1, get 1, set 1"`) and the microseconds it
/// spent doing so (the commands a script runs are counted within its `evalsha`).
async fn commands_per_op(connection: &mut ConnectionManager, op: &Op) -> (String, f64) {
    const N: usize = 2_000;
    let before = commandstats(connection).await;
    for i in 0..N {
        op(i).await;
    }
    let after = commandstats(connection).await;
    let deltas: Vec<(&String, u64, u64)> = after
        .iter()
        .filter(|(name, _)| *name != "info")
        .filter_map(|(name, (calls, spent))| {
            let (calls_before, spent_before) = before.get(name).copied().unwrap_or((0, 0));
            (calls > &calls_before).then(|| (name, calls - calls_before, spent - spent_before))
        })
        .collect();
    let script = deltas.iter().find(|(name, _, _)| *name == "evalsha");
    let usec: u64 = match script {
        Some((_, _, spent)) => *spent,
        None => deltas.iter().map(|(_, _, spent)| spent).sum(),
    };
    let commands = deltas
        .iter()
        .map(|(name, calls, _)| format!("{name} {:.0}", *calls as f64 / N as f64))
        .collect::<Vec<_>>()
        .join(", ");
    (commands, usec as f64 / N as f64)
}

struct Row {
    name: &'static str,
    round_trips: usize,
    op: Op,
}

async fn table(title: &str, raw: &mut ConnectionManager, rows: &[Row], server_port: u16) {
    println!("{title}");
    let mut commands = Vec::new();
    for row in rows {
        commands.push(commands_per_op(raw, &row.op).await);
    }
    for tasks in [1, 16] {
        let mut rates = vec![Vec::new(); rows.len()];
        for _round in 0..ROUNDS {
            for (row, rates) in rows.iter().zip(&mut rates) {
                let op = row.op.clone();
                rates.push(throughput(tasks, move |i| op(i)).await);
            }
        }
        let rates: Vec<f64> = rates.into_iter().map(median).collect();
        println!(
            "  {tasks} task(s), {OPS} ops, median of {ROUNDS} rounds (ratio to the first row):"
        );
        for ((row, rate), (commands, usec)) in rows.iter().zip(&rates).zip(&commands) {
            println!(
                "    {:<46} {rate:>8.0} ops/s  {:.2}x  {} round trip(s); server: {usec:.2} µs/op in {commands}",
                row.name,
                rate / rates[0],
                row.round_trips,
            );
        }
        if title.starts_with("increment") {
            match redis_benchmark(server_port, tasks) {
                Some(ceiling) => println!(
                    "    redis-benchmark -t incr -c {tasks}: {ceiling:.0} req/s (the server's ceiling)"
                ),
                None => println!("    redis-benchmark not found (apt-get install -y redis-tools)"),
            }
        }
    }
}

fn raw_op<T: redis::FromRedisValue + Send + 'static>(
    connection: &ConnectionManager,
    build: impl Fn(usize) -> redis::Pipeline + Send + Sync + 'static,
) -> Op {
    let connection = connection.clone();
    op(move |i| {
        let mut connection = connection.clone();
        let pipeline = build(i);
        async move {
            let _: T = pipeline.query_async(&mut connection).await.unwrap();
        }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = ConnectionManager::new(client).await.unwrap();
    let store = Arc::new(RedisStore::from_url(&server.url()).unwrap());
    let server_time_store = Arc::new(
        RedisStore::from_url(&server.url())
            .unwrap()
            .with_server_time(true),
    );
    let now = Timestamp::from_unix(Duration::from_secs(1_767_225_600));

    let increment_script = redis::Script::new(stitchapi_redis::scripts::INCREMENT);
    let script_op = {
        let connection = raw.clone();
        op(move |i| {
            let mut connection = connection.clone();
            let script = increment_script.clone();
            async move {
                let _: i64 = script
                    .key(format!("lua:{}", i % 64))
                    .arg(TTL_MS)
                    .invoke_async(&mut connection)
                    .await
                    .unwrap();
            }
        })
    };
    let store_increment = {
        let store = store.clone();
        op(move |i| {
            let store = store.clone();
            async move {
                store
                    .increment(&format!("inc:{}", i % 64), Some(Duration::from_secs(60)))
                    .await
                    .unwrap();
            }
        })
    };
    let increments = [
        Row {
            name: "raw redis-rs INCR (no TTL: the target's peer)",
            round_trips: 1,
            op: raw_op::<(i64,)>(&raw, |i| {
                let mut p = redis::pipe();
                p.cmd("INCR").arg(format!("raw:{}", i % 64));
                p
            }),
        },
        Row {
            name: "raw EVALSHA: INCR, PEXPIRE if new (Lua)",
            round_trips: 1,
            op: script_op,
        },
        Row {
            name: "raw MULTI; SET 0 NX PX; INCR; EXEC",
            round_trips: 1,
            op: raw_op::<(i64,)>(&raw, |i| {
                let key = format!("setnx:{}", i % 64);
                let mut p = redis::pipe();
                p.atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(0)
                    .arg("NX")
                    .arg("PX")
                    .arg(TTL_MS)
                    .ignore()
                    .cmd("INCR")
                    .arg(&key);
                p
            }),
        },
        Row {
            name: "raw MULTI; INCR; PEXPIRE NX; EXEC (Redis 7)",
            round_trips: 1,
            op: raw_op::<(i64,)>(&raw, |i| {
                let key = format!("pxnx:{}", i % 64);
                let mut p = redis::pipe();
                p.atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(TTL_MS)
                    .arg("NX")
                    .ignore();
                p
            }),
        },
        Row {
            name: "raw pipeline SET 0 NX PX; INCR (not atomic)",
            round_trips: 1,
            op: raw_op::<(i64,)>(&raw, |i| {
                let key = format!("pipe:{}", i % 64);
                let mut p = redis::pipe();
                p.cmd("SET")
                    .arg(&key)
                    .arg(0)
                    .arg("NX")
                    .arg("PX")
                    .arg(TTL_MS)
                    .ignore()
                    .cmd("INCR")
                    .arg(&key);
                p
            }),
        },
        Row {
            name: "RedisStore::increment (MULTI; SET NX PX; INCR)",
            round_trips: 1,
            op: store_increment,
        },
    ];
    table(
        "increment with a TTL set on creation",
        &mut raw,
        &increments,
        server.port,
    )
    .await;

    let peer = redis::Script::new(PEER_GCRA);
    let peer_op = {
        let connection = raw.clone();
        op(move |i| {
            let mut connection = connection.clone();
            let peer = peer.clone();
            async move {
                // 100 000/s (10 µs spacing, as ours below) with a burst large enough that
                // every call takes the granting path, as ours does.
                let _: (i64, i64, String, String) = peer
                    .key(format!("peer:{}", i % 64))
                    .arg(1_000_000_000)
                    .arg(100_000)
                    .arg(1)
                    .arg(1)
                    .invoke_async(&mut connection)
                    .await
                    .unwrap();
            }
        })
    };
    let reserve = |store: Arc<RedisStore>, prefix: &'static str| {
        op(move |i| {
            let store = store.clone();
            async move {
                store
                    .reserve(
                        &format!("{prefix}:{}", i % 64),
                        Duration::from_micros(10),
                        now,
                        None,
                        Some(Duration::from_secs(60)),
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let reserves = [
        Row {
            name: "peer: go-redis/redis_rate allowN GCRA (Lua)",
            round_trips: 1,
            op: peer_op,
        },
        Row {
            name: "RedisStore::reserve (caller's clock)",
            round_trips: 1,
            op: reserve(store.clone(), "rl"),
        },
        Row {
            name: "RedisStore::reserve (server time)",
            round_trips: 1,
            op: reserve(server_time_store, "rlt"),
        },
    ];
    table("reserve (GCRA)", &mut raw, &reserves, server.port).await;
}
