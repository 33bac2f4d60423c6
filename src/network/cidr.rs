//! IP networks in CIDR notation (`--query-allow`), and whether an address lies in one.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a text is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an IP network: {reason}")]
pub struct CidrError {
    pub value: String,
    pub reason: String,
}

/// An IPv4 or IPv6 network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// With every bit past the prefix cleared.
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` or a bare address (a single host: /32 or
    /// /128). Bits past the prefix are ignored: `192.168.1.7/24` is
    /// `192.168.1.0/24`.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let invalid = |reason: &str| CidrError { value: text.to_string(), reason: reason.to_string() };
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = IpAddr::from_str(address).map_err(|_| invalid("not an IPv4 or IPv6 address before the /"))?;
        let max_prefix = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => max_prefix,
            // u8's parser takes a leading '+', which no address notation has.
            Some(digits) if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(invalid("the prefix length after the / is not a number"))
            }
            Some(digits) => match digits.parse::<u8>() {
                Ok(prefix) if prefix <= max_prefix => prefix,
                _ if max_prefix == 32 => return Err(invalid("an IPv4 prefix length is at most 32")),
                _ => return Err(invalid("an IPv6 prefix length is at most 128")),
            },
        };
        Ok(Cidr { network: mask(address, prefix), prefix })
    }

    /// The default of `--query-allow`: this machine only.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr { network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 },
            Cidr { network: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 },
        ]
    }

    /// Whether `ip` lies in this network. An IPv4 address mapped into IPv6
    /// (`::ffff:127.0.0.1`, as a dual-stack socket reports IPv4 peers) is
    /// treated as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => mask(ip, self.prefix) == self.network,
            _ => false,
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }
}

/// `address` with every bit past the first `prefix` cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32u32.saturating_sub(prefix.into())).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128u32.saturating_sub(prefix.into())).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        for (text, shown) in [
            ("127.0.0.0/8", "127.0.0.0/8"),
            ("192.168.1.7/24", "192.168.1.0/24"),
            ("192.168.1.7", "192.168.1.7/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("::1/128", "::1/128"),
            ("fd00::1234/8", "fd00::/8"),
            ("::/0", "::/0"),
        ] {
            assert_eq!(Cidr::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for text in ["", "/8", "127.0.0.1/", "127.0.0.1/33", "::/129", "127.0.0.1/+8", "127.0.0.1/8/8", "1.2.3/8", "x"]
        {
            assert!(matches!(Cidr::parse(text), Err(CidrError { .. })), "{text:?}");
        }
    }

    #[test]
    fn cidr_containment() {
        let ip = |text: &str| IpAddr::from_str(text).unwrap();
        let cases = [
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "127.255.255.254", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("127.0.0.0/8", "::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("192.168.0.0/23", "192.168.1.255", true),
            ("192.168.0.0/23", "192.168.2.0", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "203.0.113.9", false),
            ("::1/128", "::1", true),
            ("::1/128", "::2", false),
            ("::1/128", "127.0.0.1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
        ];
        for (cidr, address, inside) in cases {
            assert_eq!(Cidr::parse(cidr).unwrap().contains(ip(address)), inside, "{cidr} contains {address}");
        }
        let loopback = Cidr::loopback();
        assert!(loopback.iter().any(|c| c.contains(ip("127.0.0.1"))));
        assert!(loopback.iter().any(|c| c.contains(ip("::1"))));
        assert!(!loopback.iter().any(|c| c.contains(ip("192.168.1.1"))));
    }
}
