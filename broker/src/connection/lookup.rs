//! PARTITIONED_METADATA, LOOKUP, GET_TOPICS_OF_NAMESPACE and schema requests.

use magnetar_client::wire::commands::{self, IntoCommand};
use magnetar_client::wire::proto::{BaseCommand, CommandGetOrCreateSchemaResponse, ServerError};

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

    pub(super) fn get_schema(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.get_schema else {
            return self.malformed();
        };
        self.reply(commands::get_schema_error(
            req.request_id,
            ServerError::TopicNotFound,
            "schema registry not supported",
        ));
    }

    pub(super) fn get_or_create_schema(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.get_or_create_schema else {
            return self.malformed();
        };
        // Schemas are accepted as is; every schema is version 0.
        self.reply(
            CommandGetOrCreateSchemaResponse {
                request_id: req.request_id,
                schema_version: Some(0i64.to_be_bytes().to_vec()),
                ..Default::default()
            }
            .into_command(),
        );
    }

    pub(super) fn malformed(&mut self) {
        self.reply(commands::error(
            0,
            ServerError::UnknownError,
            "command body missing for its type",
        ));
    }
}
