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
        other => Ok(other?),
    }
}

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
async fn open_sql(_url: &str, feature: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    Err(missing_feature(feature))
}

#[cfg(feature = "mongo")]
async fn open_mongo(url: &str) -> Result<Arc<dyn PaymentStore>, BoxError> {
    let store = storage_mongo::MongoPaymentStore::connect(url, mongo_database(url)).await?;
    store.ensure_indexes().await?;
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
    Ok(Arc::new(
        storage_redis::RedisTokenCache::connect(url).await?,
    ))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_url: &str) -> Result<Arc<dyn TokenCache>, BoxError> {
    Err(missing_feature("redis"))
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

    #[tokio::test]
    async fn unknown_schemes_are_refused_with_the_choices() {
        let error = open_store("redis://x").await.err().unwrap().to_string();
        assert!(error.contains("sqlite://, postgres://"), "{error}");
    }
}
