//! Secrets and who presents them: intake keys (intake endpoints) and API tokens (`/api/v1`).
//!
//! Secrets are 32 random bytes, hex-encoded behind a prefix that tells them apart
//! (`kaudit_ik_` for intake keys, `kaudit_at_` for API tokens) and lets secret scanners find
//! them. Only their SHA-256 is stored ([`kaudit_store::KeyHash`]); the store finds a row by
//! hash and compares the whole hash in constant time. Secrets are never logged.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// Prefix of intake keys.
pub const INTAKE_KEY_PREFIX: &str = "kaudit_ik_";
/// Prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "kaudit_at_";
/// The header that may carry an intake key (the other way is `Authorization: Bearer`).
pub const INTAKE_KEY_HEADER: &str = "x-intake-key";

/// Why a secret could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the operating system's random source")]
pub struct RandomError(#[source] pub getrandom::Error);

/// A new random secret with the given prefix.
pub fn generate_secret(prefix: &str) -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    let mut text = String::with_capacity(prefix.len() + 64);
    text.push_str(prefix);
    for b in bytes {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 15)]));
    }
    Ok(text)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The intake key of a request: `X-Intake-Key`, else the bearer token.
pub fn intake_key(headers: &HeaderMap) -> Option<&str> {
    let header = headers
        .get(INTAKE_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match header {
        Some(key) if !key.is_empty() => Some(key),
        _ => bearer(headers),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn secrets_are_prefixed_random_hex() {
        let a = generate_secret(INTAKE_KEY_PREFIX).unwrap();
        let b = generate_secret(INTAKE_KEY_PREFIX).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), INTAKE_KEY_PREFIX.len() + 64);
        assert!(
            a[INTAKE_KEY_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_hexdigit())
        );
    }

    #[test]
    fn intake_key_from_either_header() {
        assert_eq!(intake_key(&headers(&[("x-intake-key", "k1")])), Some("k1"));
        assert_eq!(
            intake_key(&headers(&[("authorization", "Bearer k2")])),
            Some("k2")
        );
        assert_eq!(
            intake_key(&headers(&[("authorization", "bearer  k3 ")])),
            Some("k3")
        );
        assert_eq!(intake_key(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(intake_key(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(intake_key(&headers(&[])), None);
    }
}
