//! PARTITIONED_METADATA, LOOKUP and GET_TOPICS_OF_NAMESPACE (schema requests: `schema.rs`).

use magnetar_client::wire::commands;
use magnetar_client::wire::proto::{BaseCommand, ServerError};

use super::{wire_error, Conn};
use crate::names::TopicName;

impl Conn {
    pub(super) async fn partitioned_metadata(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.partition_metadata else {
            return self.malformed();
        };
        let rid = req.request_id;
        let reply = match TopicName::parse(&req.topic) {
            Ok(name) => match self.broker.partitions(&name).await {
                Ok(n) => commands::partitioned_metadata_response(rid, n),
                Err(e) => commands::partitioned_metadata_error(rid, wire_error(&e), e.to_string()),
            },
            Err(e) => commands::partitioned_metadata_error(rid, wire_error(&e), e.to_string()),
        };
        self.reply(reply);
    }

    pub(super) async fn lookup(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.lookup_topic else {
            return self.malformed();
        };
        let rid = req.request_id;
        let reply = match TopicName::parse(&req.topic) {
            Ok(name) => match self.broker.cluster.get() {
                Some(c) => {
                    let authoritative = req.authoritative.unwrap_or(false);
                    crate::cluster::lookup_command(c, rid, &name, authoritative).await
                }
                // Standalone: this broker serves every topic.
                None => commands::lookup_connect(rid, &self.broker.broker_url, true, false),
            },
            Err(e) => commands::lookup_error(rid, wire_error(&e), e.to_string()),
        };
        self.reply(reply);
    }

    pub(super) async fn topics_of_namespace(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.get_topics_of_namespace else {
            return self.malformed();
        };
        let rid = req.request_id;
        let mut parts = req.namespace.splitn(2, '/');
        let (Some(t), Some(ns)) = (parts.next(), parts.next()) else {
            self.reply(commands::error(
                rid,
                ServerError::MetadataError,
                format!("invalid namespace {:?}", req.namespace),
            ));
            return;
        };
        match self.broker.list_topics(t, ns).await {
            Ok(topics) => {
                self.reply(commands::get_topics_of_namespace_response(rid, topics));
            }
            Err(e) => self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        }
    }

    pub(super) fn malformed(&mut self) {
        self.reply(commands::error(
            0,
            ServerError::UnknownError,
            "command body missing for its type",
        ));
    }
}
