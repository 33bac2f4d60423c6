//! The account ledger: connecting a block to a snapshot of the accounts it
//! touches yields the new states and an undo record; undoing restores the
//! exact previous state. Pure functions over values: the store reads the
//! snapshot and writes the result.
// A validator must never panic on hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::collections::{BTreeMap, HashMap};

use crate::consensus::{subsidy, Params, ValidationError};
use crate::types::{Address, Amount, Block};

/// One account: spendable balance, rewards not yet matured, and the number
/// of transactions it has sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub balance: Amount,
    pub immature: Amount,
    pub nonce: u64,
}

impl Account {
    /// An account that may be dropped from the ledger. One that has ever sent
    /// (nonce above 0) never is, or its old transactions would become valid again.
    pub fn is_removable(&self) -> bool {
        self.balance == Amount::ZERO && self.immature == Amount::ZERO && self.nonce == 0
    }
}

/// A coinbase reward waiting to mature.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct MaturingReward {
    pub height: u64,
    pub recipient: Address,
    pub amount: Amount,
}

/// The ledger state a block needs: every account it touches (None when the
/// account does not exist) and the reward that matures at its height.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct LedgerSnapshot {
    pub accounts: HashMap<Address, Option<Account>>,
    pub maturing: Option<MaturingReward>,
}

/// What connecting a block writes.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct LedgerUpdate {
    pub height: u64,
    /// New states of the accounts that changed; `None` removes the account.
    pub accounts: Vec<(Address, Option<Account>)>,
    /// The block's own reward, maturing later.
    pub new_reward: Option<MaturingReward>,
    /// The height of the reward that matured in this block, now removed.
    pub matured_height: Option<u64>,
}

/// What undoing a block writes back.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct BlockUndo {
    pub height: u64,
    /// Previous states of the accounts the block changed.
    pub accounts: Vec<(Address, Option<Account>)>,
    /// The reward that matured in the block, to be pending again.
    pub matured: Option<MaturingReward>,
}

/// The height whose reward matures when the block at `height` connects.
pub fn maturing_height(params: &Params, height: u64) -> Option<u64> {
    height.checked_sub(params.coinbase_maturity).filter(|h| *h > 0)
}

/// Every account connecting `block` reads or writes, given the reward that matures in it.
pub fn touched_addresses(block: &Block, maturing: Option<&MaturingReward>) -> Vec<Address> {
    let mut out = Vec::with_capacity(block.body.transactions.len() * 2 + 2);
    out.push(block.body.coinbase.recipient);
    out.extend(maturing.map(|r| r.recipient));
    for tx in &block.body.transactions {
        out.push(tx.sender_address());
        out.push(tx.recipient);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `account` can pay `needed` now; distinguishes a spend that only
/// immature rewards could cover.
pub fn check_can_spend(account: &Account, needed: Amount) -> Result<(), ValidationError> {
    if account.balance >= needed {
        return Ok(());
    }
    let with_immature = account.balance.checked_add(account.immature).unwrap_or(Amount(u64::MAX));
    if with_immature >= needed {
        Err(ValidationError::SpendsImmatureReward { balance: account.balance, needed })
    } else {
        Err(ValidationError::InsufficientBalance { balance: account.balance, needed })
    }
}

/// Applies `block` to `snapshot`: matures the due reward, applies every
/// payment in order (nonce, balance), checks the coinbase pays exactly the
/// subsidy plus fees, and books it as immature.
pub fn connect_block(snapshot: &LedgerSnapshot, block: &Block) -> Result<(LedgerUpdate, BlockUndo), ValidationError> {
    let height = block.header.height;
    let mut working: HashMap<Address, Account> =
        snapshot.accounts.iter().map(|(a, acc)| (*a, acc.unwrap_or_default())).collect();

    if let Some(reward) = &snapshot.maturing {
        let account = working.entry(reward.recipient).or_default();
        account.immature = account.immature.checked_sub(reward.amount).unwrap_or(Amount::ZERO);
        account.balance = account.balance.checked_add(reward.amount).ok_or(ValidationError::BalanceOverflow)?;
    }

    let mut fees = Amount::ZERO;
    for tx in &block.body.transactions {
        let spend = tx.total_spend().ok_or(ValidationError::AmountOverflow)?;
        let sender = working.entry(tx.sender_address()).or_default();
        if tx.nonce != sender.nonce {
            return Err(ValidationError::WrongNonce { expected: sender.nonce, found: tx.nonce });
        }
        check_can_spend(sender, spend)?;
        sender.balance = sender.balance.checked_sub(spend).ok_or(ValidationError::BalanceOverflow)?;
        sender.nonce = sender.nonce.checked_add(1).ok_or(ValidationError::BalanceOverflow)?;
        let recipient = working.entry(tx.recipient).or_default();
        recipient.balance = recipient.balance.checked_add(tx.amount).ok_or(ValidationError::BalanceOverflow)?;
        fees = fees.checked_add(tx.fee).ok_or(ValidationError::BalanceOverflow)?;
    }

    let expected = subsidy(height).checked_add(fees).ok_or(ValidationError::BalanceOverflow)?;
    let coinbase = &block.body.coinbase;
    if coinbase.amount > expected {
        return Err(ValidationError::CoinbasePaysTooMuch { expected, found: coinbase.amount });
    }
    if coinbase.amount < expected {
        return Err(ValidationError::CoinbasePaysTooLittle { expected, found: coinbase.amount });
    }
    let new_reward = (coinbase.amount > Amount::ZERO).then_some(MaturingReward {
        height,
        recipient: coinbase.recipient,
        amount: coinbase.amount,
    });
    if let Some(reward) = &new_reward {
        let account = working.entry(reward.recipient).or_default();
        account.immature = account.immature.checked_add(reward.amount).ok_or(ValidationError::BalanceOverflow)?;
    }

    let mut changed: Vec<(Address, Option<Account>)> = Vec::new();
    let mut previous: Vec<(Address, Option<Account>)> = Vec::new();
    let mut addresses: Vec<&Address> = working.keys().collect();
    addresses.sort_unstable();
    for address in addresses {
        let new = working.get(address).copied().filter(|a| !a.is_removable());
        let old = snapshot.accounts.get(address).copied().flatten();
        if new != old {
            changed.push((*address, new));
            previous.push((*address, old));
        }
    }
    Ok((
        LedgerUpdate { height, accounts: changed, new_reward, matured_height: snapshot.maturing.map(|r| r.height) },
        BlockUndo { height, accounts: previous, matured: snapshot.maturing },
    ))
}

/// A whole ledger in memory: for tests, tools and the in-memory store.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct MemoryLedger {
    pub accounts: HashMap<Address, Account>,
    pub rewards: BTreeMap<u64, MaturingReward>,
}

impl MemoryLedger {
    pub fn account(&self, address: &Address) -> Option<Account> {
        self.accounts.get(address).copied()
    }

    pub fn snapshot_for(&self, params: &Params, block: &Block) -> LedgerSnapshot {
        let maturing = maturing_height(params, block.header.height).and_then(|h| self.rewards.get(&h).copied());
        let accounts = touched_addresses(block, maturing.as_ref()).into_iter().map(|a| (a, self.account(&a))).collect();
        LedgerSnapshot { accounts, maturing }
    }

    pub fn apply(&mut self, update: &LedgerUpdate) {
        write_accounts(&mut self.accounts, &update.accounts);
        if let Some(h) = update.matured_height {
            self.rewards.remove(&h);
        }
        if let Some(reward) = update.new_reward {
            self.rewards.insert(reward.height, reward);
        }
    }

    pub fn undo(&mut self, undo: &BlockUndo) {
        write_accounts(&mut self.accounts, &undo.accounts);
        self.rewards.remove(&undo.height);
        if let Some(reward) = undo.matured {
            self.rewards.insert(reward.height, reward);
        }
    }
}

fn write_accounts(accounts: &mut HashMap<Address, Account>, states: &[(Address, Option<Account>)]) {
    for (address, state) in states {
        match state {
            Some(account) => accounts.insert(*address, *account),
            None => accounts.remove(address),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::params::INITIAL_SUBSIDY;
    use crate::testkit::{regtest, TestKey};
    use crate::types::{BlockBody, BlockHeader, Coinbase, CompactTarget, SignedTransaction, COIN};
    use proptest::prelude::*;

    fn block(height: u64, payments: &[SignedTransaction], miner: Address) -> Block {
        let fees = Amount::checked_sum(payments.iter().map(|p| p.tx.fee)).unwrap();
        Block {
            header: BlockHeader {
                version: 1,
                prev: Default::default(),
                height,
                body_commitment: Default::default(),
                time: 0,
                target: CompactTarget(0),
                nonce: 0,
            },
            body: BlockBody {
                coinbase: Coinbase { height, recipient: miner, amount: subsidy(height).checked_add(fees).unwrap() },
                transactions: payments.iter().map(|p| p.tx).collect(),
                aggregate_signature: None,
            },
        }
    }

    /// A ledger where each key holds `balance` spendable units.
    fn ledger_with(keys: &[TestKey], balance: u64) -> MemoryLedger {
        let mut ledger = MemoryLedger::default();
        for k in keys {
            ledger.accounts.insert(k.address, Account { balance: Amount(balance), immature: Amount::ZERO, nonce: 0 });
        }
        ledger
    }

    #[test]
    fn rewards_mature_after_the_maturity_and_undo_puts_them_back() {
        let params = regtest();
        let miner = Address([9; 20]);
        let mut ledger = MemoryLedger::default();
        let mut undos = Vec::new();
        for h in 1..=params.coinbase_maturity + 1 {
            let b = block(h, &[], miner);
            let (update, undo) = connect_block(&ledger.snapshot_for(params, &b), &b).unwrap();
            ledger.apply(&update);
            undos.push(undo);
        }
        let account = ledger.account(&miner).unwrap();
        assert_eq!(account.balance, INITIAL_SUBSIDY, "block 1's reward matured at 1 + maturity");
        assert_eq!(account.immature, Amount(INITIAL_SUBSIDY.0 * params.coinbase_maturity));
        let undo = undos.pop().unwrap();
        ledger.undo(&undo);
        let account = ledger.account(&miner).unwrap();
        assert_eq!(
            (account.balance, account.immature),
            (Amount::ZERO, Amount(INITIAL_SUBSIDY.0 * params.coinbase_maturity))
        );
        assert!(ledger.rewards.contains_key(&1));
    }

    #[test]
    fn an_account_that_has_sent_is_never_removed() {
        let keys = [TestKey::new(1)];
        let mut ledger = ledger_with(&keys, COIN + 1_000);
        // Send everything: balance 0, but nonce 1 keeps the account.
        let pay = keys[0].pay(regtest().chain_id, Address([2; 20]), COIN, 1_000, 0);
        let b = block(1, &[pay], Address([3; 20]));
        let (update, _) = connect_block(&ledger.snapshot_for(regtest(), &b), &b).unwrap();
        ledger.apply(&update);
        assert_eq!(
            ledger.account(&keys[0].address),
            Some(Account { balance: Amount::ZERO, immature: Amount::ZERO, nonce: 1 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

        /// Connecting any sequence of blocks and undoing them in reverse restores the exact ledger.
        #[test]
        fn undo_restores_the_exact_previous_state(
            plan in proptest::collection::vec(proptest::collection::vec((0usize..4, 0usize..5, 1u64..COIN, 0u64..5_000), 0..4), 1..8)
        ) {
            let keys: Vec<TestKey> = (0..4).map(TestKey::new).collect();
            let mut ledger = ledger_with(&keys, 3 * COIN);
            let original = ledger.clone();
            let mut nonces = [0u64; 4];
            let mut states = vec![ledger.clone()];
            let mut undos = Vec::new();
            for (i, payments) in plan.iter().enumerate() {
                let height = i as u64 + 1;
                let txs: Vec<SignedTransaction> = payments.iter().map(|&(from, to, amount, fee)| {
                    let to = keys.get(to).map(|k| k.address).unwrap_or(Address([0x77; 20]));
                    let stx = keys[from].pay(regtest().chain_id, to, amount, fee, nonces[from]);
                    nonces[from] += 1;
                    stx
                }).collect();
                let b = block(height, &txs, keys[i % 4].address);
                match connect_block(&ledger.snapshot_for(regtest(), &b), &b) {
                    Ok((update, undo)) => {
                        ledger.apply(&update);
                        undos.push(undo);
                        states.push(ledger.clone());
                    }
                    // An overspend: the block is refused and changes nothing.
                    Err(ValidationError::InsufficientBalance { .. } | ValidationError::SpendsImmatureReward { .. }) => break,
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            while let Some(undo) = undos.pop() {
                states.pop();
                ledger.undo(&undo);
                prop_assert_eq!(Some(&ledger), states.last());
            }
            prop_assert_eq!(ledger, original);
        }
    }
}
