//! Redis over TCP with redis-rs: a self-reconnecting multiplexed connection; `increment` as a
//! `MULTI`/`EXEC` transaction, the other atomic verbs as Lua scripts sent by EVALSHA (with a
//! NOSCRIPT fallback).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use stitchapi::store::{
    Capabilities, Consistency, Reservation, Scope, StitchStore, StoreError, StoreErrorKind,
};
use stitchapi::time::Timestamp;

use crate::scripts;

const NAME: &str = "redis";

/// A [`StitchStore`] on Redis: every verb, fleet-wide.
///
/// - Values are stored as they are given (stitchapi stores JSON). To share one Redis with other
///   data, namespace the keys with the core's [`StitchStoreExt::prefixed`](stitchapi::StitchStoreExt::prefixed)
///   (`RedisStore::from_url(url)?.prefixed("myapp:")`).
/// - `increment` is one pipelined transaction, `MULTI; SET key 0 NX PX ttl; INCR key; EXEC`
///   (no Lua: the TTL is set only when the counter is created); `reserve`, `lease`, `release`,
///   `renew_if` and `delete_if` are one Lua script each, and `create` is one
///   `SET key value NX [PX ttl]`: one round trip per decision.
/// - The connection is a redis-rs `ConnectionManager`: multiplexed, and it reconnects by
///   itself after Redis restarts. Commands time out after the response timeout (default 1 s),
///   so an unreachable Redis fails calls with a `Store` error instead of hanging them.
/// - With [`with_server_time`](RedisStore::with_server_time), `reserve` and `lease` read the
///   time from Redis (`TIME`) inside the script, so a fleet with skewed clocks still paces
///   exactly.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use stitchapi::{Seam, StitchStoreExt};
/// use stitchapi_redis::RedisStore;
///
/// let store = RedisStore::from_url("redis://127.0.0.1:6379/0")?.prefixed("myapp:");
/// let api = Seam::builder("https://api.example.com").store(Arc::new(store)).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    server_time: bool,
    scripts: Scripts,
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

#[derive(Clone)]
struct Scripts {
    reserve: Script,
    lease: Script,
    release: Script,
    renew_if: Script,
    delete_if: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            reserve: Script::new(scripts::RESERVE),
            lease: Script::new(scripts::LEASE),
            release: Script::new(scripts::RELEASE),
            renew_if: Script::new(scripts::RENEW_IF),
            delete_if: Script::new(scripts::DELETE_IF),
        }
    }
}

/// Connection settings for [`RedisStore::from_client_with`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    response_timeout: Duration,
    connection_timeout: Duration,
    reconnect_attempts: usize,
}

impl RedisOptions {
    /// Response and connection timeouts of 1 s, one reconnect attempt per command.
    pub fn new() -> Self {
        RedisOptions {
            response_timeout: Duration::from_secs(1),
            connection_timeout: Duration::from_secs(1),
            reconnect_attempts: 1,
        }
    }

    /// How long a command may wait for its answer (as
    /// `UpstashStore::with_response_timeout`).
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long a (re)connection attempt may take.
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How many times a command's reconnection is retried before the command fails.
    pub fn with_reconnect_attempts(mut self, attempts: usize) -> Self {
        self.reconnect_attempts = attempts;
        self
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

fn config_error(operation: &'static str, error: RedisError) -> StoreError {
    StoreError::new(
        NAME,
        operation,
        StoreErrorKind::Unavailable,
        error.to_string(),
    )
    .with_source(error)
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://host:port/db`, `rediss://` for TLS if redis-rs
    /// is built with TLS). The connection is made on first use and remade after failures.
    pub fn from_url(url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| config_error("connect", e))?;
        RedisStore::from_client_with(client, RedisOptions::new())
    }

    /// A store over a client you already have, with default options.
    pub fn from_client(client: redis::Client) -> Result<RedisStore, StoreError> {
        RedisStore::from_client_with(client, RedisOptions::new())
    }

    /// A store over a client you already have.
    pub fn from_client_with(
        client: redis::Client,
        options: RedisOptions,
    ) -> Result<RedisStore, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.response_timeout))
            .set_connection_timeout(Some(options.connection_timeout))
            .set_number_of_retries(options.reconnect_attempts)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| config_error("connect", e))?;
        Ok(RedisStore::from_manager(manager))
    }

    /// A store over a `ConnectionManager` you already have.
    pub fn from_manager(manager: ConnectionManager) -> RedisStore {
        RedisStore {
            connection: Connection::Single(manager),
            server_time: false,
            scripts: Scripts::new(),
        }
    }

    /// A store on a Redis Cluster (feature `cluster`). Each script touches one key, so every
    /// verb works across slots.
    #[cfg(feature = "cluster")]
    pub async fn cluster(nodes: &[&str]) -> Result<RedisStore, StoreError> {
        let client = redis::cluster::ClusterClient::new(nodes.to_vec())
            .map_err(|e| config_error("connect", e))?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| config_error("connect", e))?;
        Ok(RedisStore::from_cluster_connection(connection))
    }

    /// A store over a cluster connection you already have (feature `cluster`).
    #[cfg(feature = "cluster")]
    pub fn from_cluster_connection(
        connection: redis::cluster_async::ClusterConnection,
    ) -> RedisStore {
        RedisStore {
            connection: Connection::Cluster(connection),
            server_time: false,
            scripts: Scripts::new(),
        }
    }

    /// Takes `now` for `reserve` and `lease` from Redis's clock (`TIME`) instead of the
    /// caller's, so processes with skewed clocks still share one exact pace.
    pub fn with_server_time(mut self, server_time: bool) -> Self {
        self.server_time = server_time;
        self
    }

    fn fail(operation: &'static str, error: RedisError) -> StoreError {
        let kind = if error.is_timeout() {
            StoreErrorKind::Timeout
        } else if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
        {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Backend
        };
        StoreError::new(NAME, operation, kind, error.to_string()).with_source(error)
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        command: &redis::Cmd,
    ) -> Result<T, StoreError> {
        match self.connection.clone() {
            Connection::Single(mut connection) => command.query_async(&mut connection).await,
            #[cfg(feature = "cluster")]
            Connection::Cluster(mut connection) => command.query_async(&mut connection).await,
        }
        .map_err(|e| Self::fail(operation, e))
    }

    async fn pipeline<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        pipeline: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        match self.connection.clone() {
            Connection::Single(mut connection) => pipeline.query_async(&mut connection).await,
            #[cfg(feature = "cluster")]
            Connection::Cluster(mut connection) => pipeline.query_async(&mut connection).await,
        }
        .map_err(|e| Self::fail(operation, e))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        key: &str,
        args: impl IntoIterator<Item = impl redis::ToRedisArgs>,
    ) -> Result<T, StoreError> {
        async fn invoke<T: redis::FromRedisValue>(
            invocation: &redis::ScriptInvocation<'_>,
            connection: &mut impl ConnectionLike,
        ) -> redis::RedisResult<T> {
            invocation.invoke_async(connection).await
        }
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        match self.connection.clone() {
            Connection::Single(mut connection) => invoke(&invocation, &mut connection).await,
            #[cfg(feature = "cluster")]
            Connection::Cluster(mut connection) => invoke(&invocation, &mut connection).await,
        }
        .map_err(|e| Self::fail(operation, e))
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server_time", &self.server_time)
            .field(
                "connection",
                &match self.connection {
                    Connection::Single(_) => "single",
                    #[cfg(feature = "cluster")]
                    Connection::Cluster(_) => "cluster",
                },
            )
            .finish()
    }
}

#[async_trait::async_trait]
impl StitchStore for RedisStore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(Scope::Fleet)
            .with_consistency(Consistency::Strong)
            .with_atomic_increment(true)
            .with_reserve(true)
            .with_lease(true)
            .with_conditional_writes(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let value: Option<Vec<u8>> = self.query("get", redis::cmd("GET").arg(key)).await?;
        Ok(value.map(Bytes::from))
    }

    async fn set(
        &self,
        key: &str,
        value: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut command = redis::cmd(if value.is_some() { "SET" } else { "DEL" });
        command.arg(key);
        if let Some(value) = &value {
            command
                .arg(value.as_ref())
                .arg(scripts::set_options(ttl, false));
        }
        self.query::<redis::Value>("set", &command).await.map(drop)
    }

    async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let ttl = scripts::ttl_millis(ttl);
        if ttl == 0 {
            return self.query("increment", redis::cmd("INCR").arg(key)).await;
        }
        // One round trip, no Lua: `SET NX PX` creates the counter at 0 with its TTL only when
        // it is missing, and `INCR` counts; `MULTI`/`EXEC` makes the pair atomic, so the key
        // cannot expire between them. A key of another type fails `INCR` and is left as it was.
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("INCR")
            .arg(key);
        let (count,): (i64,) = self.pipeline("increment", &transaction).await?;
        Ok(count)
    }

    async fn reserve(
        &self,
        key: &str,
        spacing: Duration,
        now: Timestamp,
        latest: Option<Timestamp>,
        ttl: Option<Duration>,
    ) -> Result<Reservation, StoreError> {
        let args = scripts::reserve_args(spacing, now, latest, ttl, self.server_time);
        let reply: String = self
            .run("reserve", &self.scripts.reserve, key, args)
            .await?;
        scripts::parse_reservation(&reply)
            .map_err(|m| StoreError::new(NAME, "reserve", StoreErrorKind::InvalidData, m))
    }

    async fn lease(
        &self,
        key: &str,
        token: &str,
        limit: u32,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let args = scripts::lease_args(token, limit, ttl, now, self.server_time);
        let held: i64 = self.run("lease", &self.scripts.lease, key, args).await?;
        Ok(held == 1)
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let args = scripts::release_args(token);
        self.run::<i64>("release", &self.scripts.release, key, args)
            .await
            .map(drop)
    }

    async fn create(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut command = redis::cmd("SET");
        command
            .arg(key)
            .arg(value.as_ref())
            .arg(scripts::set_options(ttl, true));
        let reply: redis::Value = self.query("create", &command).await?;
        Ok(!matches!(reply, redis::Value::Nil))
    }

    async fn renew_if(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let args = scripts::renew_if_args(expected.to_vec(), ttl);
        let renewed: i64 = self
            .run("renew_if", &self.scripts.renew_if, key, args)
            .await?;
        Ok(renewed == 1)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let args = scripts::delete_if_args(expected);
        let deleted: i64 = self
            .run("delete_if", &self.scripts.delete_if, key, args)
            .await?;
        Ok(deleted == 1)
    }
}
