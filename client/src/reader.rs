//! Readers: non-durable, exclusive consumers that start at a given message id and never
//! acknowledge. The broker keeps no cursor; on reconnect the reader resumes after the
//! last message it delivered.

use std::collections::HashMap;
use std::time::Duration;

use crate::client::PulsarClient;
use crate::consumer::{Consumer, ConsumerOptions, SubType};
use crate::error::{Error, Result};
use crate::message::{Message, MessageId};

/// Builds a [`Reader`].
#[derive(Debug)]
pub struct ReaderBuilder {
    client: PulsarClient,
    topic: Option<String>,
    start: MessageId,
    receiver_queue_size: u32,
    name: Option<String>,
}

impl ReaderBuilder {
    pub(crate) fn new(client: PulsarClient) -> Self {
        ReaderBuilder {
            client,
            topic: None,
            start: MessageId::LATEST,
            receiver_queue_size: 1000,
            name: None,
        }
    }

    /// Topic to read.
    pub fn topic(mut self, t: impl Into<String>) -> Self {
        self.topic = Some(t.into());
        self
    }

    /// Start after this id; [`MessageId::EARLIEST`] reads from the beginning,
    /// [`MessageId::LATEST`] (the default) only new messages.
    pub fn start_message_id(mut self, id: MessageId) -> Self {
        self.start = id;
        self
    }

    /// Receiver queue size.
    pub fn receiver_queue_size(mut self, n: u32) -> Self {
        self.receiver_queue_size = n.max(1);
        self
    }

    /// Reader (subscription) name; random when unset.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }

    /// Creates the reader.
    pub async fn create(self) -> Result<Reader> {
        let topic = self.topic.ok_or(Error::InvalidArgument {
            what: "reader topic",
            value: String::new(),
        })?;
        let sub = self
            .name
            .unwrap_or_else(|| format!("reader-{:010x}", rand::random::<u64>() & 0xff_ffff_ffff));
        let opts = ConsumerOptions {
            subscription: sub,
            sub_type: SubType::Exclusive,
            receiver_queue_size: self.receiver_queue_size,
            durable: false,
            start_message_id: Some(self.start),
            ..Default::default()
        };
        let consumer = self
            .client
            .consumer()
            .topic(topic)
            .options(opts)
            .subscribe()
            .await?;
        Ok(Reader {
            consumer,
            start: self.start,
            last: HashMap::new(),
            peeked: None,
        })
    }
}

/// Reads a topic from a position, without a durable subscription.
#[derive(Debug)]
pub struct Reader {
    consumer: Consumer,
    start: MessageId,
    last: HashMap<i32, MessageId>,
    peeked: Option<Message>,
}

impl Reader {
    /// Topic name.
    pub fn topic(&self) -> &str {
        self.consumer.topic()
    }

    /// The next message.
    pub async fn read_next(&mut self) -> Result<Message> {
        let m = match self.peeked.take() {
            Some(m) => m,
            None => self.consumer.receive().await?,
        };
        self.last.insert(m.id.partition, m.id);
        Ok(m)
    }

    /// The next message, or `None` after `timeout`.
    pub async fn read_next_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.read_next()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// True when a message is available to read now or stored after the last one read.
    pub async fn has_message_available(&mut self) -> Result<bool> {
        if self.peeked.is_some() {
            return Ok(true);
        }
        if let Ok(Some(m)) = self
            .consumer
            .receive_timeout(Duration::from_millis(1))
            .await
        {
            self.peeked = Some(m);
            return Ok(true);
        }
        for last in self.consumer.last_message_ids().await? {
            if (last.entry_id as i64) < 0 || (last.ledger_id as i64) < 0 {
                continue;
            }
            let read = self
                .last
                .get(&last.partition)
                .copied()
                .unwrap_or(self.start);
            if read == MessageId::LATEST {
                continue;
            }
            let mut last_entry = last;
            last_entry.batch_index = -1;
            let mut read_entry = read;
            read_entry.batch_index = -1;
            if read == MessageId::EARLIEST || last_entry > read_entry {
                return Ok(true);
            }
            if last_entry == read_entry && read.is_batch() && read.batch_index + 1 < read.batch_size
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Moves the reader to `id`.
    pub async fn seek(&mut self, id: MessageId) -> Result<()> {
        self.peeked = None;
        self.last.clear();
        self.start = id;
        self.consumer.seek(id).await
    }

    /// Closes the reader.
    pub async fn close(self) -> Result<()> {
        self.consumer.close().await
    }
}
