//! Delivery to each kind of output. Failures are logged (without the alert text or the URL,
//! which can carry a secret) and never reach the intake.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::OutputAlert;
use super::format::{falco_json, text_line};
use crate::config::{OutputKind, SyslogProtocol, facility_number};

/// One output's connection or file.
pub(super) enum Sink {
    Stdout(tokio::io::Stdout),
    File {
        path: std::path::PathBuf,
        file: Option<tokio::fs::File>,
        hostname: String,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: Vec<(String, String)>,
        attempts: u32,
        style: HttpStyle,
        hostname: String,
    },
    Syslog {
        address: String,
        protocol: SyslogProtocol,
        facility: u8,
        hostname: String,
        udp: Option<UdpSocket>,
        tcp: Option<TcpStream>,
    },
}

/// What an HTTP output posts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpStyle {
    /// The Falco JSON alert.
    FalcoJson,
    /// `{"text": "..."}` for Slack-compatible webhooks.
    Slack,
}

impl Sink {
    pub(super) fn new(kind: &OutputKind, hostname: &str) -> anyhow::Result<Sink> {
        let hostname = hostname.to_owned();
        let http = |timeout_seconds: u64| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(timeout_seconds.max(1)))
                .user_agent(concat!("kaudit/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(match kind {
            OutputKind::Stdout {} => Sink::Stdout(tokio::io::stdout()),
            OutputKind::File { path } => Sink::File {
                path: path.clone(),
                file: None,
                hostname,
            },
            OutputKind::Webhook {
                url,
                headers,
                max_attempts,
                timeout_seconds,
            } => Sink::Http {
                client: http(*timeout_seconds)?,
                url: url.clone(),
                headers: headers.clone(),
                attempts: *max_attempts,
                style: HttpStyle::FalcoJson,
                hostname,
            },
            OutputKind::Slack {
                url,
                max_attempts,
                timeout_seconds,
            } => Sink::Http {
                client: http(*timeout_seconds)?,
                url: url.clone(),
                headers: Vec::new(),
                attempts: *max_attempts,
                style: HttpStyle::Slack,
                hostname,
            },
            OutputKind::Syslog {
                address,
                protocol,
                facility,
            } => Sink::Syslog {
                address: address.clone(),
                protocol: *protocol,
                facility: facility_number(facility).unwrap_or(16),
                hostname,
                udp: None,
                tcp: None,
            },
        })
    }

    pub(super) async fn deliver(&mut self, name: &str, alert: &OutputAlert) {
        let result = match self {
            Sink::Stdout(out) => {
                let mut line = falco_json(alert, "kaudit");
                line.push('\n');
                out.write_all(line.as_bytes()).await.map_err(anyhow::Error::from)
            }
            Sink::File { path, file, hostname } => write_file(path, file, falco_json(alert, hostname)).await,
            Sink::Http {
                client,
                url,
                headers,
                attempts,
                style,
                hostname,
            } => {
                let body = match style {
                    HttpStyle::FalcoJson => falco_json(alert, hostname),
                    HttpStyle::Slack => serde_json::json!({ "text": text_line(alert) }).to_string(),
                };
                post_with_retries(client, url, headers, *attempts, body).await
            }
            Sink::Syslog {
                address,
                protocol,
                facility,
                hostname,
                udp,
                tcp,
            } => {
                let message = syslog_message(alert, *facility, hostname);
                match protocol {
                    SyslogProtocol::Udp => send_udp(udp, address, &message).await,
                    SyslogProtocol::Tcp => send_tcp(tcp, address, &message).await,
                }
            }
        };
        if let Err(err) = result {
            tracing::warn!(output = %name, rule = %alert.rule, error = %format!("{err:#}"), "alert not delivered");
        }
    }

    pub(super) async fn flush(&mut self) {
        match self {
            Sink::Stdout(out) => {
                let _ = out.flush().await;
            }
            Sink::File { file: Some(file), .. } => {
                let _ = file.sync_data().await;
            }
            _ => {}
        }
    }
}

async fn write_file(
    path: &std::path::Path,
    file: &mut Option<tokio::fs::File>,
    mut line: String,
) -> anyhow::Result<()> {
    line.push('\n');
    if file.is_none() {
        let opened = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        *file = Some(opened);
    }
    if let Some(f) = file.as_mut()
        && let Err(err) = f.write_all(line.as_bytes()).await
    {
        // Reopen next time: the file may have been rotated away or its disk replaced.
        *file = None;
        return Err(err.into());
    }
    Ok(())
}

async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    attempts: u32,
    body: String,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(500);
    let mut last_error = anyhow::anyhow!("no attempt made");
    for attempt in 1..=attempts.max(1) {
        let mut request = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => last_error = anyhow::anyhow!("status {} on attempt {attempt}", response.status()),
            // Without the URL: an incoming-webhook URL carries its secret.
            Err(err) => last_error = anyhow::anyhow!("{} on attempt {attempt}", err.without_url()),
        }
        if attempt < attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
    Err(last_error)
}

/// An RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME kaudit - alert [kaudit@32473 ...] MSG`.
/// The severity is the Falco priority's number, which is the syslog severity of the same
/// name (Emergency 0 ... Debug 7). 32473 is the private enterprise number reserved for
/// examples; the structured data names the rule, policy and cluster.
pub(super) fn syslog_message(alert: &OutputAlert, facility: u8, hostname: &str) -> String {
    let pri = u16::from(facility) * 8 + u16::from(alert.priority.number());
    let timestamp = kaudit_model::format_rfc3339_nanos(alert.time_ns);
    // RFC 5424 allows at most six fraction digits.
    let timestamp = match timestamp.len() {
        30 => format!("{}Z", &timestamp[..26]),
        _ => timestamp,
    };
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let host = if host.is_empty() { "-".to_owned() } else { host };
    format!(
        "<{pri}>1 {timestamp} {host} kaudit - alert [kaudit@32473 rule=\"{}\" policy=\"{}\" cluster=\"{}\" priority=\"{}\"] {}",
        sd_escape(&alert.rule),
        sd_escape(&alert.policy),
        sd_escape(&alert.cluster),
        alert.priority.falco_name(),
        text_line(alert).replace('\n', " "),
    )
}

/// Escapes a structured-data parameter value (`"`, `\` and `]`).
fn sd_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn send_udp(socket: &mut Option<UdpSocket>, address: &str, message: &str) -> anyhow::Result<()> {
    if socket.is_none() {
        let bind = if address.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(bind).await?;
        s.connect(address).await?;
        *socket = Some(s);
    }
    if let Some(s) = socket.as_ref()
        && let Err(err) = s.send(message.as_bytes()).await
    {
        *socket = None;
        return Err(err.into());
    }
    Ok(())
}

async fn send_tcp(stream: &mut Option<TcpStream>, address: &str, message: &str) -> anyhow::Result<()> {
    let framed = format!("{} {message}", message.len());
    for attempt in 0..2 {
        if stream.is_none() {
            let connect = TcpStream::connect(address);
            *stream = Some(tokio::time::timeout(Duration::from_secs(10), connect).await??);
        }
        if let Some(s) = stream.as_mut() {
            match s.write_all(framed.as_bytes()).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    // The server may have closed an idle connection: reconnect once.
                    *stream = None;
                    if attempt == 1 {
                        return Err(err.into());
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kaudit_model::Priority;

    use super::*;

    #[test]
    fn rfc5424_shape() {
        let alert = OutputAlert {
            time_ns: 1_714_558_272_223_456_789,
            rule: "Bad \"rule\"]".into(),
            priority: Priority::Warning,
            policy: "p".into(),
            message: "line1\nline2".into(),
            output_fields: serde_json::Map::new(),
            tags: vec![],
            cluster: "c".into(),
            repeated: 0,
        };
        let message = syslog_message(&alert, 16, "node 1");
        assert_eq!(
            message,
            "<132>1 2024-05-01T10:11:12.223456Z node1 kaudit - alert [kaudit@32473 rule=\"Bad \\\"rule\\\"\\]\" \
             policy=\"p\" cluster=\"c\" priority=\"Warning\"] 10:11:12.223456789: Warning line1 line2 (cluster=c, policy=p)"
        );
    }
}
