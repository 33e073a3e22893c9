//! The schema, brought up to date at start. Migrations are embedded in the
//! binary and applied in order, each in its own transaction, under a session
//! advisory lock: replicas starting together take turns, and the ones after
//! the first find nothing left to do.

use crate::{Client, error, other};

/// The migrations, in order; the last one's number is the schema version.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_shared_state.sql"))];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock's key (`minehoun` in ASCII): one per database.
const LOCK: i64 = 0x6d69_6e65_686f_756e;

/// Brings the schema up to date; refuses a database a newer minehound wrote.
pub(crate) async fn migrate(client: &mut Client) -> std::io::Result<()> {
    // Most starts find the schema current: checked without locks or DDL, so
    // a role that may only read and write the tables can connect.
    let exists: bool = client
        .query_one("SELECT to_regclass('minehound_schema') IS NOT NULL", &[])
        .await
        .map_err(|e| error(&e))?
        .get(0);
    if exists {
        let current = current_version(client).await?;
        check_not_newer(current)?;
        if current == SCHEMA_VERSION {
            return Ok(());
        }
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(|e| error(&e))?;
    let outcome = apply(client).await;
    // Unlocked whatever happened: the connection goes back to the pool.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await
        .map_err(|e| error(&e));
    outcome.and(unlocked.map(|_| ()))
}

async fn current_version(client: &Client) -> std::io::Result<i32> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM minehound_schema",
            &[],
        )
        .await
        .map_err(|e| error(&e))?;
    Ok(row.get(0))
}

/// A schema a newer minehound wrote may mean anything to this one.
fn check_not_newer(current: i32) -> std::io::Result<()> {
    if current > SCHEMA_VERSION {
        return Err(other(format!(
            "its minehound schema is version {current}, written by a newer minehound than this one (which knows versions up to {SCHEMA_VERSION}); run that version or a newer one"
        )));
    }
    Ok(())
}

async fn apply(client: &mut Client) -> std::io::Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS minehound_schema (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(|e| error(&e))?;
    let current = current_version(client).await?;
    check_not_newer(current)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let transaction = client.transaction().await.map_err(|e| error(&e))?;
        transaction
            .batch_execute(sql)
            .await
            .map_err(|e| other(format!("migration {version}: {}", error(&e))))?;
        transaction
            .execute(
                "INSERT INTO minehound_schema (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(|e| error(&e))?;
        transaction.commit().await.map_err(|e| error(&e))?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
