//! Correlation events shared by every collector instance on one database (LISTEN/NOTIFY).
//!
//! A transaction that opens, escalates or closes a correlation NOTIFYs its events on
//! [`CHANNEL`]; PostgreSQL delivers them only once the transaction has committed, and to every
//! listening instance, the sender included. Each instance keeps one listening connection
//! (reconnected with backoff when it drops) and hands what arrives to its own subscribers —
//! so a `WatchCorrelations` stream or webhook on any instance sees every correlation, wherever
//! the causing batch came in. Payloads are the protobuf encoding in hex; NOTIFY payloads are
//! limited to 8000 bytes, so an event with very long participant lists travels with the lists
//! cut (the counts stay exact).

use crate::store::StoreError;
use futures::StreamExt;
use prost::Message;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls, Transaction};
use zdn_proto::v1;

pub(super) const CHANNEL: &str = "zdn_correlations";

/// Largest payload sent (PostgreSQL refuses 8000 bytes and more).
const MAX_PAYLOAD: usize = 7900;

/// The NOTIFY payload of one event: lists halved until it fits (the counts stay exact).
fn encode(event: &v1::CorrelationEvent) -> String {
    let mut event = event.clone();
    loop {
        let payload = hex::encode(event.encode_to_vec());
        let Some(c) = event.correlation.as_mut().filter(|_| payload.len() > MAX_PAYLOAD) else {
            return payload;
        };
        if c.participants.is_empty() && event.joined.is_empty() && c.members.is_empty() {
            return payload;
        }
        c.participants.truncate(c.participants.len() / 2);
        c.members.truncate(c.members.len() / 2);
        event.joined.truncate(event.joined.len() / 2);
    }
}

fn decode(payload: &str) -> Option<v1::CorrelationEvent> {
    v1::CorrelationEvent::decode(hex::decode(payload).ok()?.as_slice()).ok()
}

/// Announces `events` to every instance once `tx` commits.
pub(super) async fn notify(tx: &Transaction<'_>, events: &[v1::CorrelationEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = events.iter().map(encode).collect();
    tx.execute(&format!("SELECT pg_notify('{CHANNEL}', p) FROM unnest($1::TEXT[]) AS p"), &[&payloads])
        .await?;
    Ok(())
}

/// Listens on `url`, forwarding every event to `to`, for as long as the engine's runtime runs
/// (it stops with the store).
pub(super) async fn listen(
    url: String,
    to: broadcast::Sender<v1::CorrelationEvent>,
    mut ready: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut wait = Duration::from_millis(200);
    loop {
        match listen_once(&url, &to, &mut ready).await {
            Ok(()) => tracing::warn!("correlation event listener: connection closed; reconnecting"),
            Err(e) => {
                tracing::error!(error = %e, "correlation event listener lost its connection; reconnecting")
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    url: &str,
    to: &broadcast::Sender<v1::CorrelationEvent>,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (messages_tx, mut messages) = futures::channel::mpsc::unbounded();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            if messages_tx.unbounded_send(message).is_err() {
                break;
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    tracing::debug!("listening for correlation events of every instance");
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    while let Some(message) = messages.next().await {
        match message? {
            AsyncMessage::Notification(n) => match decode(n.payload()) {
                // No subscriber right now is fine: the correlation is in the store either way.
                Some(event) => drop(to.send(event)),
                None => tracing::warn!("undecodable correlation event notification dropped"),
            },
            AsyncMessage::Notice(notice) => tracing::debug!(%notice, "postgres notice"),
            _ => {}
        }
    }
    driver.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_stay_under_the_limit() {
        let event = |n: usize| v1::CorrelationEvent {
            change: 1,
            correlation: Some(v1::Correlation {
                indicator: "evil.example".into(),
                participants: (0..n).map(|i| format!("participant-{i:04}")).collect(),
                participant_count: n as u32,
                ..Default::default()
            }),
            joined: (0..n).map(|i| format!("participant-{i:04}")).collect(),
            joined_count: n as u32,
        };
        assert_eq!(decode(&encode(&event(3))), Some(event(3)));
        let big = encode(&event(1000));
        assert!(big.len() <= MAX_PAYLOAD);
        let back = decode(&big).unwrap().correlation.unwrap();
        assert_eq!(back.participant_count, 1000, "the count stays exact");
        assert!(!back.participants.is_empty() && back.participants.len() < 1000);
        assert_eq!(decode("zz"), None);
    }
}
