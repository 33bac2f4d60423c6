//! The networks OurCoin runs: they never mix.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Main,
    Test,
    Regtest,
}

impl Network {
    pub const ALL: [Network; 3] = [Network::Main, Network::Test, Network::Regtest];

    pub fn name(self) -> &'static str {
        match self {
            Network::Main => "main",
            Network::Test => "test",
            Network::Regtest => "regtest",
        }
    }

    pub fn address_prefix(self) -> &'static str {
        match self {
            Network::Main => "oc",
            Network::Test => "toc",
            Network::Regtest => "roc",
        }
    }

    pub fn from_address_prefix(prefix: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.address_prefix() == prefix)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network `{0}`: expected main, test or regtest")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;
    fn from_str(s: &str) -> Result<Network, UnknownNetwork> {
        Network::ALL.into_iter().find(|n| n.name() == s).ok_or_else(|| UnknownNetwork(s.chars().take(40).collect()))
    }
}
