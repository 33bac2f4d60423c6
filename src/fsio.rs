//! Files written whole: a temporary file renamed over the old one, so a
//! crash leaves either the old file or the new one, never half of either.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: String, source: std::io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
}

pub fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError::Io { action, path: path.display().to_string(), source }
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it), with `mode` on Unix.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let tmp = path.with_extension("tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io_error("create", &tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_error("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error("replace", path))
}
