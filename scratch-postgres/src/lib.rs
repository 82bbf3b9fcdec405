//! # zdn-scratch-postgres
//!
//! Throw-away PostgreSQL databases for tests and benchmarks: test support, a dev-dependency
//! only, so no production binary links it.
//!
//! `ZDN_TEST_POSTGRES` names a server and a role allowed to create databases
//! (`postgres://zdn:zdn@127.0.0.1:5432`); each [`ScratchDatabase`] is a fresh database on it,
//! dropped again at the end. Without the variable, PostgreSQL tests skip loudly, and
//! `ZDN_REQUIRE_POSTGRES=1` (set by `.ci/run`) turns that skip into a failure.

#![forbid(unsafe_code)]

use tokio_postgres::NoTls;

pub struct ScratchDatabase {
    server: String,
    name: String,
}

impl ScratchDatabase {
    /// A new, empty database for `purpose` (a test name), or `None` when no server is
    /// configured on a machine that does not require one.
    pub fn create(purpose: &str) -> Option<ScratchDatabase> {
        let Ok(url) = std::env::var("ZDN_TEST_POSTGRES") else {
            let needs = "a PostgreSQL server (ZDN_TEST_POSTGRES=postgres://user:pass@host:port)";
            zdn_loud_skip::skip(purpose, needs, "ZDN_REQUIRE_POSTGRES");
            return None;
        };
        let server = server_part(&url);
        let name = format!(
            "zdn_{}_{}_{}",
            purpose.chars().filter(char::is_ascii_alphanumeric).take(24).collect::<String>(),
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        )
        .to_ascii_lowercase();
        admin(&server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating scratch database on {server}: {e}"));
        Some(ScratchDatabase { server, name })
    }

    /// The URL a store opens.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Err(e) = admin(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("could not drop scratch database {}: {e}", self.name);
        }
    }
}

/// `postgres://user:pass@host:port` of a URL that may name a database and options.
fn server_part(url: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    match url[authority..].find(['/', '?']) {
        Some(end) => url[..authority + end].to_owned(),
        None => url.to_owned(),
    }
}

/// Runs one statement against the server's `postgres` database, on a thread of its own so it
/// works from inside or outside an async runtime.
fn admin(server: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (format!("{server}/postgres"), sql.to_owned());
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&url, NoTls).await.map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            client.batch_execute(&sql).await.map_err(|e| e.to_string())?;
            drop(client);
            let _ = driver.await;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "admin thread panicked".to_owned())?
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_server_part_drops_database_and_options() {
        assert_eq!(super::server_part("postgres://u:p@h:5432/db?x=1"), "postgres://u:p@h:5432");
        assert_eq!(super::server_part("postgres://u:p@h"), "postgres://u:p@h");
    }
}
