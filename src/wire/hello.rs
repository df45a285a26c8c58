//! The first bytes on every TCP link and the prefix of every multicast datagram: who is speaking, in
//! which cluster. A frame does not name its sender (on a ring link the connection does), so a link
//! opens with a `Hello` and each datagram carries one, followed by one or more whole frames (see
//! `node::runtime`: a step's small multicasts share a datagram).
//!
//! ```text
//! magic u16 = 0x4852 ("RH") | version u8 = 1 | reserved u8 = 0 | cluster_id u32 | from u16 | reserved u16 = 0
//! ```

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use crate::proto::types::NodeId;

use super::error::WireError;
use super::frame::FRAME_VERSION;

pub const HELLO_MAGIC: u16 = 0x4852;
pub const HELLO_BYTES: usize = 12;

/// The greeting of a link or datagram sender.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello {
    pub cluster_id: u32,
    pub from: NodeId,
}

impl Hello {
    pub fn encode(self) -> [u8; HELLO_BYTES] {
        let mut b = [0u8; HELLO_BYTES];
        b[0..2].copy_from_slice(&HELLO_MAGIC.to_le_bytes());
        b[2] = FRAME_VERSION;
        b[4..8].copy_from_slice(&self.cluster_id.to_le_bytes());
        b[8..10].copy_from_slice(&self.from.to_le_bytes());
        b
    }

    /// Reads a hello from the start of `buf`; `Truncated` until all of it arrived.
    pub fn decode(buf: &[u8]) -> Result<Hello, WireError> {
        let Some(b) = buf.first_chunk::<HELLO_BYTES>() else {
            return Err(WireError::Truncated { needed_bytes: HELLO_BYTES });
        };
        let magic = u16::from_le_bytes([b[0], b[1]]);
        if magic != HELLO_MAGIC {
            return Err(WireError::BadHelloMagic { found: magic });
        }
        if b[2] != FRAME_VERSION {
            return Err(WireError::BadVersion { found: b[2] });
        }
        Ok(Hello {
            cluster_id: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            from: u16::from_le_bytes([b[8], b[9]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_strangers() {
        let h = Hello { cluster_id: 7, from: 3 };
        let b = h.encode();
        assert_eq!(Hello::decode(&b), Ok(h));
        assert_eq!(Hello::decode(&b[..5]), Err(WireError::Truncated { needed_bytes: HELLO_BYTES }));
        let mut bad = b;
        bad[0] = b'G';
        assert!(matches!(Hello::decode(&bad), Err(WireError::BadHelloMagic { .. })));
        let mut bad = b;
        bad[2] = 9;
        assert_eq!(Hello::decode(&bad), Err(WireError::BadVersion { found: 9 }));
    }
}
