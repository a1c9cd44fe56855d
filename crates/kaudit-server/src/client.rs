//! Small blocking clients for the `kaudit` CLI and its tests: [`ApiClient`] for the JSON API
//! (bearer token, JSON in and out, `{"error": ...}` bodies turned into errors that say what
//! the server said) and [`IntakeClient`] for sending batches to the intake endpoints.

use std::time::Duration;

use kaudit_proto::{ErrorBody, IntakeAck};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached or the connection failed.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error status.
    #[error("server answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's `error` text.
        message: String,
    },
    /// The answer is not the JSON expected.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

/// A client of one server with one API token.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// A client of `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("kaudit-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_owned(),
                message: e.to_string(),
            })?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// `GET path?query`.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &impl Serialize) -> Result<T, ClientError> {
        let request = self.http.get(self.url(path)).query(query);
        self.send(request, path)
    }

    /// `POST path` with a JSON body.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let request = self.http.post(self.url(path)).json(body);
        self.send(request, path)
    }

    /// `PUT path` with a JSON body.
    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let request = self.http.put(self.url(path)).json(body);
        self.send(request, path)
    }

    /// `PATCH path` with a JSON body.
    pub fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let request = self.http.patch(self.url(path)).json(body);
        self.send(request, path)
    }

    /// `PUT path` with a plain-text body (a rule file's YAML).
    pub fn put_text<T: DeserializeOwned>(&self, path: &str, text: String) -> Result<T, ClientError> {
        let request = self
            .http
            .put(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(text);
        self.send(request, path)
    }

    /// `DELETE path`, expecting no body.
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        let request = self.http.delete(self.url(path));
        let response = self.execute(request, path)?;
        drop(response);
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn execute(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|e| ClientError::Transport {
            url: self.url(path),
            message: e.without_url().to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(ClientError::Status {
            status: status.as_u16(),
            message,
        })
    }

    fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::blocking::RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let response = self.execute(request, path)?;
        let bytes = response.bytes().map_err(|e| ClientError::Decode(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// A client of the intake endpoints with one intake key, reusing its connections.
pub struct IntakeClient {
    url: String,
    key: String,
    http: reqwest::blocking::Client,
}

/// How an intake body is compressed (`Content-Encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEncoding {
    /// Not compressed.
    Identity,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl IntakeClient {
    /// A client posting to `base` + `path` (`/intake/v1/events` or `/k8s-audit`); each
    /// request gives up after `timeout`.
    pub fn new(base: &str, path: &str, key: &str, timeout: Duration) -> Result<IntakeClient, ClientError> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("kaudit-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok(IntakeClient {
            url,
            key: key.to_owned(),
            http,
        })
    }

    /// Posts one batch; `Ok` only with a 2xx, which means the whole batch is committed.
    pub fn send(&self, body: Vec<u8>, encoding: BodyEncoding) -> Result<IntakeAck, ClientError> {
        let mut request = self
            .http
            .post(&self.url)
            .header("x-intake-key", &self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        match encoding {
            BodyEncoding::Identity => {}
            BodyEncoding::Gzip => request = request.header(reqwest::header::CONTENT_ENCODING, "gzip"),
            BodyEncoding::Zstd => request = request.header(reqwest::header::CONTENT_ENCODING, "zstd"),
        }
        let response = request.body(body).send().map_err(|e| ClientError::Transport {
            url: self.url.clone(),
            message: e.without_url().to_string(),
        })?;
        let status = response.status();
        let bytes = response.bytes().map_err(|e| ClientError::Transport {
            url: self.url.clone(),
            message: e.without_url().to_string(),
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or(text);
            return Err(ClientError::Status {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
