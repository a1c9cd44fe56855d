//! Rules, detection policies and custom rule files: `/api/v1/rules`,
//! `/api/v1/rules/test`, `/api/v1/policies[/{name}]`, `/api/v1/rule-files[/{name}]`.
//!
//! Reading needs a viewer token, changing an admin token. A change is applied atomically: the
//! whole detection set is rebuilt with the change; if it does not load, the change is refused
//! (422, naming the file, line and column) and the running rules stay as they were; otherwise
//! the change is stored and the new set replaces the old one for the next batches.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use kaudit_proto as proto;
use kaudit_store::{EventFilter, PageRequest, Role, Store};

use super::alerts::alert_dto;
use super::{authorize, blocking, parse_json, parse_time_range};
use crate::admin::now_ns;
use crate::config::RuleMatching;
use crate::detect::{CustomRuleFile, Detector};
use crate::error::ApiError;
use crate::policy::{valid_name, validate};
use crate::state::AppState;

/// The rules, policies and rule-file routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rules", get(list_rules))
        .route("/rules/test", post(test_rules))
        .route("/policies", get(list_policies))
        .route(
            "/policies/{name}",
            get(get_policy)
                .put(put_policy)
                .patch(patch_policy)
                .delete(delete_policy),
        )
        .route("/rule-files", get(list_files))
        .route(
            "/rule-files/{name}",
            get(get_file).put(put_file).delete(delete_file),
        )
}

/// Protocol policy → stored row.
pub fn policy_row(policy: &proto::Policy) -> kaudit_store::Policy {
    kaudit_store::Policy {
        name: policy.name.clone(),
        enabled: policy.enabled,
        scope_json: serde_json::to_string(&policy.scope).unwrap_or_else(|_| "[]".to_owned()),
        rules_json: serde_json::to_string(&PolicyBody {
            description: &policy.description,
            rules: &policy.rules,
        })
        .unwrap_or_else(|_| "{}".to_owned()),
        builtin: policy.builtin,
        updated_ns: now_ns(),
    }
}

/// What `rules_json` holds: the rule selection and the description.
#[derive(serde::Serialize)]
struct PolicyBody<'a> {
    description: &'a str,
    rules: &'a proto::PolicyRules,
}

#[derive(serde::Deserialize, Default)]
struct PolicyBodyOwned {
    #[serde(default)]
    description: String,
    #[serde(default)]
    rules: proto::PolicyRules,
}

/// Stored row → protocol policy (unreadable JSON reads as an empty selection or scope).
pub fn policy_dto(row: &kaudit_store::Policy) -> proto::Policy {
    let body: PolicyBodyOwned = serde_json::from_str(&row.rules_json).unwrap_or_default();
    let scope: Vec<proto::ScopeRule> = serde_json::from_str(&row.scope_json).unwrap_or_default();
    proto::Policy {
        name: row.name.clone(),
        description: body.description,
        enabled: row.enabled,
        rules: body.rules,
        scope,
        builtin: row.builtin,
    }
}

/// Loads the detection set from what the store holds.
pub fn load_detector(store: &dyn Store, matching: RuleMatching) -> Result<Detector, ApiError> {
    RuleSources::stored(store)?.build(matching)
}

/// What a detection set is built from: the custom rule files and the policies. A change is
/// made to a copy of the stored sources and built before anything is stored.
struct RuleSources {
    files: Vec<CustomRuleFile>,
    policies: Vec<proto::Policy>,
}

impl RuleSources {
    /// The sources as the store holds them.
    fn stored(store: &dyn Store) -> Result<RuleSources, ApiError> {
        Ok(RuleSources {
            files: custom_files(store)?,
            policies: store.list_policies()?.iter().map(policy_dto).collect(),
        })
    }

    /// Replaces the policy of the same name, or adds it.
    fn put_policy(&mut self, policy: proto::Policy) {
        self.policies.retain(|p| p.name != policy.name);
        self.policies.push(policy);
    }

    /// Replaces the rule file of the same name, or adds it.
    fn put_file(&mut self, file: CustomRuleFile) {
        self.files.retain(|f| f.name != file.name);
        self.files.push(file);
    }

    /// The detection set; 422 with the file, line and column when a rule file does not load.
    fn build(&self, matching: RuleMatching) -> Result<Detector, ApiError> {
        Detector::build(&self.files, &self.policies, matching)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))
    }
}

fn custom_files(store: &dyn Store) -> Result<Vec<CustomRuleFile>, ApiError> {
    Ok(store
        .list_rule_files()?
        .into_iter()
        .map(|f| CustomRuleFile {
            name: f.name,
            content: f.content,
        })
        .collect())
}

/// Runs `change` on the store under the configuration lock, so that two changes never build
/// on the same old sources, then lets the detection set it built replace the running one.
/// `change` stores nothing unless the new set loads.
async fn reconfigure<T: Send + 'static>(
    state: &AppState,
    change: impl FnOnce(&dyn Store, RuleMatching) -> Result<(T, Detector), ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _guard = state.lock_config().await;
    let matching = state.rule_matching();
    let (changed, detector) = blocking(state, move |store| change(store, matching)).await?;
    state.swap_detector(detector);
    Ok(changed)
}

async fn list_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<proto::RuleInfo>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    Ok(Json(state.detector().rules().to_vec()))
}

async fn list_policies(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<proto::Policy>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let rows = blocking(&state, |store| Ok(store.list_policies()?)).await?;
    Ok(Json(rows.iter().map(policy_dto).collect()))
}

async fn get_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<proto::Policy>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let wanted = name.clone();
    let row = blocking(&state, move |store| Ok(store.get_policy(&wanted)?)).await?;
    row.map(|r| Json(policy_dto(&r)))
        .ok_or_else(|| ApiError::NotFound(format!("no policy named {name:?}")))
}

async fn put_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<proto::Policy>, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let mut policy: proto::Policy = parse_json(&body)?;
    policy.name = name;
    save_policy(&state, policy, |_existing, new| Ok(new)).await
}

async fn patch_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<proto::Policy>, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let patch: proto::PolicyPatch = parse_json(&body)?;
    let unused_when_found = proto::Policy {
        name: name.clone(),
        description: String::new(),
        enabled: false,
        rules: proto::PolicyRules::default(),
        scope: Vec::new(),
        builtin: false,
    };
    save_policy(&state, unused_when_found, move |existing, _| {
        let mut policy = existing.ok_or_else(|| ApiError::NotFound(format!("no policy named {name:?}")))?;
        if let Some(enabled) = patch.enabled {
            policy.enabled = enabled;
        }
        if let Some(description) = patch.description {
            policy.description = description;
        }
        if let Some(rules) = patch.rules {
            policy.rules = rules;
        }
        if let Some(scope) = patch.scope {
            policy.scope = scope;
        }
        Ok(policy)
    })
    .await
}

/// Under the configuration lock: reads the policy, lets `change` produce the new one,
/// validates it, rebuilds the detection set with it, stores it and swaps the set.
async fn save_policy(
    state: &AppState,
    new: proto::Policy,
    change: impl FnOnce(Option<proto::Policy>, proto::Policy) -> Result<proto::Policy, ApiError> + Send + 'static,
) -> Result<Json<proto::Policy>, ApiError> {
    let policy = reconfigure(state, move |store, matching| {
        let existing = store.get_policy(&new.name)?.map(|r| policy_dto(&r));
        let builtin = existing.as_ref().is_some_and(|p| p.builtin);
        let mut policy = change(existing, new)?;
        policy.builtin = builtin;
        validate(&policy).map_err(|e| ApiError::BadRequest(format!("invalid policy: {e}")))?;
        let mut sources = RuleSources::stored(store)?;
        sources.put_policy(policy.clone());
        let detector = sources.build(matching)?;
        store.put_policy(&policy_row(&policy))?;
        Ok((policy, detector))
    })
    .await?;
    tracing::info!(policy = %policy.name, enabled = policy.enabled, "policy saved");
    Ok(Json(policy))
}

async fn delete_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    reconfigure(&state, move |store, matching| {
        let existing = store
            .get_policy(&name)?
            .ok_or_else(|| ApiError::NotFound(format!("no policy named {name:?}")))?;
        if existing.builtin {
            return Err(ApiError::BadRequest(format!(
                "policy {name:?} is built in: disable it instead"
            )));
        }
        let mut sources = RuleSources::stored(store)?;
        sources.policies.retain(|p| p.name != name);
        let detector = sources.build(matching)?;
        store.delete_policy(&name)?;
        Ok(((), detector))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_files(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<proto::RuleFileSummary>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let files = blocking(&state, |store| Ok(store.list_rule_files()?)).await?;
    Ok(Json(
        files
            .iter()
            .map(|f| proto::RuleFileSummary {
                name: f.name.clone(),
                size: f.content.len() as u64,
                updated_at: kaudit_model::format_rfc3339_nanos(f.updated_ns),
            })
            .collect(),
    ))
}

async fn get_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<proto::RuleFile>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let wanted = name.clone();
    let file = blocking(&state, move |store| Ok(store.get_rule_file(&wanted)?)).await?;
    let file = file.ok_or_else(|| ApiError::NotFound(format!("no rule file named {name:?}")))?;
    Ok(Json(proto::RuleFile {
        name: file.name,
        content: file.content,
        updated_at: kaudit_model::format_rfc3339_nanos(file.updated_ns),
    }))
}

/// Names the server uses for its own rule files.
fn reserved_file_name(name: &str) -> bool {
    name == crate::policy::DEFAULT_RULES_FILE || name == crate::policy::ACTIVITY_RULES_FILE
}

async fn put_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<proto::RuleFileSummary>, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    if !valid_name(&name) || reserved_file_name(&name) {
        return Err(ApiError::BadRequest(format!(
            "invalid rule file name {name:?} (1-100 of letters, digits, '-', '_', '.'; not default or activity)"
        )));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let content = if is_json {
        parse_json::<proto::PutRuleFile>(&body)?.content
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("rule file is not UTF-8".to_owned()))?
    };
    let summary = reconfigure(&state, move |store, matching| {
        let mut sources = RuleSources::stored(store)?;
        sources.put_file(CustomRuleFile {
            name: name.clone(),
            content: content.clone(),
        });
        let detector = sources.build(matching)?;
        let updated_ns = now_ns();
        let size = content.len() as u64;
        store.put_rule_file(&kaudit_store::RuleFile {
            name: name.clone(),
            content,
            updated_ns,
        })?;
        let summary = proto::RuleFileSummary {
            name,
            size,
            updated_at: kaudit_model::format_rfc3339_nanos(updated_ns),
        };
        Ok((summary, detector))
    })
    .await?;
    tracing::info!(file = %summary.name, "rule file saved, rules reloaded");
    Ok(Json(summary))
}

async fn delete_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    reconfigure(&state, move |store, matching| {
        let mut sources = RuleSources::stored(store)?;
        if !sources.files.iter().any(|f| f.name == name) {
            return Err(ApiError::NotFound(format!("no rule file named {name:?}")));
        }
        sources.files.retain(|f| f.name != name);
        let detector = Detector::build(&sources.files, &sources.policies, matching).map_err(|e| {
            ApiError::Unprocessable(format!("removing {name:?} breaks the remaining rules: {e}"))
        })?;
        store.delete_rule_file(&name)?;
        Ok(((), detector))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Most events one test scans.
const TEST_SCAN_BUDGET: u64 = 20_000;

async fn test_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<proto::TestRulesResult>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let asked: proto::TestRules = parse_json(&body)?;
    let filter = EventFilter {
        time: parse_time_range(asked.from.as_deref(), asked.to.as_deref())?,
        cluster: asked.cluster.clone(),
        ..EventFilter::default()
    };
    let limit = asked.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let running = state.detector();
    let result = blocking(&state, move |store| {
        let detector = match &asked.content {
            Some(content) => {
                const TESTED: &str = "(tested)";
                let mut files = custom_files(store)?;
                files.push(CustomRuleFile {
                    name: TESTED.to_owned(),
                    content: content.clone(),
                });
                let only_the_tested_file = proto::Policy {
                    name: "(test)".to_owned(),
                    description: String::new(),
                    enabled: true,
                    rules: proto::PolicyRules {
                        files: vec![TESTED.to_owned()],
                        ..Default::default()
                    },
                    scope: Vec::new(),
                    builtin: false,
                };
                let sources = RuleSources {
                    files,
                    policies: vec![only_the_tested_file],
                };
                std::sync::Arc::new(sources.build(RuleMatching::All)?)
            }
            None => running,
        };
        scan_stored(store, &detector, &filter, limit)
    })
    .await?;
    Ok(Json(result))
}

fn scan_stored(
    store: &dyn Store,
    detector: &Detector,
    filter: &EventFilter,
    limit: usize,
) -> Result<proto::TestRulesResult, ApiError> {
    let mut result = proto::TestRulesResult {
        scanned: 0,
        truncated: false,
        alerts: Vec::new(),
    };
    let mut page = PageRequest::first(500);
    loop {
        let found = store.search_events(filter, page)?;
        for stored in &found.items {
            if result.scanned >= TEST_SCAN_BUDGET || result.alerts.len() >= limit {
                result.truncated = true;
                return Ok(result);
            }
            result.scanned += 1;
            let Some(full) = store.get_event(stored.id)? else {
                continue;
            };
            let mut detections = Vec::new();
            kaudit_model::read_input(
                full.raw_json.as_bytes(),
                |located| detections.extend(detector.detect(&located)),
                |_| {},
            );
            for detection in detections {
                let alert = kaudit_store::StoredAlert {
                    id: kaudit_store::AlertId(0),
                    event_id: stored.id,
                    fields: kaudit_store::AlertFields {
                        time_ns: stored.fields.time_ns,
                        rule: detection.rule,
                        priority: detection.priority,
                        output: detection.message,
                        output_fields_json: serde_json::Value::Object(detection.output_fields).to_string(),
                        tags: detection.tags,
                        policy: detection.policy,
                        cluster: stored.fields.cluster.clone(),
                        namespace: stored.fields.namespace.clone(),
                        username: stored.fields.username.clone(),
                        source: "k8s_audit".to_owned(),
                    },
                };
                let mut dto = alert_dto(&alert);
                dto.id = String::new();
                result.alerts.push(dto);
            }
        }
        match found.next_cursor {
            Some(cursor) => {
                page = PageRequest {
                    limit: 500,
                    cursor: Some(cursor),
                }
            }
            None => return Ok(result),
        }
    }
}
