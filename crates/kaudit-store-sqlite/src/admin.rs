//! Intakes, API tokens, rule files, policies and settings.

use kaudit_store::{
    ApiToken, Intake, IntakeId, KeyHash, NewIntake, NewToken, Policy, Result, Role, RuleFile, StoreError,
    TokenId,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

fn sql_error(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

fn key_hash(bytes: Vec<u8>, what: &'static str) -> Result<KeyHash> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt(what, "key hash is not 32 bytes"))?;
    Ok(KeyHash(array))
}

/// Maps a unique-constraint failure on the name to [`StoreError::Conflict`].
fn conflict_or(
    what: &'static str,
    name: &str,
    context: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(code, _) if code.code == ErrorCode::ConstraintViolation => {
            StoreError::Conflict {
                what,
                name: name.to_owned(),
            }
        }
        _ => StoreError::backend(context, e),
    }
}

const INTAKE_COLUMNS: &str =
    "id, name, cluster, key_hash, created_ns, revoked_ns, last_event_ns, event_count";

fn intake_from_row(row: &Row<'_>) -> Result<Intake> {
    let get = |e: rusqlite::Error| corrupt("intakes", e);
    Ok(Intake {
        id: IntakeId(row.get(0).map_err(get)?),
        name: row.get(1).map_err(get)?,
        cluster: row.get(2).map_err(get)?,
        key_hash: key_hash(row.get(3).map_err(get)?, "intakes.key_hash")?,
        created_ns: row.get(4).map_err(get)?,
        revoked_ns: row.get(5).map_err(get)?,
        last_event_ns: row.get(6).map_err(get)?,
        event_count: row.get::<_, i64>(7).map_err(get)?.max(0) as u64,
    })
}

fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl Fn(&Row<'_>) -> Result<T>,
    context: &'static str,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error(context))?;
    let mut rows = statement.query(params).map_err(sql_error(context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error(context))? {
        out.push(read(row)?);
    }
    Ok(out)
}

pub(crate) fn create_intake(conn: &Connection, intake: &NewIntake) -> Result<Intake> {
    conn.execute(
        "INSERT INTO intakes (name, cluster, key_hash, created_ns) VALUES (?1, ?2, ?3, ?4)",
        params![
            intake.name,
            intake.cluster,
            &intake.key_hash.0[..],
            intake.created_ns
        ],
    )
    .map_err(conflict_or("intake", &intake.name, "creating an intake"))?;
    let id = IntakeId(conn.last_insert_rowid());
    get_intake(conn, id)?.ok_or_else(|| corrupt("intakes", "created intake not found"))
}

pub(crate) fn list_intakes(conn: &Connection) -> Result<Vec<Intake>> {
    let sql = format!("SELECT {INTAKE_COLUMNS} FROM intakes ORDER BY id");
    query_rows(conn, &sql, [], intake_from_row, "listing intakes")
}

pub(crate) fn get_intake(conn: &Connection, id: IntakeId) -> Result<Option<Intake>> {
    let sql = format!("SELECT {INTAKE_COLUMNS} FROM intakes WHERE id = ?1");
    Ok(
        query_rows(conn, &sql, [id.0], intake_from_row, "reading an intake")?
            .into_iter()
            .next(),
    )
}

pub(crate) fn find_active_intake(conn: &Connection, hash: &KeyHash) -> Result<Option<Intake>> {
    let sql = format!("SELECT {INTAKE_COLUMNS} FROM intakes WHERE key_hash = ?1");
    let found = query_rows(
        conn,
        &sql,
        [&hash.0[..]],
        intake_from_row,
        "looking up an intake key",
    )?;
    Ok(found
        .into_iter()
        .find(|i| i.revoked_ns.is_none() && i.key_hash.ct_eq(hash)))
}

/// Sets `revoked_ns` on a not yet revoked row of `table` (a fixed table name, never input).
pub(crate) fn revoke(conn: &Connection, table: &'static str, id: i64, now_ns: i64) -> Result<bool> {
    let sql = format!("UPDATE {table} SET revoked_ns = ?2 WHERE id = ?1 AND revoked_ns IS NULL");
    let n = conn
        .execute(&sql, params![id, now_ns])
        .map_err(sql_error("revoking"))?;
    Ok(n == 1)
}

const TOKEN_COLUMNS: &str = "id, name, role, key_hash, created_ns, revoked_ns";

fn token_from_row(row: &Row<'_>) -> Result<ApiToken> {
    let get = |e: rusqlite::Error| corrupt("api_tokens", e);
    let role: String = row.get(2).map_err(get)?;
    Ok(ApiToken {
        id: TokenId(row.get(0).map_err(get)?),
        name: row.get(1).map_err(get)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("api_tokens.role", role))?,
        key_hash: key_hash(row.get(3).map_err(get)?, "api_tokens.key_hash")?,
        created_ns: row.get(4).map_err(get)?,
        revoked_ns: row.get(5).map_err(get)?,
    })
}

pub(crate) fn create_token(conn: &Connection, token: &NewToken) -> Result<ApiToken> {
    conn.execute(
        "INSERT INTO api_tokens (name, role, key_hash, created_ns) VALUES (?1, ?2, ?3, ?4)",
        params![
            token.name,
            token.role.as_str(),
            &token.key_hash.0[..],
            token.created_ns
        ],
    )
    .map_err(conflict_or("token", &token.name, "creating a token"))?;
    let id = conn.last_insert_rowid();
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1");
    query_rows(conn, &sql, [id], token_from_row, "reading a token")?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("api_tokens", "created token not found"))
}

pub(crate) fn list_tokens(conn: &Connection) -> Result<Vec<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
    query_rows(conn, &sql, [], token_from_row, "listing tokens")
}

pub(crate) fn find_active_token(conn: &Connection, hash: &KeyHash) -> Result<Option<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE key_hash = ?1");
    let found = query_rows(conn, &sql, [&hash.0[..]], token_from_row, "looking up a token")?;
    Ok(found
        .into_iter()
        .find(|t| t.revoked_ns.is_none() && t.key_hash.ct_eq(hash)))
}

pub(crate) fn put_rule_file(conn: &Connection, file: &RuleFile) -> Result<()> {
    conn.execute(
        "INSERT INTO rule_files (name, content, updated_ns) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET content = excluded.content, updated_ns = excluded.updated_ns",
        params![file.name, file.content, file.updated_ns],
    )
    .map_err(sql_error("storing a rule file"))?;
    Ok(())
}

fn rule_file_from_row(row: &Row<'_>) -> Result<RuleFile> {
    let get = |e: rusqlite::Error| corrupt("rule_files", e);
    Ok(RuleFile {
        name: row.get(0).map_err(get)?,
        content: row.get(1).map_err(get)?,
        updated_ns: row.get(2).map_err(get)?,
    })
}

pub(crate) fn list_rule_files(conn: &Connection) -> Result<Vec<RuleFile>> {
    query_rows(
        conn,
        "SELECT name, content, updated_ns FROM rule_files ORDER BY name",
        [],
        rule_file_from_row,
        "listing rule files",
    )
}

pub(crate) fn get_rule_file(conn: &Connection, name: &str) -> Result<Option<RuleFile>> {
    Ok(query_rows(
        conn,
        "SELECT name, content, updated_ns FROM rule_files WHERE name = ?1",
        [name],
        rule_file_from_row,
        "reading a rule file",
    )?
    .into_iter()
    .next())
}

/// Deletes the row named `name` from `table` (a fixed table name, never input).
pub(crate) fn delete_by_name(conn: &Connection, table: &'static str, name: &str) -> Result<bool> {
    let n = conn
        .execute(&format!("DELETE FROM {table} WHERE name = ?1"), [name])
        .map_err(sql_error("deleting"))?;
    Ok(n == 1)
}

pub(crate) fn put_policy(conn: &Connection, policy: &Policy) -> Result<()> {
    conn.execute(
        "INSERT INTO policies (name, enabled, scope_json, rules_json, builtin, updated_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, scope_json = excluded.scope_json,
             rules_json = excluded.rules_json, builtin = excluded.builtin, updated_ns = excluded.updated_ns",
        params![
            policy.name,
            policy.enabled,
            policy.scope_json,
            policy.rules_json,
            policy.builtin,
            policy.updated_ns
        ],
    )
    .map_err(sql_error("storing a policy"))?;
    Ok(())
}

const POLICY_COLUMNS: &str = "name, enabled, scope_json, rules_json, builtin, updated_ns";

fn policy_from_row(row: &Row<'_>) -> Result<Policy> {
    let get = |e: rusqlite::Error| corrupt("policies", e);
    Ok(Policy {
        name: row.get(0).map_err(get)?,
        enabled: row.get(1).map_err(get)?,
        scope_json: row.get(2).map_err(get)?,
        rules_json: row.get(3).map_err(get)?,
        builtin: row.get(4).map_err(get)?,
        updated_ns: row.get(5).map_err(get)?,
    })
}

pub(crate) fn list_policies(conn: &Connection) -> Result<Vec<Policy>> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies ORDER BY name");
    query_rows(conn, &sql, [], policy_from_row, "listing policies")
}

pub(crate) fn get_policy(conn: &Connection, name: &str) -> Result<Option<Policy>> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE name = ?1");
    Ok(
        query_rows(conn, &sql, [name], policy_from_row, "reading a policy")?
            .into_iter()
            .next(),
    )
}

pub(crate) fn put_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map_err(sql_error("storing a setting"))?;
    Ok(())
}

pub(crate) fn get_setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(sql_error("reading a setting"))
}

pub(crate) fn list_settings(conn: &Connection) -> Result<Vec<(String, String)>> {
    query_rows(
        conn,
        "SELECT key, value FROM settings ORDER BY key",
        [],
        |row| {
            let get = |e: rusqlite::Error| corrupt("settings", e);
            Ok((row.get(0).map_err(get)?, row.get(1).map_err(get)?))
        },
        "listing settings",
    )
}
