//! CIDR blocks as Vault's auth methods accept them: parsing, membership, subsets, rendering.
//!
//! Vault has two spellings for address restrictions. "Strict" lists (`secret_id_bound_cidrs`,
//! `cidr_list`) must be written as `address/prefix`; token bound CIDRs also accept a bare
//! address, meaning that one host, and render a host-length block back as the bare address.

use std::{fmt, net::IpAddr, str::FromStr};

/// One address block: an address and a prefix length. The address keeps any host bits it was
/// written with (`10.1.2.3/8`), as Vault echoes them back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix`; a bare address is rejected, as Vault's strict lists do.
    pub fn parse_strict(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
        let addr = parse_ip(addr).ok_or_else(|| format!("invalid CIDR address: {text}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|prefix| *prefix <= max_prefix(addr))
            .ok_or_else(|| format!("invalid CIDR address: {text}"))?;
        Ok(Cidr { addr, prefix })
    }

    /// Parses `address/prefix` or a bare address (one host).
    pub fn parse_lenient(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        if text.contains('/') {
            return Cidr::parse_strict(text).map_err(|_| unconvertible(text));
        }
        let addr = parse_ip(text).ok_or_else(|| unconvertible(text))?;
        Ok(Cidr::host(addr))
    }

    /// The block holding exactly `addr`.
    pub fn host(addr: IpAddr) -> Cidr {
        let addr = addr.to_canonical();
        Cidr {
            addr,
            prefix: max_prefix(addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the block. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Whether every address of `other` lies in this block.
    pub fn contains_block(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

impl fmt::Display for Cidr {
    /// A host-length block renders as the bare address, like Vault's `sockaddr` values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn unconvertible(text: &str) -> String {
    format!(
        "error parsing address {text:?}: Unable to convert {text:?} to an IPv4 or IPv6 address, \
         or a UNIX Socket"
    )
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    IpAddr::from_str(text.trim())
        .ok()
        .map(|addr| addr.to_canonical())
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_u32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Parses a list of strict blocks, failing on the first invalid one.
pub fn parse_strict_list(blocks: &[String]) -> Result<Vec<Cidr>, String> {
    blocks
        .iter()
        .map(|block| Cidr::parse_strict(block))
        .collect()
}

/// Parses token bound CIDRs and renders them the way Vault stores them (`1.2.3.4/32` becomes
/// `1.2.3.4`).
pub fn normalize_lenient_list(blocks: &[String]) -> Result<Vec<String>, String> {
    blocks
        .iter()
        .filter(|block| !block.trim().is_empty())
        .map(|block| Cidr::parse_lenient(block).map(|cidr| cidr.to_string()))
        .collect()
}

/// The client address of a request (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`).
pub fn parse_remote_ip(remote_addr: &str) -> Option<IpAddr> {
    let text = remote_addr.trim();
    if let Some(ip) = parse_ip(text) {
        return Some(ip);
    }
    if let Ok(socket) = std::net::SocketAddr::from_str(text) {
        return Some(socket.ip().to_canonical());
    }
    None
}

/// Whether `remote_addr` lies in any of `blocks` (each strict or lenient). An unparsable
/// address or block never matches, so a malformed value cannot widen access.
pub fn remote_addr_allowed(remote_addr: Option<&str>, blocks: &[String]) -> bool {
    let Some(ip) = remote_addr.and_then(parse_remote_ip) else {
        return false;
    };
    blocks.iter().any(|block| {
        Cidr::parse_lenient(block)
            .map(|cidr| cidr.contains(ip))
            .unwrap_or(false)
    })
}

/// Whether every block of `inner` lies inside some block of `outer`.
pub fn is_subset(outer: &[Cidr], inner: &[Cidr]) -> bool {
    inner.iter().all(|block| {
        outer
            .iter()
            .any(|container| container.contains_block(block))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn strict_requires_a_prefix() {
        assert!(Cidr::parse_strict("10.0.0.1").is_err());
        assert!(Cidr::parse_strict("10.0.0.0/33").is_err());
        assert!(Cidr::parse_strict("bogus/8").is_err());
        let cidr = Cidr::parse_strict(" 10.0.0.0/8 ").unwrap();
        assert!(cidr.contains(ip("10.255.1.2")));
        assert!(!cidr.contains(ip("11.0.0.1")));
        assert!(cidr.contains(ip("::ffff:10.1.1.1")));
    }

    #[test]
    fn lenient_renders_hosts_bare() {
        let list = [
            "10.1.2.3/8",
            "::1/128",
            "fe80::1/64",
            "5.6.7.8",
            "127.0.0.1/32",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            normalize_lenient_list(&list).unwrap(),
            ["10.1.2.3/8", "::1", "fe80::1/64", "5.6.7.8", "127.0.0.1"]
        );
        assert!(normalize_lenient_list(&["bogus".to_owned()]).is_err());
    }

    #[test]
    fn zero_prefix_matches_everything_of_its_family() {
        let all = Cidr::parse_strict("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let all6 = Cidr::parse_strict("::/0").unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn subsets_and_remote_addresses() {
        let outer = parse_strict_list(&["10.0.0.0/8".to_owned()]).unwrap();
        let inside = parse_strict_list(&["10.1.0.0/16".to_owned()]).unwrap();
        let outside = parse_strict_list(&["11.0.0.0/8".to_owned()]).unwrap();
        let wider = parse_strict_list(&["10.0.0.0/7".to_owned()]).unwrap();
        assert!(is_subset(&outer, &inside));
        assert!(!is_subset(&outer, &outside));
        assert!(!is_subset(&outer, &wider));
        let blocks = ["127.0.0.0/8".to_owned()];
        assert!(remote_addr_allowed(Some("127.0.0.1"), &blocks));
        assert!(remote_addr_allowed(Some("127.0.0.1:8200"), &blocks));
        assert!(!remote_addr_allowed(Some("10.0.0.1"), &blocks));
        assert!(!remote_addr_allowed(None, &blocks));
        assert!(remote_addr_allowed(Some("[::1]:80"), &["::1".to_owned()]));
    }
}
