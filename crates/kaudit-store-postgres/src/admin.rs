//! Intakes, API tokens, rule files, policies and settings.

use kaudit_store::{
    ApiToken, Intake, IntakeId, KeyHash, NewIntake, NewToken, Policy, Result, Role, RuleFile, StoreError,
    TokenId,
};
use postgres::error::SqlState;
use postgres::{Client, Row};

fn sql_error(context: &'static str) -> impl Fn(postgres::Error) -> StoreError {
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

/// Maps a unique violation to [`StoreError::Conflict`].
fn conflict_or(
    what: &'static str,
    name: &str,
    context: &'static str,
) -> impl Fn(postgres::Error) -> StoreError {
    move |e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict {
                what,
                name: name.to_owned(),
            }
        } else {
            StoreError::backend(context, e)
        }
    }
}

const INTAKE_COLUMNS: &str =
    "id, name, cluster, key_hash, created_ns, revoked_ns, last_event_ns, event_count";

fn intake_from_row(row: &Row) -> Result<Intake> {
    let get = |e: postgres::Error| corrupt("intakes", e);
    Ok(Intake {
        id: IntakeId(row.try_get(0).map_err(get)?),
        name: row.try_get(1).map_err(get)?,
        cluster: row.try_get(2).map_err(get)?,
        key_hash: key_hash(row.try_get(3).map_err(get)?, "intakes.key_hash")?,
        created_ns: row.try_get(4).map_err(get)?,
        revoked_ns: row.try_get(5).map_err(get)?,
        last_event_ns: row.try_get(6).map_err(get)?,
        event_count: row.try_get::<_, i64>(7).map_err(get)?.max(0) as u64,
    })
}

pub(crate) fn create_intake(client: &mut Client, intake: &NewIntake) -> Result<Intake> {
    let sql = format!(
        "INSERT INTO intakes (name, cluster, key_hash, created_ns) VALUES ($1, $2, $3, $4) RETURNING {INTAKE_COLUMNS}"
    );
    let row = client
        .query_one(
            &sql,
            &[
                &intake.name,
                &intake.cluster,
                &&intake.key_hash.0[..],
                &intake.created_ns,
            ],
        )
        .map_err(conflict_or("intake", &intake.name, "creating an intake"))?;
    intake_from_row(&row)
}

pub(crate) fn list_intakes(client: &mut Client) -> Result<Vec<Intake>> {
    let sql = format!("SELECT {INTAKE_COLUMNS} FROM intakes ORDER BY id");
    client
        .query(&sql, &[])
        .map_err(sql_error("listing intakes"))?
        .iter()
        .map(intake_from_row)
        .collect()
}

pub(crate) fn get_intake(client: &mut Client, id: IntakeId) -> Result<Option<Intake>> {
    let sql = format!("SELECT {INTAKE_COLUMNS} FROM intakes WHERE id = $1");
    client
        .query_opt(&sql, &[&id.0])
        .map_err(sql_error("reading an intake"))?
        .as_ref()
        .map(intake_from_row)
        .transpose()
}

pub(crate) fn find_active_intake(client: &mut Client, hash: &KeyHash) -> Result<Option<Intake>> {
    let sql = format!("SELECT {INTAKE_COLUMNS} FROM intakes WHERE key_hash = $1");
    let rows = client
        .query(&sql, &[&&hash.0[..]])
        .map_err(sql_error("looking up an intake key"))?;
    let intakes = rows.iter().map(intake_from_row).collect::<Result<Vec<_>>>()?;
    Ok(intakes
        .into_iter()
        .find(|i| i.revoked_ns.is_none() && i.key_hash.ct_eq(hash)))
}

/// Sets `revoked_ns` on a not yet revoked row of `table` (a fixed table name, never input).
pub(crate) fn revoke(client: &mut Client, table: &'static str, id: i64, now_ns: i64) -> Result<bool> {
    let sql = format!("UPDATE {table} SET revoked_ns = $2 WHERE id = $1 AND revoked_ns IS NULL");
    Ok(client
        .execute(&sql, &[&id, &now_ns])
        .map_err(sql_error("revoking"))?
        == 1)
}

const TOKEN_COLUMNS: &str = "id, name, role, key_hash, created_ns, revoked_ns";

fn token_from_row(row: &Row) -> Result<ApiToken> {
    let get = |e: postgres::Error| corrupt("api_tokens", e);
    let role: String = row.try_get(2).map_err(get)?;
    Ok(ApiToken {
        id: TokenId(row.try_get(0).map_err(get)?),
        name: row.try_get(1).map_err(get)?,
        role: Role::parse(&role).ok_or_else(|| corrupt("api_tokens.role", role))?,
        key_hash: key_hash(row.try_get(3).map_err(get)?, "api_tokens.key_hash")?,
        created_ns: row.try_get(4).map_err(get)?,
        revoked_ns: row.try_get(5).map_err(get)?,
    })
}

pub(crate) fn create_token(client: &mut Client, token: &NewToken) -> Result<ApiToken> {
    let sql = format!(
        "INSERT INTO api_tokens (name, role, key_hash, created_ns) VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
    );
    let row = client
        .query_one(
            &sql,
            &[
                &token.name,
                &token.role.as_str(),
                &&token.key_hash.0[..],
                &token.created_ns,
            ],
        )
        .map_err(conflict_or("token", &token.name, "creating a token"))?;
    token_from_row(&row)
}

pub(crate) fn list_tokens(client: &mut Client) -> Result<Vec<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id");
    client
        .query(&sql, &[])
        .map_err(sql_error("listing tokens"))?
        .iter()
        .map(token_from_row)
        .collect()
}

pub(crate) fn find_active_token(client: &mut Client, hash: &KeyHash) -> Result<Option<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE key_hash = $1");
    let rows = client
        .query(&sql, &[&&hash.0[..]])
        .map_err(sql_error("looking up a token"))?;
    let tokens = rows.iter().map(token_from_row).collect::<Result<Vec<_>>>()?;
    Ok(tokens
        .into_iter()
        .find(|t| t.revoked_ns.is_none() && t.key_hash.ct_eq(hash)))
}

pub(crate) fn put_rule_file(client: &mut Client, file: &RuleFile) -> Result<()> {
    client
        .execute(
            "INSERT INTO rule_files (name, content, updated_ns) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET content = excluded.content, updated_ns = excluded.updated_ns",
            &[&file.name, &file.content, &file.updated_ns],
        )
        .map_err(sql_error("storing a rule file"))?;
    Ok(())
}

fn rule_file_from_row(row: &Row) -> Result<RuleFile> {
    let get = |e: postgres::Error| corrupt("rule_files", e);
    Ok(RuleFile {
        name: row.try_get(0).map_err(get)?,
        content: row.try_get(1).map_err(get)?,
        updated_ns: row.try_get(2).map_err(get)?,
    })
}

pub(crate) fn list_rule_files(client: &mut Client) -> Result<Vec<RuleFile>> {
    client
        .query(
            "SELECT name, content, updated_ns FROM rule_files ORDER BY name",
            &[],
        )
        .map_err(sql_error("listing rule files"))?
        .iter()
        .map(rule_file_from_row)
        .collect()
}

pub(crate) fn get_rule_file(client: &mut Client, name: &str) -> Result<Option<RuleFile>> {
    client
        .query_opt(
            "SELECT name, content, updated_ns FROM rule_files WHERE name = $1",
            &[&name],
        )
        .map_err(sql_error("reading a rule file"))?
        .as_ref()
        .map(rule_file_from_row)
        .transpose()
}

/// Deletes the row named `name` from `table` (a fixed table name, never input).
pub(crate) fn delete_by_name(client: &mut Client, table: &'static str, name: &str) -> Result<bool> {
    let sql = format!("DELETE FROM {table} WHERE name = $1");
    Ok(client.execute(&sql, &[&name]).map_err(sql_error("deleting"))? == 1)
}

pub(crate) fn put_policy(client: &mut Client, p: &Policy) -> Result<()> {
    client
        .execute(
            "INSERT INTO policies (name, enabled, scope_json, rules_json, builtin, updated_ns)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, scope_json = excluded.scope_json,
                 rules_json = excluded.rules_json, builtin = excluded.builtin, updated_ns = excluded.updated_ns",
            &[&p.name, &p.enabled, &p.scope_json, &p.rules_json, &p.builtin, &p.updated_ns],
        )
        .map_err(sql_error("storing a policy"))?;
    Ok(())
}

const POLICY_COLUMNS: &str = "name, enabled, scope_json, rules_json, builtin, updated_ns";

fn policy_from_row(row: &Row) -> Result<Policy> {
    let get = |e: postgres::Error| corrupt("policies", e);
    Ok(Policy {
        name: row.try_get(0).map_err(get)?,
        enabled: row.try_get(1).map_err(get)?,
        scope_json: row.try_get(2).map_err(get)?,
        rules_json: row.try_get(3).map_err(get)?,
        builtin: row.try_get(4).map_err(get)?,
        updated_ns: row.try_get(5).map_err(get)?,
    })
}

pub(crate) fn list_policies(client: &mut Client) -> Result<Vec<Policy>> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies ORDER BY name");
    client
        .query(&sql, &[])
        .map_err(sql_error("listing policies"))?
        .iter()
        .map(policy_from_row)
        .collect()
}

pub(crate) fn get_policy(client: &mut Client, name: &str) -> Result<Option<Policy>> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE name = $1");
    client
        .query_opt(&sql, &[&name])
        .map_err(sql_error("reading a policy"))?
        .as_ref()
        .map(policy_from_row)
        .transpose()
}

pub(crate) fn put_setting(client: &mut Client, key: &str, value: &str) -> Result<()> {
    client
        .execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .map_err(sql_error("storing a setting"))?;
    Ok(())
}

pub(crate) fn get_setting(client: &mut Client, key: &str) -> Result<Option<String>> {
    let row = client
        .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
        .map_err(sql_error("reading a setting"))?;
    row.map(|r| r.try_get(0).map_err(sql_error("reading a setting")))
        .transpose()
}

pub(crate) fn list_settings(client: &mut Client) -> Result<Vec<(String, String)>> {
    client
        .query("SELECT key, value FROM settings ORDER BY key", &[])
        .map_err(sql_error("listing settings"))?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(sql_error("listing settings"))?,
                r.try_get(1).map_err(sql_error("listing settings"))?,
            ))
        })
        .collect()
}
