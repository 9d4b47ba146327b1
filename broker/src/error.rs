//! The broker's error type and its mapping to Pulsar `ServerError` codes.

use magnetar_bookie::LedgerError;
use magnetar_metadata::MetadataError;

/// Result alias for broker operations.
pub type Result<T> = std::result::Result<T, BrokerError>;

/// An error inside the broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A topic or namespace name did not parse.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    /// The topic does not exist and may not be auto-created.
    #[error("topic {0} not found")]
    TopicNotFound(String),
    /// The subscription does not exist.
    #[error("subscription {0} not found")]
    SubscriptionNotFound(String),
    /// An exclusive producer or a producer with the same name is already connected.
    #[error("producer busy: {0}")]
    ProducerBusy(String),
    /// The subscription does not accept this consumer (exclusive, other type, ...).
    #[error("consumer busy: {0}")]
    ConsumerBusy(String),
    /// The topic was terminated; no more messages may be published.
    #[error("topic {0} is terminated")]
    TopicTerminated(String),
    /// The topic or broker is closing.
    #[error("service not ready: {0}")]
    ServiceNotReady(String),
    /// A request named something that does not exist on this connection or was malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// Storing or reading messages failed.
    #[error("ledger error: {0}")]
    Ledger(#[from] LedgerError),
    /// The managed ledger layer failed.
    #[error("managed ledger error: {0}")]
    ManagedLedger(#[from] crate::ml::MlError),
    /// The metadata service failed.
    #[error("metadata error: {0}")]
    Metadata(#[from] MetadataError),
    /// Socket IO failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// Configuration is invalid.
    #[error("invalid configuration field {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The topic's backlog quota is exceeded (`hold`: producer_request_hold policy).
    #[error("backlog quota exceeded on topic {topic}")]
    BacklogQuotaExceeded { topic: String, hold: bool },
    /// JSON (de)serialization of metadata values failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// A schema whose type differs from the topic's schema.
    #[error("incompatible schema: {0}")]
    IncompatibleSchema(String),
}

/// Pulsar's `ServerError` codes (values fixed by the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ServerErrorCode {
    UnknownError = 0,
    MetadataError = 1,
    PersistenceError = 2,
    AuthenticationError = 3,
    AuthorizationError = 4,
    ConsumerBusy = 5,
    ServiceNotReady = 6,
    ProducerBlockedQuotaExceededError = 7,
    ProducerBlockedQuotaExceededException = 8,
    ChecksumError = 9,
    UnsupportedVersionError = 10,
    TopicNotFound = 11,
    SubscriptionNotFound = 12,
    ConsumerNotFound = 13,
    TooManyRequests = 14,
    TopicTerminatedError = 15,
    ProducerBusy = 16,
    InvalidTopicName = 17,
    IncompatibleSchema = 18,
    ConsumerAssignError = 19,
    NotAllowedError = 24,
    ProducerFenced = 25,
}

impl BrokerError {
    /// The `ServerError` a client should see for this error. The single place where
    /// broker errors are mapped onto the wire.
    pub fn server_error(&self) -> ServerErrorCode {
        match self {
            BrokerError::InvalidTopicName { .. } => ServerErrorCode::InvalidTopicName,
            BrokerError::TopicNotFound(_) => ServerErrorCode::TopicNotFound,
            BrokerError::SubscriptionNotFound(_) => ServerErrorCode::SubscriptionNotFound,
            BrokerError::ProducerBusy(_) => ServerErrorCode::ProducerBusy,
            BrokerError::ConsumerBusy(_) => ServerErrorCode::ConsumerBusy,
            BrokerError::TopicTerminated(_) => ServerErrorCode::TopicTerminatedError,
            BrokerError::ServiceNotReady(_) => ServerErrorCode::ServiceNotReady,
            BrokerError::InvalidRequest(_) => ServerErrorCode::NotAllowedError,
            BrokerError::ManagedLedger(e) if e.is_fenced() => ServerErrorCode::ServiceNotReady,
            BrokerError::ManagedLedger(crate::ml::MlError::Closed(_)) => {
                ServerErrorCode::ServiceNotReady
            }
            BrokerError::Ledger(_) | BrokerError::ManagedLedger(_) => {
                ServerErrorCode::PersistenceError
            }
            BrokerError::Metadata(_) => ServerErrorCode::MetadataError,
            BrokerError::IncompatibleSchema(_) => ServerErrorCode::IncompatibleSchema,
            BrokerError::BacklogQuotaExceeded { hold: true, .. } => {
                ServerErrorCode::ProducerBlockedQuotaExceededError
            }
            BrokerError::BacklogQuotaExceeded { hold: false, .. } => {
                ServerErrorCode::ProducerBlockedQuotaExceededException
            }
            BrokerError::Io(_) | BrokerError::Config { .. } | BrokerError::Json(_) => {
                ServerErrorCode::UnknownError
            }
        }
    }
}
