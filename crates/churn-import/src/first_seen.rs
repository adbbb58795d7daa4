//! The learners of the events, for a mapping that has no learners table:
//! each distinct learner id in order of first appearance, with its first
//! time.
//!
//! Ids are hashed once into as many partitions as the pool has threads;
//! each thread keeps a table of its own partition's ids (a fraction of them,
//! so the table stays closer to the cache), and the ids are then put back in
//! the order of their first row. The result does not depend on the number
//! of threads.

use compact_str::CompactString;
use hashbrown::HashTable;
use polars::prelude::*;
use rayon::prelude::*;
use std::hash::BuildHasher;

use crate::EventRows;

/// One distinct id of a partition.
struct Seen {
    hash: u64,
    first_row: usize,
    first_ts: i64,
    id: CompactString,
}

/// Each learner id of `events` in order of first appearance, with the
/// earliest time of its events.
pub(crate) fn learners(events: &EventRows) -> Result<Vec<(String, i64)>, String> {
    let Some(frame) = events.kept() else {
        return Ok(Vec::new());
    };
    let text = |e: PolarsError| e.to_string();
    let ids = frame
        .column("learner_id")
        .map_err(text)?
        .str()
        .map_err(text)?;
    let ts = frame.column("ts").map_err(text)?;
    let ts = ts.datetime().map_err(text)?.physical();
    // The batches' chunks, aligned (both columns were built batch by batch).
    let (ids, ts) = if ids.chunk_lengths().eq(ts.chunk_lengths()) {
        (ids.clone(), ts.clone())
    } else {
        (ids.rechunk().into_owned(), ts.rechunk().into_owned())
    };
    let chunks: Vec<_> = ids
        .downcast_iter()
        .zip(ts.downcast_iter())
        .map(|(ids, ts)| (ids, ts.values().as_slice()))
        .collect();
    let hasher = foldhash::fast::FixedState::with_seed(0x5eed);
    let partitions = rayon::current_num_threads().max(1);
    let partition_of = |hash: u64| ((hash >> 32) as usize) % partitions;
    let hashes: Vec<Vec<u64>> = chunks
        .par_iter()
        .map(|(ids, _)| ids.values_iter().map(|id| hasher.hash_one(id)).collect())
        .collect();
    let mut seen: Vec<Seen> = (0..partitions)
        .into_par_iter()
        .flat_map_iter(|p| {
            let mut table: HashTable<Seen> = HashTable::new();
            let mut first_row = 0;
            for ((ids, ts), hashes) in chunks.iter().zip(&hashes) {
                for (i, &hash) in hashes.iter().enumerate() {
                    if partition_of(hash) != p {
                        continue;
                    }
                    let id = ids.value(i);
                    match table.find_mut(hash, |s| s.hash == hash && s.id == id) {
                        Some(s) => s.first_ts = s.first_ts.min(ts[i]),
                        None => {
                            table.insert_unique(
                                hash,
                                Seen {
                                    hash,
                                    first_row: first_row + i,
                                    first_ts: ts[i],
                                    id: CompactString::from(id),
                                },
                                |s| s.hash,
                            );
                        }
                    }
                }
                first_row += ids.len();
            }
            table.into_iter()
        })
        .collect();
    seen.par_sort_unstable_by_key(|s| s.first_row);
    Ok(seen
        .into_iter()
        .map(|s| (s.id.into_string(), s.first_ts))
        .collect())
}
