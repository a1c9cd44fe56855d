//! Reading request bodies under a byte limit, and decompressing them under a second limit.
//!
//! Both limits are enforced while streaming: a body is never buffered past its limit, and a
//! compressed body never expands past the decompressed limit, whatever its ratio (a
//! "compression bomb" costs at most the limit in memory and the time to inflate that much).

use std::io::Read;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body_util::BodyExt;

use crate::error::ApiError;

/// The two size limits of an intake request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most bytes accepted on the wire (compressed size when compressed).
    pub max_body_bytes: usize,
    /// Most bytes a body may decompress to (and most bytes of an uncompressed body).
    pub max_decompressed_bytes: usize,
}

/// How a body is encoded, from `Content-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// No encoding (`identity` or no header).
    Identity,
    /// `gzip` (or `x-gzip`); concatenated members are read as one stream.
    Gzip,
    /// `zstd`; concatenated frames are read as one stream.
    Zstd,
}

impl Encoding {
    /// Reads `Content-Encoding`; 415 for anything else.
    pub fn from_headers(headers: &HeaderMap) -> Result<Encoding, ApiError> {
        let Some(value) = headers.get(CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
        match text.as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "zstd" => Ok(Encoding::Zstd),
            _ => Err(ApiError::UnsupportedEncoding(format!(
                "unsupported content-encoding {text:?} (expected gzip, zstd or identity)"
            ))),
        }
    }
}

/// Reads the whole body, refusing (413) as soon as it exceeds `max_bytes`, or before reading
/// when `Content-Length` already says so.
pub async fn read_capped(headers: &HeaderMap, body: Body, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > max_bytes as u64
    {
        return Err(too_large("request body", max_bytes));
    }
    let initial = declared.map_or(64 * 1024, |len| len as usize).min(max_bytes);
    let mut out = Vec::with_capacity(initial);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max_bytes {
                return Err(too_large("request body", max_bytes));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Decodes a body read with [`read_capped`]. Blocking (CPU-bound): call it off the async
/// runtime. 413 when the result would exceed `max_bytes`; 400 when the compressed data is
/// corrupt.
pub fn decode(encoding: Encoding, body: Vec<u8>, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    match encoding {
        Encoding::Identity => {
            if body.len() > max_bytes {
                return Err(too_large("decompressed body", max_bytes));
            }
            Ok(body)
        }
        Encoding::Gzip => inflate(flate2::read::MultiGzDecoder::new(&body[..]), "gzip", max_bytes),
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(&body[..])
                .map_err(|e| ApiError::BadRequest(format!("invalid zstd body: {e}")))?;
            inflate(decoder, "zstd", max_bytes)
        }
    }
}

fn inflate(reader: impl Read, what: &str, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut limited = reader.take(max_bytes as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("invalid {what} body: {e}")))?;
    if out.len() > max_bytes {
        return Err(too_large("decompressed body", max_bytes));
    }
    Ok(out)
}

fn too_large(what: &str, max_bytes: usize) -> ApiError {
    ApiError::TooLarge(format!("{what} is over the limit of {max_bytes} bytes"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Decodes `body` with a 1000-byte limit and returns the status or the decoded length.
    fn check(encoding: Encoding, body: Vec<u8>) -> Result<usize, u16> {
        decode(encoding, body, 1000)
            .map(|b| b.len())
            .map_err(|e| e.status().as_u16())
    }

    #[test]
    fn limits_apply_after_decompression() {
        assert_eq!(check(Encoding::Gzip, gzip(&[b'a'; 1000])), Ok(1000));
        assert_eq!(check(Encoding::Gzip, gzip(&[b'a'; 1001])), Err(413));
        assert_eq!(check(Encoding::Gzip, gzip(&vec![0; 50_000_000])), Err(413));
        let zstd_bomb = zstd::encode_all(&vec![0u8; 50_000_000][..], 3).unwrap();
        assert_eq!(check(Encoding::Zstd, zstd_bomb), Err(413));
        assert_eq!(
            check(Encoding::Zstd, zstd::encode_all(&b"{}"[..], 3).unwrap()),
            Ok(2)
        );
        assert_eq!(check(Encoding::Identity, vec![b' '; 1001]), Err(413));
    }

    #[test]
    fn corrupt_data_is_a_bad_request() {
        assert_eq!(check(Encoding::Gzip, b"not gzip".to_vec()), Err(400));
        assert_eq!(check(Encoding::Zstd, b"not zstd".to_vec()), Err(400));
        let mut truncated = gzip(&[b'a'; 500]);
        truncated.truncate(10);
        assert_eq!(check(Encoding::Gzip, truncated), Err(400));
    }
}
