use super::*;

fn info(key: ConsumerKey, name: &str) -> ConsumerInfo {
    ConsumerInfo {
        key,
        name: name.to_string(),
        priority: 0,
        sticky_ranges: None,
    }
}

fn entries(range: std::ops::Range<u64>, slot: impl Fn(u64) -> Option<u32>) -> Vec<EntryInfo> {
    range
        .map(|e| EntryInfo {
            pos: Position::new(1, e),
            num_messages: 1,
            slot: slot(e),
        })
        .collect()
}

#[test]
fn exclusive_refuses_second_consumer_and_respects_permits() {
    let mut d = Dispatcher::new(SubType::Exclusive, -1);
    d.add_consumer(info(1, "a")).expect("first");
    assert_eq!(d.add_consumer(info(2, "b")), Err(AddError::Exclusive));
    assert_eq!(d.next_read(100), ReadPlan::Idle);
    d.flow(1, 2);
    assert_eq!(d.next_read(100), ReadPlan::New(2));
    let out = d.dispatch(&entries(0..3, |_| None));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|x| x.consumer == 1));
    // The third waits for redelivery once permits come back.
    assert_eq!(d.replay_len(), 1);
    d.flow(1, 5);
    assert_eq!(
        d.next_read(100),
        ReadPlan::Replay(vec![Position::new(1, 2)])
    );
}

#[test]
fn shared_round_robins_and_redelivers_a_leaving_consumers_entries() {
    let mut d = Dispatcher::new(SubType::Shared, -1);
    d.add_consumer(info(1, "a")).expect("a");
    d.add_consumer(info(2, "b")).expect("b");
    d.flow(1, 10);
    d.flow(2, 10);
    let out = d.dispatch(&entries(0..4, |_| None));
    let to: Vec<ConsumerKey> = out.iter().map(|x| x.consumer).collect();
    assert_eq!(to, vec![1, 2, 1, 2]);
    d.acked(Position::new(1, 0));
    d.remove_consumer(1);
    assert_eq!(
        d.next_read(100),
        ReadPlan::Replay(vec![Position::new(1, 2)])
    );
    let again = d.dispatch(&entries(2..3, |_| None));
    assert_eq!(again[0].consumer, 2);
    assert_eq!(again[0].redelivery_count, 0);
}

#[test]
fn redeliver_counts_and_requeues_pending() {
    let mut d = Dispatcher::new(SubType::Shared, -1);
    d.add_consumer(info(1, "a")).expect("a");
    d.flow(1, 10);
    d.dispatch(&entries(0..2, |_| None));
    d.redeliver(1, None);
    assert_eq!(d.pending_of(1), 0);
    let plan = d.next_read(100);
    assert_eq!(
        plan,
        ReadPlan::Replay(vec![Position::new(1, 0), Position::new(1, 1)])
    );
    let out = d.dispatch(&entries(0..2, |_| None));
    assert!(out.iter().all(|x| x.redelivery_count == 1));
}

#[test]
fn failover_picks_by_priority_then_name_and_announces_changes() {
    let mut d = Dispatcher::new(SubType::Failover, -1);
    let n = d.add_consumer(info(1, "b")).expect("b");
    assert!(n.contains(&Notice::ActiveChange {
        consumer: 1,
        active: true
    }));
    let n = d.add_consumer(info(2, "a")).expect("a");
    assert_eq!(d.active(), Some(2));
    assert!(n.contains(&Notice::ActiveChange {
        consumer: 1,
        active: false
    }));
    d.flow(1, 10);
    d.flow(2, 10);
    let out = d.dispatch(&entries(0..2, |_| None));
    assert!(out.iter().all(|x| x.consumer == 2));
    d.remove_consumer(2);
    assert_eq!(d.active(), Some(1));
    // The old active's unacked entries move to the new active.
    assert!(matches!(d.next_read(100), ReadPlan::Replay(v) if v.len() == 2));
}

#[test]
fn failover_on_partition_uses_partition_modulo_consumers() {
    let mut d = Dispatcher::new(SubType::Failover, 3);
    d.add_consumer(info(1, "a")).expect("a");
    d.add_consumer(info(2, "b")).expect("b");
    assert_eq!(d.active(), Some(2));
}

#[test]
fn key_shared_keeps_per_key_order_when_consumers_change() {
    let mut d = Dispatcher::new(SubType::KeyShared, -1);
    d.add_consumer(info(1, "a")).expect("a");
    d.flow(1, 100);
    // All keys to consumer 1 while it is alone.
    let out = d.dispatch(&entries(0..20, |e| Some((e as u32 * 3001) % keys::SLOTS)));
    assert_eq!(out.len(), 20);
    d.add_consumer(info(2, "b")).expect("b");
    d.flow(2, 100);
    // New entries for keys now owned by 2 must wait while 1 still holds earlier ones.
    let out = d.dispatch(&entries(20..40, |e| {
        Some(((e - 20) as u32 * 3001) % keys::SLOTS)
    }));
    for x in &out {
        assert_eq!(x.consumer, 1, "key moved while earlier entry pending");
    }
    let held = 20 - out.len();
    assert_eq!(d.replay_len(), held);
    // Once 1 acks everything, the held entries go to their new owner in order.
    for e in 0..40 {
        d.acked(Position::new(1, e));
    }
    assert_eq!(d.replay_len(), 0);
}

#[test]
fn key_shared_sticky_ranges_route_and_conflict() {
    let mut d = Dispatcher::new(SubType::KeyShared, -1);
    let mut a = info(1, "a");
    a.sticky_ranges = Some(vec![(0, 32767)]);
    let mut b = info(2, "b");
    b.sticky_ranges = Some(vec![(32768, 65535)]);
    let mut c = info(3, "c");
    c.sticky_ranges = Some(vec![(100, 200)]);
    d.add_consumer(a).expect("a");
    d.add_consumer(b).expect("b");
    assert_eq!(d.add_consumer(c), Err(AddError::RangeConflict));
    d.flow(1, 10);
    d.flow(2, 10);
    let out = d.dispatch(&[
        EntryInfo {
            pos: Position::new(1, 0),
            num_messages: 1,
            slot: Some(5),
        },
        EntryInfo {
            pos: Position::new(1, 1),
            num_messages: 1,
            slot: Some(40000),
        },
    ]);
    assert_eq!(out[0].consumer, 1);
    assert_eq!(out[1].consumer, 2);
}

#[test]
fn batch_entries_cost_their_message_count_in_permits() {
    let mut d = Dispatcher::new(SubType::Exclusive, -1);
    d.add_consumer(info(1, "a")).expect("a");
    d.flow(1, 10);
    let out = d.dispatch(&[EntryInfo {
        pos: Position::new(1, 0),
        num_messages: 10,
        slot: None,
    }]);
    assert_eq!(out.len(), 1);
    assert_eq!(d.permits(1), Some(0));
    assert_eq!(d.next_read(100), ReadPlan::Idle);
}

#[test]
fn cumulative_ack_forgets_everything_up_to_position() {
    let mut d = Dispatcher::new(SubType::Exclusive, -1);
    d.add_consumer(info(1, "a")).expect("a");
    d.flow(1, 10);
    d.dispatch(&entries(0..5, |_| None));
    d.acked_up_to(Position::new(1, 3));
    assert_eq!(d.pending_of(1), 1);
}
