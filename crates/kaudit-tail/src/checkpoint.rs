//! The checkpoint file: what was acknowledged of every known file, written crash-safely.
//!
//! Layout in the state directory: `checkpoints.json` (the stable file), `checkpoints.json.tmp`
//! (the next version while it is written) and `lock` (held while a tailer runs).
//!
//! Crash argument: a new version is written to the temporary file, flushed to disk, then
//! renamed over the stable file, then the directory is flushed. At every instant at least one
//! of the two files holds a whole, valid version. On load, a temporary file that decodes is
//! the newest complete version (the crash came between its flush and the rename), so it is
//! preferred; one that does not decode was interrupted while being written and is ignored.
//!
//! The format is a serde enum tagged by `version`. Old versions stay readable; only the
//! newest is written.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TailError;
use crate::fingerprint::Fingerprint;

/// Name of the stable checkpoint file in the state directory.
pub(crate) const STABLE_NAME: &str = "checkpoints.json";
/// Name of the temporary file a new version is written to.
pub(crate) const TMP_NAME: &str = "checkpoints.json.tmp";

/// One file identity as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredFile {
    pub(crate) fingerprint: Fingerprint,
    /// Acknowledged offset in uncompressed bytes: everything before it was shipped.
    pub(crate) offset: u64,
    /// Largest uncompressed size observed.
    pub(crate) size: u64,
    /// `size` is the file's final size (it was seen rotated and its length is known).
    pub(crate) size_is_final: bool,
    /// Nothing more will ever be read from this identity.
    pub(crate) finished: bool,
    /// The live path of the rotation family the file belongs to.
    pub(crate) family: String,
    /// The last path the file was seen under.
    pub(crate) path: String,
    /// When the file was last seen on disk (Unix seconds).
    pub(crate) last_seen_unix_secs: u64,
    /// Since when the file is gone from disk (Unix seconds), if it is.
    pub(crate) gone_since_unix_secs: Option<u64>,
    /// Everything from this offset on was already reported lost.
    pub(crate) lost_from: Option<u64>,
}

/// The file as serialized: a version-tagged enum.
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum StateFile {
    #[serde(rename = "1")]
    V1(StateV1),
}

#[derive(Serialize, Deserialize)]
struct StateV1 {
    files: Vec<FileV1>,
}

#[derive(Serialize, Deserialize)]
struct FileV1 {
    fingerprint: String,
    offset: u64,
    size: u64,
    #[serde(default)]
    size_is_final: bool,
    #[serde(default)]
    finished: bool,
    family: String,
    path: String,
    last_seen_unix_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gone_since_unix_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lost_from: Option<u64>,
}

/// Reads the newest complete checkpoint of `dir`; `None` when there is none (first start).
pub(crate) fn load(dir: &Path) -> Result<Option<Vec<StoredFile>>, TailError> {
    let tmp = dir.join(TMP_NAME);
    match fs::read(&tmp) {
        Ok(bytes) => {
            if let Ok(files) = decode(&tmp, &bytes) {
                return Ok(Some(files));
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(TailError::ReadCheckpoint { path: tmp, source }),
    }
    let stable = dir.join(STABLE_NAME);
    match fs::read(&stable) {
        Ok(bytes) => decode(&stable, &bytes).map(Some),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TailError::ReadCheckpoint { path: stable, source }),
    }
}

/// Replaces the checkpoint of `dir` with `files`, crash-safely (see the module doc).
pub(crate) fn store(dir: &Path, files: &[StoredFile]) -> Result<(), TailError> {
    let state = StateFile::V1(StateV1 {
        files: files.iter().map(encode_file).collect(),
    });
    let tmp = dir.join(TMP_NAME);
    let write_err = |path: &PathBuf| {
        let path = path.clone();
        move |source| TailError::WriteCheckpoint { path, source }
    };
    let body = serde_json::to_vec_pretty(&state).map_err(|err| write_err(&tmp)(io::Error::other(err)))?;
    write_synced(&tmp, &body).map_err(write_err(&tmp))?;
    let stable = dir.join(STABLE_NAME);
    fs::rename(&tmp, &stable).map_err(write_err(&stable))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(&dir.to_path_buf()))
}

fn write_synced(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(body)?;
    file.sync_all()
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<StoredFile>, TailError> {
    let state: StateFile = serde_json::from_slice(bytes).map_err(|source| TailError::ParseCheckpoint {
        path: path.to_path_buf(),
        source,
    })?;
    let StateFile::V1(state) = state;
    state
        .files
        .into_iter()
        .map(|file| {
            let fingerprint = file.fingerprint.parse().map_err(|_| TailError::BadFingerprint {
                path: path.to_path_buf(),
                fingerprint: file.fingerprint.clone(),
            })?;
            Ok(StoredFile {
                fingerprint,
                offset: file.offset,
                size: file.size,
                size_is_final: file.size_is_final,
                finished: file.finished,
                family: file.family,
                path: file.path,
                last_seen_unix_secs: file.last_seen_unix_secs,
                gone_since_unix_secs: file.gone_since_unix_secs,
                lost_from: file.lost_from,
            })
        })
        .collect()
}

fn encode_file(file: &StoredFile) -> FileV1 {
    FileV1 {
        fingerprint: file.fingerprint.to_string(),
        offset: file.offset,
        size: file.size,
        size_is_final: file.size_is_final,
        finished: file.finished,
        family: file.family.clone(),
        path: file.path.clone(),
        last_seen_unix_secs: file.last_seen_unix_secs,
        gone_since_unix_secs: file.gone_since_unix_secs,
        lost_from: file.lost_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset: u64) -> StoredFile {
        StoredFile {
            fingerprint: Fingerprint::from_u64(0x0123_4567_89ab_cdef),
            offset,
            size: 2048,
            size_is_final: true,
            finished: false,
            family: "/var/log/audit/audit.log".to_owned(),
            path: "/var/log/audit/audit-2024-05-01T10-11-12.345.log".to_owned(),
            last_seen_unix_secs: 1_714_558_272,
            gone_since_unix_secs: None,
            lost_from: None,
        }
    }

    /// What `load` returns for the given stable and temporary file contents.
    fn check_load(stable: Option<&str>, tmp: Option<&str>, expected: Result<Option<u64>, &str>) {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(body) = stable {
            fs::write(dir.path().join(STABLE_NAME), body).expect("write stable");
        }
        if let Some(body) = tmp {
            fs::write(dir.path().join(TMP_NAME), body).expect("write tmp");
        }
        let got = match load(dir.path()) {
            Ok(files) => Ok(files.map(|files| files.iter().map(|f| f.offset).sum())),
            Err(err) => Err(err.to_string()),
        };
        let expected = expected.map_err(|text| text.replace("DIR", &dir.path().display().to_string()));
        assert_eq!(got, expected, "stable {stable:?} tmp {tmp:?}");
    }

    fn body(offset: u64) -> String {
        let state = StateFile::V1(StateV1 {
            files: vec![encode_file(&sample(offset))],
        });
        serde_json::to_string(&state).expect("serializable")
    }

    #[test]
    fn load_prefers_a_valid_temporary_file() {
        let (old, new) = (body(10), body(20));
        let torn = &new[..new.len() / 2];
        check_load(None, None, Ok(None));
        check_load(Some(&old), None, Ok(Some(10)));
        check_load(Some(&old), Some(&new), Ok(Some(20)));
        check_load(Some(&old), Some(torn), Ok(Some(10)));
        check_load(Some(&old), Some(""), Ok(Some(10)));
        check_load(None, Some(&new), Ok(Some(20)));
        check_load(None, Some(torn), Ok(None));
        check_load(
            Some(torn),
            None,
            Err("checkpoint file DIR/checkpoints.json is not valid"),
        );
        check_load(
            Some(
                r#"{"version":"1","files":[{"fingerprint":"xyz","offset":1,"size":1,"family":"a","path":"a","last_seen_unix_secs":0}]}"#,
            ),
            None,
            Err("checkpoint file DIR/checkpoints.json holds an invalid fingerprint \"xyz\""),
        );
        check_load(
            Some(r#"{"version":"9","files":[]}"#),
            None,
            Err("checkpoint file DIR/checkpoints.json is not valid"),
        );
    }

    #[test]
    fn store_then_load_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut files = vec![sample(7), sample(9)];
        files[1].fingerprint = Fingerprint::from_u64(42);
        files[1].gone_since_unix_secs = Some(5);
        files[1].lost_from = Some(8);
        store(dir.path(), &files).expect("store");
        assert!(!dir.path().join(TMP_NAME).exists());
        assert_eq!(load(dir.path()).expect("load"), Some(files));
    }

    #[test]
    fn version_1_fixture_still_loads() {
        // A file written by version 1 of the format; keep it readable forever.
        let fixture = r#"{
          "version": "1",
          "files": [
            {
              "fingerprint": "0123456789abcdef",
              "offset": 512,
              "size": 2048,
              "size_is_final": true,
              "finished": false,
              "family": "/var/log/audit/audit.log",
              "path": "/var/log/audit/audit-2024-05-01T10-11-12.345.log",
              "last_seen_unix_secs": 1714558272
            }
          ]
        }"#;
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join(STABLE_NAME), fixture).expect("write fixture");
        assert_eq!(load(dir.path()).expect("load"), Some(vec![sample(512)]));
    }
}
