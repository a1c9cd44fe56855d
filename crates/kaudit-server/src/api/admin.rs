//! `/api/v1/whoami`, `/api/v1/intakes` and `/api/v1/tokens`. Listing intakes is for viewers;
//! creating and revoking intakes and anything about tokens needs an admin token.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get};
use kaudit_proto as proto;
use kaudit_store::{IntakeId, Role, TokenId};

use super::{authorize, blocking, parse_json};
use crate::admin::{
    AdminError, create_intake, create_token, intake_dto, now_ns, role_dto, role_row, token_dto,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The administration routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/intakes", get(list_intakes).post(post_intake))
        .route("/intakes/{id}", delete(revoke_intake))
        .route("/tokens", get(list_tokens).post(post_token))
        .route("/tokens/{id}", delete(revoke_token))
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> ApiError {
        match err {
            AdminError::Invalid(reason) => ApiError::BadRequest(reason),
            AdminError::Store(e) => e.into(),
            AdminError::Random(e) => ApiError::internal(e),
        }
    }
}

async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<proto::WhoAmI>, ApiError> {
    let token = authorize(&state, &headers, Role::Viewer).await?;
    Ok(Json(proto::WhoAmI {
        token_id: token.id.to_string(),
        role: role_dto(token.role),
    }))
}

async fn list_intakes(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<proto::Intake>>, ApiError> {
    authorize(&state, &headers, Role::Viewer).await?;
    let intakes = blocking(&state, |store| Ok(store.list_intakes()?)).await?;
    Ok(Json(
        intakes
            .iter()
            .map(|i| intake_dto(i, state.events_last_hour(i.id)))
            .collect(),
    ))
}

async fn post_intake(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<proto::CreatedIntake>), ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let asked: proto::CreateIntake = parse_json(&body)?;
    let (intake, key) = blocking(&state, move |store| {
        Ok(create_intake(store, &asked.name, &asked.cluster)?)
    })
    .await?;
    tracing::info!(intake = %intake.name, cluster = %intake.cluster, "intake created");
    Ok((
        StatusCode::CREATED,
        Json(proto::CreatedIntake {
            intake: intake_dto(&intake, 0),
            key,
        }),
    ))
}

async fn revoke_intake(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let not_found = || ApiError::NotFound(format!("no active intake with id {id:?}"));
    let number: i64 = id.parse().map_err(|_| not_found())?;
    let revoked = blocking(&state, move |store| {
        Ok(store.revoke_intake(IntakeId(number), now_ns())?)
    })
    .await?;
    state.clear_credential_caches();
    if !revoked {
        return Err(not_found());
    }
    tracing::info!(intake_id = number, "intake revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<proto::Token>>, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let tokens = blocking(&state, |store| Ok(store.list_tokens()?)).await?;
    Ok(Json(tokens.iter().map(token_dto).collect()))
}

async fn post_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<proto::CreatedToken>), ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let asked: proto::CreateToken = parse_json(&body)?;
    let role = role_row(asked.role);
    let (token, key) = blocking(&state, move |store| Ok(create_token(store, role, &asked.name)?)).await?;
    tracing::info!(token = %token.name, role = role.as_str(), "api token created");
    Ok((
        StatusCode::CREATED,
        Json(proto::CreatedToken {
            token: token_dto(&token),
            key,
        }),
    ))
}

async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers, Role::Admin).await?;
    let not_found = || ApiError::NotFound(format!("no active token with id {id:?}"));
    let number: i64 = id.parse().map_err(|_| not_found())?;
    let revoked = blocking(&state, move |store| {
        Ok(store.revoke_token(TokenId(number), now_ns())?)
    })
    .await?;
    state.clear_credential_caches();
    if !revoked {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}
