//! The crate's error type, shared by the wire codec and the client API.

use magnetar_proto::pulsar::ServerError;

/// Everything that can go wrong in `magnetar-client`, from frame decoding to broker
/// replies. Wire-level variants come first; the broker reuses them through [`crate::wire`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame announced (or would need) more bytes than the configured maximum.
    /// Fatal for the connection: the rest of the stream cannot be trusted.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Announced total size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The frame's internal sizes are inconsistent.
    #[error("malformed frame: {reason}")]
    MalformedFrame {
        /// Which check failed.
        reason: &'static str,
    },
    /// The CRC32C over metadata and payload does not match the one in the frame.
    #[error("checksum mismatch: frame carries {expected:#010x}, computed {actual:#010x}")]
    ChecksumMismatch {
        /// Checksum carried by the frame.
        expected: u32,
        /// Checksum computed over the received bytes.
        actual: u32,
    },
    /// A protobuf message could not be decoded.
    #[error("cannot decode {what}")]
    Decode {
        /// Which message was being decoded.
        what: &'static str,
        /// The protobuf error.
        #[source]
        source: prost::DecodeError,
    },
    /// A batch payload does not split into the announced messages.
    #[error("malformed batch payload: {reason}")]
    MalformedBatch {
        /// Which check failed.
        reason: &'static str,
    },
    /// Compressing or decompressing a payload failed.
    #[error("{codec} {op} failed")]
    Compression {
        /// Codec name (`LZ4`, `ZSTD`, ...).
        codec: &'static str,
        /// `compression` or `decompression`.
        op: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The payload uses a compression codec this build does not support.
    #[error("unsupported compression type {0}")]
    UnsupportedCompression(i32),
    /// Socket I/O failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    /// The broker answered a request with an error.
    #[error("broker error {code:?}: {message}")]
    Server {
        /// Pulsar error code.
        code: ServerError,
        /// Broker's explanation.
        message: String,
    },
    /// The connection to the broker was closed or lost.
    #[error("connection to {addr} closed")]
    Disconnected {
        /// Broker address.
        addr: String,
    },
    /// A request got no answer in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The request.
        what: &'static str,
        /// How long we waited.
        after: std::time::Duration,
    },
    /// The broker sent something the protocol does not allow here.
    #[error("unexpected response from broker: expected {expected}, got {got}")]
    UnexpectedResponse {
        /// What we waited for.
        expected: &'static str,
        /// Command type received (debug name).
        got: String,
    },
    /// A URL, topic name or option is invalid.
    #[error("invalid {what}: {value}")]
    InvalidArgument {
        /// What was invalid.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The producer, consumer or client was closed.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// The producer's pending queue is full and the producer is set not to block.
    #[error("producer queue is full")]
    QueueFull,
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for errors after which a fresh lookup and reconnect may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io(_) | Error::Disconnected { .. } | Error::Timeout { .. } => true,
            Error::Server { code, .. } => matches!(
                code,
                ServerError::ServiceNotReady
                    | ServerError::TooManyRequests
                    | ServerError::MetadataError
                    | ServerError::PersistenceError
                    | ServerError::UnknownError
            ),
            _ => false,
        }
    }

    /// Builds a [`Error::Server`] from a raw error code.
    pub fn server(code: i32, message: impl Into<String>) -> Self {
        Error::Server {
            code: ServerError::try_from(code).unwrap_or(ServerError::UnknownError),
            message: message.into(),
        }
    }
}
