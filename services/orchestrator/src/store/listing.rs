//! The operators' list of sagas in SQL: the filters the store applies (status,
//! subdomain, creation time) and the newest-first cursor, one statement per page.

use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::ListQuery;

/// The rows (`state` column) of one page of `query`.
pub(super) async fn page(pool: &AnyPool, query: &ListQuery) -> Result<Vec<AnyRow>, sqlx::Error> {
    // Each filter is a clause with its placeholders; the binds follow in order.
    let mut clauses: Vec<&str> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    if let Some(status) = query.status {
        clauses.push("status = ?");
        texts.push(status.as_str().into());
    }
    if let Some(subdomain) = &query.subdomain {
        clauses.push("subdomain = ?");
        texts.push(subdomain.clone());
    }
    let mut sql = String::from("SELECT state FROM sagas WHERE 1 = 1");
    for clause in &clauses {
        sql.push_str(" AND ");
        sql.push_str(clause);
    }
    if let Some(since) = query.since {
        sql.push_str(" AND created_at >= ?");
        numbers.push(since.timestamp_millis());
    }
    if let Some(until) = query.until {
        sql.push_str(" AND created_at < ?");
        numbers.push(until.timestamp_millis());
    }
    let after = query.after;
    if after.is_some() {
        sql.push_str(" AND (created_at < ? OR (created_at = ? AND saga_id < ?))");
    }
    sql.push_str(" ORDER BY created_at DESC, saga_id DESC LIMIT ?");
    let mut statement = sqlx::query(&sql);
    for text in &texts {
        statement = statement.bind(text.as_str());
    }
    for number in &numbers {
        statement = statement.bind(*number);
    }
    if let Some(cursor) = after {
        statement = statement
            .bind(cursor.created_at_ms)
            .bind(cursor.created_at_ms)
            .bind(cursor.saga_id.to_string());
    }
    statement.bind(i64::from(query.limit)).fetch_all(pool).await
}
