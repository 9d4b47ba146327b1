//! The dispatcher's vocabulary: subscription types, consumers, entries, deliveries and the
//! decisions it returns.

use crate::position::Position;

/// Broker-wide unique handle of a consumer.
pub type ConsumerKey = u64;

/// Subscription types, with Pulsar's wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubType {
    /// One consumer.
    Exclusive,
    /// Round-robin among consumers.
    Shared,
    /// One active consumer, others stand by.
    Failover,
    /// Entries routed by key hash.
    KeyShared,
}

impl SubType {
    /// From Pulsar's `CommandSubscribe.SubType` value.
    pub fn from_wire(v: i32) -> Option<SubType> {
        match v {
            0 => Some(SubType::Exclusive),
            1 => Some(SubType::Shared),
            2 => Some(SubType::Failover),
            3 => Some(SubType::KeyShared),
            _ => None,
        }
    }

    /// Pulsar's name of the type (admin stats).
    pub fn name(self) -> &'static str {
        match self {
            SubType::Exclusive => "Exclusive",
            SubType::Shared => "Shared",
            SubType::Failover => "Failover",
            SubType::KeyShared => "Key_Shared",
        }
    }
}

/// A consumer as the dispatcher sees it.
#[derive(Debug, Clone)]
pub struct ConsumerInfo {
    /// Unique handle.
    pub key: ConsumerKey,
    /// Consumer name (Failover ordering, Key_Shared hashing).
    pub name: String,
    /// Priority level; lower is preferred.
    pub priority: i32,
    /// Key_Shared STICKY ranges (inclusive slot ranges); `None` = AUTO_SPLIT.
    pub sticky_ranges: Option<Vec<(u32, u32)>>,
}

/// What the dispatcher knows about an entry it is asked to dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo {
    /// Where the entry is.
    pub pos: Position,
    /// Messages in the entry (1 unless batched).
    pub num_messages: u32,
    /// Key slot (hash % 65536) for Key_Shared; `None` for entries without a key.
    pub slot: Option<u32>,
}

/// Deliver `pos` to `consumer` with this redelivery count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Target consumer.
    pub consumer: ConsumerKey,
    /// Entry to send.
    pub pos: Position,
    /// How often it was redelivered before.
    pub redelivery_count: u32,
}

/// Side effects besides deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Tell `consumer` whether it is now the active one (Failover).
    ActiveChange { consumer: ConsumerKey, active: bool },
}

/// Why a consumer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// Exclusive subscription already has a consumer.
    Exclusive,
    /// Sticky ranges overlap another consumer's.
    RangeConflict,
}

/// What the subscription should read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// Re-read these positions for redelivery.
    Replay(Vec<Position>),
    /// Read up to this many new entries from the read position.
    New(usize),
    /// Nothing to do until permits, acks or consumers change.
    Idle,
}
