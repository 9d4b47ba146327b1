//! Codec tests: round trips (proptest), size limits, corrupt and truncated frames.

use bytes::{BufMut, Bytes, BytesMut};
use magnetar_proto::pulsar::{
    BaseCommand, BrokerEntryMetadata, CompressionType, KeyValue, MessageMetadata,
    SingleMessageMetadata,
};
use proptest::prelude::*;
use prost::Message as _;
use tokio_util::codec::{Decoder, Encoder};

use super::commands::{self, command_type};
use super::*;
use crate::Error;

fn metadata(seq: u64) -> MessageMetadata {
    MessageMetadata {
        producer_name: "p".into(),
        sequence_id: seq,
        publish_time: 1_700_000_000_000,
        ..Default::default()
    }
}

fn encode(frames: &[Outbound]) -> BytesMut {
    let mut codec = PulsarCodec::default();
    let mut buf = BytesMut::new();
    for f in frames {
        codec.encode(f.clone(), &mut buf).expect("encode");
    }
    buf
}

fn decode_all(buf: &mut BytesMut) -> Vec<Frame> {
    let mut codec = PulsarCodec::default();
    let mut out = Vec::new();
    while let Some(item) = codec.decode(buf).expect("decode") {
        out.push(item.expect("frame not corrupt"));
    }
    out
}

#[test]
fn simple_command_round_trips() {
    let cmd = commands::connected("magnetar", 21, 5 * 1024 * 1024, None);
    let mut buf = encode(&[cmd.clone().into()]);
    let frames = decode_all(&mut buf);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].command, cmd);
    assert!(frames[0].payload.is_none());
    assert!(buf.is_empty());
}

#[test]
fn payload_frame_keeps_raw_bytes_for_storage() {
    let md = metadata(7);
    let send = commands::send(1, 7, 1);
    let out = Outbound::with_payload(send.clone(), &md, b"hello");
    let Outbound::WithPayload { raw, .. } = &out else {
        panic!("payload frame expected")
    };
    let raw = raw.clone();
    let mut buf = encode(&[out]);
    let frames = decode_all(&mut buf);
    let p = frames[0].payload.as_ref().expect("payload");
    assert_eq!(frames[0].command, send);
    assert_eq!(p.metadata, md);
    assert_eq!(&p.body[..], b"hello");
    assert_eq!(p.raw, raw);
    // Re-sending the stored raw bytes as MESSAGE yields the same payload.
    let msg = commands::message(3, commands::message_id(1, 2), 0, vec![], None);
    let mut buf = encode(&[Outbound::WithPayload {
        command: msg,
        broker_entry_metadata: Some(BrokerEntryMetadata {
            broker_timestamp: Some(5),
            index: Some(9),
        }),
        raw: p.raw.clone(),
    }]);
    let frames = decode_all(&mut buf);
    let p2 = frames[0].payload.as_ref().expect("payload");
    assert_eq!(p2.raw, p.raw);
    assert_eq!(
        p2.broker_entry_metadata.as_ref().and_then(|b| b.index),
        Some(9)
    );
}

#[test]
fn oversized_frame_is_rejected_before_buffering() {
    let mut codec = PulsarCodec::new(1024);
    let mut buf = BytesMut::new();
    buf.put_u32(1025);
    buf.put_u32(0);
    let err = codec.decode(&mut buf).expect_err("must reject");
    assert!(matches!(
        err,
        Error::FrameTooLarge {
            size: 1025,
            max: 1024
        }
    ));
    // The buffer did not grow to the announced size.
    assert!(buf.capacity() < 1025);
}

#[test]
fn default_limit_is_five_mib_plus_padding() {
    let mut codec = PulsarCodec::default();
    let mut buf = BytesMut::new();
    buf.put_u32((DEFAULT_MAX_FRAME_SIZE + 1) as u32);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(Error::FrameTooLarge { .. })
    ));
    let mut buf = BytesMut::new();
    buf.put_u32(DEFAULT_MAX_FRAME_SIZE as u32);
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
}

#[test]
fn encoder_refuses_oversized_frames() {
    let mut codec = PulsarCodec::new(64);
    let out = Outbound::with_payload(commands::send(1, 1, 1), &metadata(1), &[0u8; 100]);
    let mut buf = BytesMut::new();
    assert!(matches!(
        codec.encode(out, &mut buf),
        Err(Error::FrameTooLarge { .. })
    ));
}

#[test]
fn bad_checksum_yields_corrupt_frame_with_command_ids() {
    let send = commands::send(42, 99, 1);
    let mut buf = encode(&[Outbound::with_payload(send, &metadata(99), b"data")]);
    let last = buf.len() - 1;
    buf[last] ^= 0xff;
    let mut codec = PulsarCodec::default();
    let item = codec.decode(&mut buf).expect("not fatal").expect("a frame");
    let corrupt = item.expect_err("checksum must fail");
    assert!(corrupt.is_checksum_mismatch());
    let s = corrupt.command.send.expect("send command");
    assert_eq!((s.producer_id, s.sequence_id), (42, 99));
    // The stream continues after the corrupt frame.
    codec
        .encode(Outbound::from(commands::ping()), &mut buf)
        .expect("encode");
    let next = codec
        .decode(&mut buf)
        .expect("ok")
        .expect("frame")
        .expect("valid");
    assert_eq!(
        command_type(&next.command),
        Some(proto::base_command::Type::Ping)
    );
}

#[test]
fn truncated_frames_wait_for_more_bytes() {
    let full = encode(&[Outbound::with_payload(
        commands::send(1, 2, 1),
        &metadata(2),
        b"payload",
    )]);
    let mut codec = PulsarCodec::default();
    for cut in 0..full.len() {
        let mut part = BytesMut::from(&full[..cut]);
        assert!(
            codec.decode(&mut part).expect("no error").is_none(),
            "cut {cut}"
        );
    }
}

#[test]
fn inconsistent_sizes_are_fatal() {
    let mut codec = PulsarCodec::default();
    let mut buf = BytesMut::new();
    buf.put_u32(8);
    buf.put_u32(100); // command size beyond the frame
    buf.put_u32(0);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(Error::MalformedFrame { .. })
    ));
    let mut buf = BytesMut::new();
    buf.put_u32(2);
    buf.put_u16(0);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(Error::MalformedFrame { .. })
    ));
}

#[test]
fn payload_without_checksum_is_accepted_and_normalized() {
    let md = metadata(3);
    let cmd = commands::send(1, 3, 1);
    let mut rest = BytesMut::new();
    rest.put_u32(md.encoded_len() as u32);
    md.encode(&mut rest).expect("encode");
    rest.put_slice(b"xyz");
    let mut buf = BytesMut::new();
    buf.put_u32((4 + cmd.encoded_len() + rest.len()) as u32);
    buf.put_u32(cmd.encoded_len() as u32);
    cmd.encode(&mut buf).expect("encode");
    buf.put_slice(&rest);
    let frames = decode_all(&mut buf);
    let p = frames[0].payload.as_ref().expect("payload");
    assert_eq!(&p.body[..], b"xyz");
    assert_eq!(p.raw, encode_payload(&md, b"xyz"));
}

#[test]
fn every_builder_sets_matching_type() {
    use proto::base_command::Type;
    let cases: Vec<(BaseCommand, Type)> = vec![
        (commands::connect("c", 21, None), Type::Connect),
        (commands::success(1), Type::Success),
        (
            commands::error(1, proto::ServerError::TopicNotFound, "x"),
            Type::Error,
        ),
        (
            commands::producer_success(1, "p", -1, None, None),
            Type::ProducerSuccess,
        ),
        (
            commands::send_receipt(1, 2, 2, commands::message_id(1, 1)),
            Type::SendReceipt,
        ),
        (
            commands::lookup_connect(1, "pulsar://a:1", true, false),
            Type::LookupResponse,
        ),
        (
            commands::partitioned_metadata_response(1, 4),
            Type::PartitionedMetadataResponse,
        ),
        (
            commands::close_consumer(1, commands::BROKER_INITIATED_REQUEST_ID),
            Type::CloseConsumer,
        ),
        (
            commands::active_consumer_change(1, true),
            Type::ActiveConsumerChange,
        ),
        (commands::flow(1, 1000), Type::Flow),
        (commands::pong(), Type::Pong),
    ];
    for (cmd, ty) in cases {
        assert_eq!(command_type(&cmd), Some(ty));
        let bytes = cmd.encode_to_vec();
        assert_eq!(BaseCommand::decode(&bytes[..]).expect("decode"), cmd);
    }
}

#[test]
fn lz4_and_zstd_batches_round_trip() {
    let msgs: Vec<BatchMessage> = (0..10)
        .map(|i| BatchMessage {
            metadata: SingleMessageMetadata {
                partition_key: Some(format!("k{i}")),
                properties: vec![KeyValue {
                    key: "i".into(),
                    value: i.to_string(),
                }],
                sequence_id: Some(i),
                ..Default::default()
            },
            payload: Bytes::from(vec![b'a' + i as u8; 100]),
        })
        .collect();
    let body = build_batch(&msgs);
    for codec in [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zstd,
        CompressionType::Zlib,
        CompressionType::Snappy,
    ] {
        let mut md = metadata(0);
        md.num_messages_in_batch = Some(10);
        let packed = pack(&mut md, codec, &body).expect("pack");
        let out = unpack(&md, &packed, DEFAULT_MAX_MESSAGE_SIZE).expect("unpack");
        assert_eq!(out.len(), 10);
        for (i, (m, p)) in out.iter().enumerate() {
            let m = m.as_ref().expect("batched");
            assert_eq!(m.partition_key.as_deref(), Some(format!("k{i}").as_str()));
            assert_eq!(&p[..], &msgs[i].payload[..]);
        }
    }
}

#[test]
fn decompression_refuses_huge_claimed_sizes() {
    let data = compress(CompressionType::Lz4, b"abc").expect("compress");
    assert!(matches!(
        decompress(
            CompressionType::Lz4,
            &data,
            1 << 30,
            DEFAULT_MAX_MESSAGE_SIZE
        ),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(decompress(CompressionType::Lz4, &data, 2, 100).is_err());
}

#[test]
fn zlib_and_snappy_use_pulsars_formats_and_check_sizes() {
    let plain = b"hello hello hello hello".repeat(10);
    // Pulsar's ZLIB is a zlib stream (0x78 header), SNAPPY a raw block whose varint
    // preamble is the uncompressed length (230 = 0xe6 0x01), not the framed format.
    let z = compress(CompressionType::Zlib, &plain).expect("zlib");
    assert_eq!(z[0], 0x78);
    let s = compress(CompressionType::Snappy, &plain).expect("snappy");
    assert_eq!(&s[..2], &[0xe6, 0x01]);
    for (codec, data) in [(CompressionType::Zlib, z), (CompressionType::Snappy, s)] {
        let out = decompress(codec, &data, plain.len(), DEFAULT_MAX_MESSAGE_SIZE).expect("ok");
        assert_eq!(&out[..], &plain[..]);
        assert!(decompress(codec, &data, plain.len() - 1, DEFAULT_MAX_MESSAGE_SIZE).is_err());
        assert!(decompress(codec, &data, plain.len() + 1, DEFAULT_MAX_MESSAGE_SIZE).is_err());
    }
}

#[test]
fn truncated_batch_is_an_error() {
    let body = build_batch(&[BatchMessage {
        metadata: SingleMessageMetadata::default(),
        payload: Bytes::from_static(b"12345"),
    }]);
    assert!(parse_batch(&body.slice(..body.len() - 1), 1).is_err());
    assert!(parse_batch(&body, 2).is_err());
    assert_eq!(parse_batch(&body, 1).expect("ok").len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frames_round_trip(
        producer_id in any::<u64>(),
        seq in any::<u64>(),
        key in proptest::option::of("[a-z]{0,12}"),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        split in any::<prop::sample::Index>(),
    ) {
        let mut md = metadata(seq);
        md.partition_key = key;
        let frames = vec![
            Outbound::from(commands::ping()),
            Outbound::with_payload(commands::send(producer_id, seq, 1), &md, &body),
            Outbound::from(commands::flow(producer_id, 10)),
        ];
        let all = encode(&frames);
        // Feed the bytes in two chunks at an arbitrary split point.
        let at = split.index(all.len() + 1);
        let mut codec = PulsarCodec::default();
        let mut buf = BytesMut::from(&all[..at]);
        let mut got = Vec::new();
        while let Some(f) = codec.decode(&mut buf).expect("decode") {
            got.push(f.expect("valid"));
        }
        buf.extend_from_slice(&all[at..]);
        while let Some(f) = codec.decode(&mut buf).expect("decode") {
            got.push(f.expect("valid"));
        }
        prop_assert_eq!(got.len(), 3);
        prop_assert_eq!(&got[1].command, frames[1].command());
        let p = got[1].payload.as_ref().expect("payload");
        prop_assert_eq!(&p.metadata, &md);
        prop_assert_eq!(&p.body[..], &body[..]);
    }

    #[test]
    fn batches_round_trip(
        items in proptest::collection::vec(
            (proptest::option::of("[a-z]{0,8}"), proptest::collection::vec(any::<u8>(), 0..256)),
            1..20,
        ),
        codec_idx in 0usize..5,
    ) {
        let codec = [
            CompressionType::None,
            CompressionType::Lz4,
            CompressionType::Zstd,
            CompressionType::Zlib,
            CompressionType::Snappy,
        ][codec_idx];
        let msgs: Vec<BatchMessage> = items.iter().map(|(k, p)| BatchMessage {
            metadata: SingleMessageMetadata {
                partition_key: k.clone(),
                payload_size: p.len() as i32,
                ..Default::default()
            },
            payload: Bytes::from(p.clone()),
        }).collect();
        let body = build_batch(&msgs);
        let mut md = metadata(1);
        md.num_messages_in_batch = Some(msgs.len() as i32);
        let packed = pack(&mut md, codec, &body).expect("pack");
        let out = unpack(&md, &packed, DEFAULT_MAX_MESSAGE_SIZE).expect("unpack");
        prop_assert_eq!(out.len(), msgs.len());
        for ((m, p), orig) in out.iter().zip(&msgs) {
            prop_assert_eq!(m.as_ref().expect("batched"), &orig.metadata);
            prop_assert_eq!(p, &orig.payload);
        }
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut codec = PulsarCodec::new(4096);
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..64 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
    }
}
