//! The node's mining threads: plain blocking `std::thread`s (no rayon) that
//! hash the current template until a block is found or the template is
//! replaced, and hand found blocks to the async node over a channel.
//!
//! This is an edge module: it reads the wall clock, which the consensus core
//! never does, to keep the header's time current while hashing.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;

use crate::miner::{mine, MineOutcome};
use crate::types::Block;

/// Nonces a thread tries between two refreshes of the header's time (and two
/// updates of the hash counter): tens of milliseconds of work, so the counter
/// loses little when a template is abandoned mid-round. Cancellation itself is
/// checked far more often, inside [`mine`].
const ROUND_NONCES: u64 = 1 << 16;

/// How long a thread sleeps between looks at the clock and the cancel flag
/// while it waits for a template's `not_before`.
const PACING_STEP: Duration = Duration::from_millis(5);

/// What to mine.
#[derive(Debug, Clone)]
pub struct Template {
    /// The unmined block; its header's time is the earliest valid time.
    pub block: Block,
    /// Unix seconds: no hashing before this moment. Regtest's proof-of-work
    /// limit is met at once, so the node sets it to the parent's time plus the
    /// block time to keep blocks at the network's pace; 0 hashes at once.
    pub not_before: u64,
}

/// One template as the threads see it.
struct Job {
    generation: u64,
    template: Template,
    /// Set when the template is replaced, cleared or the miner stops, and when
    /// a block is found for it: every thread then drops it.
    cancel: AtomicBool,
    /// Set by the first thread that finds a block, so no template yields two.
    found: AtomicBool,
}

struct State {
    /// Counts templates; a thread works on each generation at most once.
    generation: u64,
    job: Option<Arc<Job>>,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when `state` changes (a new template, or stop).
    changed: Condvar,
    hashes: AtomicU64,
}

impl Shared {
    /// The state, even if a thread panicked while holding the lock: every
    /// update of it is a single assignment, so it is never left half-done.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Mining threads working on one template at a time.
pub struct Miner {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Miner {
    /// Starts `threads` mining threads (at least one), idle until the first
    /// [`Miner::set_template`]. Found blocks are sent on `found`.
    ///
    /// A thread the operating system refuses to start is logged and left out;
    /// [`Miner::threads`] tells how many run.
    pub fn start(threads: usize, found: UnboundedSender<Block>) -> Miner {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State { generation: 0, job: None, stopping: false }),
            changed: Condvar::new(),
            hashes: AtomicU64::new(0),
        });
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let worker = Worker {
                shared: shared.clone(),
                found: found.clone(),
                first_nonce: index as u64,
                stride: threads as u64,
            };
            match std::thread::Builder::new().name(format!("miner-{index}")).spawn(move || worker.run()) {
                Ok(handle) => handles.push(handle),
                Err(e) => tracing::warn!(thread = index, error = %e, "cannot start a mining thread"),
            }
        }
        Miner { shared, handles }
    }

    /// Abandons the current template at once (every thread notices within a
    /// few milliseconds) and hashes `template` instead.
    pub fn set_template(&self, template: Template) {
        let mut state = self.shared.lock();
        if state.stopping {
            return;
        }
        if let Some(old) = state.job.take() {
            old.cancel.store(true, Ordering::Relaxed);
        }
        state.generation = state.generation.wrapping_add(1);
        state.job = Some(Arc::new(Job {
            generation: state.generation,
            template,
            cancel: AtomicBool::new(false),
            found: AtomicBool::new(false),
        }));
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Stops hashing until the next template.
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        if let Some(old) = state.job.take() {
            old.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// The number of running mining threads.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Hashes tried since the start, over all threads: sample it twice for a
    /// hash rate.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// Stops every thread and waits for them to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        {
            let mut state = self.shared.lock();
            state.stopping = true;
            if let Some(old) = state.job.take() {
                old.cancel.store(true, Ordering::Relaxed);
            }
        }
        self.shared.changed.notify_all();
        for handle in self.handles.drain(..) {
            if handle.join().is_err() {
                tracing::error!("a mining thread panicked");
            }
        }
    }
}

impl Drop for Miner {
    /// A miner that is dropped without [`Miner::stop`] still stops its threads
    /// rather than leaving them hashing forever.
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One mining thread: it hashes nonces `first_nonce + k * stride`.
struct Worker {
    shared: Arc<Shared>,
    found: UnboundedSender<Block>,
    first_nonce: u64,
    stride: u64,
}

impl Worker {
    fn run(self) {
        let mut last_generation = 0;
        while let Some(job) = self.next_job(last_generation) {
            last_generation = job.generation;
            self.work_on(&job);
        }
    }

    /// Waits for a template this thread has not worked on yet; `None` once
    /// the miner stops.
    fn next_job(&self, last_generation: u64) -> Option<Arc<Job>> {
        let mut state = self.shared.lock();
        loop {
            if state.stopping {
                return None;
            }
            if let Some(job) = &state.job {
                if job.generation != last_generation {
                    return Some(job.clone());
                }
            }
            state = self.shared.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Hashes `job` until a block is found (by any thread) or it is cancelled.
    fn work_on(&self, job: &Job) {
        let not_before = Duration::from_secs(job.template.not_before);
        loop {
            if job.cancel.load(Ordering::Relaxed) {
                return;
            }
            let now = unix_time();
            if now >= not_before {
                break;
            }
            std::thread::sleep(PACING_STEP.min(not_before.saturating_sub(now)));
        }

        let mut header = job.template.block.header;
        let mut start = self.first_nonce;
        loop {
            header.time = job.template.block.header.time.max(unix_time().as_secs());
            match mine(&header, start, self.stride, ROUND_NONCES, &job.cancel) {
                MineOutcome::Found(winner) => {
                    let tried = winner.nonce.wrapping_sub(start) / self.stride + 1;
                    self.shared.hashes.fetch_add(tried, Ordering::Relaxed);
                    // The other threads stop hashing a template that is done.
                    job.cancel.store(true, Ordering::Relaxed);
                    if !job.found.swap(true, Ordering::AcqRel) {
                        let block = Block { header: winner, body: job.template.block.body.clone() };
                        tracing::debug!(height = winner.height, hash = %block.hash(), "mined a block");
                        if self.found.send(block).is_err() {
                            tracing::debug!("a block was mined after the node stopped listening");
                        }
                    }
                    return;
                }
                // The nonces tried before the cancel are not counted: at most
                // one round's worth, a small error in a hash rate.
                MineOutcome::Cancelled => return,
                MineOutcome::Exhausted => {
                    self.shared.hashes.fetch_add(ROUND_NONCES, Ordering::Relaxed);
                    start = start.wrapping_add(self.stride.wrapping_mul(ROUND_NONCES));
                }
            }
        }
    }
}

/// The time since the Unix epoch; zero for a clock set before it.
fn unix_time() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::NextBlock;
    use crate::crypto::Target;
    use crate::miner::assemble_block;
    use crate::testkit::{regtest, TestKey};
    use crate::types::{Address, CompactTarget};
    use std::time::Instant;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    /// Never met: one hash in 2^256 would do.
    const IMPOSSIBLE: CompactTarget = CompactTarget(0x0300_0001);

    /// An unmined block on regtest's genesis paying `miner`, with `target`.
    fn template(miner: Address, target: CompactTarget, not_before: u64) -> Template {
        let params = regtest();
        let next = NextBlock { prev: params.genesis_hash, height: 1, target, min_time: params.genesis.header.time + 1 };
        let block = assemble_block(&next, unix_time().as_secs(), miner, &[]).unwrap();
        Template { block, not_before }
    }

    fn meets_its_target(block: &Block) -> bool {
        Target::from_compact(block.header.target).unwrap().is_met_by(&block.hash())
    }

    async fn next_block(rx: &mut UnboundedReceiver<Block>, within: Duration) -> Block {
        tokio::time::timeout(within, rx.recv())
            .await
            .expect("a block arrives before the deadline")
            .expect("the channel is open")
    }

    fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[tokio::test]
    async fn a_found_block_meets_its_target_and_carries_the_template_body() {
        let (tx, mut rx) = unbounded_channel();
        let miner = Miner::start(2, tx);
        assert_eq!(miner.threads(), 2);
        let template = template(TestKey::new(1).address, regtest().pow_limit, 0);
        miner.set_template(template.clone());
        let block = next_block(&mut rx, Duration::from_secs(10)).await;
        assert!(meets_its_target(&block));
        assert_eq!(block.body, template.block.body);
        assert_eq!(block.header.body_commitment, template.block.header.body_commitment);
        assert_eq!(block.header.prev, template.block.header.prev);
        assert!(block.header.time >= template.block.header.time);
        assert!(miner.hashes() >= 1);
        miner.stop();
    }

    #[tokio::test]
    async fn a_new_template_abandons_the_old_one_at_once() {
        let (tx, mut rx) = unbounded_channel();
        let miner = Miner::start(2, tx);
        miner.set_template(template(TestKey::new(1).address, IMPOSSIBLE, 0));
        wait_until("the impossible template is being hashed", Duration::from_secs(10), || miner.hashes() > 0);

        let easy = template(TestKey::new(2).address, regtest().pow_limit, 0);
        let replaced_at = Instant::now();
        miner.set_template(easy.clone());
        let block = next_block(&mut rx, Duration::from_secs(10)).await;
        assert_eq!(block.body, easy.block.body, "the block is built on the new template");
        assert!(meets_its_target(&block));
        assert!(replaced_at.elapsed() < Duration::from_secs(2), "took {:?}", replaced_at.elapsed());
        miner.stop();
    }

    #[tokio::test]
    async fn one_template_yields_one_block_however_many_threads_find_one() {
        let (tx, mut rx) = unbounded_channel();
        let miner = Miner::start(8, tx);
        miner.set_template(template(TestKey::new(1).address, regtest().pow_limit, 0));
        next_block(&mut rx, Duration::from_secs(10)).await;
        // Once every thread is joined, any second block would be in the channel.
        miner.stop();
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn each_template_is_mined_after_the_last_one_was_found() {
        let (tx, mut rx) = unbounded_channel();
        let miner = Miner::start(1, tx);
        for seed in 1..=3 {
            let template = template(TestKey::new(seed).address, regtest().pow_limit, 0);
            miner.set_template(template.clone());
            let block = next_block(&mut rx, Duration::from_secs(10)).await;
            assert_eq!(block.body, template.block.body);
        }
        miner.stop();
    }

    #[tokio::test]
    async fn no_hashing_before_not_before() {
        let (tx, mut rx) = unbounded_channel();
        let miner = Miner::start(2, tx);
        let not_before = unix_time().as_secs() + 2;
        miner.set_template(template(TestKey::new(1).address, regtest().pow_limit, not_before));
        let block = next_block(&mut rx, Duration::from_secs(10)).await;
        assert!(unix_time() >= Duration::from_secs(not_before), "arrived before not_before");
        assert!(block.header.time >= not_before, "header time {} < {not_before}", block.header.time);
        assert!(meets_its_target(&block));
        miner.stop();
    }

    #[tokio::test]
    async fn a_cleared_miner_waits_for_the_next_template() {
        let (tx, mut rx) = unbounded_channel();
        let miner = Miner::start(2, tx);
        miner.set_template(template(TestKey::new(1).address, IMPOSSIBLE, 0));
        wait_until("hashing starts", Duration::from_secs(10), || miner.hashes() > 0);
        miner.clear();
        let template = template(TestKey::new(2).address, regtest().pow_limit, 0);
        miner.set_template(template.clone());
        let block = next_block(&mut rx, Duration::from_secs(10)).await;
        assert_eq!(block.body, template.block.body);
        miner.stop();
    }

    #[test]
    fn stop_joins_promptly_while_hashing_and_while_pacing() {
        let (tx, _rx) = unbounded_channel();
        let miner = Miner::start(4, tx);
        miner.set_template(template(TestKey::new(1).address, IMPOSSIBLE, 0));
        wait_until("hashing starts", Duration::from_secs(10), || miner.hashes() > 0);
        let stopping = Instant::now();
        miner.stop();
        assert!(stopping.elapsed() < Duration::from_secs(1), "took {:?}", stopping.elapsed());

        let (tx, _rx) = unbounded_channel();
        let miner = Miner::start(2, tx);
        miner.set_template(template(TestKey::new(1).address, regtest().pow_limit, u64::MAX));
        let stopping = Instant::now();
        miner.stop();
        assert!(stopping.elapsed() < Duration::from_secs(1), "took {:?}", stopping.elapsed());
    }

    #[test]
    fn an_idle_miner_stops_and_a_dropped_one_stops_too() {
        let (tx, mut rx) = unbounded_channel::<Block>();
        Miner::start(3, tx).stop();
        // Every thread's sender is gone: they all ended.
        assert!(matches!(rx.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)));

        let (tx, mut rx) = unbounded_channel::<Block>();
        let miner = Miner::start(3, tx);
        miner.set_template(template(TestKey::new(1).address, IMPOSSIBLE, 0));
        drop(miner);
        assert!(matches!(rx.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)));
    }
}
