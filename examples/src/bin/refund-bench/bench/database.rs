//! Each run's own database, created before the merchant server starts and
//! dropped after it stops: runs never see each other's rows, every run
//! starts from empty tables, and a half-finished schema change in a shared
//! database cannot get in the way.

use std::path::PathBuf;

use refund_core::BoxError;

use super::options::{Backend, Options};
use super::RunId;

/// A database that exists for one run.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// What the merchant server is given as `REFUND_DATABASE_URL`.
    url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// A SQLite file in a directory of its own (for the -wal and -shm files).
    Directory(PathBuf),
    /// A database named `name` on the server `server_url` points at.
    Server {
        backend: Backend,
        server_url: String,
        name: String,
    },
}

impl ScratchDatabase {
    /// Creates the run's database for `options.backend`.
    pub async fn create(options: &Options, run: &RunId) -> Result<Self, BoxError> {
        let name = format!("refund_bench_{run}");
        let Some(server_url) = options.database_server_url() else {
            let dir = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}?mode=rwc", dir.join("refunds.db").display());
            return Ok(ScratchDatabase {
                url,
                place: Place::Directory(dir),
            });
        };
        let url = with_database(server_url, &name)?;
        create_on_server(options.backend, server_url, &name).await?;
        Ok(ScratchDatabase {
            url,
            place: Place::Server {
                backend: options.backend,
                server_url: server_url.to_owned(),
                name,
            },
        })
    }

    /// The URL of the scratch database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (or deletes the file). Call it once the server
    /// that used it has stopped.
    pub async fn remove(self) -> Result<(), BoxError> {
        match self.place {
            Place::Directory(dir) => Ok(std::fs::remove_dir_all(dir)?),
            Place::Server {
                backend,
                server_url,
                name,
            } => drop_on_server(backend, &server_url, &name).await,
        }
    }
}

/// `url` with its path (the database name) replaced by `name`; the query
/// string is kept. Errors never repeat the URL, which may hold a password.
fn with_database(url: &str, name: &str) -> Result<String, BoxError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base
        .find("://")
        .map(|at| at + 3)
        .ok_or("--database-url must look like scheme://host/database")?;
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let mut with_name = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        with_name.push('?');
        with_name.push_str(query);
    }
    Ok(with_name)
}

async fn create_on_server(backend: Backend, server_url: &str, name: &str) -> Result<(), BoxError> {
    match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            sql_admin::<sqlx::PgConnection>(server_url, &format!("CREATE DATABASE {name}")).await
        }
        #[cfg(feature = "mysql")]
        Backend::Mysql => {
            sql_admin::<sqlx::MySqlConnection>(server_url, &format!("CREATE DATABASE {name}")).await
        }
        // MongoDB creates a database on its first write.
        _ => {
            let _ = (server_url, name);
            Ok(())
        }
    }
}

async fn drop_on_server(backend: Backend, server_url: &str, name: &str) -> Result<(), BoxError> {
    match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            // FORCE: the server's pool may still be closing its connections.
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sql_admin::<sqlx::PgConnection>(server_url, &sql).await
        }
        #[cfg(feature = "mysql")]
        Backend::Mysql => {
            let sql = format!("DROP DATABASE IF EXISTS {name}");
            sql_admin::<sqlx::MySqlConnection>(server_url, &sql).await
        }
        #[cfg(feature = "mongo")]
        Backend::Mongo => {
            let client = mongodb::Client::with_uri_str(server_url).await?;
            client.database(name).drop().await?;
            client.shutdown().await;
            Ok(())
        }
        _ => {
            let _ = (server_url, name);
            Ok(())
        }
    }
}

/// Runs one administrative statement on its own connection.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn sql_admin<C>(server_url: &str, sql: &str) -> Result<(), BoxError>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    use sqlx::Executor;

    let mut connection = C::connect(server_url).await?;
    connection.execute(sql).await?;
    connection.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mongodb://127.0.0.1:27017/refund_bench?w=majority", "x").unwrap(),
            "mongodb://127.0.0.1:27017/x?w=majority"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x").unwrap(),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert!(with_database("not a url", "x").is_err());
    }
}
