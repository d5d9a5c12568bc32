//! Statements through the connection's statement cache: a plain
//! `execute(&str)` prepares the statement on every call, one more round trip
//! per statement. (A cached plan is re-planned when `search_path` differs,
//! so one cache serves every generation schema.)

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub async fn exec(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<u64, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

pub async fn query(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query(&statement, params).await
}

pub async fn query_one(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<Row, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_one(&statement, params).await
}

pub async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.query_opt(&statement, params).await
}
