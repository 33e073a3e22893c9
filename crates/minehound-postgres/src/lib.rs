//! minehound's shared state in PostgreSQL, the engine registry operators
//! already run: connections, the schema and its migrations, and the layer
//! results that the replicas of a service, or the runners of a CI fleet,
//! share.
//!
//! The service's own tables (jobs, reports, verdicts) are created here with
//! the rest, so one schema version covers everything; the service's queries
//! live with the service.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

mod layers;
mod migrate;
mod tls;

pub use deadpool_postgres::Object as Client;
pub use layers::SharedLayers;
pub use migrate::SCHEMA_VERSION;
pub use tokio_postgres;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A pool of connections to one database whose schema is up to date.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// The URL without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to the database at `url` (a libpq URL or key=value string)
    /// and brings its schema up to date. Replicas may start together: the
    /// migrations run under an advisory lock. Needs a tokio runtime.
    pub async fn connect(url: &str, max_connections: usize) -> std::io::Result<Database> {
        let shown = redact(url);
        let invalid = |e: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the database URL {shown} is not valid: {e}"),
            )
        };
        let (url, tls) = tls::split(url).map_err(invalid)?;
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            // The parser's message never repeats the password.
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the database URL {shown} is not valid: {e}"),
            )
        })?;
        if config.get_application_name().is_none() {
            config.application_name("minehound");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A connection whose peer vanished (a database host gone, a cut
        // network) fails within seconds instead of hanging a request.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(15));
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls.mode {
            tls::Mode::Disable => Manager::from_config(config, NoTls, manager_config),
            _ => {
                let client = tls.client_config().map_err(invalid)?;
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(client);
                Manager::from_config(config, connector, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(2))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| {
                std::io::Error::other(format!("cannot set up connections to {shown}: {e}"))
            })?;
        let database = Database { pool, shown };
        let mut client = database.client().await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot connect to the database {}: {e}", database.shown),
            )
        })?;
        migrate::migrate(&mut client).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot prepare the database {}: {e}", database.shown),
            )
        })?;
        Ok(database)
    }

    /// A connection from the pool (a new one if the pool has none alive).
    pub async fn client(&self) -> std::io::Result<Client> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => error(&e),
            other => std::io::Error::other(other.to_string()),
        })
    }

    /// The database's URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the database answers a query now (for `/readyz`).
    pub async fn answers(&self) -> bool {
        let probe = async {
            self.client()
                .await?
                .simple_query("SELECT 1")
                .await
                .map_err(|e| error(&e))
        };
        matches!(
            tokio::time::timeout(CONNECT_TIMEOUT, probe).await,
            Ok(Ok(_))
        )
    }
}

/// A database error as one readable line: PostgreSQL's own message when the
/// server sent one, else what went wrong with the connection.
pub fn error(e: &tokio_postgres::Error) -> std::io::Error {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => chain(e),
    };
    std::io::Error::other(text)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `url` with its password replaced by `***`, for logs and messages: a
/// `postgres://user:secret@host/db` URL, or a `password=…` key of the
/// key=value form.
pub fn redact(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .map(|r| ("postgres://", r))
        .or_else(|| {
            url.strip_prefix("postgresql://")
                .map(|r| ("postgresql://", r))
        })
    {
        let (scheme, rest) = rest;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***{host}"),
                    None => authority.to_string(),
                }
            }
            None => authority.to_string(),
        };
        return format!("{scheme}{authority}{}", redact_query(tail));
    }
    redact_words(url)
}

/// `?password=…` in a URL's query.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// `password=…` in the key=value form.
fn redact_words(text: &str) -> String {
    text.split_whitespace()
        .map(|word| match word.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `duration` as a PostgreSQL interval literal, for `$n::text::interval`.
pub fn interval(duration: Duration) -> String {
    format!("{} milliseconds", duration.as_millis())
}

/// Wraps a message in an I/O error (for callers that speak `io::Result`).
pub fn other(message: impl Display) -> std::io::Error {
    std::io::Error::other(message.to_string())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://mh:s3cret@db.example:5432/minehound?sslmode=disable"),
            "postgres://mh:***@db.example:5432/minehound?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://mh:p@ss@db/x?password=other&application_name=a"),
            "postgresql://mh:***@db/x?password=***&application_name=a"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact("host=db user=mh password=s3cret dbname=x"),
            "host=db user=mh password=*** dbname=x"
        );
    }
}
