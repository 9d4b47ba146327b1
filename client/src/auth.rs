//! Authentication hook: an [`Authentication`] supplies the method name and credentials
//! sent in every CONNECT, and answers the broker's AUTH_CHALLENGE (credential refresh, or
//! multi-step methods such as SASL) with fresh data, so expiring tokens can be renewed
//! without recreating the client.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;

/// Supplies credentials; called for each new broker connection and each AUTH_CHALLENGE.
///
/// ```
/// use std::sync::Arc;
/// use magnetar_client::{Authentication, PulsarClient};
///
/// /// Reads a token that an outside process keeps fresh.
/// #[derive(Debug)]
/// struct TokenFile(std::path::PathBuf);
///
/// impl Authentication for TokenFile {
///     fn method(&self) -> String {
///         "token".into()
///     }
///     fn data(&self, _challenge: Option<&[u8]>) -> magnetar_client::Result<Vec<u8>> {
///         Ok(std::fs::read(&self.0)?)
///     }
/// }
///
/// let client = PulsarClient::builder("pulsar://localhost:6650")
///     .authentication(Arc::new(TokenFile("/run/secrets/pulsar-token".into())))
///     .build()?;
/// # Ok::<(), magnetar_client::Error>(())
/// ```
pub trait Authentication: Send + Sync + fmt::Debug {
    /// Method name, e.g. `"token"`.
    fn method(&self) -> String;

    /// Credentials to send: for CONNECT `challenge` is `None`; for an AUTH_CHALLENGE it is
    /// the broker's challenge data. An error fails the connection attempt (CONNECT) or
    /// leaves the challenge unanswered, so the broker closes the connection.
    fn data(&self, challenge: Option<&[u8]>) -> Result<Vec<u8>>;
}

/// Fixed credentials (what [`crate::ClientBuilder::auth`] installs).
#[derive(Clone)]
pub struct StaticAuth {
    method: String,
    data: Vec<u8>,
}

impl StaticAuth {
    /// Sends `data` with `method` every time.
    pub fn new(method: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        StaticAuth {
            method: method.into(),
            data: data.into(),
        }
    }
}

impl fmt::Debug for StaticAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials.
        f.debug_struct("StaticAuth")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Authentication for StaticAuth {
    fn method(&self) -> String {
        self.method.clone()
    }

    fn data(&self, _challenge: Option<&[u8]>) -> Result<Vec<u8>> {
        Ok(self.data.clone())
    }
}

/// The provider shared by every connection of a client.
pub(crate) type AuthProvider = Arc<dyn Authentication>;
