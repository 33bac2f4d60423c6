//! `--blocknotify COMMAND` (SPEC §6): run through `sh -c` each time the best
//! block changes, `%s` replaced by its hash, as bitcoind's. The command runs
//! on a thread of its own, never the node's; a failure is logged.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::types::BlockHash;

/// At most this many commands run at once; a tip change beyond it is logged
/// and skipped, so a hanging command cannot pile up processes without end.
const MAX_RUNNING: usize = 16;

#[derive(Clone, Debug)]
pub struct BlockNotify {
    command: String,
    running: Arc<AtomicUsize>,
}

impl BlockNotify {
    pub fn new(command: String) -> BlockNotify {
        BlockNotify { command, running: Arc::new(AtomicUsize::new(0)) }
    }

    /// Starts the command for the new tip `hash` and returns at once.
    pub fn notify(&self, hash: &BlockHash) {
        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%hash, "blocknotify skipped: {MAX_RUNNING} earlier commands are still running");
            return;
        }
        // The hash is 64 hex digits: nothing in it means anything to the shell.
        let command = self.command.replace("%s", &hash.to_string());
        let running = self.running.clone();
        let spawned = std::thread::Builder::new().name("blocknotify".into()).spawn(move || {
            let outcome = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output();
            match outcome {
                Ok(out) if out.status.success() => {}
                Ok(out) => tracing::warn!(
                    "blocknotify `{command}` failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).chars().take(200).collect::<String>().trim_end()
                ),
                Err(e) => tracing::warn!("blocknotify `{command}` could not run: {e}"),
            }
            running.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("blocknotify: cannot start a thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn runs_the_command_with_the_hash_and_does_not_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hashes");
        let notify = BlockNotify::new(format!("sleep 0.3; echo %s >> {}", out.display()));
        let hash = BlockHash::default();
        let started = Instant::now();
        notify.notify(&hash);
        assert!(started.elapsed() < Duration::from_millis(200), "the node never waits for the command");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&out).map_or(true, |t| t.is_empty()) {
            assert!(Instant::now() < deadline, "the command ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("{hash}\n"));
    }
}
