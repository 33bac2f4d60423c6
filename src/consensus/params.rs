//! Per-network parameters, defined in `config/networks.toml` and built in.

use std::sync::OnceLock;

use crate::crypto::Work;
use crate::types::{
    Address, Amount, Block, BlockBody, BlockHash, BlockHeader, ChainId, Coinbase, CompactTarget, Network, COIN,
};

/// The header version every block carries.
pub const BLOCK_VERSION: u32 = 1;
/// Blocks between halvings of the subsidy.
pub const HALVING_INTERVAL: u64 = 210_000;
/// The subsidy before the first halving.
pub const INITIAL_SUBSIDY: Amount = Amount(50 * COIN);
/// Blocks whose timestamps form the median time past.
pub const MEDIAN_TIME_SPAN: usize = 11;

const NETWORKS_TOML: &str = include_str!("../../config/networks.toml");

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    chain_id: u32,
    block_time_secs: u64,
    asert_half_life_secs: u64,
    future_limit_secs: u64,
    coinbase_maturity: u64,
    default_port: u16,
    pow_limit: u32,
    initial_target: u32,
    genesis_time: u64,
    genesis_nonce: u64,
    /// Hexadecimal, big-endian.
    min_chain_work: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetworks {
    main: RawParams,
    test: RawParams,
    regtest: RawParams,
}

/// Everything that makes one network differ from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub network: Network,
    pub chain_id: ChainId,
    pub block_time_secs: u64,
    pub asert_half_life_secs: u64,
    pub future_limit_secs: u64,
    pub coinbase_maturity: u64,
    pub default_port: u16,
    pub pow_limit: CompactTarget,
    pub initial_target: CompactTarget,
    pub genesis: Block,
    pub genesis_hash: BlockHash,
    /// Below this cumulative work a header chain is neither stored nor
    /// followed (Bitcoin Core's `nMinimumChainWork`): the work of the
    /// network's chain when the release was made, so that a cheap fork from
    /// genesis costs a new node nothing. Zero where no such chain exists yet.
    pub min_chain_work: Work,
}

impl Params {
    /// The built-in parameters of `network`.
    pub fn get(network: Network) -> &'static Params {
        static ALL: OnceLock<[Params; 3]> = OnceLock::new();
        let all = ALL.get_or_init(|| {
            // The file is part of the binary and a unit test parses it, so a
            // failure here can only be a build that skipped its tests.
            #[allow(clippy::expect_used)]
            let raw: RawNetworks = toml::from_str(NETWORKS_TOML).expect("config/networks.toml is valid");
            [
                Params::from_raw(Network::Main, raw.main),
                Params::from_raw(Network::Test, raw.test),
                Params::from_raw(Network::Regtest, raw.regtest),
            ]
        });
        match network {
            Network::Main => &all[0],
            Network::Test => &all[1],
            Network::Regtest => &all[2],
        }
    }

    fn from_raw(network: Network, raw: RawParams) -> Params {
        let genesis = genesis_block(&raw);
        Params {
            network,
            chain_id: ChainId(raw.chain_id),
            block_time_secs: raw.block_time_secs,
            asert_half_life_secs: raw.asert_half_life_secs,
            future_limit_secs: raw.future_limit_secs,
            coinbase_maturity: raw.coinbase_maturity,
            default_port: raw.default_port,
            pow_limit: CompactTarget(raw.pow_limit),
            initial_target: CompactTarget(raw.initial_target),
            genesis_hash: genesis.hash(),
            genesis,
            // A unit test checks that every network's value parses.
            min_chain_work: parse_work(&raw.min_chain_work).unwrap_or_default(),
        }
    }

    /// Gossipsub topic for transactions.
    pub fn tx_topic(&self) -> String {
        format!("ourcoin/{}/tx/1", self.network)
    }

    /// Gossipsub topic for blocks.
    pub fn block_topic(&self) -> String {
        format!("ourcoin/{}/block/1", self.network)
    }
}

/// A work written in hexadecimal (at most 64 digits, `0x` optional).
fn parse_work(hex: &str) -> Option<Work> {
    let digits = hex.strip_prefix("0x").unwrap_or(hex);
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    primitive_types::U256::from_str_radix(digits, 16).ok().map(Work)
}

/// The genesis block: deterministic from the parameters. Its coinbase pays
/// nothing to the all-zero address, so the ledger starts empty.
fn genesis_block(raw: &RawParams) -> Block {
    let body = BlockBody {
        coinbase: Coinbase { height: 0, recipient: Address([0; 20]), amount: Amount::ZERO },
        transactions: Vec::new(),
        aggregate_signature: None,
    };
    Block {
        header: BlockHeader {
            version: BLOCK_VERSION,
            prev: BlockHash::default(),
            height: 0,
            body_commitment: body.commitment(),
            time: raw.genesis_time,
            target: CompactTarget(raw.pow_limit),
            nonce: raw.genesis_nonce,
        },
        body,
    }
}

/// The block subsidy at `height`: 50 coins, halving every 210 000 blocks.
pub fn subsidy(height: u64) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        Amount::ZERO
    } else {
        Amount(INITIAL_SUBSIDY.0 >> halvings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::pow::header_meets_its_target;

    #[test]
    fn the_built_in_networks_parse_and_differ() {
        let raw: RawNetworks = toml::from_str(NETWORKS_TOML).unwrap();
        assert_eq!(raw.main.block_time_secs, 60);
        let ids: Vec<_> = Network::ALL.iter().map(|&n| Params::get(n).chain_id).collect();
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        let genesis: Vec<_> = Network::ALL.iter().map(|&n| Params::get(n).genesis_hash).collect();
        assert!(genesis[0] != genesis[1] && genesis[1] != genesis[2]);
    }

    #[test]
    fn minimum_chain_work_parses_on_every_network_and_is_zero_on_regtest() {
        let raw: RawNetworks = toml::from_str(NETWORKS_TOML).unwrap();
        for network in [&raw.main, &raw.test, &raw.regtest] {
            assert!(parse_work(&network.min_chain_work).is_some(), "{}", network.min_chain_work);
        }
        assert_eq!(Params::get(Network::Regtest).min_chain_work, Work::default());
        assert_eq!(parse_work("0x100"), Some(Work(primitive_types::U256::from(256))));
        assert_eq!(parse_work(""), None);
        assert_eq!(parse_work("zz"), None);
        assert_eq!(parse_work(&"f".repeat(65)), None);
    }

    #[test]
    fn the_spec_table_holds() {
        let expect = [
            (Network::Main, 60, 4 * 3600, 300, 100, 9733),
            (Network::Test, 15, 3600, 120, 100, 19733),
            (Network::Regtest, 1, 60, 15, 10, 29733),
        ];
        for (n, block_time, half_life, future, maturity, port) in expect {
            let p = Params::get(n);
            assert_eq!(
                (p.block_time_secs, p.asert_half_life_secs, p.future_limit_secs, p.coinbase_maturity, p.default_port),
                (block_time, half_life, future, maturity, port),
                "{n}"
            );
            assert!(p.future_limit_secs < p.asert_half_life_secs);
        }
    }

    #[test]
    fn genesis_blocks_meet_their_targets() {
        for n in Network::ALL {
            let g = &Params::get(n).genesis;
            assert_eq!(g.header.body_commitment, g.body.commitment());
            assert_eq!(header_meets_its_target(&g.header), Ok(true), "{n} genesis nonce must be mined");
        }
    }

    #[test]
    fn subsidy_halves() {
        assert_eq!(subsidy(0), Amount(50 * COIN));
        assert_eq!(subsidy(HALVING_INTERVAL - 1), Amount(50 * COIN));
        assert_eq!(subsidy(HALVING_INTERVAL), Amount(25 * COIN));
        assert_eq!(subsidy(HALVING_INTERVAL * 33), Amount((50 * COIN) >> 33));
        assert_eq!(subsidy(HALVING_INTERVAL * 64), Amount::ZERO);
        assert_eq!(subsidy(u64::MAX), Amount::ZERO);
    }
}
