//! The RocksDB Raft log store and state machine pass openraft's storage conformance suite.

use magnetar_metadata::raft::sm::SharedState;
use magnetar_metadata::raft::storage::{open_db, LogStore, StateMachineStore};
use magnetar_metadata::raft::types::{NodeId, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use std::sync::Arc;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open_db(dir.path()).expect("open rocksdb");
        let sm = StateMachineStore::open(db.clone(), Arc::new(SharedState::default())).await?;
        Ok((dir, LogStore::new(db), sm))
    }
}

#[test]
fn rocksdb_store_passes_openraft_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
