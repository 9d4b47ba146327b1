//! Key hashing compatible with the Java client and broker.
//!
//! Pulsar hashes keys with MurmurHash3 x86 32-bit, seed 0, and masks the sign bit
//! (`& Integer.MAX_VALUE`) for Key_Shared dispatch (modulo 65536 hash slots). Partition
//! routing of keyed messages uses the Java client's default scheme, `JavaStringHash`
//! (`String.hashCode() & Integer.MAX_VALUE`, modulo the partition count), so a key lands on
//! the same partition whether a Java or a Magnetar producer sends it.

/// Number of Key_Shared hash slots.
pub const KEY_SHARED_HASH_RANGE: u32 = 65536;

/// MurmurHash3 x86 32-bit of `data` with `seed`.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix_k = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        h ^= mix_k(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k = 0u32;
    for (i, b) in tail.iter().enumerate() {
        k ^= u32::from(*b) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= mix_k(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Pulsar's `Murmur3_32Hash.makeHash`: murmur3 with seed 0, sign bit cleared.
pub fn pulsar_hash(key: &[u8]) -> u32 {
    murmur3_32(key, 0) & 0x7fff_ffff
}

/// Partition for a keyed message under the Java client's default `JavaStringHash` scheme.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    java_string_hash(key) % partitions
}

/// Key_Shared hash slot (0..65536) of a sticky key.
pub fn key_shared_slot(key: &[u8]) -> u32 {
    pulsar_hash(key) % KEY_SHARED_HASH_RANGE
}

/// Java's `String.hashCode()` (the Java client's default `JavaStringHash` scheme), sign
/// bit cleared.
pub fn java_string_hash(key: &str) -> u32 {
    let mut h: i32 = 0;
    for unit in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h as u32) & 0x7fff_ffff
}

/// The key Key_Shared dispatch uses: `ordering_key` when set, else `partition_key`.
pub fn sticky_key(metadata: &magnetar_proto::pulsar::MessageMetadata) -> &[u8] {
    if let Some(k) = metadata.ordering_key.as_deref() {
        return k;
    }
    metadata.partition_key.as_deref().unwrap_or("").as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn pulsar_hash_clears_sign_bit() {
        for k in ["a", "b", "key-1", "key-2", "\u{1F600}"] {
            assert!(pulsar_hash(k.as_bytes()) <= i32::MAX as u32);
            assert!(key_shared_slot(k.as_bytes()) < KEY_SHARED_HASH_RANGE);
        }
    }

    #[test]
    fn java_string_hash_matches_java() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
    }
}
