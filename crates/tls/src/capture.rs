//! Capture files to TCP segments: pcap and pcapng read as a stream through `pcap-parser`'s
//! circular buffer (memory stays flat whatever the file's size), link layers decoded to IP
//! and TCP with `etherparse`. Link types: Ethernet (with VLAN tags), Linux cooked v1 and v2
//! (what `tcpdump -i any` writes), raw IP, BSD loopback.

use crate::TlsError;
use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The reader's buffer; it grows (up to [`MAX_BLOCK`]) only for a block larger than this.
const BUFFER: usize = 1 << 20;
/// The largest block accepted (pcapng blocks and pcap records): larger is a corrupt file.
const MAX_BLOCK: usize = 64 << 20;

/// One TCP segment of a capture, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Segment<'a> {
    /// Capture time, seconds since the epoch (fractional).
    pub time: f64,
    /// Sender.
    pub source: SocketAddr,
    /// Receiver.
    pub destination: SocketAddr,
    /// Sequence number.
    pub sequence: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// TCP payload (as captured: a snap length may have cut it).
    pub payload: &'a [u8],
}

/// What the reader saw besides TCP segments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets (frames) read.
    pub packets: u64,
    /// TCP segments handed on.
    pub tcp: u64,
    /// Frames that are not TCP over IP (ARP, UDP, ICMP, …).
    pub other: u64,
    /// Frames cut or malformed below TCP (counted, not fatal).
    pub malformed: u64,
}

/// Per-interface facts of a pcapng section, or the one link of a pcap file.
#[derive(Clone, Copy)]
struct Interface {
    linktype: Linktype,
    resolution: u64,
    offset: i64,
}

/// Read one capture file (pcap or pcapng, detected by its magic number), calling `sink` for
/// every TCP segment in file order.
///
/// Errors name the file and, for a damaged file, the record number and byte offset; a frame
/// that does not decode (cut by the snap length, not IP) is counted in
/// [`CaptureStats::malformed`] instead.
pub fn read_file(
    path: &Path,
    stats: &mut CaptureStats,
    sink: &mut dyn FnMut(&Segment<'_>),
) -> Result<(), TlsError> {
    let file = std::fs::File::open(path).map_err(|source| TlsError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    read(path, file, stats, sink)
}

/// [`read_file`] on any reader (`path` names it in errors).
pub fn read(
    path: &Path,
    input: impl Read + Send,
    stats: &mut CaptureStats,
    sink: &mut dyn FnMut(&Segment<'_>),
) -> Result<(), TlsError> {
    let corrupt = |record: u64, offset: usize, detail: String| TlsError::Corrupt {
        path: path.to_path_buf(),
        record,
        offset: offset as u64,
        detail,
    };
    let mut reader = match pcap_parser::create_reader(BUFFER, input) {
        Ok(reader) => reader,
        Err(PcapError::Eof) => return Err(TlsError::Empty(path.to_path_buf())),
        Err(PcapError::ReadError) => {
            return Err(corrupt(0, 0, "read error".into()));
        }
        Err(_) => return Err(TlsError::NotACapture(path.to_path_buf())),
    };
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut record: u64 = 0;
    let mut capacity = BUFFER;
    loop {
        let offset = reader.consumed();
        let exhausted = reader.reader_exhausted();
        match reader.next() {
            Ok((length, block)) => {
                record += 1;
                let mut frame = |interface: Option<Interface>, time: f64, data: &[u8]| {
                    stats.packets += 1;
                    let Some(interface) = interface else {
                        return Err(corrupt(
                            record,
                            offset,
                            "packet before any interface description".into(),
                        ));
                    };
                    match decode(interface.linktype, time, data) {
                        Decoded::Tcp(segment) => {
                            stats.tcp += 1;
                            sink(&segment);
                        }
                        Decoded::Other => stats.other += 1,
                        Decoded::Malformed => stats.malformed += 1,
                        Decoded::Unsupported => {
                            return Err(TlsError::LinkType {
                                path: path.to_path_buf(),
                                linktype: interface.linktype.0,
                            })
                        }
                    }
                    Ok(())
                };
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        let resolution = if header.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                        interfaces = vec![Interface {
                            linktype: header.network,
                            resolution,
                            offset: 0,
                        }];
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        let interface = interfaces.first().copied();
                        let resolution = interface.map_or(1_000_000, |i| i.resolution);
                        let time = f64::from(packet.ts_sec)
                            + f64::from(packet.ts_usec) / resolution as f64;
                        frame(interface, time, packet.data)?;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            linktype: idb.linktype,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(interface) = interfaces.get(epb.if_id as usize).copied() else {
                            return Err(corrupt(
                                record,
                                offset,
                                format!(
                                    "packet on interface {} that no interface description block declares",
                                    epb.if_id
                                ),
                            ));
                        };
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let time =
                            ticks as f64 / interface.resolution as f64 + interface.offset as f64;
                        frame(Some(interface), time, epb.packet_data())?;
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        frame(interfaces.first().copied(), 0.0, spb.packet_data())?;
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(length);
            }
            Err(PcapError::Eof) => return Ok(()),
            Err(PcapError::Incomplete(_)) if !exhausted => {
                if reader.refill().is_err() {
                    return Err(corrupt(record + 1, offset, "read error".into()));
                }
            }
            Err(PcapError::Incomplete(_)) | Err(PcapError::UnexpectedEof) => {
                return Err(TlsError::Truncated {
                    path: path.to_path_buf(),
                    record: record + 1,
                    offset: offset as u64,
                })
            }
            Err(PcapError::BufferTooSmall) if capacity < MAX_BLOCK => {
                capacity *= 4;
                reader.grow(capacity);
                if reader.refill().is_err() {
                    return Err(corrupt(record + 1, offset, "read error".into()));
                }
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(corrupt(
                    record + 1,
                    offset,
                    format!("a block larger than {} MiB", MAX_BLOCK >> 20),
                ))
            }
            Err(error) => {
                let detail = match error {
                    PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
                        format!("not a valid block ({kind:?})")
                    }
                    PcapError::ReadError => "read error".into(),
                    _ => "not a valid block".into(),
                };
                return Err(corrupt(record + 1, offset, detail));
            }
        }
    }
}

enum Decoded<'a> {
    Tcp(Segment<'a>),
    Other,
    Malformed,
    Unsupported,
}

/// A frame of `linktype` to its TCP segment, if it carries one.
fn decode(linktype: Linktype, time: f64, data: &[u8]) -> Decoded<'_> {
    let sliced = match linktype {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(data),
        // Linux cooked v1 (16-byte header, protocol at 14) and v2 (20 bytes, protocol at 0):
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html and _SLL2.html.
        Linktype::LINUX_SLL => match (data.get(14..16), data.get(16..)) {
            (Some(protocol), Some(rest)) => SlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([protocol[0], protocol[1]])),
                rest,
            ),
            _ => return Decoded::Malformed,
        },
        Linktype::LINUX_SLL2 => match (data.get(0..2), data.get(20..)) {
            (Some(protocol), Some(rest)) => SlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([protocol[0], protocol[1]])),
                rest,
            ),
            _ => return Decoded::Malformed,
        },
        // BSD loopback: a 4-byte address family, then the IP packet (its version nibble says
        // which).
        Linktype::NULL | Linktype::LOOP => match data.get(4..) {
            Some(rest) => SlicedPacket::from_ip(rest),
            None => return Decoded::Malformed,
        },
        _ => return Decoded::Unsupported,
    };
    let Ok(packet) = sliced else {
        return Decoded::Malformed;
    };
    let (source, destination): (IpAddr, IpAddr) = match &packet.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return Decoded::Other,
    };
    match packet.transport {
        Some(TransportSlice::Tcp(tcp)) => Decoded::Tcp(Segment {
            time,
            source: SocketAddr::new(source, tcp.source_port()),
            destination: SocketAddr::new(destination, tcp.destination_port()),
            sequence: tcp.sequence_number(),
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            payload: tcp.payload(),
        }),
        _ => Decoded::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, VlanId};

    /// An IPv4/TCP packet (no link header) from 10.0.0.1:1000 to 10.0.0.2:443 with payload.
    fn ip_packet(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 443, 77, 1000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn check(linktype: Linktype, frame: &[u8]) {
        match decode(linktype, 1.0, frame) {
            Decoded::Tcp(segment) => {
                assert_eq!(segment.source, "10.0.0.1:1000".parse().unwrap());
                assert_eq!(segment.destination, "10.0.0.2:443".parse().unwrap());
                assert_eq!(segment.sequence, 77);
                assert_eq!(segment.payload, b"hello");
            }
            _ => panic!("{linktype:?}: not decoded as TCP"),
        }
    }

    #[test]
    fn every_link_layer_decodes_to_the_same_segment() {
        let ip = ip_packet(b"hello");
        check(Linktype::RAW, &ip);
        check(Linktype::IPV4, &ip);
        let mut vlan = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .single_vlan(VlanId::try_new(42).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 443, 77, 1000)
            .write(&mut vlan, b"hello")
            .unwrap();
        check(Linktype::ETHERNET, &vlan);
        // Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 2, 2, 2, 2, 2, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        check(Linktype::LINUX_SLL, &sll);
        // Linux cooked v2: protocol, reserved, interface index, ARPHRD, packet type, address
        // length, 8 address bytes.
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 2, 2, 2, 2, 2, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        check(Linktype::LINUX_SLL2, &sll2);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        check(Linktype::NULL, &null);
    }

    #[test]
    fn short_and_foreign_frames_are_counted_not_fatal() {
        assert!(matches!(
            decode(Linktype::LINUX_SLL, 0.0, &[0; 5]),
            Decoded::Malformed
        ));
        assert!(matches!(
            decode(Linktype::LINUX_SLL2, 0.0, &[8, 0]),
            Decoded::Malformed
        ));
        assert!(matches!(
            decode(Linktype::RAW, 0.0, &[0x45, 0]),
            Decoded::Malformed
        ));
        let ip = ip_packet(b"x");
        assert!(matches!(
            decode(Linktype(147), 0.0, &ip),
            Decoded::Unsupported
        ));
        let mut udp = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(53, 53)
            .write(&mut udp, b"dns")
            .unwrap();
        assert!(matches!(decode(Linktype::RAW, 0.0, &udp), Decoded::Other));
    }
}
