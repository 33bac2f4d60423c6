use super::*;
use crate::state::MemoryLedger;
use crate::testkit::{block_on_parent, block_on_tip, extend, fund, now_for, regtest, TestKey};
use crate::types::{Address, Amount, COIN};

fn new_chain() -> Chain<MemoryStore> {
    Chain::open(regtest(), MemoryStore::default()).unwrap()
}

fn accept(chain: &mut Chain<MemoryStore>, block: Block) -> Result<BlockAccepted, ChainError> {
    let now = now_for(chain).max(block.header.time);
    chain.accept_block(block, now, &NoSignatures)
}

fn ledger(chain: &Chain<MemoryStore>) -> MemoryLedger {
    chain.store().ledger.clone()
}

/// A chain whose first `keys` are funded, with the keys.
fn funded(n: u64) -> (Chain<MemoryStore>, Vec<TestKey>) {
    let keys: Vec<TestKey> = (0..n).map(TestKey::new).collect();
    let mut chain = new_chain();
    fund(&mut chain, &keys).unwrap();
    (chain, keys)
}

#[test]
fn opens_with_the_genesis_block() {
    let chain = new_chain();
    assert_eq!(chain.height(), 0);
    assert_eq!(chain.tip(), regtest().genesis_hash);
}

#[test]
fn funding_matures_rewards_after_the_maturity() {
    let (chain, keys) = funded(2);
    let account = chain.account(&keys[0].address).unwrap();
    assert_eq!(account.balance, Amount(50 * COIN));
    assert_eq!(account.immature, Amount::ZERO);
    // The burn address's latest rewards are still immature.
    let burn = chain.account(&Address([0xee; 20])).unwrap();
    assert_eq!(burn.immature, Amount(50 * COIN * regtest().coinbase_maturity));
}

#[test]
fn a_payment_moves_balance_and_nonce() {
    let (mut chain, keys) = funded(2);
    let params = regtest();
    let pay = keys[0].pay(params.chain_id, keys[1].address, 10 * COIN, 1_000, 0);
    extend(&mut chain, keys[1].address, &[pay]).unwrap();
    let a = chain.account(&keys[0].address).unwrap();
    let b = chain.account(&keys[1].address).unwrap();
    assert_eq!((a.balance, a.nonce), (Amount(40 * COIN - 1_000), 1));
    assert_eq!(b.balance, Amount(60 * COIN));
    assert_eq!(b.immature, Amount(50 * COIN + 1_000), "the fee goes to the miner, immature");
}

#[test]
fn the_first_seen_block_wins_a_tie() {
    let mut chain = new_chain();
    extend(&mut chain, Address([1; 20]), &[]).unwrap();
    let parent = chain.tip();
    let first = block_on_parent(&chain, &parent, Address([2; 20]), &[]);
    let second = block_on_parent(&chain, &parent, Address([3; 20]), &[]);
    assert!(matches!(accept(&mut chain, first.clone()).unwrap(), BlockAccepted::BestChain(_)));
    assert_eq!(accept(&mut chain, second).unwrap(), BlockAccepted::SideChain);
    assert_eq!(chain.tip(), first.hash());
}

#[test]
fn an_unrequested_block_with_less_work_is_refused_and_not_stored() {
    let mut chain = new_chain();
    let genesis = chain.tip();
    for _ in 0..3 {
        extend(&mut chain, Address([1; 20]), &[]).unwrap();
    }
    let fork = block_on_parent(&chain, &genesis, Address([2; 20]), &[]);
    let now = now_for(&chain);
    assert_eq!(
        chain.accept_unrequested_block(fork.clone(), now, &NoSignatures),
        Err(ChainError::Invalid(ValidationError::LessWorkThanBest))
    );
    assert!(!chain.knows(&fork.hash()));
    assert!(chain.store().block(&fork.hash()).unwrap().is_none(), "no disk for a losing fork");
    // The same block asked for along a header chain (sync) is stored as a side chain.
    assert_eq!(chain.accept_block(fork.clone(), now, &NoSignatures), Ok(BlockAccepted::SideChain));
    assert!(chain.store().block(&fork.hash()).unwrap().is_some());
}

#[test]
fn an_unrequested_block_with_as_much_work_as_the_best_is_stored() {
    let mut chain = new_chain();
    extend(&mut chain, Address([1; 20]), &[]).unwrap();
    let parent = chain.best_hash_at(0).unwrap();
    let rival = block_on_parent(&chain, &parent, Address([2; 20]), &[]);
    let now = now_for(&chain);
    // A competing tip of equal work: stored (and relayed), the first seen stays best.
    assert_eq!(chain.accept_unrequested_block(rival.clone(), now, &NoSignatures), Ok(BlockAccepted::SideChain));
    assert!(chain.knows(&rival.hash()));
    let next = block_on_parent(&chain, &rival.hash(), Address([2; 20]), &[]);
    assert!(matches!(chain.accept_unrequested_block(next, now, &NoSignatures), Ok(BlockAccepted::BestChain(_))));
}

#[test]
fn a_relayed_branch_arriving_children_first_is_judged_by_its_whole_work() {
    let mut chain = new_chain();
    let genesis = chain.tip();
    extend(&mut chain, Address([1; 20]), &[]).unwrap();
    // A rival branch of two blocks, built elsewhere, relayed child first.
    let mut other = new_chain();
    let r1 = block_on_parent(&other, &genesis, Address([2; 20]), &[]);
    accept(&mut other, r1.clone()).unwrap();
    let r2 = block_on_tip(&other, Address([2; 20]), &[]);
    let now = now_for(&chain);
    assert_eq!(
        chain.accept_unrequested_block(r2.clone(), now, &NoSignatures),
        Err(ChainError::Invalid(ValidationError::UnknownParent(r1.hash())))
    );
    // r1 alone ties the best chain at most; with its waiting child it has more work.
    match chain.accept_unrequested_block(r1, now, &NoSignatures).unwrap() {
        BlockAccepted::BestChain(update) => assert_eq!(update.connected.len(), 2),
        other => panic!("expected the branch to become best, got {other:?}"),
    }
    assert_eq!(chain.tip(), r2.hash());
}

#[test]
fn a_relayed_orphan_keeps_its_arrival_when_its_parent_is_requested() {
    let mut chain = new_chain();
    let genesis = chain.tip();
    for _ in 0..3 {
        extend(&mut chain, Address([1; 20]), &[]).unwrap();
    }
    let mut other = new_chain();
    let f1 = block_on_parent(&other, &genesis, Address([2; 20]), &[]);
    accept(&mut other, f1.clone()).unwrap();
    let f2 = block_on_tip(&other, Address([2; 20]), &[]);
    let now = now_for(&chain);
    let _ = chain.accept_unrequested_block(f2.clone(), now, &NoSignatures);
    // Asking for the parent does not make its relayed, losing child stored.
    assert_eq!(chain.accept_block(f1.clone(), now, &NoSignatures), Ok(BlockAccepted::SideChain));
    assert!(chain.knows(&f1.hash()));
    assert!(!chain.knows(&f2.hash()), "the relayed child of a losing fork is not stored");
}

#[test]
fn a_duplicate_block_is_reported() {
    let mut chain = new_chain();
    let block = block_on_tip(&chain, Address([1; 20]), &[]);
    accept(&mut chain, block.clone()).unwrap();
    assert_eq!(accept(&mut chain, block), Err(ChainError::Invalid(ValidationError::DuplicateBlock)));
}

#[test]
fn orphans_wait_for_their_parent() {
    let mut chain = new_chain();
    let mut other = new_chain();
    let b1 = block_on_tip(&other, Address([1; 20]), &[]);
    accept(&mut other, b1.clone()).unwrap();
    let b2 = block_on_tip(&other, Address([1; 20]), &[]);
    assert_eq!(accept(&mut chain, b2.clone()), Err(ChainError::Invalid(ValidationError::UnknownParent(b1.hash()))));
    assert_eq!(chain.orphan_count(), 1);
    match accept(&mut chain, b1).unwrap() {
        BlockAccepted::BestChain(update) => assert_eq!(update.connected.len(), 2),
        other => panic!("expected both blocks connected, got {other:?}"),
    }
    assert_eq!(chain.tip(), b2.hash());
    assert_eq!(chain.orphan_count(), 0);
}

/// Builds `depth` blocks with payments from `payer` on `parent`, accepting each.
fn branch(
    chain: &mut Chain<MemoryStore>,
    parent: BlockHash,
    depth: usize,
    miner: Address,
    payer: Option<(&TestKey, u64, Address)>,
) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut tip = parent;
    for i in 0..depth {
        let payments = match payer {
            Some((key, first_nonce, to)) => {
                vec![key.pay(regtest().chain_id, to, COIN / 2, 1_000 + i as u64, first_nonce + i as u64)]
            }
            None => vec![],
        };
        let block = block_on_parent(chain, &tip, miner, &payments);
        tip = block.hash();
        // Side-chain blocks are accepted without connecting; the last may reorganise.
        accept(chain, block.clone()).unwrap();
        blocks.push(block);
    }
    blocks
}

fn reorg_restores_exact_state(depth: usize) {
    let (mut chain, keys) = funded(3);
    let fork = chain.tip();
    let at_fork = ledger(&chain);

    // Branch A: payments from key 0, `depth` blocks.
    let a = branch(&mut chain, fork, depth, Address([0xa; 20]), Some((&keys[0], 0, keys[1].address)));
    assert_eq!(chain.tip(), a.last().unwrap().hash());
    assert_eq!(chain.account(&keys[0].address).unwrap().nonce, depth as u64);

    // Branch B: one block longer, payments from key 2 instead.
    let b = branch(&mut chain, fork, depth + 1, Address([0xb; 20]), Some((&keys[2], 0, keys[1].address)));
    assert_eq!(chain.tip(), b.last().unwrap().hash(), "the chain with more work wins");
    assert_eq!(chain.account(&keys[0].address).unwrap().nonce, 0, "branch A's payments are undone");
    assert_eq!(chain.account(&keys[2].address).unwrap().nonce, depth as u64 + 1);

    // The same ledger as a node that only ever saw branch B.
    let mut fresh = new_chain();
    fund(&mut fresh, &keys).unwrap();
    assert_eq!(ledger(&fresh), at_fork);
    for block in &b {
        accept(&mut fresh, block.clone()).unwrap();
    }
    assert_eq!(ledger(&chain), ledger(&fresh));

    // And back: branch A grows heavier again and undoing B restores A's exact state.
    let a_more = branch(&mut chain, a.last().unwrap().hash(), 2, Address([0xa; 20]), None);
    assert_eq!(chain.tip(), a_more.last().unwrap().hash());
    let mut only_a = new_chain();
    fund(&mut only_a, &keys).unwrap();
    for block in a.iter().chain(&a_more) {
        accept(&mut only_a, block.clone()).unwrap();
    }
    assert_eq!(ledger(&chain), ledger(&only_a));
    assert_eq!(chain.store().ledger.account(&keys[2].address).map(|a| a.nonce), Some(0));
}

#[test]
fn reorg_of_depth_1_restores_exact_balances_and_nonces() {
    reorg_restores_exact_state(1);
}

#[test]
fn reorg_of_depth_50_restores_exact_balances_and_nonces() {
    reorg_restores_exact_state(50);
}

#[test]
fn a_heavier_branch_with_an_invalid_block_is_refused_and_the_old_chain_kept() {
    let (mut chain, keys) = funded(2);
    let fork = chain.tip();
    let good = branch(&mut chain, fork, 1, Address([0xa; 20]), None);
    let before = ledger(&chain);
    // A side block whose payment replays nonce 5 (the account's is 0): valid
    // signature, broken ledger rule, found only when connecting.
    let side1 = block_on_parent(&chain, &fork, Address([0xb; 20]), &[]);
    accept(&mut chain, side1.clone()).unwrap();
    let bad_pay = keys[0].pay(regtest().chain_id, keys[1].address, COIN, 1_000, 5);
    let side2 = block_on_parent(&chain, &side1.hash(), Address([0xb; 20]), &[bad_pay]);
    assert_eq!(
        accept(&mut chain, side2.clone()),
        Err(ChainError::Invalid(ValidationError::WrongNonce { expected: 0, found: 5 }))
    );
    assert_eq!(chain.tip(), good[0].hash());
    assert_eq!(ledger(&chain), before);
    assert!(chain.entry(&side2.hash()).unwrap().invalid);
    // Its descendants are refused without another look.
    let side3 = block_on_parent(&chain, &side2.hash(), Address([0xb; 20]), &[]);
    assert_eq!(accept(&mut chain, side3), Err(ChainError::Invalid(ValidationError::InvalidAncestor)));
}

#[test]
fn reopening_a_store_restores_the_chain() {
    let (mut chain, keys) = funded(2);
    let pay = keys[0].pay(regtest().chain_id, keys[1].address, COIN, 1_000, 0);
    extend(&mut chain, keys[1].address, &[pay]).unwrap();
    let tip = chain.tip();
    let height = chain.height();
    let work = chain.tip_work();
    let store = chain.store().clone();
    let reopened = Chain::open(regtest(), store).unwrap();
    assert_eq!((reopened.tip(), reopened.height(), reopened.tip_work()), (tip, height, work));
}

#[test]
fn the_locator_thins_out_and_headers_follow_the_shared_block() {
    let mut chain = new_chain();
    for _ in 0..40 {
        extend(&mut chain, Address([1; 20]), &[]).unwrap();
    }
    let locator = chain.locator();
    assert_eq!(locator.first(), Some(&chain.tip()));
    assert_eq!(locator.last(), Some(&regtest().genesis_hash));
    assert!(locator.len() < 20, "doubling steps after the first ten: {}", locator.len());
    // A peer at height 25 gets the headers from 26 on.
    let theirs = vec![chain.best_hash_at(25).unwrap(), regtest().genesis_hash];
    let headers = chain.headers_after(&theirs, 100);
    assert_eq!(headers.first().map(|h| h.height), Some(26));
    assert_eq!(headers.len(), 15);
    assert_eq!(chain.headers_after(&theirs, 5).len(), 5);
    // An unknown locator starts after genesis.
    assert_eq!(chain.headers_after(&[BlockHash::default()], 1000).len(), 40);
}

#[test]
fn a_store_of_another_network_is_refused() {
    let chain = new_chain();
    let store = chain.store().clone();
    assert!(matches!(Chain::open(Params::get(crate::types::Network::Test), store), Err(ChainError::Store(_))));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Whatever order a tree of blocks arrives in, the chain ends on a
        /// most-work tip with the same ledger as a node that saw only that chain.
        #[test]
        fn arrival_order_does_not_change_the_outcome(
            shape in proptest::collection::vec(0usize..100, 1..14),
            order in proptest::collection::vec(any::<u32>(), 14),
        ) {
            let mut builder = new_chain();
            let mut blocks: Vec<Block> = Vec::new();
            for (i, parent_pick) in shape.iter().enumerate() {
                // Parent: genesis or any earlier block.
                let parent = if blocks.is_empty() || parent_pick % 3 == 0 && i > 0 && *parent_pick < 33 {
                    regtest().genesis_hash
                } else {
                    blocks[parent_pick % blocks.len()].hash()
                };
                let block = block_on_parent(&builder, &parent, Address([i as u8; 20]), &[]);
                accept(&mut builder, block.clone()).unwrap();
                blocks.push(block);
            }
            let mut shuffled: Vec<(u32, Block)> = order.iter().copied().zip(blocks.iter().cloned()).collect();
            shuffled.sort_by_key(|(k, _)| *k);
            let mut chain = new_chain();
            for (_, block) in shuffled {
                let _ = accept(&mut chain, block);
            }
            let best_height = blocks.iter().map(|b| b.height()).max().unwrap();
            prop_assert_eq!(chain.height(), best_height);
            prop_assert_eq!(chain.tip_work(), builder.tip_work());
            // The ledger equals that of a node fed only the winning chain, in order.
            let mut path = Vec::new();
            let mut cursor = chain.tip();
            while cursor != regtest().genesis_hash {
                let b = blocks.iter().find(|b| b.hash() == cursor).unwrap().clone();
                cursor = b.header.prev;
                path.push(b);
            }
            let mut linear = new_chain();
            for b in path.into_iter().rev() {
                accept(&mut linear, b).unwrap();
            }
            prop_assert_eq!(ledger(&chain), ledger(&linear));
        }
    }
}

// ---- header chains from a peer ---------------------------------------------------

/// A chain of `n` blocks on top of genesis, and the same chain at genesis.
fn theirs_and_ours(n: usize) -> (Chain<MemoryStore>, Chain<MemoryStore>) {
    let ours = new_chain();
    let mut theirs = new_chain();
    for _ in 0..n {
        extend(&mut theirs, Address([7; 20]), &[]).unwrap();
    }
    (theirs, ours)
}

fn headers_of(chain: &Chain<MemoryStore>) -> Vec<BlockHeader> {
    (1..=chain.height()).map(|h| chain.entry(&chain.best_hash_at(h).unwrap()).unwrap().header).collect()
}

/// `header` mined again after a change, so that its proof of work holds.
fn remined(header: BlockHeader) -> BlockHeader {
    let never = std::sync::atomic::AtomicBool::new(false);
    match crate::miner::mine(&header, 0, 1, 1 << 24, &never) {
        crate::miner::MineOutcome::Found(header) => header,
        other => panic!("no nonce found: {other:?}"),
    }
}

#[test]
fn a_valid_header_chain_counts_the_same_work_as_its_blocks() {
    let (theirs, ours) = theirs_and_ours(30);
    let headers = headers_of(&theirs);
    let now = now_for(&theirs);
    let (cursor, usable) = ours.check_headers(&headers, now).unwrap();
    assert_eq!(usable, 30);
    assert_eq!(cursor.work(), theirs.tip_work());
    assert_eq!(cursor.tip().hash(), theirs.tip());
    // In two replies, the second continuing from the cursor: the same.
    let (mut cursor, usable) = ours.check_headers(&headers[..12], now).unwrap();
    assert_eq!((usable, cursor.height()), (12, 12));
    assert_eq!(ours.extend_headers(&mut cursor, &headers[12..], now), Ok(18));
    assert_eq!(cursor.work(), theirs.tip_work());
    // Headers we already store check too (a peer's reply may start below our tip).
    assert_eq!(theirs.check_headers(&headers[5..], now).map(|(c, n)| (c.work(), n)), Ok((theirs.tip_work(), 25)));
}

#[test]
fn headers_that_do_not_link_are_refused_where_they_break() {
    let (theirs, ours) = theirs_and_ours(10);
    let mut headers = headers_of(&theirs);
    let now = now_for(&theirs);
    assert_eq!(ours.check_headers(&headers[1..], now), Err(HeaderChainError::NotLinked { at: 0 }), "unknown parent");
    headers.swap(3, 4);
    assert_eq!(ours.check_headers(&headers, now), Err(HeaderChainError::NotLinked { at: 3 }));
    // A cursor refuses headers that do not follow its tip.
    let (mut cursor, _) = ours.check_headers(&headers[..2], now).unwrap();
    let before = cursor.clone();
    assert_eq!(ours.extend_headers(&mut cursor, &headers[5..], now), Err(HeaderChainError::NotLinked { at: 0 }));
    assert_eq!(cursor, before, "a refused reply moves nothing");
}

#[test]
fn a_header_without_its_proof_of_work_is_refused() {
    let (theirs, ours) = theirs_and_ours(6);
    let mut headers = headers_of(&theirs);
    let now = now_for(&theirs);
    // Half of all hashes meet the regtest limit: a few nonces find one that does not.
    let bad = &mut headers[4];
    while rules::check_header(regtest(), bad).is_ok() {
        bad.nonce = bad.nonce.wrapping_add(1);
    }
    headers.truncate(5);
    assert_eq!(
        ours.check_headers(&headers, now),
        Err(HeaderChainError::Invalid { at: 4, error: ValidationError::BadProofOfWork })
    );
}

#[test]
fn a_header_with_another_target_than_asert_gives_is_refused() {
    let (theirs, ours) = theirs_and_ours(6);
    let mut headers = headers_of(&theirs);
    let now = now_for(&theirs);
    // A harder target, with its proof of work: still not the chain's target.
    let expected = headers[3].target;
    headers[3].target = crate::types::CompactTarget(0x2000_ffff);
    headers[3] = remined(headers[3]);
    headers.truncate(4);
    assert_eq!(
        ours.check_headers(&headers, now),
        Err(HeaderChainError::Invalid {
            at: 3,
            error: ValidationError::WrongTarget { expected, found: crate::types::CompactTarget(0x2000_ffff) }
        })
    );
}

#[test]
fn header_timestamps_must_pass_the_median_and_may_wait_when_ahead() {
    let (theirs, ours) = theirs_and_ours(20);
    let mut headers = headers_of(&theirs);
    let now = now_for(&theirs);
    // Not after the median of the previous eleven: invalid.
    let mut early = headers.clone();
    early[15].time = early[9].time;
    early[15] = remined(early[15]);
    early.truncate(16);
    assert!(
        matches!(
            ours.check_headers(&early, now),
            Err(HeaderChainError::Invalid { at: 15, error: ValidationError::TimeTooOld { .. } })
        ),
        "{:?}",
        ours.check_headers(&early, now)
    );
    // Too far ahead of our clock: the headers before it are usable, that one
    // waits, and nothing is held against the peer.
    let clock = headers[11].time;
    let limit = regtest().future_limit_secs;
    headers[12].time = clock + limit + 1;
    headers[12] = remined(headers[12]);
    headers.truncate(13);
    let (cursor, usable) = ours.check_headers(&headers, clock).unwrap();
    assert_eq!((usable, cursor.height()), (12, 12));
}
