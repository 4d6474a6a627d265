//! The store and token cache named by configuration URLs, among the
//! backends compiled in (cargo features of this package).

use std::sync::Arc;

use refund_core::{BoxError, MemoryTokenCache, PaymentStore, TokenCache};

/// Opens (and migrates or indexes) the store `url` names by its scheme.
pub async fn open_store(url: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    let scheme = url.split("://").next().unwrap_or_default();
    let feature = match scheme {
        "sqlite" => "sqlite",
        "postgres" | "postgresql" => "postgres",
        "mysql" | "mariadb" => "mysql",
        "mongodb" | "mongodb+srv" => "mongo",
        other => {
            return Err(format!(
                "REFUND_DATABASE_URL has an unknown scheme {other:?}: use sqlite://, postgres://, mysql:// or mongodb://"
            )
            .into())
        }
    };
    if feature == "mongo" {
        return open_mongo(url).await;
    }
    open_sql(url, feature).await
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
async fn open_sql(url: &str, feature: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    match storage_sql::open(url).await {
        Err(storage_sql::SqlStoreError::UnsupportedScheme(_)) => Err(missing_feature(feature)),
        Err(error) => Err(unusable_database(url, &error).await),
        Ok(store) => Ok(store),
    }
}

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
async fn open_sql(_url: &str, feature: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    Err(missing_feature(feature))
}

#[cfg(feature = "mongo")]
async fn open_mongo(url: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    let store = match storage_mongo::MongoPaymentStore::connect(url, mongo_database(url)).await {
        Ok(store) => store,
        Err(error) => return Err(unusable_database(url, &error).await),
    };
    if let Err(error) = store.ensure_indexes().await {
        return Err(unusable_database(url, &error).await);
    }
    Ok(Arc::new(store))
}

#[cfg(not(feature = "mongo"))]
async fn open_mongo(_url: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    Err(missing_feature("mongo"))
}

/// The database named in a MongoDB URL's path, or `refunds`.
#[cfg(feature = "mongo")]
fn mongo_database(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .split_once('/')
        .map(|(_, path)| path.split('?').next().unwrap_or_default())
        .filter(|name| !name.is_empty())
        .unwrap_or("refunds")
}

/// The token cache: Redis when `redis_url` is set, else this process's memory.
pub async fn open_token_cache(redis_url: Option<&str>) -> Result<Arc<dyn TokenCache>, BoxError> {
    match redis_url {
        None => Ok(Arc::new(MemoryTokenCache::new())),
        Some(url) => open_redis(url).await,
    }
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str) -> Result<Arc<dyn TokenCache>, BoxError> {
    let cache = storage_redis::RedisTokenCache::connect(url)
        .await
        .map_err(|error| {
            crate::server::StartupError::new(format!(
                "cannot reach {} (REFUND_REDIS_URL): {}; start Redis, correct \
                 REFUND_REDIS_URL, or unset it to keep tokens in memory",
                describe_url(url),
                root_cause(&error)
            ))
        })?;
    Ok(Arc::new(cache))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_url: &str) -> Result<Arc<dyn TokenCache>, BoxError> {
    Err(missing_feature("redis"))
}

/// One sentence for a database that cannot be opened: where it is (never
/// the credentials in its URL), why, and what to do.
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "mongo"
    )),
    allow(dead_code)
)]
async fn unusable_database(url: &str, error: &(dyn std::error::Error + 'static)) -> BoxError {
    let mut cause = root_cause(error);
    if cause.contains("timed out") {
        // A pool that gave up waiting says nothing of why: ask the network.
        if let Some(why) = probe(url).await {
            cause = format!("{why} ({cause})");
        }
    }
    let sentence = if url.starts_with("sqlite:") {
        format!(
            "cannot open the {} (REFUND_DATABASE_URL): {cause}; check that \
             its folder exists and is writable (add ?mode=rwc to create the file), or \
             correct REFUND_DATABASE_URL",
            describe_url(url)
        )
    } else {
        format!(
            "cannot use {} (REFUND_DATABASE_URL): {cause}; start the \
             database server or correct REFUND_DATABASE_URL",
            describe_url(url)
        )
    };
    Box::new(crate::server::StartupError::new(sentence))
}

/// Why nothing usable answers at a server URL's first `host:port`, found
/// with one TCP connection attempt; `None` if something accepts it.
async fn probe(url: &str) -> Option<String> {
    let (host, port) = endpoint(url)?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(error)) => Some(format!("nothing accepts connections there: {error}")),
        Err(_) => Some("connecting there times out (a firewall, or a wrong host)".to_owned()),
    }
}

/// A server URL's first host and port (the scheme's default port if none).
fn endpoint(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    let first = hosts.split(',').next()?;
    match first.rsplit_once(':') {
        Some((host, port)) if !first.ends_with(']') => {
            Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
        }
        _ => Some((
            first.trim_matches(['[', ']']).to_owned(),
            default_port(scheme)?,
        )),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" | "postgresql" => Some(5432),
        "mysql" | "mariadb" => Some(3306),
        "mongodb" => Some(27017),
        "redis" | "rediss" => Some(6379),
        _ => None,
    }
}

/// The innermost cause of `error`: the one that says what happened
/// (`Connection refused (os error 111)`), not the layers around it.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// What a database or Redis URL points at, safe to print: `host:port` (the
/// scheme's default port when none is given) or, for SQLite, the file;
/// never the user name or password.
pub fn describe_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.trim_start_matches("//");
        return match rest.split(['?', '#']).next().unwrap_or_default() {
            "" | ":memory:" => "SQLite in memory".to_owned(),
            path => format!("SQLite database file {path}"),
        };
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return "an unreadable URL".to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority = rest.split('/').next().unwrap_or_default();
    let hosts = authority
        .rsplit_once('@')
        .map_or(authority, |(_, hosts)| hosts);
    let default_port = default_port(scheme);
    let kind = match scheme {
        "postgres" | "postgresql" => "PostgreSQL",
        "mysql" | "mariadb" => "MySQL/MariaDB",
        "mongodb" | "mongodb+srv" => "MongoDB",
        "redis" | "rediss" => "Redis",
        other => other,
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|host| match (host.rsplit_once(':'), default_port) {
            (Some((_, port)), _)
                if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') =>
            {
                host.to_owned()
            }
            (_, Some(port)) => format!("{host}:{port}"),
            (_, None) => host.to_owned(),
        })
        .collect();
    format!("{kind} at {}", hosts.join(","))
}

fn missing_feature(feature: &str) -> BoxError {
    format!(
        "this build has no `{feature}` backend: rebuild with `--features {feature}` \
         (e.g. cargo run --bin merchant-server --features {feature})"
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "mongo")]
    #[test]
    fn mongo_database_comes_from_the_path() {
        assert_eq!(
            mongo_database("mongodb://127.0.0.1:27017/shop?w=majority"),
            "shop"
        );
        assert_eq!(mongo_database("mongodb://127.0.0.1:27017/"), "refunds");
        assert_eq!(mongo_database("mongodb://127.0.0.1:27017"), "refunds");
    }

    #[test]
    fn urls_are_described_without_credentials() {
        assert_eq!(
            describe_url("postgres://shop:s3cret@db.internal/shop?sslmode=require"),
            "PostgreSQL at db.internal:5432"
        );
        assert_eq!(
            describe_url("mysql://root:pw@127.0.0.1:3307/test"),
            "MySQL/MariaDB at 127.0.0.1:3307"
        );
        assert_eq!(
            describe_url("sqlite://data/refunds.db?mode=rwc"),
            "SQLite database file data/refunds.db"
        );
        assert_eq!(describe_url("redis://:pw@cache"), "Redis at cache:6379");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_with_the_choices() {
        let error = open_store("redis://x").await.err().unwrap().to_string();
        assert!(error.contains("sqlite://, postgres://"), "{error}");
    }
}
