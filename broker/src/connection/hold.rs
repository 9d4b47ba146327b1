//! PRODUCER requests held by a `producer_request_hold` backlog quota. The wait (bounded by
//! `lifecycle.backlog_quota_hold_timeout_ms`) runs as a future polled by the connection's
//! loop next to its other work, so a held producer never stalls the connection's other
//! producers and consumers; once it ends the producer is created or refused.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use magnetar_client::wire::commands;

use super::{wire_error, Conn};
use crate::error::Result;
use crate::lifecycle::ProducerAdmission;
use crate::names::TopicName;
use crate::topic::Topic;

/// A PRODUCER request that passed validation, waiting for admission.
pub(crate) struct PendingProducer {
    pub(super) request_id: u64,
    pub(super) producer_id: u64,
    pub(super) name: TopicName,
    pub(super) topic: Arc<Topic>,
    pub(super) producer_name: String,
    pub(super) exclusive: bool,
    pub(super) schema_version: Option<Vec<u8>>,
}

type HoldFuture = BoxFuture<'static, (PendingProducer, Result<()>)>;

/// The held PRODUCER requests of one connection.
#[derive(Default)]
pub(crate) struct ProducerHolds {
    waits: FuturesUnordered<HoldFuture>,
    held: HashSet<u64>,
    /// Held producer ids the client closed while waiting.
    closed: HashSet<u64>,
}

impl ProducerHolds {
    /// True when a PRODUCER with this id is being held.
    pub(super) fn is_held(&self, producer_id: u64) -> bool {
        self.held.contains(&producer_id)
    }

    /// The client closed a held producer: do not create it when the wait ends.
    pub(super) fn close(&mut self, producer_id: u64) -> bool {
        self.held.contains(&producer_id) && self.closed.insert(producer_id)
    }

    /// True while some request is held.
    pub(super) fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// The next held request whose wait ended; `None` in place of the outcome when the
    /// client closed it meanwhile.
    pub(super) async fn next(&mut self) -> Option<(PendingProducer, Option<Result<()>>)> {
        let (p, res) = self.waits.next().await?;
        self.held.remove(&p.producer_id);
        let closed = self.closed.remove(&p.producer_id);
        Some((p, (!closed).then_some(res)))
    }
}

impl Conn {
    /// Admits a validated PRODUCER under the topic's backlog quota: creates it, refuses it,
    /// or (under `producer_request_hold`) parks it without blocking the connection.
    pub(super) async fn admit_producer(&mut self, p: PendingProducer) {
        match crate::lifecycle::check_producer_admission(&self.broker, &p.topic).await {
            ProducerAdmission::Admitted => self.create_producer(p),
            ProducerAdmission::Refused(e) => {
                self.reply(commands::error(p.request_id, wire_error(&e), e.to_string()))
            }
            ProducerAdmission::Hold => {
                let broker = self.broker.clone();
                self.holds.held.insert(p.producer_id);
                self.holds.waits.push(
                    async move {
                        let res = crate::lifecycle::admit_producer(&broker, &p.topic).await;
                        (p, res)
                    }
                    .boxed(),
                );
            }
        }
    }

    /// A held PRODUCER's wait ended (`None`: the client closed it meanwhile and expects
    /// no answer).
    pub(super) fn on_hold_done(&mut self, p: PendingProducer, res: Option<Result<()>>) {
        match res {
            Some(Ok(())) => self.create_producer(p),
            Some(Err(e)) => {
                self.reply(commands::error(p.request_id, wire_error(&e), e.to_string()))
            }
            None => {}
        }
    }
}
