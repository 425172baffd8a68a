//! Netlink message framing for nf_tables batches: message headers, attributes (TLVs, nested
//! ones flagged `NLA_F_NESTED` as libnftnl sends them), the batch begin/end envelope, and the
//! reading of the kernel's answers (errors, with the extended-ack message, and acks).
//!
//! Layouts: linux/include/uapi/linux/netlink.h (`nlmsghdr`, `nlattr`, `nlmsgerr`) and
//! linux/include/uapi/linux/netfilter/nfnetlink.h (`nfgenmsg`, batch messages). Integers
//! inside nf_tables attributes are big-endian; netlink headers are host order.

/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS_NFTABLES: u16 = 10;
const BATCH_BEGIN: u16 = 16;
const BATCH_END: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// `NLM_F_REQUEST`.
pub(crate) const F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`.
pub(crate) const F_ACK: u16 = 0x4;
/// `NLM_F_CREATE`.
pub(crate) const F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND`.
pub(crate) const F_APPEND: u16 = 0x800;

/// `NFPROTO_INET`.
pub(crate) const FAMILY_INET: u8 = 1;

/// An attribute writer over a growing buffer.
pub(crate) struct Attrs<'a> {
    pub(crate) buf: &'a mut Vec<u8>,
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

impl Attrs<'_> {
    /// An attribute with raw bytes.
    pub(crate) fn bytes(&mut self, kind: u16, value: &[u8]) {
        let len = (4 + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        pad(self.buf);
    }

    /// A big-endian u32.
    pub(crate) fn u32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// A big-endian u64.
    pub(crate) fn u64(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// A NUL-terminated string.
    pub(crate) fn str(&mut self, kind: u16, value: &str) {
        let len = (4 + value.len() + 1) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        pad(self.buf);
    }

    /// A nested attribute holding what `body` writes.
    pub(crate) fn nest(&mut self, kind: u16, body: impl FnOnce(&mut Attrs)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        body(&mut Attrs { buf: self.buf });
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Bytes written so far (to keep nested attributes under their 64 KiB limit).
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// One transaction: messages between a batch begin and a batch end, numbered from 1, with
/// what each one is about (for error messages).
pub(crate) struct Batch<T> {
    buf: Vec<u8>,
    objects: Vec<T>,
    last: Option<usize>,
}

fn header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    start
}

fn close(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

impl<T> Batch<T> {
    pub(crate) fn new() -> Batch<T> {
        let mut buf = Vec::with_capacity(1 << 16);
        let start = header(&mut buf, BATCH_BEGIN, F_REQUEST, 0, 0, SUBSYS_NFTABLES);
        close(&mut buf, start);
        Batch {
            buf,
            objects: Vec::new(),
            last: None,
        }
    }

    /// Whether no message was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Add one nf_tables message (`kind` is `NFT_MSG_*`) about `object`.
    pub(crate) fn message(
        &mut self,
        kind: u16,
        flags: u16,
        object: T,
        body: impl FnOnce(&mut Attrs),
    ) {
        self.objects.push(object);
        let seq = self.objects.len() as u32;
        let start = header(
            &mut self.buf,
            (SUBSYS_NFTABLES << 8) | kind,
            F_REQUEST | flags,
            seq,
            FAMILY_INET,
            0,
        );
        body(&mut Attrs { buf: &mut self.buf });
        close(&mut self.buf, start);
        self.last = Some(start);
    }

    /// The datagram to send: the last message asks for an ack (the kernel processes a batch
    /// synchronously and answers every message in order, so that ack ends the answer), then
    /// the batch end.
    pub(crate) fn finish(mut self) -> (Vec<u8>, Vec<T>) {
        if let Some(last) = self.last {
            let flags = u16::from_ne_bytes([self.buf[last + 6], self.buf[last + 7]]) | F_ACK;
            self.buf[last + 6..last + 8].copy_from_slice(&flags.to_ne_bytes());
        }
        let seq = self.objects.len() as u32 + 1;
        let start = header(&mut self.buf, BATCH_END, F_REQUEST, seq, 0, SUBSYS_NFTABLES);
        close(&mut self.buf, start);
        (self.buf, self.objects)
    }
}

/// One error the kernel reported: the sequence number of the failing message, the errno and
/// the kernel's explanation when it gave one.
#[derive(Debug)]
pub(crate) struct KernelError {
    pub(crate) seq: u32,
    pub(crate) errno: i32,
    pub(crate) message: Option<String>,
}

/// Read the answers to a batch of `count` messages until the last one's ack (or error):
/// the errors, in order.
pub(crate) fn read_answers(
    socket: &mut super::socket::Socket,
    count: u32,
) -> std::io::Result<Vec<KernelError>> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut errors = Vec::new();
    loop {
        let data = socket.receive(&mut buffer)?;
        if data.is_empty() {
            return Err(std::io::Error::other(
                "netlink: the kernel closed the socket",
            ));
        }
        let mut at = 0;
        while at + 16 <= data.len() {
            let u32_at =
                |i: usize| u32::from_ne_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            let len = u32_at(at) as usize;
            if len < 16 || at + len > data.len() {
                return Err(std::io::Error::other("netlink: truncated answer"));
            }
            let kind = u16::from_ne_bytes([data[at + 4], data[at + 5]]);
            let flags = u16::from_ne_bytes([data[at + 6], data[at + 7]]);
            if kind == NLMSG_ERROR && len >= 16 + 4 + 16 {
                let errno = -(u32_at(at + 16) as i32);
                // The failing message's own header follows the error code.
                let seq = u32_at(at + 20 + 8);
                let mut message = None;
                if flags & NLM_F_ACK_TLVS != 0 {
                    let mut a = at + 20 + 16;
                    while a + 4 <= at + len {
                        let alen = u16::from_ne_bytes([data[a], data[a + 1]]) as usize;
                        let akind = u16::from_ne_bytes([data[a + 2], data[a + 3]]) & 0x3fff;
                        if alen < 4 || a + alen > at + len {
                            break;
                        }
                        if akind == NLMSGERR_ATTR_MSG {
                            let text = &data[a + 4..a + alen];
                            let text = text.split(|b| *b == 0).next().unwrap_or_default();
                            message = Some(String::from_utf8_lossy(text).into_owned());
                        }
                        a += (alen + 3) & !3;
                    }
                }
                if errno != 0 {
                    errors.push(KernelError {
                        seq,
                        errno,
                        message,
                    });
                }
                // The last message's answer, or one about the batch itself (seq 0, or the
                // end): nothing more follows.
                if seq >= count || seq == 0 {
                    return Ok(errors);
                }
            }
            at += (len + 3) & !3;
        }
    }
}
