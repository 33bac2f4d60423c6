//! The node's configuration: `ourcoind`'s flags (parsed by the binary), the
//! TOML file that can set each of them, and their resolution into one
//! checked [`NodeConfig`].
//!
//! Flags win over the file; the file wins over the defaults. Without
//! `--config`, `<datadir>/ourcoind.toml` is read when it exists, as bitcoind
//! reads the `bitcoin.conf` in its datadir.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use crate::consensus::Params;
pub use crate::network::cidr::Cidr;
use crate::types::{Address, AddressParseError, Network};

/// The name of the config file looked for in the datadir.
pub const CONFIG_FILE_NAME: &str = "ourcoind.toml";

/// `ourcoind`'s command line, as the binary parsed it (the library does not
/// parse command lines). Every value is optional, so that a config file can
/// supply it; [`resolve`] applies the file and the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// TOML config file (default: <datadir>/ourcoind.toml, when it exists).
    pub config: Option<PathBuf>,
    /// Data directory (default: ~/.ourcoin/<network>).
    pub datadir: Option<PathBuf>,
    /// The network: main (default), test or regtest.
    pub network: Option<Network>,
    /// Address to listen on (repeatable; default: /ip4/0.0.0.0/tcp/<network's port>).
    pub listen: Vec<String>,
    /// A peer to join through, ending in /p2p/<peer id> (repeatable).
    pub bootstrap: Vec<String>,
    /// An address others can reach this node at, announced to peers (repeatable).
    pub external_addr: Vec<String>,
    /// Networks whose peers may use the query protocol (repeatable; default: loopback only).
    pub query_allow: Vec<String>,
    /// Peer connections at most (default: 125).
    pub max_connections: Option<usize>,
    /// Outbound peers the node keeps (default: 8).
    pub outbound_peers: Option<usize>,
    /// Dial only these peers (repeatable): no discovery.
    pub connect: Vec<String>,
    /// Rebuild the ledger and every index from the stored blocks.
    pub reindex: Option<bool>,
    /// Mine blocks paying --miner-address.
    pub mine: Option<bool>,
    /// Testing only: every block write after the first N fails, as a failing disk would.
    pub debug_fail_writes_after: Option<u64>,
    /// The address mining rewards are paid to.
    pub miner_address: Option<String>,
    /// Mining threads (default: 1).
    pub miner_threads: Option<usize>,
    /// Log filter, as RUST_LOG (default: info).
    pub log: Option<String>,
    /// A private playground: regtest, mining to a wallet created in the datadir.
    pub dev: Option<bool>,
    /// Serve Prometheus metrics at http://IP:PORT/metrics.
    pub metrics: Option<String>,
    /// Run this through `sh -c` at each new best block, `%s` = its hash.
    pub blocknotify: Option<String>,
}

/// The checked configuration the node runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub network: Network,
    pub datadir: PathBuf,
    pub listen: Vec<Multiaddr>,
    /// Each ends in `/p2p/<peer id>`.
    pub bootstrap: Vec<Multiaddr>,
    pub external_addrs: Vec<Multiaddr>,
    /// Empty: nobody may query.
    pub query_allow: Vec<Cidr>,
    pub max_connections: usize,
    /// At most `max_connections`.
    pub outbound_peers: usize,
    /// Not empty: the only peers dialled.
    pub connect: Vec<Multiaddr>,
    pub reindex: bool,
    /// Testing only: block writes allowed before every write fails.
    pub debug_fail_writes_after: Option<u64>,
    pub mine: bool,
    /// `None` while mining only with `dev`: the node then mines to a wallet
    /// it creates in the datadir.
    pub miner_address: Option<Address>,
    /// At least 1.
    pub miner_threads: usize,
    /// A valid `tracing_subscriber::EnvFilter` directive.
    pub log: String,
    pub dev: bool,
    /// Where to serve `/metrics`; `None`: no metrics.
    pub metrics: Option<std::net::SocketAddr>,
    pub blocknotify: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {error}", path.display())]
    ReadFile { path: PathBuf, error: std::io::Error },
    #[error("{} is not a valid ourcoind config file: {reason} (config/ourcoind.toml shows every key it may set)", path.display())]
    ParseFile { path: PathBuf, reason: String },
    #[error(
        "{} sets `datadir`, but it was read from that datadir: remove the key, or pass the file with --config",
        path.display()
    )]
    DatadirInDatadirConfig { path: PathBuf },
    #[error(
        "{} sets the {file_network} network, but it was read from the default datadir of the {dir_network} network: \
         start with --network {file_network} and keep the file in that network's datadir, or pass it with --config",
        path.display()
    )]
    NetworkOfDefaultDatadir { path: PathBuf, file_network: Network, dir_network: Network },
    #[error("HOME is not set, so there is no default data directory: give --datadir DIR")]
    NoHome,
    #[error("--dev runs a regtest playground, but {origin} asks for the {network} network: drop one of them")]
    DevOnOtherNetwork { origin: String, network: Network },
    #[error("--dev always mines, but {origin} turns mining off: drop one of them (--network regtest runs a node that does not mine)")]
    DevWithoutMining { origin: String },
    #[error(
        "mining needs an address to pay: give --miner-address ADDRESS (`ourcoin-cli --network {network} wallet new` \
         creates one), or use --dev"
    )]
    MineWithoutAddress { network: Network },
    /// A bad value, and the flag, file key or variable it came from.
    #[error("{origin}: {error}")]
    Setting { origin: String, error: Box<ConfigError> },
    #[error("`{value}` is not a multiaddr ({reason}): write it like /ip4/127.0.0.1/tcp/9733")]
    InvalidMultiaddr { value: String, reason: String },
    #[error("listen address `{value}` names a peer id: drop its /p2p/… part, the node adds its own")]
    ListenWithPeerId { value: String },
    #[error(
        "`{value}` does not end in /p2p/<peer id>: copy the complete address the other node logs at start, \
         like /ip4/192.0.2.1/tcp/9733/p2p/12D3KooW…"
    )]
    BootstrapWithoutPeerId { value: String },
    #[error(
        "`{value}` is not an IP network ({reason}): write an address with an optional prefix length, \
         like 127.0.0.0/8, ::1/128 or 192.168.1.7"
    )]
    InvalidCidr { value: String, reason: String },
    #[error("{error}: give an address of the {network} network (`ourcoin-cli --network {network} wallet address` prints yours)")]
    InvalidMinerAddress { network: Network, error: AddressParseError },
    #[error("--outbound-peers {outbound} is more than --max-connections {max}: raise the one or lower the other")]
    OutboundAboveMax { outbound: usize, max: usize },
    #[error("the miner needs at least one thread: give 1 or more")]
    ZeroMinerThreads,
    #[error(
        "`{value}` is not a log filter ({reason}): use a level such as info or debug, or directives such as \
         info,ourcoin::network=debug"
    )]
    InvalidLogFilter { value: String, reason: String },
    #[error("`{value}` is not an IP address and port ({reason}): write it like 127.0.0.1:9734")]
    InvalidMetricsAddr { value: String, reason: String },
    #[error("the blocknotify command is empty")]
    EmptyBlocknotify,
}

/// What the config file may set: every flag but `--config`, named with
/// underscores. Unknown keys are refused, so a typo is not silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    network: Option<Network>,
    datadir: Option<PathBuf>,
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    external_addr: Option<Vec<String>>,
    query_allow: Option<Vec<String>>,
    max_connections: Option<usize>,
    outbound_peers: Option<usize>,
    connect: Option<Vec<String>>,
    reindex: Option<bool>,
    mine: Option<bool>,
    miner_address: Option<String>,
    miner_threads: Option<usize>,
    log: Option<String>,
    dev: Option<bool>,
    metrics: Option<String>,
    blocknotify: Option<String>,
}

/// How the config file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Named by `--config`.
    Given,
    /// In the datadir named by `--datadir`.
    InGivenDatadir,
    /// In the default datadir of this network.
    InDefaultDatadir(Network),
}

struct ConfigFile {
    path: PathBuf,
    found: Found,
    values: FileConfig,
}

impl ConfigFile {
    fn read(path: PathBuf, found: Found) -> Result<ConfigFile, ConfigError> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => return Err(ConfigError::ReadFile { path, error }),
        };
        ConfigFile::parse(path, found, &text)
    }

    /// The file's text, found at `path`.
    fn parse(path: PathBuf, found: Found, text: &str) -> Result<ConfigFile, ConfigError> {
        match toml::from_str(text) {
            Ok(values) => Ok(ConfigFile { path, found, values }),
            Err(e) => Err(ConfigError::ParseFile { path, reason: e.message().to_string() + &line_of(text, e.span()) }),
        }
    }
}

/// " at line N" for the start of `span`, if known.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span.and_then(|span| text.get(..span.start)) {
        Some(before) => format!(" at line {}", before.matches('\n').count() + 1),
        None => String::new(),
    }
}

/// What [`resolve`] reads from the process environment, apart so tests need
/// not change the real one.
struct Environment {
    home: Option<PathBuf>,
    rust_log: Option<String>,
}

/// Where a setting came from, for error messages: `--miner-threads` or
/// `` `miner_threads` in /path/ourcoind.toml ``.
struct Origin<'a> {
    key: &'static str,
    file: Option<&'a Path>,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file {
            None => write!(f, "--{}", self.key.replace('_', "-")),
            Some(path) => write!(f, "`{}` in {}", self.key, path.display()),
        }
    }
}

/// The flag's value if given, else the file's.
fn pick<'a, T>(
    key: &'static str,
    flag: Option<T>,
    file: &'a Option<ConfigFile>,
    from_file: Option<T>,
) -> Option<(T, Origin<'a>)> {
    match flag {
        Some(value) => Some((value, Origin { key, file: None })),
        None => from_file.map(|value| (value, Origin { key, file: file.as_ref().map(|f| f.path.as_path()) })),
    }
}

/// The flag's list if any was given, else the file's.
fn pick_list<'a>(
    key: &'static str,
    flag: Vec<String>,
    file: &'a Option<ConfigFile>,
    from_file: Option<Vec<String>>,
) -> Option<(Vec<String>, Origin<'a>)> {
    pick(key, Some(flag).filter(|list| !list.is_empty()), file, from_file)
}

fn in_setting(origin: &Origin<'_>, error: ConfigError) -> ConfigError {
    ConfigError::Setting { origin: origin.to_string(), error: Box::new(error) }
}

/// Checks the flags and the config file and fills in the defaults.
pub fn resolve(args: Flags) -> Result<NodeConfig, ConfigError> {
    let env = Environment {
        home: std::env::var_os("HOME").filter(|home| !home.is_empty()).map(PathBuf::from),
        rust_log: std::env::var("RUST_LOG").ok().filter(|filter| !filter.trim().is_empty()),
    };
    resolve_in(args, &env)
}

fn resolve_in(args: Flags, env: &Environment) -> Result<NodeConfig, ConfigError> {
    let flag_datadir = args.datadir.as_deref().map(|dir| expand_home(dir, env)).transpose()?;
    let file = find_config_file(&args, flag_datadir.as_deref(), env)?;
    resolve_with_file(args, flag_datadir, file, env)
}

/// The node's settings from `text`, a config file named by `--config` and
/// no other flag, as `ourcoind` resolves them (the fuzz target's body: a
/// hostile file is refused with an error, never a panic).
#[cfg(any(test, feature = "fuzzing"))]
pub fn resolve_config_text(text: &str) -> Result<NodeConfig, ConfigError> {
    let env = Environment { home: Some(PathBuf::from("/home/ourcoin")), rust_log: None };
    let path = PathBuf::from("/home/ourcoin/ourcoind.toml");
    let file = ConfigFile::parse(path.clone(), Found::Given, text)?;
    resolve_with_file(Flags { config: Some(path), ..Flags::default() }, None, Some(file), &env)
}

fn resolve_with_file(
    args: Flags,
    flag_datadir: Option<PathBuf>,
    file: Option<ConfigFile>,
    env: &Environment,
) -> Result<NodeConfig, ConfigError> {
    let values = file.as_ref().map(|f| f.values.clone()).unwrap_or_default();
    let file_path = file.as_ref().map(|f| f.path.clone());

    let dev = pick("dev", args.dev, &file, values.dev);
    let is_dev = dev.as_ref().is_some_and(|(dev, _)| *dev);
    let network = match pick("network", args.network, &file, values.network) {
        Some((network, origin)) if is_dev && network != Network::Regtest => {
            return Err(ConfigError::DevOnOtherNetwork { origin: origin.to_string(), network })
        }
        Some((network, _)) => network,
        None if is_dev => Network::Regtest,
        None => Network::Main,
    };
    let params = Params::get(network);

    let datadir = match (flag_datadir, &file) {
        // --datadir wins, even over a `datadir` in the file found in it.
        (Some(dir), _) => dir,
        (None, Some(ConfigFile { path, found: Found::InDefaultDatadir(dir_network), .. })) => {
            if values.datadir.is_some() {
                return Err(ConfigError::DatadirInDatadirConfig { path: path.clone() });
            }
            if *dir_network != network {
                return Err(ConfigError::NetworkOfDefaultDatadir {
                    path: path.clone(),
                    file_network: network,
                    dir_network: *dir_network,
                });
            }
            default_datadir(env, network)?
        }
        (None, _) => match &values.datadir {
            Some(dir) => expand_home(dir, env)?,
            None => default_datadir(env, network)?,
        },
    };

    let listen = match pick_list("listen", args.listen, &file, values.listen) {
        Some((list, origin)) if !list.is_empty() => parse_each(&list, &origin, parse_listen)?,
        _ => vec![default_listen(params.default_port)],
    };
    let bootstrap = match pick_list("bootstrap", args.bootstrap, &file, values.bootstrap) {
        Some((list, origin)) => parse_each(&list, &origin, parse_bootstrap)?,
        None => Vec::new(),
    };
    let external_addrs = match pick_list("external_addr", args.external_addr, &file, values.external_addr) {
        Some((list, origin)) => parse_each(&list, &origin, parse_multiaddr)?,
        None => Vec::new(),
    };
    let query_allow = match pick_list("query_allow", args.query_allow, &file, values.query_allow) {
        Some((list, origin)) => parse_each(&list, &origin, parse_cidr)?,
        None => Cidr::loopback(),
    };
    let max_connections = pick("max_connections", args.max_connections, &file, values.max_connections)
        .map_or(crate::network::event_loop::DEFAULT_MAX_CONNECTIONS, |(n, _)| n);
    let outbound_peers = pick("outbound_peers", args.outbound_peers, &file, values.outbound_peers)
        .map_or(crate::network::event_loop::DEFAULT_OUTBOUND_PEERS.min(max_connections), |(n, _)| n);
    if outbound_peers > max_connections {
        return Err(ConfigError::OutboundAboveMax { outbound: outbound_peers, max: max_connections });
    }
    let connect = match pick_list("connect", args.connect, &file, values.connect) {
        Some((list, origin)) => parse_each(&list, &origin, parse_multiaddr)?,
        None => Vec::new(),
    };

    let reindex = pick("reindex", args.reindex, &file, values.reindex).is_some_and(|(reindex, _)| reindex);
    let mine = match pick("mine", args.mine, &file, values.mine) {
        Some((false, origin)) if is_dev => return Err(ConfigError::DevWithoutMining { origin: origin.to_string() }),
        Some((mine, _)) => mine || is_dev,
        None => is_dev,
    };
    let miner_address = match pick("miner_address", args.miner_address, &file, values.miner_address) {
        Some((text, origin)) => Some(
            Address::parse(text.trim(), network)
                .map_err(|error| in_setting(&origin, ConfigError::InvalidMinerAddress { network, error }))?,
        ),
        None => None,
    };
    if mine && miner_address.is_none() && !is_dev {
        return Err(ConfigError::MineWithoutAddress { network });
    }
    let miner_threads = match pick("miner_threads", args.miner_threads, &file, values.miner_threads) {
        Some((0, origin)) => return Err(in_setting(&origin, ConfigError::ZeroMinerThreads)),
        Some((threads, _)) => threads,
        None => 1,
    };

    // RUST_LOG is set for one run, so it is more specific than the file.
    let log = match (args.log, &env.rust_log, values.log) {
        (Some(filter), _, _) => (filter, "--log".to_string()),
        (None, Some(filter), _) => (filter.clone(), "the RUST_LOG environment variable".to_string()),
        (None, None, Some(filter)) => {
            let origin = Origin { key: "log", file: file_path.as_deref() }.to_string();
            (filter, origin)
        }
        (None, None, None) => ("info".to_string(), String::new()),
    };
    let log = match check_log_filter(&log.0) {
        Ok(()) => log.0,
        Err(error) => return Err(ConfigError::Setting { origin: log.1, error: Box::new(error) }),
    };

    let metrics = match pick("metrics", args.metrics, &file, values.metrics) {
        Some((text, origin)) => Some(text.trim().parse().map_err(|e: std::net::AddrParseError| {
            in_setting(&origin, ConfigError::InvalidMetricsAddr { value: shorten(&text), reason: e.to_string() })
        })?),
        None => None,
    };
    let blocknotify = match pick("blocknotify", args.blocknotify, &file, values.blocknotify) {
        Some((command, origin)) if command.trim().is_empty() => {
            return Err(in_setting(&origin, ConfigError::EmptyBlocknotify))
        }
        Some((command, _)) => Some(command),
        None => None,
    };

    Ok(NodeConfig {
        network,
        datadir,
        listen,
        bootstrap,
        external_addrs,
        query_allow,
        max_connections,
        outbound_peers,
        connect,
        reindex,
        debug_fail_writes_after: args.debug_fail_writes_after,
        mine,
        miner_address,
        miner_threads,
        log,
        dev: is_dev,
        metrics,
        blocknotify,
    })
}

/// The file named by `--config`, else `ourcoind.toml` in the datadir given by
/// `--datadir` or the default datadir of the network the flags name.
fn find_config_file(
    args: &Flags,
    flag_datadir: Option<&Path>,
    env: &Environment,
) -> Result<Option<ConfigFile>, ConfigError> {
    if let Some(path) = &args.config {
        return ConfigFile::read(expand_home(path, env)?, Found::Given).map(Some);
    }
    let (dir, found) = match flag_datadir {
        Some(dir) => (dir.to_path_buf(), Found::InGivenDatadir),
        None => {
            let network = match (args.network, args.dev) {
                (Some(network), _) => network,
                (None, Some(true)) => Network::Regtest,
                (None, _) => Network::Main,
            };
            // Without HOME there is no default datadir to look in; that is an
            // error later only if nothing else names a datadir.
            match default_datadir(env, network) {
                Ok(dir) => (dir, Found::InDefaultDatadir(network)),
                Err(_) => return Ok(None),
            }
        }
    };
    let path = dir.join(CONFIG_FILE_NAME);
    if path.is_file() {
        ConfigFile::read(path, found).map(Some)
    } else {
        Ok(None)
    }
}

/// `/ip4/0.0.0.0/tcp/<port>`: every IPv4 interface.
fn default_listen(port: u16) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED)).with(Protocol::Tcp(port))
}

/// `~/.ourcoin/<network>`.
fn default_datadir(env: &Environment, network: Network) -> Result<PathBuf, ConfigError> {
    match &env.home {
        Some(home) => Ok(home.join(".ourcoin").join(network.name())),
        None => Err(ConfigError::NoHome),
    }
}

/// Replaces a leading `~` with HOME, as a shell would (a file's paths and
/// `--datadir=~/…` do not pass through one).
fn expand_home(path: &Path, env: &Environment) -> Result<PathBuf, ConfigError> {
    match path.strip_prefix("~") {
        Ok(rest) => match &env.home {
            Some(home) if rest.as_os_str().is_empty() => Ok(home.clone()),
            Some(home) => Ok(home.join(rest)),
            None => Err(ConfigError::NoHome),
        },
        Err(_) => Ok(path.to_path_buf()),
    }
}

fn parse_each<T>(
    values: &[String],
    origin: &Origin<'_>,
    parse: impl Fn(&str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    values.iter().map(|value| parse(value.trim()).map_err(|error| in_setting(origin, error))).collect()
}

fn parse_multiaddr(text: &str) -> Result<Multiaddr, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidMultiaddr { value: shorten(text), reason };
    if text.is_empty() {
        return Err(invalid("it is empty".to_string()));
    }
    Multiaddr::from_str(text).map_err(|e| invalid(e.to_string()))
}

fn parse_listen(text: &str) -> Result<Multiaddr, ConfigError> {
    let addr = parse_multiaddr(text)?;
    if addr.iter().any(|protocol| matches!(protocol, Protocol::P2p(_))) {
        return Err(ConfigError::ListenWithPeerId { value: shorten(text) });
    }
    Ok(addr)
}

fn parse_bootstrap(text: &str) -> Result<Multiaddr, ConfigError> {
    let addr = parse_multiaddr(text)?;
    // A peer id alone says whom to reach but not where.
    let dialable = addr.iter().count() >= 2;
    match addr.iter().last() {
        Some(Protocol::P2p(_)) if dialable => Ok(addr),
        _ => Err(ConfigError::BootstrapWithoutPeerId { value: shorten(text) }),
    }
}

fn check_log_filter(filter: &str) -> Result<(), ConfigError> {
    match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(_) => Ok(()),
        Err(e) => Err(ConfigError::InvalidLogFilter { value: shorten(filter), reason: e.to_string() }),
    }
}

/// A user's text, cut short enough to quote in an error.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    if text.chars().count() > MAX_CHARS {
        text.chars().take(MAX_CHARS).chain("…".chars()).collect()
    } else {
        text.to_string()
    }
}

/// `--query-allow`'s values: a CIDR, or why not, with the value shortened for the message.
fn parse_cidr(text: &str) -> Result<Cidr, ConfigError> {
    Cidr::parse(text).map_err(|e| ConfigError::InvalidCidr { value: shorten(text), reason: e.reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestKey;
    use libp2p::PeerId;

    /// A HOME of its own, so no real config file is read.
    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Home {
            Home { dir: tempfile::tempdir().unwrap() }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().to_path_buf()
        }

        fn env(&self) -> Environment {
            Environment { home: Some(self.path()), rust_log: None }
        }

        /// Writes `text` to `relative` under HOME and returns its path.
        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    /// The flags as `ourcoind` parses them (its own tests check the parsing
    /// itself): `--name value`, `--name=value`, and the booleans bare.
    fn args(flags: &[&str]) -> Flags {
        let mut out = Flags::default();
        let mut flags = flags.iter().copied();
        while let Some(flag) = flags.next() {
            let flag = flag.strip_prefix("--").unwrap();
            let (name, attached) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag, None),
            };
            let boolean = matches!(name, "reindex" | "mine" | "dev");
            let value = attached.unwrap_or_else(|| if boolean { "true".into() } else { flags.next().unwrap().into() });
            match name {
                "config" => out.config = Some(value.into()),
                "datadir" => out.datadir = Some(value.into()),
                "network" => out.network = Some(value.parse().unwrap()),
                "listen" => out.listen.push(value),
                "bootstrap" => out.bootstrap.push(value),
                "external-addr" => out.external_addr.push(value),
                "query-allow" => out.query_allow.push(value),
                "max-connections" => out.max_connections = Some(value.parse().unwrap()),
                "outbound-peers" => out.outbound_peers = Some(value.parse().unwrap()),
                "connect" => out.connect.push(value),
                "reindex" => out.reindex = Some(value.parse().unwrap()),
                "mine" => out.mine = Some(value.parse().unwrap()),
                "dev" => out.dev = Some(value.parse().unwrap()),
                "debug-fail-writes-after" => out.debug_fail_writes_after = Some(value.parse().unwrap()),
                "miner-address" => out.miner_address = Some(value),
                "miner-threads" => out.miner_threads = Some(value.parse().unwrap()),
                "log" => out.log = Some(value),
                "metrics" => out.metrics = Some(value),
                "blocknotify" => out.blocknotify = Some(value),
                other => panic!("no flag --{other}"),
            }
        }
        out
    }

    fn resolve_flags(home: &Home, flags: &[&str]) -> Result<NodeConfig, ConfigError> {
        resolve_in(args(flags), &home.env())
    }

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    fn bootstrap_addr() -> String {
        format!("/ip4/127.0.0.1/tcp/29733/p2p/{}", PeerId::random())
    }

    /// The inner error of a [`ConfigError::Setting`], with its origin.
    fn setting_error(result: Result<NodeConfig, ConfigError>) -> (String, ConfigError) {
        match result {
            Err(ConfigError::Setting { origin, error }) => (origin, *error),
            other => panic!("expected a bad setting, got {other:?}"),
        }
    }

    #[test]
    fn defaults_without_flags_or_file() {
        let home = Home::new();
        let config = resolve_flags(&home, &[]).unwrap();
        assert_eq!(
            config,
            NodeConfig {
                network: Network::Main,
                datadir: home.path().join(".ourcoin").join("main"),
                listen: vec![addr("/ip4/0.0.0.0/tcp/9733")],
                bootstrap: vec![],
                external_addrs: vec![],
                query_allow: vec![Cidr::parse("127.0.0.0/8").unwrap(), Cidr::parse("::1/128").unwrap()],
                max_connections: 125,
                outbound_peers: 8,
                connect: vec![],
                reindex: false,
                debug_fail_writes_after: None,
                mine: false,
                miner_address: None,
                miner_threads: 1,
                log: "info".to_string(),
                dev: false,
                metrics: None,
                blocknotify: None,
            }
        );
    }

    #[test]
    fn each_network_defaults_to_its_own_datadir_and_port() {
        let home = Home::new();
        let config = resolve_flags(&home, &["--network", "test"]).unwrap();
        assert_eq!(config.datadir, home.path().join(".ourcoin/test"));
        assert_eq!(config.listen, vec![addr("/ip4/0.0.0.0/tcp/19733")]);
        let config = resolve_flags(&home, &["--network", "regtest"]).unwrap();
        assert_eq!(config.listen, vec![addr("/ip4/0.0.0.0/tcp/29733")]);
        assert!(!config.mine);
    }

    #[test]
    fn dev_is_a_mining_regtest_node_without_an_address() {
        let home = Home::new();
        let config = resolve_flags(&home, &["--dev"]).unwrap();
        assert!(config.dev && config.mine);
        assert_eq!(config.network, Network::Regtest);
        assert_eq!(config.datadir, home.path().join(".ourcoin/regtest"));
        assert_eq!(config.miner_address, None);
        assert!(resolve_flags(&home, &["--dev", "--network", "regtest", "--mine"]).is_ok());

        let address = TestKey::new(1).address;
        let text = address.encode(Network::Regtest);
        let config = resolve_flags(&home, &["--dev", "--miner-address", &text]).unwrap();
        assert_eq!(config.miner_address, Some(address));
    }

    #[test]
    fn dev_on_another_network_or_without_mining_is_refused() {
        let home = Home::new();
        let result = resolve_flags(&home, &["--dev", "--network", "main"]);
        assert!(matches!(result, Err(ConfigError::DevOnOtherNetwork { network: Network::Main, .. })), "{result:?}");
        let result = resolve_flags(&home, &["--dev", "--mine=false"]);
        assert!(matches!(result, Err(ConfigError::DevWithoutMining { .. })), "{result:?}");

        let file = home.write("node.toml", "network = \"test\"\n");
        let result = resolve_flags(&home, &["--dev", "--config", file.to_str().unwrap()]);
        match result {
            Err(ConfigError::DevOnOtherNetwork { origin, network: Network::Test }) => {
                assert!(origin.contains("`network` in") && origin.contains("node.toml"), "{origin}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let home = Home::new();
        let key = TestKey::new(7);
        let peer = bootstrap_addr();
        let file = home.write(
            "conf/node.toml",
            &format!(
                r#"
network = "test"
datadir = "~/chains/test"
listen = ["/ip4/127.0.0.1/tcp/1000"]
bootstrap = ["{peer}"]
external_addr = ["/dns4/node.example.org/tcp/19733"]
query_allow = ["0.0.0.0/0", "::/0"]
reindex = true
mine = true
miner_address = "{address}"
miner_threads = 4
log = "debug"
metrics = "127.0.0.1:9734"
blocknotify = "echo %s"
"#,
                address = key.address.encode(Network::Test),
            ),
        );
        let path = file.to_str().unwrap();

        let from_file = resolve_flags(&home, &["--config", path]).unwrap();
        assert_eq!(
            from_file,
            NodeConfig {
                network: Network::Test,
                datadir: home.path().join("chains/test"),
                listen: vec![addr("/ip4/127.0.0.1/tcp/1000")],
                bootstrap: vec![addr(&peer)],
                external_addrs: vec![addr("/dns4/node.example.org/tcp/19733")],
                query_allow: vec![Cidr::parse("0.0.0.0/0").unwrap(), Cidr::parse("::/0").unwrap()],
                max_connections: 125,
                outbound_peers: 8,
                connect: vec![],
                reindex: true,
                debug_fail_writes_after: None,
                mine: true,
                miner_address: Some(key.address),
                miner_threads: 4,
                log: "debug".to_string(),
                dev: false,
                metrics: Some("127.0.0.1:9734".parse().unwrap()),
                blocknotify: Some("echo %s".to_string()),
            }
        );

        let other = home.path().join("elsewhere");
        let flags = [
            "--config",
            path,
            "--datadir",
            other.to_str().unwrap(),
            "--listen",
            "/ip4/127.0.0.1/tcp/2000",
            "--listen",
            "/ip6/::1/tcp/2000",
            "--query-allow",
            "10.0.0.0/8",
            "--reindex=false",
            "--mine=false",
            "--miner-threads",
            "2",
            "--log",
            "warn",
        ];
        let with_flags = resolve_flags(&home, &flags).unwrap();
        assert_eq!(
            with_flags,
            NodeConfig {
                datadir: other,
                listen: vec![addr("/ip4/127.0.0.1/tcp/2000"), addr("/ip6/::1/tcp/2000")],
                query_allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
                reindex: false,
                debug_fail_writes_after: None,
                mine: false,
                miner_threads: 2,
                log: "warn".to_string(),
                ..from_file
            }
        );
    }

    #[test]
    fn rust_log_wins_over_the_file_but_not_over_the_flag() {
        let home = Home::new();
        let file = home.write("node.toml", "log = \"debug\"\n");
        let path = file.to_str().unwrap();
        let env = Environment { home: Some(home.path()), rust_log: Some("warn".to_string()) };
        assert_eq!(resolve_in(args(&["--config", path]), &env).unwrap().log, "warn");
        assert_eq!(resolve_in(args(&["--config", path, "--log", "trace"]), &env).unwrap().log, "trace");
        assert_eq!(resolve_flags(&home, &["--config", path]).unwrap().log, "debug");
    }

    #[test]
    fn an_empty_file_list_means_none_but_an_empty_listen_list_means_the_default() {
        let home = Home::new();
        let file = home.write("node.toml", "query_allow = []\nlisten = []\n");
        let config = resolve_flags(&home, &["--config", file.to_str().unwrap()]).unwrap();
        assert_eq!(config.query_allow, vec![]);
        assert_eq!(config.listen, vec![addr("/ip4/0.0.0.0/tcp/9733")]);
    }

    #[test]
    fn the_file_in_the_datadir_is_read_without_config() {
        let home = Home::new();
        home.write("data/ourcoind.toml", "miner_threads = 3\n");
        let datadir = home.path().join("data");
        let config = resolve_flags(&home, &["--datadir", datadir.to_str().unwrap()]).unwrap();
        assert_eq!(config.miner_threads, 3);
        assert_eq!(config.datadir, datadir);

        home.write(".ourcoin/regtest/ourcoind.toml", "miner_threads = 5\n");
        assert_eq!(resolve_flags(&home, &["--network", "regtest"]).unwrap().miner_threads, 5);
        assert_eq!(resolve_flags(&home, &["--dev"]).unwrap().miner_threads, 5);
        assert_eq!(resolve_flags(&home, &[]).unwrap().miner_threads, 1, "main's datadir has no file");
    }

    #[test]
    fn a_file_in_a_default_datadir_cannot_move_the_datadir_or_change_its_network() {
        let home = Home::new();
        home.write(".ourcoin/main/ourcoind.toml", "datadir = \"/tmp/x\"\n");
        let result = resolve_flags(&home, &[]);
        assert!(matches!(result, Err(ConfigError::DatadirInDatadirConfig { .. })), "{result:?}");

        home.write(".ourcoin/main/ourcoind.toml", "network = \"test\"\n");
        let result = resolve_flags(&home, &[]);
        assert!(
            matches!(
                result,
                Err(ConfigError::NetworkOfDefaultDatadir {
                    file_network: Network::Test,
                    dir_network: Network::Main,
                    ..
                })
            ),
            "{result:?}"
        );
        home.write(".ourcoin/main/ourcoind.toml", "network = \"main\"\n");
        assert!(resolve_flags(&home, &[]).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_file_values_are_refused() {
        let home = Home::new();
        for (text, expected) in [
            ("mien = true\n", "mien"),
            ("mine = true\n\nminer_thread = 2\n", "`miner_thread`, expected one of"),
            ("mine = true\n\nminer_thread = 2\n", "line 3"),
            ("config = \"other.toml\"\n", "config"),
            ("network = \"moon\"\n", "moon"),
            ("miner_threads = -1\n", "line 1"),
            ("\n\nlisten = \"/ip4/1.2.3.4/tcp/1\"\n", "line 3"),
            ("mine = yes\n", ""),
        ] {
            let file = home.write("bad.toml", text);
            match resolve_flags(&home, &["--config", file.to_str().unwrap()]) {
                Err(error @ ConfigError::ParseFile { .. }) => {
                    let message = error.to_string();
                    assert!(message.contains(expected) && message.contains("bad.toml"), "{text:?}: {message}");
                }
                other => panic!("{text:?}: expected a parse error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_config_file_is_refused_but_a_missing_datadir_file_is_not() {
        let home = Home::new();
        let missing = home.path().join("nope.toml");
        let result = resolve_flags(&home, &["--config", missing.to_str().unwrap()]);
        assert!(matches!(result, Err(ConfigError::ReadFile { .. })), "{result:?}");
        let datadir = home.path().join("empty");
        assert!(resolve_flags(&home, &["--datadir", datadir.to_str().unwrap()]).is_ok());
    }

    #[test]
    fn without_home_a_datadir_must_be_given() {
        let env = Environment { home: None, rust_log: None };
        assert!(matches!(resolve_in(args(&[]), &env), Err(ConfigError::NoHome)));
        assert!(matches!(resolve_in(args(&["--datadir", "~/x"]), &env), Err(ConfigError::NoHome)));
        let config = resolve_in(args(&["--datadir", "/var/lib/ourcoin"]), &env).unwrap();
        assert_eq!(config.datadir, PathBuf::from("/var/lib/ourcoin"));
    }

    #[test]
    fn a_leading_tilde_is_home() {
        let home = Home::new();
        assert_eq!(resolve_flags(&home, &["--datadir", "~/d"]).unwrap().datadir, home.path().join("d"));
        assert_eq!(resolve_flags(&home, &["--datadir", "~"]).unwrap().datadir, home.path());
        assert_eq!(resolve_flags(&home, &["--datadir", "a/~"]).unwrap().datadir, PathBuf::from("a/~"));
    }

    #[test]
    fn bad_flag_values_are_refused_naming_the_flag() {
        let home = Home::new();
        let regtest_address = TestKey::new(1).address.encode(Network::Regtest);
        let mut typo = TestKey::new(1).address.encode(Network::Main);
        typo.pop();
        typo.push(if typo.ends_with('q') { 'p' } else { 'q' });
        let peer_only = format!("/p2p/{}", PeerId::random());
        let listen_with_peer = format!("/ip4/0.0.0.0/tcp/9733/p2p/{}", PeerId::random());

        /// The flags, the origin the error names, and the error expected.
        type Case<'a> = (Vec<&'a str>, &'static str, fn(&ConfigError) -> bool);
        let cases: Vec<Case> = vec![
            (vec!["--listen", "0.0.0.0:9733"], "--listen", |e| matches!(e, ConfigError::InvalidMultiaddr { .. })),
            (vec!["--listen", ""], "--listen", |e| matches!(e, ConfigError::InvalidMultiaddr { .. })),
            (vec!["--listen", &listen_with_peer], "--listen", |e| matches!(e, ConfigError::ListenWithPeerId { .. })),
            (vec!["--bootstrap", "/ip4/1.2.3.4/tcp/9733"], "--bootstrap", |e| {
                matches!(e, ConfigError::BootstrapWithoutPeerId { .. })
            }),
            (vec!["--bootstrap", &peer_only], "--bootstrap", |e| {
                matches!(e, ConfigError::BootstrapWithoutPeerId { .. })
            }),
            (vec!["--bootstrap", "/ip4/1.2.3.4/tcp/9733/p2p/nope"], "--bootstrap", |e| {
                matches!(e, ConfigError::InvalidMultiaddr { .. })
            }),
            (vec!["--external-addr", "node.example.org"], "--external-addr", |e| {
                matches!(e, ConfigError::InvalidMultiaddr { .. })
            }),
            (vec!["--query-allow", "10.0.0.0/33"], "--query-allow", |e| matches!(e, ConfigError::InvalidCidr { .. })),
            (vec!["--query-allow", "localhost"], "--query-allow", |e| matches!(e, ConfigError::InvalidCidr { .. })),
            (vec!["--mine", "--miner-address", &typo], "--miner-address", |e| {
                matches!(e, ConfigError::InvalidMinerAddress { error: AddressParseError::Invalid(_), .. })
            }),
            (vec!["--mine", "--miner-address", &regtest_address], "--miner-address", |e| {
                matches!(e, ConfigError::InvalidMinerAddress { error: AddressParseError::WrongNetwork { .. }, .. })
            }),
            (vec!["--miner-threads", "0"], "--miner-threads", |e| matches!(e, ConfigError::ZeroMinerThreads)),
            (vec!["--log", "info,ourcoin=loud"], "--log", |e| matches!(e, ConfigError::InvalidLogFilter { .. })),
        ];
        for (flags, origin, expected) in cases {
            let (found_origin, error) = setting_error(resolve_flags(&home, &flags));
            assert_eq!(found_origin, origin, "{flags:?}");
            assert!(expected(&error), "{flags:?}: {error:?}");
        }
    }

    #[test]
    fn bad_values_in_the_file_name_the_key_and_the_file() {
        let home = Home::new();
        let file = home.write("node.toml", "query_allow = [\"127.0.0.1/8\", \"1.2.3.4/40\"]\n");
        let (origin, error) = setting_error(resolve_flags(&home, &["--config", file.to_str().unwrap()]));
        assert_eq!(origin, format!("`query_allow` in {}", file.display()));
        assert!(matches!(error, ConfigError::InvalidCidr { .. }));
        let env = Environment { home: Some(home.path()), rust_log: Some("info,x=nonsense".to_string()) };
        let (origin, _) = setting_error(resolve_in(args(&[]), &env));
        assert_eq!(origin, "the RUST_LOG environment variable");
    }

    #[test]
    fn mining_needs_an_address_except_in_dev() {
        let home = Home::new();
        let result = resolve_flags(&home, &["--mine"]);
        assert!(matches!(result, Err(ConfigError::MineWithoutAddress { network: Network::Main })), "{result:?}");
        let address = TestKey::new(3).address;
        let text = address.encode(Network::Main);
        let config = resolve_flags(&home, &["--mine", "--miner-address", &text, "--miner-threads", "8"]).unwrap();
        assert!(config.mine);
        assert_eq!(config.miner_address, Some(address));
        assert_eq!(config.miner_threads, 8);
        // An address without --mine is kept (a file may hold it for a later --mine).
        let config = resolve_flags(&home, &["--miner-address", &text]).unwrap();
        assert!(!config.mine);
        assert_eq!(config.miner_address, Some(address));
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let home = Home::new();
        let message = resolve_flags(&home, &["--bootstrap", "/ip4/1.2.3.4/tcp/9733"]).unwrap_err().to_string();
        assert!(
            message.starts_with("--bootstrap: `/ip4/1.2.3.4/tcp/9733` does not end in /p2p/<peer id>"),
            "{message}"
        );
        let message = resolve_flags(&home, &["--mine"]).unwrap_err().to_string();
        assert!(message.contains("--miner-address") && message.contains("wallet new"), "{message}");
        let typo = "oc1qqqqq";
        let message = resolve_flags(&home, &["--miner-address", typo]).unwrap_err().to_string();
        assert!(message.contains(typo) && message.contains("main network"), "{message}");
    }

    #[test]
    fn the_example_config_sets_every_key_to_its_default() {
        const EXAMPLE: &str = include_str!("../../config/ourcoind.toml");
        let as_shipped: FileConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(as_shipped, FileConfig::default(), "every setting is commented out");

        let uncommented: String = EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(setting) if setting.starts_with(|c: char| c.is_ascii_lowercase()) => setting,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let every_key: FileConfig = toml::from_str(&uncommented).unwrap();
        let defaults = resolve_flags(&Home::new(), &[]).unwrap();
        let cidrs: Vec<Cidr> = every_key.query_allow.unwrap().iter().map(|c| Cidr::parse(c).unwrap()).collect();
        let listen: Vec<Multiaddr> = every_key.listen.unwrap().iter().map(|a| addr(a)).collect();
        assert_eq!(every_key.network, Some(defaults.network));
        assert_eq!(every_key.datadir, Some(PathBuf::from("~/.ourcoin/main")));
        assert_eq!(listen, defaults.listen);
        assert!(every_key.bootstrap.is_some() && every_key.external_addr.is_some());
        assert_eq!(cidrs, defaults.query_allow);
        assert_eq!(every_key.reindex, Some(defaults.reindex));
        assert_eq!(every_key.mine, Some(defaults.mine));
        assert!(every_key.miner_address.is_some());
        assert_eq!(every_key.miner_threads, Some(defaults.miner_threads));
        assert_eq!(every_key.log, Some(defaults.log));
        assert_eq!(every_key.dev, Some(defaults.dev));
        // Off by default; the file shows an example of each.
        assert!(every_key.metrics.is_some() && every_key.blocknotify.is_some());
        assert_eq!((defaults.metrics, defaults.blocknotify), (None, None));
    }

    #[test]
    fn metrics_and_blocknotify_are_checked() {
        let home = Home::new();
        let config = resolve_flags(&home, &["--metrics", "127.0.0.1:9734", "--blocknotify", "echo %s"]).unwrap();
        assert_eq!(config.metrics, Some("127.0.0.1:9734".parse().unwrap()));
        assert_eq!(config.blocknotify.as_deref(), Some("echo %s"));
        let message = resolve_flags(&home, &["--metrics", "localhost"]).unwrap_err().to_string();
        assert!(message.starts_with("--metrics: `localhost` is not an IP address and port"), "{message}");
        let message = resolve_flags(&home, &["--blocknotify", " "]).unwrap_err().to_string();
        assert!(message.contains("empty"), "{message}");
    }
}
