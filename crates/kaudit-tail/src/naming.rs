//! Lumberjack's file names: the live file, its timestamped backups and their `.gz` twins.
//!
//! A live file `<prefix><ext>` (`ext` is the last extension, Go's `filepath.Ext`) is rotated
//! to `<prefix>-<YYYY-MM-DDTHH-MM-SS.mmm><ext>` in the same directory, optionally compressed
//! to that name plus `.gz`. The fixed-width timestamp sorts in time order as text.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Length of `YYYY-MM-DDTHH-MM-SS.mmm`.
const STAMP_LEN: usize = 23;

/// The suffix lumberjack gives compressed backups.
const GZ: &[u8] = b".gz";

/// A rotation family: one live path and the backups rotated away from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FamilyName {
    /// The live file's path (it may not exist at the moment).
    pub(crate) live_path: PathBuf,
    /// The directory holding the live file and its backups.
    pub(crate) dir: PathBuf,
    prefix: Vec<u8>,
    ext: Vec<u8>,
}

/// A backup file name recognised in a family's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BackupName {
    /// The timestamp text, which orders backups in rotation order.
    pub(crate) stamp: Vec<u8>,
    /// Whether the name ends in `.gz`.
    pub(crate) gz: bool,
}

impl FamilyName {
    /// The family whose live file is `live_path`; `None` for a path without a file name.
    pub(crate) fn of_live(live_path: &Path) -> Option<FamilyName> {
        let name = live_path.file_name()?.as_encoded_bytes();
        let ext_len = go_ext(name).len();
        let dir = match live_path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(FamilyName {
            live_path: live_path.to_path_buf(),
            dir,
            prefix: name[..name.len() - ext_len].to_vec(),
            ext: name[name.len() - ext_len..].to_vec(),
        })
    }

    /// The family a matched path belongs to: the path's own family, or, when the path is
    /// itself a backup name, the family of the live file it was rotated from.
    pub(crate) fn of_match(path: &Path) -> Option<FamilyName> {
        let name = path.file_name()?.as_encoded_bytes();
        let Some(live_name) = live_name_of_backup(name) else {
            return FamilyName::of_live(path);
        };
        FamilyName::of_live(&path.with_file_name(OsStr::from_bytes(&live_name)))
    }

    /// Parses `file_name` as a backup of this family.
    pub(crate) fn backup(&self, file_name: &OsStr) -> Option<BackupName> {
        let name = file_name.as_encoded_bytes();
        let (name, gz) = match name.strip_suffix(GZ) {
            Some(plain) => (plain, true),
            None => (name, false),
        };
        let rest = name.strip_prefix(self.prefix.as_slice())?.strip_prefix(b"-")?;
        let stamp = rest.strip_suffix(self.ext.as_slice())?;
        is_stamp(stamp).then(|| BackupName {
            stamp: stamp.to_vec(),
            gz,
        })
    }
}

/// Go's `filepath.Ext` on a file name: from the last dot, or empty.
fn go_ext(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => &name[dot..],
        None => &[],
    }
}

/// For a backup file name, the live file name it was rotated from.
fn live_name_of_backup(name: &[u8]) -> Option<Vec<u8>> {
    let name = name.strip_suffix(GZ).unwrap_or(name);
    // With an extension (`audit-<stamp>.log`) or without one (`audit-<stamp>`, where Go's
    // Ext would wrongly take the milliseconds as the extension).
    let ext = go_ext(name);
    for ext_len in [ext.len(), 0] {
        let base = &name[..name.len() - ext_len];
        if base.len() < STAMP_LEN + 1 {
            continue;
        }
        let (head, stamp) = base.split_at(base.len() - STAMP_LEN);
        if let Some(prefix) = head.strip_suffix(b"-")
            && is_stamp(stamp)
        {
            let mut live = prefix.to_vec();
            live.extend_from_slice(&name[name.len() - ext_len..]);
            return Some(live);
        }
    }
    None
}

/// Whether `text` is a timestamp in lumberjack's backup layout `2006-01-02T15-04-05.000`
/// with plausible field ranges.
fn is_stamp(text: &[u8]) -> bool {
    const LAYOUT: &[u8; STAMP_LEN] = b"dddd-dd-ddTdd-dd-dd.ddd";
    if text.len() != STAMP_LEN {
        return false;
    }
    let shape = text
        .iter()
        .zip(LAYOUT)
        .all(|(&b, &l)| if l == b'd' { b.is_ascii_digit() } else { b == l });
    if !shape {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        text[range]
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    (1..=12).contains(&number(5..7))
        && (1..=31).contains(&number(8..10))
        && number(11..13) <= 23
        && number(14..16) <= 59
        && number(17..19) <= 59
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a family made from `live` classifies `file_name`.
    fn check_backup(live: &str, file_name: &str, expected: Option<(&str, bool)>) {
        let family = FamilyName::of_live(Path::new(live)).expect("test paths have a file name");
        let got = family.backup(OsStr::new(file_name));
        let got = got
            .as_ref()
            .map(|b| (std::str::from_utf8(&b.stamp).unwrap_or("?"), b.gz));
        assert_eq!(got, expected, "live {live:?} name {file_name:?}");
    }

    /// The live path a matched path is attributed to.
    fn check_match(path: &str, expected_live: &str) {
        let family = FamilyName::of_match(Path::new(path)).expect("test paths have a file name");
        assert_eq!(family.live_path, Path::new(expected_live), "{path:?}");
    }

    #[test]
    fn backups_are_recognised_by_prefix_stamp_and_extension() {
        let stamp = "2024-05-01T10-11-12.345";
        check_backup(
            "/a/audit.log",
            &format!("audit-{stamp}.log"),
            Some((stamp, false)),
        );
        check_backup(
            "/a/audit.log",
            &format!("audit-{stamp}.log.gz"),
            Some((stamp, true)),
        );
        check_backup("/a/audit", &format!("audit-{stamp}"), Some((stamp, false)));
        check_backup("/a/audit", &format!("audit-{stamp}.gz"), Some((stamp, true)));
        check_backup(
            "/a/kube-apiserver-audit.log",
            &format!("kube-apiserver-audit-{stamp}.log"),
            Some((stamp, false)),
        );
        check_backup(
            "/a/audit.json.log",
            &format!("audit.json-{stamp}.log"),
            Some((stamp, false)),
        );
        check_backup("/a/audit.log", "audit.log", None);
        check_backup("/a/audit.log", &format!("other-{stamp}.log"), None);
        check_backup("/a/audit.log", &format!("audit-{stamp}.txt"), None);
        check_backup("/a/audit.log", "audit-2024-13-01T10-11-12.345.log", None);
        check_backup("/a/audit.log", "audit-2024-05-01T10:11:12.345.log", None);
        check_backup("/a/audit.log", "audit-2024-05-01T10-11-12.34.log", None);
        check_backup("/a/audit.log", &format!("audit-{stamp}.log.gz.tmp"), None);
    }

    #[test]
    fn matched_backups_belong_to_their_live_file() {
        check_match("/a/audit.log", "/a/audit.log");
        check_match("/a/audit-2024-05-01T10-11-12.345.log", "/a/audit.log");
        check_match("/a/audit-2024-05-01T10-11-12.345.log.gz", "/a/audit.log");
        check_match("/a/audit-2024-05-01T10-11-12.345", "/a/audit");
        check_match("/a/audit-2024-05-01T10-11-12.345.gz", "/a/audit");
        check_match("/a/x-audit-2024-05-01T10-11-12.345.log", "/a/x-audit.log");
        check_match("relative.log", "relative.log");
    }

    #[test]
    fn stamps_sort_in_time_order() {
        let family = FamilyName::of_live(Path::new("audit.log")).expect("has a file name");
        let mut names = [
            "audit-2024-05-01T10-11-12.345.log",
            "audit-2023-12-31T23-59-59.999.log.gz",
            "audit-2024-05-01T10-11-12.045.log",
        ];
        names.sort_by_key(|name| family.backup(OsStr::new(name)).map(|b| b.stamp));
        assert_eq!(
            names,
            [
                "audit-2023-12-31T23-59-59.999.log.gz",
                "audit-2024-05-01T10-11-12.045.log",
                "audit-2024-05-01T10-11-12.345.log",
            ]
        );
    }
}
