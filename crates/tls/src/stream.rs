//! One direction of a TCP connection put back in order: segments are delivered at the next
//! expected sequence number; retransmitted bytes are dropped, early segments wait (a bounded
//! number of them) until the hole before them is filled. Sequence numbers wrap (RFC 9293
//! §3.4: comparisons are modulo 2^32).

/// Out-of-order segments kept per direction before the stream is declared broken.
const MAX_PENDING_SEGMENTS: usize = 64;
/// Out-of-order bytes kept per direction.
const MAX_PENDING_BYTES: usize = 256 << 10;

/// The reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Reassembly {
    next: Option<u32>,
    pending: Vec<(u32, Vec<u8>)>,
    pending_bytes: usize,
    broken: bool,
}

/// `a - b` as a signed distance modulo 2^32.
fn distance(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl Reassembly {
    /// A SYN with initial sequence number `sequence`: data starts one after it.
    pub fn syn(&mut self, sequence: u32) {
        if self.next.is_none() {
            self.next = Some(sequence.wrapping_add(1));
        }
    }

    /// Whether a hole could not be filled (too many segments waited, or bytes were lost).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Forget everything waiting (the reader wants no more bytes).
    pub fn clear(&mut self) {
        self.pending = Vec::new();
        self.pending_bytes = 0;
    }

    /// A segment's payload at `sequence`: `deliver` gets every byte that is now in order,
    /// once, in order.
    pub fn segment(&mut self, sequence: u32, payload: &[u8], deliver: &mut dyn FnMut(&[u8])) {
        if self.broken || payload.is_empty() {
            return;
        }
        let next = *self.next.get_or_insert(sequence);
        let offset = distance(sequence, next);
        if offset > 0 {
            if self.pending.len() >= MAX_PENDING_SEGMENTS
                || self.pending_bytes + payload.len() > MAX_PENDING_BYTES
            {
                self.broken = true;
                self.clear();
                return;
            }
            self.pending_bytes += payload.len();
            self.pending.push((sequence, payload.to_vec()));
            return;
        }
        let skip = usize::try_from(-offset).unwrap_or(usize::MAX);
        if skip >= payload.len() {
            return; // all of it was delivered already (a retransmission)
        }
        deliver(&payload[skip..]);
        let mut next = next.wrapping_add((payload.len() - skip) as u32);
        // Segments that waited for this one.
        while let Some(index) = self
            .pending
            .iter()
            .position(|(sequence, _)| distance(*sequence, next) <= 0)
        {
            let (sequence, bytes) = self.pending.swap_remove(index);
            self.pending_bytes -= bytes.len();
            let skip = usize::try_from(-distance(sequence, next)).unwrap_or(usize::MAX);
            if skip < bytes.len() {
                deliver(&bytes[skip..]);
                next = next.wrapping_add((bytes.len() - skip) as u32);
            }
        }
        self.next = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(segments: &[(u32, &[u8])]) -> Vec<u8> {
        let mut stream = Reassembly::default();
        stream.syn(u32::MAX - 2);
        let mut out = Vec::new();
        for (sequence, payload) in segments {
            stream.segment(*sequence, payload, &mut |bytes| {
                out.extend_from_slice(bytes)
            });
        }
        out
    }

    #[test]
    fn in_order_out_of_order_retransmitted_and_wrapping() {
        // ISN u32::MAX - 2: data starts at u32::MAX - 1 and wraps after two bytes.
        let start = u32::MAX - 1;
        assert_eq!(run(&[(start, b"ab"), (0, b"cd")]), b"abcd");
        assert_eq!(run(&[(0, b"cd"), (start, b"ab")]), b"abcd");
        assert_eq!(run(&[(start, b"ab"), (start, b"ab"), (0, b"cd")]), b"abcd");
        // A retransmission that overlaps and extends.
        assert_eq!(
            run(&[(start, b"ab"), (start, b"abcd"), (2, b"ef")]),
            b"abcdef"
        );
        // Three segments in reverse order.
        assert_eq!(run(&[(2, b"ef"), (0, b"cd"), (start, b"ab")]), b"abcdef");
    }

    #[test]
    fn a_hole_that_is_never_filled_breaks_the_stream_within_bounds() {
        let mut stream = Reassembly::default();
        stream.syn(0);
        let mut out = Vec::new();
        for i in 0..(MAX_PENDING_SEGMENTS as u32 + 1) {
            stream.segment(1000 + i * 10, &[1; 10], &mut |b| out.extend_from_slice(b));
        }
        assert!(stream.broken());
        assert!(out.is_empty());
        stream.segment(1, b"late", &mut |b| out.extend_from_slice(b));
        assert!(out.is_empty());
    }
}
