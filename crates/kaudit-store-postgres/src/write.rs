//! Batch inserts (one transaction, array parameters unnested into multi-row inserts) and
//! retention chunks.

use std::cell::RefCell;
use std::collections::HashMap;

use kaudit_store::{BatchOutcome, EventId, Insertion, NewAlert, NewEvent, Purged, Result, StoreError};
use postgres::Client;

/// A checked batch with compressed raw events and dedupe keys, ready to send.
pub(crate) struct EncodedBatch<'a> {
    events: &'a [NewEvent],
    alerts: &'a [NewAlert],
    dedupe: Vec<i64>,
    raw_zstd: Vec<Vec<u8>>,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Checks alert positions and prepares the batch.
pub(crate) fn encode_batch<'a>(
    events: &'a [NewEvent],
    alerts: &'a [NewAlert],
    zstd_level: i32,
) -> Result<EncodedBatch<'a>> {
    for (position, alert) in alerts.iter().enumerate() {
        if alert.event_index >= events.len() {
            return Err(StoreError::InvalidBatch {
                position,
                reason: format!(
                    "alert refers to event {} but the batch has {} events",
                    alert.event_index,
                    events.len()
                ),
            });
        }
    }
    let raw_zstd = COMPRESSOR.with(|cell| -> Result<Vec<Vec<u8>>> {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(level, _)| *level != zstd_level) {
            let compressor = zstd::bulk::Compressor::new(zstd_level)
                .map_err(|e| StoreError::backend("creating the zstd compressor", e))?;
            *slot = Some((zstd_level, compressor));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            return Err(StoreError::Closed);
        };
        events
            .iter()
            .map(|e| {
                compressor
                    .compress(e.raw_json.as_bytes())
                    .map_err(|err| StoreError::backend("compressing a raw event", err))
            })
            .collect()
    })?;
    let dedupe = events
        .iter()
        .map(|e| {
            let key = e.fields.dedupe_key();
            let mut first = [0u8; 8];
            first.copy_from_slice(&key[..8]);
            i64::from_le_bytes(first)
        })
        .collect();
    Ok(EncodedBatch {
        events,
        alerts,
        dedupe,
        raw_zstd,
    })
}

const INSERT_EVENTS: &str = "INSERT INTO events (
        time_ns, received_ns, cluster, intake_id, audit_id, stage, digest, dedupe, verb, username, groups,
        impersonated_user, resource, subresource, namespace, name, api_group, source_ip, user_agent,
        response_code, decision, request_uri, level)
    SELECT t.time_ns, t.received_ns, t.cluster, t.intake_id, t.audit_id, t.stage, t.digest, t.dedupe, t.verb,
        t.username, t.groups::jsonb, t.impersonated_user, t.resource, t.subresource, t.namespace, t.name,
        t.api_group, t.source_ip, t.user_agent, t.response_code, t.decision, t.request_uri, t.level
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bytea[],
        $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
        $16::text[], $17::text[], $18::text[], $19::text[], $20::int[], $21::text[], $22::text[], $23::text[])
        WITH ORDINALITY AS t(time_ns, received_ns, cluster, intake_id, audit_id, stage, digest, dedupe, verb,
        username, groups, impersonated_user, resource, subresource, namespace, name, api_group, source_ip,
        user_agent, response_code, decision, request_uri, level, position)
    ORDER BY t.position
    ON CONFLICT (time_ns, dedupe) DO NOTHING
    RETURNING id, time_ns, dedupe";

const INSERT_ALERTS: &str = "INSERT INTO alerts (
        event_id, time_ns, rule, priority, output, output_fields_json, tags, policy, cluster, namespace,
        username, source)
    SELECT t.event_id, t.time_ns, t.rule, t.priority, t.output, t.output_fields_json, t.tags::jsonb, t.policy,
        t.cluster, t.namespace, t.username, t.source
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::smallint[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
        AS t(event_id, time_ns, rule, priority, output, output_fields_json, tags, policy, cluster, namespace,
        username, source)";

/// Stores a batch in one transaction.
pub(crate) fn insert_batch(client: &mut Client, batch: &EncodedBatch<'_>) -> Result<BatchOutcome> {
    let fail = |e| StoreError::backend("inserting a batch", e);
    // Keep the first copy of each dedupe key within the batch; later copies are duplicates.
    let mut first_position: HashMap<(i64, i64), usize> = HashMap::new();
    let mut unique: Vec<usize> = Vec::with_capacity(batch.events.len());
    for (i, event) in batch.events.iter().enumerate() {
        let key = (event.fields.time_ns, batch.dedupe[i]);
        if let std::collections::hash_map::Entry::Vacant(slot) = first_position.entry(key) {
            slot.insert(i);
            unique.push(i);
        }
    }
    let pick = |f: &dyn Fn(usize) -> Option<String>| unique.iter().map(|&i| f(i)).collect::<Vec<_>>();
    let ev = |i: usize| &batch.events[i].fields;
    let time: Vec<i64> = unique.iter().map(|&i| ev(i).time_ns).collect();
    let received: Vec<i64> = unique.iter().map(|&i| ev(i).received_ns).collect();
    let cluster: Vec<&str> = unique.iter().map(|&i| ev(i).cluster.as_str()).collect();
    let intake: Vec<Option<i64>> = unique.iter().map(|&i| ev(i).intake_id.map(|id| id.0)).collect();
    let audit: Vec<&str> = unique.iter().map(|&i| ev(i).audit_id.as_str()).collect();
    let stage: Vec<&str> = unique.iter().map(|&i| ev(i).stage.as_str()).collect();
    let digest: Vec<&[u8]> = unique.iter().map(|&i| &ev(i).digest[..]).collect();
    let dedupe: Vec<i64> = unique.iter().map(|&i| batch.dedupe[i]).collect();
    let verb: Vec<&str> = unique.iter().map(|&i| ev(i).verb.as_str()).collect();
    let user: Vec<&str> = unique.iter().map(|&i| ev(i).username.as_str()).collect();
    let groups: Vec<String> = unique
        .iter()
        .map(|&i| serde_json::to_string(&ev(i).groups).unwrap_or_else(|_| "[]".to_owned()))
        .collect();
    let impersonated = pick(&|i| ev(i).impersonated_user.clone());
    let resource = pick(&|i| ev(i).resource.clone());
    let subresource = pick(&|i| ev(i).subresource.clone());
    let namespace = pick(&|i| ev(i).namespace.clone());
    let name = pick(&|i| ev(i).name.clone());
    let api_group = pick(&|i| ev(i).api_group.clone());
    let source_ip = pick(&|i| ev(i).source_ip.clone());
    let user_agent = pick(&|i| ev(i).user_agent.clone());
    let code: Vec<Option<i32>> = unique.iter().map(|&i| ev(i).response_code).collect();
    let decision = pick(&|i| ev(i).decision.clone());
    let uri: Vec<&str> = unique.iter().map(|&i| ev(i).request_uri.as_str()).collect();
    let level: Vec<&str> = unique.iter().map(|&i| ev(i).level.as_str()).collect();

    let mut tx = client.transaction().map_err(fail)?;
    let rows = tx
        .query(
            INSERT_EVENTS,
            &[
                &time,
                &received,
                &cluster,
                &intake,
                &audit,
                &stage,
                &digest,
                &dedupe,
                &verb,
                &user,
                &groups,
                &impersonated,
                &resource,
                &subresource,
                &namespace,
                &name,
                &api_group,
                &source_ip,
                &user_agent,
                &code,
                &decision,
                &uri,
                &level,
            ],
        )
        .map_err(fail)?;
    let mut outcome = vec![Insertion::Duplicate; batch.events.len()];
    let mut raw_ids = Vec::with_capacity(rows.len());
    let mut raws: Vec<&[u8]> = Vec::with_capacity(rows.len());
    let mut per_intake: HashMap<i64, (i64, i64)> = HashMap::new();
    for row in &rows {
        let id: i64 = row.try_get(0).map_err(fail)?;
        let key: (i64, i64) = (row.try_get(1).map_err(fail)?, row.try_get(2).map_err(fail)?);
        let Some(&position) = first_position.get(&key) else {
            continue;
        };
        outcome[position] = Insertion::New(EventId(id));
        raw_ids.push(id);
        raws.push(&batch.raw_zstd[position]);
        if let Some(intake) = batch.events[position].fields.intake_id {
            let entry = per_intake.entry(intake.0).or_insert((0, key.0));
            entry.0 += 1;
            entry.1 = entry.1.max(key.0);
        }
    }
    if !raw_ids.is_empty() {
        tx.execute(
            "INSERT INTO event_raw (id, raw) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[&raw_ids, &raws],
        )
        .map_err(fail)?;
    }

    let kept: Vec<(EventId, &NewAlert)> = batch
        .alerts
        .iter()
        .filter_map(|a| match outcome.get(a.event_index) {
            Some(Insertion::New(id)) => Some((*id, a)),
            _ => None,
        })
        .collect();
    if !kept.is_empty() {
        let event_id: Vec<i64> = kept.iter().map(|(id, _)| id.0).collect();
        let f = |map: &dyn Fn(&kaudit_store::AlertFields) -> String| {
            kept.iter().map(|(_, a)| map(&a.fields)).collect::<Vec<String>>()
        };
        let time: Vec<i64> = kept.iter().map(|(_, a)| a.fields.time_ns).collect();
        let priority: Vec<i16> = kept
            .iter()
            .map(|(_, a)| i16::from(a.fields.priority.number()))
            .collect();
        let namespace: Vec<Option<String>> = kept.iter().map(|(_, a)| a.fields.namespace.clone()).collect();
        tx.execute(
            INSERT_ALERTS,
            &[
                &event_id,
                &time,
                &f(&|a| a.rule.clone()),
                &priority,
                &f(&|a| a.output.clone()),
                &f(&|a| a.output_fields_json.clone()),
                &f(&|a| serde_json::to_string(&a.tags).unwrap_or_else(|_| "[]".to_owned())),
                &f(&|a| a.policy.clone()),
                &f(&|a| a.cluster.clone()),
                &namespace,
                &f(&|a| a.username.clone()),
                &f(&|a| a.source.clone()),
            ],
        )
        .map_err(fail)?;
    }
    if !per_intake.is_empty() {
        let ids: Vec<i64> = per_intake.keys().copied().collect();
        let counts: Vec<i64> = ids
            .iter()
            .map(|id| per_intake.get(id).map_or(0, |v| v.0))
            .collect();
        let lasts: Vec<i64> = ids
            .iter()
            .map(|id| per_intake.get(id).map_or(0, |v| v.1))
            .collect();
        tx.execute(
            "UPDATE intakes SET event_count = intakes.event_count + u.n,
                 last_event_ns = GREATEST(COALESCE(intakes.last_event_ns, u.t), u.t)
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, n, t)
             WHERE intakes.id = u.id",
            &[&ids, &counts, &lasts],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)?;
    Ok(BatchOutcome {
        events: outcome,
        alerts_stored: kept.len(),
    })
}

/// Deletes one retention chunk in one transaction.
pub(crate) fn purge_chunk(client: &mut Client, cutoff_ns: i64, max_events: u32) -> Result<Purged> {
    let fail = |e| StoreError::backend("deleting old events", e);
    let limit = i64::from(max_events.max(1));
    let mut tx = client.transaction().map_err(fail)?;
    let row = tx
        .query_one(
            "WITH doomed AS (SELECT id FROM events WHERE time_ns < $1 ORDER BY time_ns LIMIT $2),
                  a AS (DELETE FROM alerts WHERE event_id IN (SELECT id FROM doomed) RETURNING 1),
                  r AS (DELETE FROM event_raw WHERE id IN (SELECT id FROM doomed) RETURNING 1),
                  e AS (DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1)
             SELECT (SELECT COUNT(*) FROM e), (SELECT COUNT(*) FROM a)",
            &[&cutoff_ns, &limit],
        )
        .map_err(fail)?;
    let events: i64 = row.try_get(0).map_err(fail)?;
    let alerts_of_events: i64 = row.try_get(1).map_err(fail)?;
    let old_alerts = tx
        .execute(
            "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE time_ns < $1 ORDER BY time_ns LIMIT $2)",
            &[&cutoff_ns, &limit],
        )
        .map_err(fail)?;
    tx.commit().map_err(fail)?;
    Ok(Purged {
        events: events.max(0) as u64,
        alerts: alerts_of_events.max(0) as u64 + old_alerts,
    })
}
