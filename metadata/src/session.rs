//! Keeps a metadata session alive in the background and signals when it is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{MetadataStore, Result, SessionId};

/// A live session: renewed every `ttl / 3` until dropped or closed. When a renewal fails with
/// an expired session (or no renewal succeeds within the TTL), [`SessionKeeper::lost`] fires;
/// whoever holds ephemeral keys under it must stop acting on them at once.
pub struct SessionKeeper {
    id: SessionId,
    store: Arc<dyn MetadataStore>,
    lost: CancellationToken,
    stop: CancellationToken,
}

impl SessionKeeper {
    /// Opens a session with `ttl` and starts renewing it.
    pub async fn start(store: Arc<dyn MetadataStore>, ttl: Duration) -> Result<Arc<Self>> {
        let id = store.create_session(ttl).await?;
        let keeper = Arc::new(SessionKeeper {
            id,
            store: store.clone(),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
        });
        let (lost, stop) = (keeper.lost.clone(), keeper.stop.clone());
        tokio::spawn(async move {
            let mut last_ok = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(ttl / 3) => {}
                }
                match tokio::time::timeout(ttl / 3, store.keep_alive(id)).await {
                    Ok(Ok(())) => last_ok = tokio::time::Instant::now(),
                    Ok(Err(crate::MetadataError::SessionExpired(_))) => {
                        tracing::warn!(session = id.0, "metadata session expired");
                        lost.cancel();
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!(session = id.0, error = %e, "keep-alive failed"),
                    Err(_) => tracing::warn!(session = id.0, "keep-alive timed out"),
                }
                if last_ok.elapsed() >= ttl {
                    tracing::warn!(session = id.0, "no keep-alive succeeded within the TTL");
                    lost.cancel();
                    return;
                }
            }
        });
        Ok(keeper)
    }

    /// The session id, for ephemeral writes.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Fires when the session is lost.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and closes the session, deleting its ephemeral keys.
    pub async fn close(&self) -> Result<()> {
        self.stop.cancel();
        self.store.close_session(self.id).await
    }
}

impl Drop for SessionKeeper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
