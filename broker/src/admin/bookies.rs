//! `GET /admin/v2/bookies/all`: the bookies registered under `/bookies/`, with their state.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use magnetar_bookie::registration::{list_bookies, BookieState};
use serde_json::{json, Value};

use super::{AdminError, AdminResult};
use crate::broker::Broker;
use crate::error::BrokerError;

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new().route("/admin/v2/bookies/all", get(all))
}

async fn all(State(b): State<Arc<Broker>>) -> AdminResult<Json<Value>> {
    let bookies = list_bookies(b.metadata.as_ref())
        .await
        .map_err(|e| AdminError::from(BrokerError::from(e)))?;
    let list: Vec<Value> = bookies
        .into_iter()
        .map(|(id, r)| {
            json!({
                "bookieId": id,
                "address": r.address,
                "state": match r.state {
                    BookieState::Writable => "writable",
                    BookieState::Readonly => "readonly",
                },
                "freeBytes": r.free_bytes,
            })
        })
        .collect();
    Ok(Json(json!({ "bookies": list })))
}
