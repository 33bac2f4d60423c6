//! Choosing a block's payments: highest fee first across senders, each
//! sender's in nonce order, within the block's budget and the senders' balances.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::Mempool;
use crate::state::Account;
use crate::types::{Address, Amount, SignedTransaction, Txid};

/// A sender's next transaction, competing with the other senders' next.
/// The heap pops the highest fee, and among equal fees the earliest arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    fee: Amount,
    earliest_first: Reverse<u64>,
    txid: Txid,
    sender: Address,
    nonce: u64,
}

impl Mempool {
    /// A block template's payments, in block order. A sender's transaction
    /// becomes a candidate only once the one before it is chosen, starting at
    /// its account nonce in `accounts` (the ledger at the tip the block builds
    /// on), so each sender's nonces run in order and without a gap. A sender
    /// is left out from the first transaction its remaining balance cannot
    /// pay or that does not fit the space left.
    ///
    /// `max_bytes` bounds the payments as a block encodes them: without their
    /// signatures, which the block aggregates into one.
    pub fn select(
        &self,
        accounts: &dyn Fn(&Address) -> Account,
        max_bytes: usize,
        max_count: usize,
    ) -> Vec<SignedTransaction> {
        let mut remaining_balance: HashMap<Address, Amount> = HashMap::new();
        let mut heads = BinaryHeap::new();
        for (sender, queue) in &self.senders {
            let account = accounts(sender);
            let Some(txid) = queue.by_nonce.get(&account.nonce) else { continue };
            let Some(entry) = self.entries.get(txid) else { continue };
            remaining_balance.insert(*sender, account.balance);
            heads.push(Head {
                fee: entry.stx.tx.fee,
                earliest_first: Reverse(entry.seq),
                txid: *txid,
                sender: *sender,
                nonce: account.nonce,
            });
        }

        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        while chosen.len() < max_count {
            let Some(head) = heads.pop() else { break };
            let Some(entry) = self.entries.get(&head.txid) else { continue };
            let Some(balance) = remaining_balance.get_mut(&head.sender) else { continue };
            let Some(balance_after) = balance.checked_sub(entry.spend) else { continue };
            let Some(bytes_after) = bytes.checked_add(entry.block_bytes).filter(|b| *b <= max_bytes) else {
                // Its successors cannot go without it; smaller payments of
                // other senders may still fit.
                continue;
            };
            *balance = balance_after;
            bytes = bytes_after;
            chosen.push(entry.stx);

            let next = head.nonce.checked_add(1).and_then(|n| {
                let txid = self.senders.get(&head.sender)?.by_nonce.get(&n)?;
                Some((n, *txid, self.entries.get(txid)?))
            });
            if let Some((nonce, txid, next)) = next {
                heads.push(Head {
                    fee: next.stx.tx.fee,
                    earliest_first: Reverse(next.seq),
                    txid,
                    sender: head.sender,
                    nonce,
                });
            }
        }
        chosen
    }
}
