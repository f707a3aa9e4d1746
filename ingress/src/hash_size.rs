//! Sizes for nginx's static hash tables (`server_names_hash_*`, `map_hash_*`), computed from
//! the keys themselves (pure).
//!
//! nginx builds each such table at config load (`ngx_hash_init`, src/core/ngx_hash.c in the
//! nginx sources): a key takes `8 + align8(len + 2)` bytes of a bucket, a bucket holds
//! `bucket_size - 8` bytes, and nginx tries every table size from
//! `keys / ((bucket_size - 8) / 16)` (or `max_size - 1000` when `max_size > 10000` and
//! `max_size / keys < 100`) up to `max_size`, taking the first where no bucket overflows.
//! When none does it warns "could not build optimal ..." and builds a table whose lookups
//! scan long buckets. [`for_keys`] runs the same search here, with the same hash
//! (`h = h * 31 + lowercase byte`, 64-bit), and answers a bucket size and a `max_size` at
//! which nginx's search is bound to succeed: the size found here works for these keys and
//! for any subset of them (fewer keys never overflow a bucket more), and it lies inside the
//! range nginx searches.

/// A pointer on the 64-bit targets nginx runs on here.
const PTR: usize = 8;
/// nginx rounds bucket sizes up to its cache line size (64 on x86-64).
const CACHE_LINE: usize = 64;
/// The largest bucket nginx accepts is `65536 - cache line`; names are ≤ 253 bytes, so a
/// bucket this large always fits many and the search never gets near it.
const MAX_BUCKET: usize = 4096;
/// Sets up to this many keys start the search at the smallest bucket that fits one key.
const SMALL_SET: usize = 64;
/// Buckets of large sets start at this many of the widest keys.
const KEYS_PER_BUCKET: usize = 4;
/// Table sizes tried around each candidate size.
const TRIES_PER_SIZE: usize = 16;
/// Largest table tried per bucket size, in keys: sparser tables waste memory; a bigger
/// bucket is tried instead.
const MAX_LOAD_RATIO: usize = 64;
/// The least `max_size` rendered (twice nginx's default of 512, as berth always rendered):
/// small sets keep the same config text; below 10 000 nginx searches from the start anyway.
const MIN_MAX_SIZE: usize = 1024;

/// What to render as `<name>_hash_bucket_size` and `<name>_hash_max_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSize {
    pub bucket_size: usize,
    pub max_size: usize,
}

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Bytes one key takes in a bucket (`NGX_HASH_ELT_SIZE`).
fn element_size(len: usize) -> usize {
    PTR + align(len + 2, PTR)
}

/// nginx's `ngx_hash_key_lc`.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0u64, |h, b| {
        h.wrapping_mul(31)
            .wrapping_add(u64::from(b.to_ascii_lowercase()))
    })
}

/// Does every bucket of a `size`-bucket table hold its keys within `room` bytes? `load` is
/// all zeros before and after (only the touched slots are reset: cheap for failed tries).
fn fits(keys: &[(u64, u16)], size: usize, room: usize, load: &mut Vec<u16>) -> bool {
    if load.len() < size {
        load.resize(size, 0);
    }
    let mut ok = true;
    let mut filled = 0;
    for &(hash, elt) in keys {
        let slot = &mut load[(hash % size as u64) as usize];
        let len = usize::from(*slot) + usize::from(elt);
        if len > room {
            ok = false;
            break;
        }
        *slot = len as u16;
        filled += 1;
    }
    for &(hash, _) in &keys[..filled] {
        load[(hash % size as u64) as usize] = 0;
    }
    ok
}

/// Bucket and table sizes nginx can build a table of `keys` with, without a warning.
/// Duplicates are harmless (counted once more than nginx does: a superset is safe).
pub fn for_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> HashSize {
    let keys: Vec<(u64, u16)> = keys
        .into_iter()
        .map(|k| (key_hash(k), element_size(k.len()) as u16))
        .collect();
    let n = keys.len();
    let widest = keys.iter().map(|&(_, e)| usize::from(e)).max().unwrap_or(0);
    // One key per bucket needs a perfect hash, which large sets practically never have; a
    // bucket of four of the widest keys is found at a table of about the keys' count, and
    // still bounds nginx's linear scan of a bucket.
    let per_bucket = if n > SMALL_SET { KEYS_PER_BUCKET } else { 1 };
    let mut bucket = align(per_bucket * widest + PTR, CACHE_LINE).max(CACHE_LINE);
    let mut load = Vec::new();
    loop {
        let room = bucket - PTR;
        // nginx's first size: never answer less.
        let start = (n / (room / (2 * PTR))).max(1);
        let mut size = start.max(n);
        while size <= n.max(SMALL_SET) * MAX_LOAD_RATIO {
            // A few neighbours of each size, then a bigger table (sparser: likelier to fit).
            if let Some(found) =
                (size..size + TRIES_PER_SIZE).find(|&s| fits(&keys, s, room, &mut load))
            {
                return HashSize {
                    bucket_size: bucket,
                    max_size: found.max(MIN_MAX_SIZE),
                };
            }
            size = size * 3 / 2 + 1;
        }
        if bucket >= MAX_BUCKET {
            // Unreachable for names ≤ 253 bytes; nginx still loads, with a warning.
            return HashSize {
                bucket_size: bucket,
                max_size: size,
            };
        }
        bucket *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_sizes_and_hash_follow_nginx() {
        assert_eq!(element_size(6), 16); // 8 + align8(8)
        assert_eq!(element_size(7), 24);
        assert_eq!(key_hash("Ab"), 97 * 31 + 98);
    }

    #[test]
    fn small_sets_get_the_defaults_and_every_size_found_fits() {
        assert_eq!(
            for_keys(["a.example.com", "_"]),
            HashSize {
                bucket_size: 64,
                max_size: 1024
            }
        );
        let names: Vec<String> = (0..10_000).map(|i| format!("h{i}.example.com")).collect();
        let s = for_keys(names.iter().map(String::as_str));
        let keys: Vec<(u64, u16)> = names
            .iter()
            .map(|k| (key_hash(k), element_size(k.len()) as u16))
            .collect();
        assert!(fits(
            &keys,
            s.max_size,
            s.bucket_size - PTR,
            &mut Vec::new()
        ));
        // A 253-byte name needs a bucket of at least 8 + 256 + 8 bytes, cache-line aligned.
        let long = "a".repeat(253);
        assert_eq!(for_keys([long.as_str()]).bucket_size, 320);
    }
}
