//! External addresses aggregated into the smallest blocks that cover them and hold no
//! address of a pod or node: addresses are grouped by /24 (IPv4) or /64 (IPv6), and each
//! group becomes the block of its common prefix unless that block holds a pod or node
//! address, in which case the group is split at the next bit and each half covered alike.
//! A lone address is its own /32 (/128). So a block never lets in a pod nobody observed, and
//! never spans more than one /24 (/64) of addresses.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netfence_model::Inventory;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every real pod address (host-network pods' are their nodes') and node address, sorted.
pub(crate) fn pod_and_node_addresses(inventory: &Inventory) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = inventory
        .pods()
        .iter()
        .filter(|pod| !pod.synthetic_ip)
        .flat_map(|pod| pod.ips.iter().copied())
        .chain(
            inventory
                .nodes
                .iter()
                .flat_map(|node| node.addresses.iter().copied()),
        )
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// An address as (bits, width): IPv4 in the low 32 bits.
fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn block(value: u128, width: u8, prefix: u8) -> IpNet {
    if width == 32 {
        // The value came from a u32: it fits.
        let v4 = Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX));
        Ipv4Net::new(v4, prefix).map_or(IpNet::from(IpAddr::V4(v4)), |net| IpNet::V4(net.trunc()))
    } else {
        let v6 = Ipv6Addr::from(value);
        Ipv6Net::new(v6, prefix).map_or(IpNet::from(IpAddr::V6(v6)), |net| IpNet::V6(net.trunc()))
    }
}

/// The blocks covering `ips` (see the module notes); `forbidden` is sorted.
pub(crate) fn cover(ips: &[IpAddr], forbidden: &[IpAddr]) -> Vec<IpNet> {
    let mut values: Vec<(u8, u128)> = ips
        .iter()
        .map(|ip| {
            let (value, width) = bits(*ip);
            (width, value)
        })
        .collect();
    values.sort_unstable();
    values.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    while start < values.len() {
        let (width, first) = values[start];
        let group_bits = if width == 32 { 24 } else { 64 };
        let shift = width - group_bits;
        let end = start
            + values[start..]
                .iter()
                .take_while(|(w, v)| *w == width && v >> shift == first >> shift)
                .count();
        let group: Vec<u128> = values[start..end].iter().map(|(_, v)| *v).collect();
        cover_group(&group, width, forbidden, &mut out);
        start = end;
    }
    out
}

/// Whether a forbidden address of the family lies in the block `value/prefix`.
fn holds_forbidden(value: u128, width: u8, prefix: u8, forbidden: &[IpAddr]) -> bool {
    let host_bits = u32::from(width - prefix);
    let low = if host_bits >= 128 {
        0
    } else {
        (value >> host_bits) << host_bits
    };
    let high = if host_bits >= 128 {
        u128::MAX
    } else {
        low | ((1u128 << host_bits) - 1)
    };
    forbidden.iter().any(|ip| {
        let (v, w) = bits(*ip);
        w == width && (low..=high).contains(&v)
    })
}

/// Cover a sorted group of addresses of one family.
fn cover_group(group: &[u128], width: u8, forbidden: &[IpAddr], out: &mut Vec<IpNet>) {
    let (Some(&first), Some(&last)) = (group.first(), group.last()) else {
        return;
    };
    if group.len() == 1 {
        out.push(block(first, width, width));
        return;
    }
    // Common prefix of the smallest and largest: that of the whole sorted group.
    let differing = u8::try_from(128 - (first ^ last).leading_zeros()).unwrap_or(128);
    let prefix = width - differing;
    if !holds_forbidden(first, width, prefix, forbidden) {
        out.push(block(first, width, prefix));
        return;
    }
    // Split at the first differing bit: both halves are non-empty.
    let bit = 1u128 << (differing - 1);
    let split = group.partition_point(|v| v & bit == 0);
    cover_group(&group[..split], width, forbidden, out);
    cover_group(&group[split..], width, forbidden, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn texts(blocks: Vec<IpNet>) -> Vec<String> {
        blocks.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn neighbours_share_a_block_unless_a_pod_is_inside() {
        let observed = ips(&["52.94.10.3", "52.94.10.77", "8.8.8.8"]);
        assert_eq!(
            texts(cover(&observed, &[])),
            ["8.8.8.8/32", "52.94.10.0/25"]
        );
        // A pod at .40 is inside /25: the two addresses stay apart.
        let pod = ips(&["52.94.10.40"]);
        assert_eq!(
            texts(cover(&observed, &pod)),
            ["8.8.8.8/32", "52.94.10.3/32", "52.94.10.77/32"]
        );
        // Across /24s: never one block.
        let apart = ips(&["10.1.1.1", "10.1.2.1"]);
        assert_eq!(texts(cover(&apart, &[])), ["10.1.1.1/32", "10.1.2.1/32"]);
        let v6 = ips(&["2001:db8::1", "2001:db8::2", "2001:db8::3"]);
        assert_eq!(texts(cover(&v6, &[])), ["2001:db8::/126"]);
    }

    #[test]
    fn every_observed_address_is_covered_and_no_forbidden_one() {
        let observed = ips(&["1.2.3.1", "1.2.3.2", "1.2.3.200", "1.2.3.201", "1.2.3.5"]);
        let forbidden = ips(&["1.2.3.4", "1.2.3.100"]);
        let blocks = cover(&observed, &forbidden);
        for ip in &observed {
            assert!(blocks.iter().any(|b| b.contains(ip)), "{ip} not covered");
        }
        for ip in &forbidden {
            assert!(!blocks.iter().any(|b| b.contains(ip)), "{ip} covered");
        }
    }
}
