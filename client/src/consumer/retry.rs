//! Retry-letter topic: [`Consumer::reconsume_later`] republishes a message to the retry
//! topic (which the consumer also subscribes to) with a delivery delay, then acks the
//! original; after `max_redeliver_count` retries it goes to the dead-letter topic. The
//! property names are the Java client's, so both clients can share a retry topic.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;

use super::Consumer;
use crate::error::{Error, Result};
use crate::message::{Message, ProducerMessage};
use crate::producer::Producer;

/// Property counting how often a message was reconsumed.
pub const RECONSUME_TIMES: &str = "RECONSUMETIMES";
/// Property with the requested delay in milliseconds.
pub const DELAY_TIME: &str = "DELAY_TIME";
/// Property with the topic the message was first published to.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Property with the message's original id.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";

/// Lazily created producers for the retry-letter and dead-letter topics.
#[derive(Debug, Default)]
pub(crate) struct RetryProducers(pub(crate) Mutex<HashMap<String, Producer>>);

/// The copy of `msg` to publish for retry number `times`, delivered `delay` from now.
fn retry_message(msg: &Message, times: u32, delay: Duration) -> ProducerMessage {
    let mut pm = ProducerMessage::new(msg.payload.clone());
    pm.key = msg.key.clone();
    pm.ordering_key = msg.ordering_key.clone();
    pm.event_time = (msg.event_time > 0).then_some(msg.event_time);
    pm.properties = msg.properties.clone();
    pm.properties
        .entry(REAL_TOPIC.into())
        .or_insert_with(|| msg.topic.clone());
    pm.properties
        .entry(ORIGIN_MESSAGE_ID.into())
        .or_insert_with(|| msg.id.to_string());
    pm.properties
        .insert(RECONSUME_TIMES.into(), times.to_string());
    pm.properties
        .insert(DELAY_TIME.into(), delay.as_millis().to_string());
    if !delay.is_zero() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        pm.deliver_at = Some(now + delay.as_millis() as i64);
    }
    pm
}

impl Consumer {
    /// Consumes `msg` again after `delay`: publishes a copy to the retry-letter topic
    /// (delivered no earlier than `delay` from now, with the `RECONSUMETIMES`,
    /// `DELAY_TIME`, `REAL_TOPIC` and `ORIGIN_MESSAGE_ID` properties), then acks `msg`.
    /// Once a message was reconsumed more than the dead-letter policy's
    /// `max_redeliver_count` times it goes to the dead-letter topic instead. Needs
    /// [`ConsumerBuilder::enable_retry`](super::ConsumerBuilder::enable_retry); delayed
    /// delivery needs a Shared or Key_Shared subscription.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use magnetar_client::{SubType, DeadLetterPolicy};
    /// # async fn f(client: magnetar_client::PulsarClient) -> magnetar_client::Result<()> {
    /// let consumer = client
    ///     .consumer()
    ///     .topic("jobs")
    ///     .subscription("workers")
    ///     .sub_type(SubType::Shared)
    ///     .enable_retry(true)
    ///     .dead_letter(DeadLetterPolicy { max_redeliver_count: 3, dead_letter_topic: None })
    ///     .subscribe()
    ///     .await?;
    /// let msg = consumer.receive().await?;
    /// consumer.reconsume_later(&msg, Duration::from_secs(5)).await?; // back in ~5 s
    /// # Ok(()) }
    /// ```
    pub async fn reconsume_later(&self, msg: &Message, delay: Duration) -> Result<()> {
        let retry_topic = self.retry_topic.clone().ok_or(Error::InvalidArgument {
            what: "reconsume_later without enable_retry",
            value: msg.id.to_string(),
        })?;
        let times = msg
            .properties
            .get(RECONSUME_TIMES)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        let opts = &self.shared.opts;
        let dead = opts
            .dead_letter
            .as_ref()
            .filter(|d| times > d.max_redeliver_count);
        let (target, pm) = match dead {
            Some(d) => {
                let t = d
                    .dead_letter_topic
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}-DLQ", self.topic(), opts.subscription));
                let mut pm = retry_message(msg, times, Duration::ZERO);
                pm.properties.remove(DELAY_TIME);
                (t, pm)
            }
            None => (retry_topic, retry_message(msg, times, delay)),
        };
        self.publish(&target, pm).await?;
        self.ack(msg)
    }

    async fn publish(&self, topic: &str, pm: ProducerMessage) -> Result<()> {
        let mut producers = self.retry.0.lock().await;
        if !producers.contains_key(topic) {
            let p = self.shared.client.producer().topic(topic).create().await?;
            producers.insert(topic.to_owned(), p);
        }
        let p = producers
            .get(topic)
            .expect("the producer was inserted just above");
        let receipt = p.send(pm).await?;
        drop(producers);
        receipt.await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageId;

    #[test]
    fn retry_copies_keep_origin_and_count_attempts() {
        let mut m = Message {
            topic: "persistent://public/default/t".into(),
            id: MessageId::new(3, 4, -1),
            payload: bytes::Bytes::from_static(b"x"),
            key: Some("k".into()),
            ordering_key: None,
            properties: HashMap::from([("a".to_owned(), "1".to_owned())]),
            publish_time: 1,
            event_time: 0,
            producer_name: "p".into(),
            sequence_id: 0,
            redelivery_count: 0,
            replicated_from: None,
        };
        let first = retry_message(&m, 1, Duration::from_secs(2));
        assert_eq!(first.key.as_deref(), Some("k"));
        assert_eq!(first.properties[REAL_TOPIC], m.topic);
        assert_eq!(first.properties[ORIGIN_MESSAGE_ID], "3:4:-1:-1");
        assert_eq!(first.properties[RECONSUME_TIMES], "1");
        assert_eq!(first.properties[DELAY_TIME], "2000");
        assert!(first.deliver_at.is_some());
        // A retried message keeps the original topic and id.
        m.topic = "persistent://public/default/t-s-RETRY".into();
        m.id = MessageId::new(9, 9, -1);
        m.properties = first.properties.clone();
        let second = retry_message(&m, 2, Duration::ZERO);
        assert_eq!(
            second.properties[REAL_TOPIC],
            "persistent://public/default/t"
        );
        assert_eq!(second.properties[ORIGIN_MESSAGE_ID], "3:4:-1:-1");
        assert_eq!(second.properties[RECONSUME_TIMES], "2");
        assert!(second.deliver_at.is_none());
    }
}
