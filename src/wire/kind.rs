//! The kind byte of a frame header: which [`Msg`] variant the body holds.

use crate::proto::msg::Msg;

/// The message tag carried in the frame header. The numbers are part of the wire format: never reuse
/// or renumber one, add new kinds at the end.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum Kind {
    Proposal = 1,
    Phase1A = 2,
    Phase1B = 3,
    Nack = 4,
    Phase2A = 5,
    Phase2B = 6,
    Decision = 7,
    Retransmit = 8,
    Trimmed = 9,
    Heartbeat = 10,
    FlowNotice = 11,
}

impl Kind {
    /// The kind of frame that carries `msg`.
    pub fn of(msg: &Msg) -> Kind {
        match msg {
            Msg::Proposal { .. } => Kind::Proposal,
            Msg::Phase1A { .. } => Kind::Phase1A,
            Msg::Phase1B { .. } => Kind::Phase1B,
            Msg::Nack { .. } => Kind::Nack,
            Msg::Phase2A { .. } => Kind::Phase2A,
            Msg::Phase2B { .. } => Kind::Phase2B,
            Msg::Decision { .. } => Kind::Decision,
            Msg::Retransmit { .. } => Kind::Retransmit,
            Msg::Trimmed { .. } => Kind::Trimmed,
            Msg::Heartbeat { .. } => Kind::Heartbeat,
            Msg::FlowNotice { .. } => Kind::FlowNotice,
        }
    }

    /// The kind a header byte names; `None` for bytes no message uses.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Proposal,
            2 => Kind::Phase1A,
            3 => Kind::Phase1B,
            4 => Kind::Nack,
            5 => Kind::Phase2A,
            6 => Kind::Phase2B,
            7 => Kind::Decision,
            8 => Kind::Retransmit,
            9 => Kind::Trimmed,
            10 => Kind::Heartbeat,
            11 => Kind::FlowNotice,
            _ => return None,
        })
    }

    /// The header byte of this kind.
    pub fn byte(self) -> u8 {
        self as u8
    }
}
