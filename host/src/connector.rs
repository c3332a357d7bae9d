//! Where a job's files are: the source to read and the targets to write.
//!
//! Targets are written atomically: an output appears complete or not at
//! all. On Linux a target is first an unnamed file (`O_TMPFILE`) in the
//! target's directory, so nothing is visible and nothing is left behind if
//! the process dies, even by SIGKILL; it is fsynced and linked into place
//! only when the job commits. Where `O_TMPFILE` is not supported, a hidden
//! temporary file in the same directory is used and renamed on commit.
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use keylink_core::config::{ConnectorConfig, JobConfig, Location};

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("data connector `{name}` ({kind}) is not supported by this build; use a `local` connector")]
    Unsupported { name: String, kind: &'static str },
    #[error("target {0} already exists (use --overwrite to replace it)")]
    TargetExists(String),
    #[error("cannot open source {path}: {source}")]
    Source { path: String, source: io::Error },
    #[error("cannot write target {path}: {source}")]
    Target { path: String, source: io::Error },
}

/// The local path of a location: a `local` connector's root joined with the
/// location's path, or the path itself (relative to the working directory)
/// when no connector is named.
pub fn local_path(config: &JobConfig, loc: &Location) -> Result<PathBuf, ConnectorError> {
    match &loc.connector {
        None => Ok(PathBuf::from(loc.path())),
        Some(name) => match config.data_connectors.get(name) {
            Some(ConnectorConfig::Local { root }) => Ok(Path::new(root).join(loc.path())),
            Some(ConnectorConfig::S3 { .. }) => Err(ConnectorError::Unsupported { name: name.clone(), kind: "s3_bucket" }),
            Some(ConnectorConfig::Gcs { .. }) => {
                Err(ConnectorError::Unsupported { name: name.clone(), kind: "google_cloud_storage_bucket" })
            }
            Some(ConnectorConfig::Azure { .. }) => {
                Err(ConnectorError::Unsupported { name: name.clone(), kind: "azure_blob_storage_container" })
            }
            // validation guarantees references resolve
            None => Err(ConnectorError::Unsupported { name: name.clone(), kind: "unknown" }),
        },
    }
}

/// Opens the source for reading, with its size when known.
pub fn open_source(path: &Path) -> Result<(File, Option<u64>), ConnectorError> {
    let err = |source| ConnectorError::Source { path: path.display().to_string(), source };
    let f = File::open(path).map_err(err)?;
    let meta = f.metadata().map_err(err)?;
    if meta.is_dir() {
        return Err(err(io::Error::other("it is a directory")));
    }
    Ok((f, Some(meta.len())))
}

/// A target being written; invisible until [`AtomicFile::commit`].
pub struct AtomicFile {
    out: BufWriter<File>,
    target: PathBuf,
    overwrite: bool,
    /// Set when O_TMPFILE was not available: the hidden temporary's path.
    named_temp: Option<PathBuf>,
    committed: bool,
}

impl AtomicFile {
    /// Prepares `target`. Refuses an existing target unless `overwrite`.
    ///
    /// # Errors
    /// `TargetExists`, or `Target` when the directory cannot be written.
    pub fn create(target: &Path, overwrite: bool) -> Result<AtomicFile, ConnectorError> {
        let shown = target.display().to_string();
        if !overwrite && target.exists() {
            return Err(ConnectorError::TargetExists(shown));
        }
        let err = |source| ConnectorError::Target { path: shown.clone(), source };
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        let (file, named_temp) = match OpenOptions::new().write(true).mode(0o644).custom_flags(libc::O_TMPFILE).open(&dir) {
            Ok(f) => (f, None),
            Err(_) => {
                let name = format!(
                    ".{}.keylink-{}.tmp",
                    target.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
                    uuid::Uuid::new_v4()
                );
                let p = dir.join(name);
                let f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&p).map_err(err)?;
                (f, Some(p))
            }
        };
        Ok(AtomicFile { out: BufWriter::with_capacity(1 << 20, file), target: target.to_path_buf(), overwrite, named_temp, committed: false })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnectorError> {
        self.out.write_all(bytes).map_err(|source| ConnectorError::Target { path: self.target.display().to_string(), source })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, fsyncs and puts the file in place.
    ///
    /// # Errors
    /// `TargetExists` if the target appeared meanwhile (without overwrite).
    pub fn commit(mut self) -> Result<(), ConnectorError> {
        let shown = self.target.display().to_string();
        let err = |source| ConnectorError::Target { path: shown.clone(), source };
        self.out.flush().map_err(err)?;
        let file = self.out.get_ref();
        file.sync_all().map_err(err)?;
        let dir = match self.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match &self.named_temp {
            Some(tmp) => {
                if !self.overwrite && self.target.exists() {
                    return Err(ConnectorError::TargetExists(shown));
                }
                std::fs::rename(tmp, &self.target).map_err(err)?;
            }
            None => {
                use std::os::fd::AsRawFd;
                let proc_path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
                let link_to = |p: &Path| -> io::Result<()> {
                    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
                    // SAFETY: both paths are NUL-terminated C strings that live across the call.
                    let r = unsafe {
                        libc::linkat(libc::AT_FDCWD, proc_path.as_ptr().cast(), libc::AT_FDCWD, c.as_ptr(), libc::AT_SYMLINK_FOLLOW)
                    };
                    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
                };
                if self.overwrite {
                    let tmp = dir.join(format!(".keylink-{}.tmp", uuid::Uuid::new_v4()));
                    link_to(&tmp).map_err(err)?;
                    if let Err(e) = std::fs::rename(&tmp, &self.target) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(err(e));
                    }
                } else {
                    link_to(&self.target).map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists { ConnectorError::TargetExists(shown.clone()) } else { err(e) }
                    })?;
                }
            }
        }
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            if let Some(tmp) = &self.named_temp {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}
