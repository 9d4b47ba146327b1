//! GET_SCHEMA, GET_OR_CREATE_SCHEMA and the schema checks of PRODUCER and SUBSCRIBE,
//! answered from the schema registry ([`crate::schema`]).

use std::future::Future;

use magnetar_client::wire::commands::{self, IntoCommand};
use magnetar_client::wire::proto::{
    BaseCommand, CommandGetOrCreateSchemaResponse, CommandGetSchemaResponse, Schema, ServerError,
};

use super::{wire_error, Conn};
use crate::error::Result;
use crate::names::TopicName;
use crate::schema::{self, Role};

/// Pulsar's message when a topic has no (such) schema; sent with `TopicNotFound`.
const NO_SCHEMA: &str = "Topic not found or no-schema";

impl Conn {
    /// Registers the schema a producer or consumer presents (`None`/`NONE`: no schema,
    /// always allowed, as with Pulsar's default `schemaValidationEnforced=false`).
    /// Returns the version to announce, if any.
    pub(super) fn register_schema(
        &self,
        topic: &TopicName,
        schema: Option<&Schema>,
        role: Role,
    ) -> impl Future<Output = Result<Option<u64>>> + Send + 'static {
        // Owned inputs: the connection itself is not Sync, so it must not be held across
        // the metadata round trips.
        let store = self.broker.metadata.clone();
        let (topic, entry) = (topic.clone(), schema.and_then(schema::from_wire));
        async move {
            match entry {
                Some(entry) => schema::register(store.as_ref(), &topic, entry, role).await,
                None => Ok(None),
            }
        }
    }

    pub(super) async fn get_schema(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.get_schema else {
            return self.malformed();
        };
        let rid = req.request_id;
        let name = match TopicName::parse(&req.topic) {
            Ok(n) => n,
            Err(e) => {
                return self.reply(commands::get_schema_error(
                    rid,
                    ServerError::InvalidTopicName,
                    e.to_string(),
                ))
            }
        };
        let store = self.broker.metadata.clone();
        let history = match schema::load(store.as_ref(), &name).await {
            Ok(h) => h,
            Err(e) => {
                return self.reply(commands::get_schema_error(
                    rid,
                    wire_error(&e),
                    e.to_string(),
                ))
            }
        };
        let found = match req.schema_version.as_deref() {
            None | Some([]) => history.latest(),
            Some(bytes) => schema::version_from_bytes(bytes)
                .and_then(|v| history.get(v).map(|e| (v, e)))
                .filter(|(_, e)| !e.deleted),
        };
        let reply = match found {
            Some((version, entry)) => CommandGetSchemaResponse {
                request_id: rid,
                schema: Some(schema::to_wire(&name, entry)),
                schema_version: Some(schema::version_bytes(version)),
                ..Default::default()
            }
            .into_command(),
            None => commands::get_schema_error(rid, ServerError::TopicNotFound, NO_SCHEMA),
        };
        self.reply(reply);
    }

    pub(super) async fn get_or_create_schema(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.get_or_create_schema else {
            return self.malformed();
        };
        let rid = req.request_id;
        let error = |code: ServerError, message: String| {
            CommandGetOrCreateSchemaResponse {
                request_id: rid,
                error_code: Some(code as i32),
                error_message: Some(message),
                ..Default::default()
            }
            .into_command()
        };
        let name = match TopicName::parse(&req.topic) {
            Ok(n) => n,
            Err(e) => return self.reply(error(wire_error(&e), e.to_string())),
        };
        // As in Pulsar, the topic must exist.
        if let Err(e) = self.broker.get_topic(&name, false).await {
            return self.reply(error(wire_error(&e), e.to_string()));
        }
        let reply = match self
            .register_schema(&name, Some(&req.schema), Role::Producer)
            .await
        {
            Ok(version) => CommandGetOrCreateSchemaResponse {
                request_id: rid,
                // No schema (NONE): Pulsar answers an empty version.
                schema_version: Some(version.map(schema::version_bytes).unwrap_or_default()),
                ..Default::default()
            }
            .into_command(),
            Err(e) => error(wire_error(&e), e.to_string()),
        };
        self.reply(reply);
    }
}
