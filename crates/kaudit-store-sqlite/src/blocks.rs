//! Block summaries: the value and free-text index of the `events` table.
//!
//! Events get increasing ids in insertion order. Every [`BLOCK_ROWS`] consecutive ids form a
//! block, summarised by one row of `blocks` (its id range and time range) and two Bloom
//! filters over what its events contain:
//!
//! * The value filter holds a token per searchable exact value (`user=alice`, `verb=get`, the
//!   user-name prefixes ending at each `:`, each group, ...) and per pair of the common
//!   low-cardinality values (`namespace=x` with `verb=delete`), so that a conjunction of common
//!   values that rarely meet is still answered by few blocks.
//! * The gram filter holds the byte trigrams and 4-grams of the ASCII-lowercased requestURI,
//!   object name (free text) and user agent (its own salts). The 4-grams (format 2) refuse
//!   the blocks that hold every trigram of a text without the text, which for random names
//!   (hexadecimal suffixes) were most of the blocks a search checked.
//!
//! A search turns its filter into the tokens every matching event's block must contain
//! ([`Required`]) and reads only the blocks whose filters admit them all; the rows of an
//! admitted block are then checked exactly by SQL. A Bloom filter never denies a token it
//! holds, so no match is ever missed; a false positive only costs a block read.
//!
//! # Groups
//!
//! A block's filters are first stored whole (`block_blooms`). Once [`GROUP_BLOCKS`]
//! consecutive blocks are written, the writer stores their filters transposed
//! ([`GroupSlices`]): per filter bit position one 64-bit word, bit `j` of which is that bit
//! in the group's `j`-th block, in slices of 64 positions (`bloom_slices`), and deletes the
//! blocks' own filter rows. A search reads, for each group, only the slices holding its probe
//! positions and ANDs their words ([`GroupProbes`]): a few hundred bytes per group per probe
//! instead of 16 KiB per block. The bits are those of the blocks' own filters, so a group
//! admits exactly the blocks their filters admit.
//!
//! Keeping the blocks' own filters as well would double their 16 bytes per event for
//! nothing: the slices hold the same bits, and a block is read through one or the other.
//! Retention that deletes some of a group's blocks leaves the group as it is (no block row
//! leads to the deleted slots any more), and deletes it with its last block.
//!
//! Why not per-value indexes: each one is a B-tree insert per event in a key order that
//! differs from insertion order, and an FTS5 trigram index is dozens of postings per event.
//! Filling a block costs a few hundred bit sets per event in memory and one row per thousand
//! events on disk, and a group a transposition per 65,536 events, which keeps the single
//! writer thread fast.
//!
//! The hashes and the filter layout are part of the file format ([`FORMAT`]): they are our
//! own, fixed functions, never a hasher whose output may change between builds.

use kaudit_store::{EventFields, EventFilter, UserMatch};

use crate::rollups::Tallies;

/// Events per block. Tests use small blocks so that the contract suite's few hundred events
/// span many blocks, the open one and the rows above the mark.
#[cfg(not(test))]
pub(crate) const BLOCK_ROWS: u32 = 1024;
#[cfg(test)]
pub(crate) const BLOCK_ROWS: u32 = 37;
/// Layout version of the filters written now, stored per block and per group. Format 1: the
/// gram filter holds trigrams only; format 2 adds 4-grams. Every token of format 1 is in
/// format 2 at the same bits, so a search asks blocks of either format for their format's
/// tokens, and a group mixing formats for those of the oldest.
pub(crate) const FORMAT: i64 = 2;

/// Blocks per group. A complete group's filters are stored transposed (see [`GroupSlices`]).
/// Tests use small groups so that the contract suite spans complete groups, blocks not yet in
/// a group, the open block and the rows above the mark.
#[cfg(not(test))]
pub(crate) const GROUP_BLOCKS: usize = 64;
#[cfg(test)]
pub(crate) const GROUP_BLOCKS: usize = 4;
/// Filter bit positions per stored slice: a slice row holds one 64-bit word per position
/// (512 bytes), small enough to stay inside its B-tree page.
const SLICE_POSITIONS: usize = 64;
/// Slices per group: those of the value filter, then those of the gram filter.
#[cfg(test)]
pub(crate) const SLICES: i64 = (((1 << VALUE_BITS_LOG2) + (1 << GRAM_BITS_LOG2)) / SLICE_POSITIONS) as i64;

/// Value filter: 2^16 bits (8 KiB), 4 probes per token.
const VALUE_BITS_LOG2: u32 = 16;
const VALUE_PROBES: u32 = 4;
/// Gram filter: 2^16 bits (8 KiB), 2 probes per trigram (a text query ANDs several).
const GRAM_BITS_LOG2: u32 = 16;
const GRAM_PROBES: u32 = 2;
/// One probe per 4-gram (format 2): a 4-gram only has to refuse the blocks that hold all of a
/// text's trigrams, and a text has several; a second probe would cost the writer a bit set
/// per byte of text for little.
const LONG_GRAM_PROBES: u32 = 1;

/// Token salts: one per kind of value, so that `user=x` and `namespace=x` differ.
mod salt {
    pub const CLUSTER: u64 = 1;
    pub const USER: u64 = 2;
    pub const USER_PREFIX: u64 = 3;
    pub const GROUP: u64 = 4;
    pub const VERB: u64 = 5;
    pub const RESOURCE: u64 = 6;
    pub const SUBRESOURCE: u64 = 7;
    pub const NAMESPACE: u64 = 8;
    pub const NAME: u64 = 9;
    pub const SOURCE_IP: u64 = 10;
    pub const CODE: u64 = 11;
    pub const DECISION: u64 = 12;
    pub const PAIR: u64 = 13;
    pub const TEXT_GRAM: u64 = 20;
    pub const AGENT_GRAM: u64 = 21;
}

/// The finaliser of MurmurHash3 (a bijection on 64 bits with good avalanche).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The token of an exact value of one kind.
fn value_token(salt: u64, bytes: &[u8]) -> u64 {
    let mut h = mix(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(0x87c3_7b91_1142_53d5)
            .rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(0x87c3_7b91_1142_53d5)
            .rotate_left(31);
    }
    mix(h)
}

/// The token of two value tokens together (order matters: callers use a fixed order).
fn pair_token(a: u64, b: u64) -> u64 {
    mix(a ^ b.rotate_left(23) ^ salt::PAIR.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The token of one ASCII-lowercased byte trigram or 4-gram of a text.
#[derive(Clone, Copy)]
enum Gram {
    Three(u64),
    Four(u64),
}

impl Gram {
    /// Its probes in the gram filter.
    fn probes(self) -> u32 {
        match self {
            Gram::Three(_) => GRAM_PROBES,
            Gram::Four(_) => LONG_GRAM_PROBES,
        }
    }

    fn token(self) -> u64 {
        match self {
            Gram::Three(token) | Gram::Four(token) => token,
        }
    }
}

/// Calls `each` with the token of every ASCII-lowercased byte trigram and 4-gram of `text`,
/// in one pass. A trigram's token is the mix of its bytes under `salt` (format 1). A 4-gram's
/// is the token of its first three bytes extended by its last with one multiply: that token
/// is mixed already, and a second full mix per byte of text would cost the writer more.
fn for_each_gram(text: &[u8], salt: u64, mut each: impl FnMut(Gram)) {
    let mut window: u32 = 0;
    let mut previous: u64 = 0;
    for (i, &byte) in text.iter().enumerate() {
        let byte = byte.to_ascii_lowercase();
        window = (window << 8) | u32::from(byte);
        if i >= 3 {
            let extended = previous ^ (u64::from(byte) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            // The rotation brings the product's well-mixed high half to the probes' low half.
            each(Gram::Four(
                extended.wrapping_mul(0xd6e8_feb8_6659_fd93).rotate_left(32),
            ));
        }
        if i >= 2 {
            previous = mix((salt << 24) | u64::from(window & 0x00ff_ffff));
            each(Gram::Three(previous));
        }
    }
}

/// Bit positions of a token: double hashing over the two halves of the token.
fn probes(token: u64, bits_log2: u32, count: u32) -> impl Iterator<Item = usize> {
    let mask = (1u64 << bits_log2) - 1;
    let h1 = token & 0xffff_ffff;
    let h2 = (token >> 32) | 1;
    (0..u64::from(count)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize)
}

/// A Bloom filter's bits, as stored (little-endian bit order within bytes).
struct Bits {
    bytes: Vec<u8>,
}

impl Bits {
    fn new(bits_log2: u32) -> Bits {
        Bits {
            bytes: vec![0; 1 << (bits_log2 - 3)],
        }
    }

    fn set(&mut self, bit: u16) {
        let bit = usize::from(bit);
        self.bytes[bit >> 3] |= 1 << (bit & 7);
    }
}

/// True when the stored filter `bytes` (made with `bits_log2` and `count` probes) may hold
/// `token`. A filter of another size (a damaged row) admits everything.
fn may_hold(bytes: &[u8], bits_log2: u32, count: u32, token: u64) -> bool {
    if bytes.len() != 1 << (bits_log2 - 3) {
        return true;
    }
    probes(token, bits_log2, count).all(|bit| bytes[bit >> 3] & (1 << (bit & 7)) != 0)
}

/// The low-cardinality values whose pairs get tokens, in a fixed order.
struct PairValues {
    tokens: [Option<u64>; 5],
}

impl PairValues {
    fn new(
        verb: Option<&str>,
        resource: Option<&str>,
        namespace: Option<&str>,
        code: Option<i32>,
        decision: Option<&str>,
    ) -> PairValues {
        let mut digits = [0u8; 11];
        let code_text = code.map(|c| decimal(c, &mut digits));
        PairValues {
            tokens: [
                verb.map(|v| value_token(salt::VERB, v.as_bytes())),
                resource.map(|v| value_token(salt::RESOURCE, v.as_bytes())),
                namespace.map(|v| value_token(salt::NAMESPACE, v.as_bytes())),
                code_text.map(|v| value_token(salt::CODE, v)),
                decision.map(|v| value_token(salt::DECISION, v.as_bytes())),
            ],
        }
    }

    /// Every single token, then the token of every pair of present values.
    fn each(&self, mut each: impl FnMut(u64)) {
        for (i, a) in self.tokens.iter().enumerate() {
            let Some(a) = *a else { continue };
            each(a);
            for b in self.tokens[i + 1..].iter().flatten() {
                each(pair_token(a, *b));
            }
        }
    }
}

/// The decimal text of `n` (as `n.to_string()`), written into `buffer`: the writer takes it for
/// every event, without an allocation.
fn decimal(n: i32, buffer: &mut [u8; 11]) -> &[u8] {
    let mut at = buffer.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buffer[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buffer[at] = b'-';
    }
    &buffer[at..]
}

/// An event's bits in a block's filters (all but its user agent's grams), computed where the
/// event is prepared so that the writer thread only sets them.
#[derive(Debug, Default)]
pub(crate) struct EventBits {
    value: Vec<u16>,
    gram: Vec<u16>,
}

impl EventBits {
    /// The bits of an event's exact values, value pairs and texts (requestURI, object name).
    pub(crate) fn of(f: &EventFields) -> EventBits {
        let mut bits = EventBits {
            value: Vec::with_capacity(96),
            gram: Vec::with_capacity(3 * f.request_uri.len()),
        };
        let value = &mut bits.value;
        let mut token = |t: u64| value.extend(probes(t, VALUE_BITS_LOG2, VALUE_PROBES).map(bit16));
        token(value_token(salt::CLUSTER, f.cluster.as_bytes()));
        token(value_token(salt::USER, f.username.as_bytes()));
        for (at, _) in f.username.match_indices(':') {
            token(value_token(salt::USER_PREFIX, &f.username.as_bytes()[..=at]));
        }
        for group in &f.groups {
            token(value_token(salt::GROUP, group.as_bytes()));
        }
        let optional = [
            (salt::SUBRESOURCE, f.subresource.as_deref()),
            (salt::NAME, f.name.as_deref()),
            (salt::SOURCE_IP, f.source_ip.as_deref()),
        ];
        for (kind, value) in optional {
            if let Some(value) = value {
                token(value_token(kind, value.as_bytes()));
            }
        }
        PairValues::new(
            Some(&f.verb),
            f.resource.as_deref(),
            f.namespace.as_deref(),
            f.response_code,
            f.decision.as_deref(),
        )
        .each(&mut token);
        gram_bits(f.request_uri.as_bytes(), salt::TEXT_GRAM, &mut bits.gram);
        // The object name is nearly always the end of the request URI: its grams are there.
        if let Some(name) = f.name.as_deref().filter(|n| !f.request_uri.contains(n)) {
            gram_bits(name.as_bytes(), salt::TEXT_GRAM, &mut bits.gram);
        }
        bits
    }
}

/// A user agent with its grams' bits. A block takes them from the first of its events with
/// that agent (few distinct agents per block); the text is kept whole, not hashed, since a
/// collision would leave an agent's grams out.
#[derive(Debug)]
pub(crate) struct AgentBits {
    text: Box<str>,
    gram: Vec<u16>,
}

impl AgentBits {
    pub(crate) fn of(agent: &str) -> AgentBits {
        let mut gram = Vec::with_capacity(3 * agent.len());
        gram_bits(agent.as_bytes(), salt::AGENT_GRAM, &mut gram);
        AgentBits {
            text: agent.into(),
            gram,
        }
    }
}

/// Appends the gram filter bits of every trigram and 4-gram of `text` under `salt`.
fn gram_bits(text: &[u8], salt: u64, out: &mut Vec<u16>) {
    for_each_gram(text, salt, |g| {
        out.extend(probes(g.token(), GRAM_BITS_LOG2, g.probes()).map(bit16));
    });
}

/// A filter bit position as stored in [`EventBits`]: both filters have 2^16 bits.
fn bit16(bit: usize) -> u16 {
    const _: () = assert!(VALUE_BITS_LOG2 <= 16 && GRAM_BITS_LOG2 <= 16);
    bit as u16
}

/// A block being filled by the writer.
pub(crate) struct BlockBuilder {
    /// First id the block covers.
    pub(crate) first_id: i64,
    /// Last id added so far.
    pub(crate) last_id: i64,
    /// Events added.
    pub(crate) rows: u32,
    /// Oldest and newest event time added.
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    values: Bits,
    grams: Bits,
    /// The user agents whose grams are already in `grams` (few distinct per block). Kept
    /// whole, not hashed: a collision would leave an agent's grams out.
    agents: Vec<Box<str>>,
    /// The added events' counts along every rollup dimension.
    tallies: Tallies,
}

/// A full block, ready to be written (in the current [`FORMAT`]).
pub(crate) struct SealedBlock {
    pub(crate) first_id: i64,
    pub(crate) last_id: i64,
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    pub(crate) value_bloom: Vec<u8>,
    pub(crate) gram_bloom: Vec<u8>,
    /// Events added, and their counts (written only if the stored rows are those events).
    pub(crate) added: u32,
    pub(crate) tallies: Tallies,
}

impl BlockBuilder {
    /// An empty block whose first id is `first_id`.
    pub(crate) fn new(first_id: i64) -> BlockBuilder {
        BlockBuilder {
            first_id,
            last_id: first_id - 1,
            rows: 0,
            min_time: i64::MAX,
            max_time: i64::MIN,
            values: Bits::new(VALUE_BITS_LOG2),
            grams: Bits::new(GRAM_BITS_LOG2),
            agents: Vec::new(),
            tallies: Tallies::default(),
        }
    }

    /// True when the block holds [`BLOCK_ROWS`] events.
    pub(crate) fn is_full(&self) -> bool {
        self.rows >= BLOCK_ROWS
    }

    /// Adds the tokens of event `id` (ids only grow; gaps are allowed).
    pub(crate) fn add(&mut self, id: i64, f: &EventFields) {
        let agent = f.user_agent.as_deref().map(AgentBits::of);
        self.add_summarised(id, f, &EventBits::of(f), agent.as_ref());
    }

    /// Adds event `id` with its filter bits computed beforehand ([`EventBits::of`] of the
    /// same fields), and those of its user agent if it has one.
    pub(crate) fn add_summarised(
        &mut self,
        id: i64,
        f: &EventFields,
        bits: &EventBits,
        agent: Option<&AgentBits>,
    ) {
        self.last_id = self.last_id.max(id);
        self.rows += 1;
        self.min_time = self.min_time.min(f.time_ns);
        self.max_time = self.max_time.max(f.time_ns);
        self.tallies.add(f);
        for &bit in &bits.value {
            self.values.set(bit);
        }
        for &bit in &bits.gram {
            self.grams.set(bit);
        }
        if let Some(agent) = agent
            && !self.agents.iter().any(|seen| **seen == *agent.text)
        {
            self.agents.push(agent.text.clone());
            for &bit in &agent.gram {
                self.grams.set(bit);
            }
        }
    }

    /// The block as written; the builder is left empty, starting after it.
    pub(crate) fn seal(&mut self) -> SealedBlock {
        let next = BlockBuilder::new(self.last_id + 1);
        let done = std::mem::replace(self, next);
        SealedBlock {
            first_id: done.first_id,
            last_id: done.last_id,
            min_time: done.min_time,
            max_time: done.max_time,
            value_bloom: done.values.bytes,
            gram_bloom: done.grams.bytes,
            added: done.rows,
            tallies: done.tallies,
        }
    }
}

/// The tokens that a block must hold to contain an event matching a filter.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Required {
    values: Vec<u64>,
    /// Trigram tokens, in the gram filter of every format.
    grams: Vec<u64>,
    /// 4-gram tokens, in the gram filter from format 2 on. A text's 4-grams cut the blocks
    /// that hold all its trigrams apart but not the text (random hexadecimal names share most
    /// trigrams with every block; their 4-grams, rarely).
    long_grams: Vec<u64>,
}

/// True for a filter layout this build reads; blocks and groups of another admit everything.
pub(crate) fn known_format(format: i64) -> bool {
    (1..=FORMAT).contains(&format)
}

impl Required {
    /// What `filter` requires; empty when no block can be skipped for it.
    pub(crate) fn of(filter: &EventFilter) -> Required {
        let mut required = Required::default();
        let values = &mut required.values;
        if let Some(cluster) = &filter.cluster {
            values.push(value_token(salt::CLUSTER, cluster.as_bytes()));
        }
        match &filter.user {
            Some(UserMatch::Exact(user)) => values.push(value_token(salt::USER, user.as_bytes())),
            Some(UserMatch::Prefix(prefix)) => {
                // The longest prefix ending at a ':' that the wanted prefix starts with.
                if let Some(at) = prefix.rfind(':') {
                    values.push(value_token(salt::USER_PREFIX, &prefix.as_bytes()[..=at]));
                }
            }
            None => {}
        }
        if let Some(group) = &filter.group {
            values.push(value_token(salt::GROUP, group.as_bytes()));
        }
        for (kind, value) in [
            (salt::SUBRESOURCE, &filter.subresource),
            (salt::NAME, &filter.name),
            (salt::SOURCE_IP, &filter.source_ip),
        ] {
            if let Some(value) = value {
                values.push(value_token(kind, value.as_bytes()));
            }
        }
        PairValues::new(
            filter.verb.as_deref(),
            filter.resource.as_deref(),
            filter.namespace.as_deref(),
            filter.response_code,
            filter.decision.as_deref(),
        )
        .each(|t| values.push(t));
        for (salt, text) in [
            (salt::TEXT_GRAM, &filter.text),
            (salt::AGENT_GRAM, &filter.user_agent_contains),
        ] {
            let Some(text) = text else { continue };
            for_each_gram(text.as_bytes(), salt, |gram| match gram {
                Gram::Three(token) => required.grams.push(token),
                Gram::Four(token) => required.long_grams.push(token),
            });
        }
        for tokens in [
            &mut required.values,
            &mut required.grams,
            &mut required.long_grams,
        ] {
            tokens.sort_unstable();
            tokens.dedup();
        }
        required
    }

    /// True when no token is required (every block may match). A text with 4-grams has
    /// trigrams too.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.grams.is_empty()
    }

    /// The gram tokens a block of filter layout `format` must hold, with their probes.
    fn grams_of(&self, format: i64) -> impl Iterator<Item = (u64, u32)> + '_ {
        let long: &[u64] = if format >= 2 { &self.long_grams } else { &[] };
        let three = self.grams.iter().map(|&t| (t, GRAM_PROBES));
        three.chain(long.iter().map(|&t| (t, LONG_GRAM_PROBES)))
    }

    /// Whether the value filter is needed.
    pub(crate) fn needs_values(&self) -> bool {
        !self.values.is_empty()
    }

    /// Whether the gram filter is needed.
    pub(crate) fn needs_grams(&self) -> bool {
        !self.grams.is_empty()
    }

    /// True when a block with these stored filters, of layout `format`, may hold a matching
    /// event. A missing filter (`None`) or an unknown layout admits.
    pub(crate) fn admits(&self, format: i64, value_bloom: Option<&[u8]>, gram_bloom: Option<&[u8]>) -> bool {
        if !known_format(format) {
            return true;
        }
        let values_ok = value_bloom.is_none_or(|bloom| {
            self.values
                .iter()
                .all(|&t| may_hold(bloom, VALUE_BITS_LOG2, VALUE_PROBES, t))
        });
        values_ok
            && gram_bloom.is_none_or(|bloom| {
                self.grams_of(format)
                    .all(|(t, count)| may_hold(bloom, GRAM_BITS_LOG2, count, t))
            })
    }
}

/// One of a block's two filters, with its stored shape.
#[derive(Clone, Copy, Debug)]
enum Filter {
    Value,
    Gram,
}

impl Filter {
    const BOTH: [Filter; 2] = [Filter::Value, Filter::Gram];

    fn bits_log2(self) -> u32 {
        match self {
            Filter::Value => VALUE_BITS_LOG2,
            Filter::Gram => GRAM_BITS_LOG2,
        }
    }

    fn probes(self) -> u32 {
        match self {
            Filter::Value => VALUE_PROBES,
            Filter::Gram => GRAM_PROBES,
        }
    }

    /// The number of the filter's first slice: the value filter's slices come first.
    fn first_slice(self) -> usize {
        match self {
            Filter::Value => 0,
            Filter::Gram => (1 << VALUE_BITS_LOG2) / SLICE_POSITIONS,
        }
    }
}

/// A group's filters being transposed: for each filter bit position one word whose bit `j` is
/// that position's bit in the group's `j`-th block (its slot).
///
/// Stored as slices of [`SLICE_POSITIONS`] consecutive positions, a query reads only the
/// slices holding its probe positions (a few KiB per group, where the blocks' own filters are
/// 1 MiB) and ANDs their words into a mask of the blocks that may match ([`GroupProbes`]).
/// The bits are exactly those of the blocks' filters, so a group admits exactly the blocks
/// their own filters admit.
pub(crate) struct GroupSlices {
    value: Vec<u64>,
    gram: Vec<u64>,
    slots: usize,
}

// Slots are the bits of one 64-bit word.
const _: () = assert!(GROUP_BLOCKS <= 64);

impl GroupSlices {
    /// A group without blocks yet.
    pub(crate) fn new() -> GroupSlices {
        GroupSlices {
            value: vec![0; 1 << VALUE_BITS_LOG2],
            gram: vec![0; 1 << GRAM_BITS_LOG2],
            slots: 0,
        }
    }

    /// Adds the stored filters of the group's next block (at most 64, the bits of a word; the
    /// writer groups [`GROUP_BLOCKS`]). A missing or damaged filter (`None`, or the wrong size)
    /// sets every bit of the slot: it admits everything, as it does in [`Required::admits`].
    pub(crate) fn push(&mut self, value_bloom: Option<&[u8]>, gram_bloom: Option<&[u8]>) {
        if self.slots >= 64 {
            return;
        }
        let bit = 1u64 << self.slots;
        for (filter, bloom) in [(Filter::Value, value_bloom), (Filter::Gram, gram_bloom)] {
            let words = match filter {
                Filter::Value => &mut self.value,
                Filter::Gram => &mut self.gram,
            };
            match bloom.filter(|b| b.len() == 1 << (filter.bits_log2() - 3)) {
                Some(bytes) => {
                    // Bit `p` of a filter is bit `p & 7` of byte `p >> 3`, so bit `p & 63` of
                    // the little-endian word `p >> 6`.
                    for (chunk_index, chunk) in bytes.chunks_exact(8).enumerate() {
                        let mut set = u64::from_le_bytes(word_bytes(chunk));
                        while set != 0 {
                            let position = chunk_index * 64 + set.trailing_zeros() as usize;
                            words[position] |= bit;
                            set &= set - 1;
                        }
                    }
                }
                None => words.iter_mut().for_each(|w| *w |= bit),
            }
        }
        self.slots += 1;
    }

    /// Every slice as stored: its number and its words (little-endian), value filter first.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (i64, Vec<u8>)> + '_ {
        Filter::BOTH.into_iter().flat_map(move |filter| {
            let words = match filter {
                Filter::Value => &self.value,
                Filter::Gram => &self.gram,
            };
            words.chunks(SLICE_POSITIONS).enumerate().map(move |(i, chunk)| {
                let bytes = chunk.iter().flat_map(|w| w.to_le_bytes()).collect();
                ((filter.first_slice() + i) as i64, bytes)
            })
        })
    }
}

fn word_bytes(chunk: &[u8]) -> [u8; 8] {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    word
}

/// The mask of a group's first `slots` slots.
pub(crate) fn all_slots(slots: usize) -> u64 {
    match slots {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

/// The first ids of a group's blocks in slot order, as stored (8 bytes little-endian each).
pub(crate) fn encode_members(first_ids: &[i64]) -> Vec<u8> {
    first_ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// The stored members of a group; `None` when damaged.
pub(crate) fn decode_members(bytes: &[u8]) -> Option<Vec<i64>> {
    if !bytes.len().is_multiple_of(8) || bytes.len() / 8 > 64 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|chunk| i64::from_le_bytes(word_bytes(chunk)))
            .collect(),
    )
}

/// What a query reads of a group: the slices holding the probe positions of its required
/// tokens, each with the offsets of those positions in it.
#[derive(Debug, Default)]
pub(crate) struct GroupProbes {
    /// By ascending slice number.
    slices: Vec<(i64, Vec<usize>)>,
}

impl GroupProbes {
    /// The slice numbers to read, ascending.
    pub(crate) fn slice_numbers(&self) -> impl Iterator<Item = i64> + '_ {
        self.slices.iter().map(|(slice, _)| *slice)
    }

    /// Narrows `mask` (bit `j`: the block in slot `j` may match) by one stored slice. A slice
    /// of another size (a damaged row) narrows nothing; so does a slice that is not read.
    pub(crate) fn narrow(&self, slice: i64, words: &[u8], mask: &mut u64) {
        if words.len() != SLICE_POSITIONS * 8 {
            return;
        }
        if let Ok(i) = self.slices.binary_search_by_key(&slice, |(s, _)| *s) {
            for &offset in &self.slices[i].1 {
                *mask &= u64::from_le_bytes(word_bytes(&words[offset * 8..offset * 8 + 8]));
            }
        }
    }
}

impl Required {
    /// The slices and positions a group of filter layout `format` (a known one) must be read
    /// at for this filter.
    pub(crate) fn group_probes(&self, format: i64) -> GroupProbes {
        let mut positions: Vec<usize> = Vec::new();
        let value = Filter::Value;
        for &token in &self.values {
            positions.extend(
                probes(token, value.bits_log2(), value.probes())
                    .map(|p| value.first_slice() * SLICE_POSITIONS + p),
            );
        }
        let gram = Filter::Gram;
        for (token, count) in self.grams_of(format) {
            positions.extend(
                probes(token, gram.bits_log2(), count).map(|p| gram.first_slice() * SLICE_POSITIONS + p),
            );
        }
        positions.sort_unstable();
        positions.dedup();
        let mut slices: Vec<(i64, Vec<usize>)> = Vec::new();
        for position in positions {
            let slice = (position / SLICE_POSITIONS) as i64;
            let offset = position % SLICE_POSITIONS;
            match slices.last_mut() {
                Some((last, offsets)) if *last == slice => offsets.push(offset),
                _ => slices.push((slice, vec![offset])),
            }
        }
        GroupProbes { slices }
    }
}

#[cfg(test)]
mod tests {
    use kaudit_model::{Level, Stage};
    use kaudit_store::{EventFields, EventFilter, UserMatch};

    use super::{BlockBuilder, FORMAT, GroupSlices, Required, all_slots};

    fn fields(user: &str, verb: &str, namespace: &str, uri: &str, name: &str) -> EventFields {
        EventFields {
            cluster: "prod".into(),
            intake_id: None,
            audit_id: "a".into(),
            stage: Stage::ResponseComplete,
            digest: [0; 32],
            time_ns: 10,
            received_ns: 10,
            verb: verb.into(),
            username: user.into(),
            groups: vec!["system:authenticated".into()],
            impersonated_user: None,
            resource: Some("secrets".into()),
            subresource: None,
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            api_group: None,
            source_ip: Some("10.0.0.1".into()),
            user_agent: Some("kubectl/v1.30.0 (linux/amd64)".into()),
            response_code: Some(200),
            decision: Some("allow".into()),
            request_uri: uri.into(),
            level: Level::Metadata,
        }
    }

    fn admitted(block: &mut BlockBuilder, filter: &EventFilter) -> bool {
        let sealed = block.seal();
        Required::of(filter).admits(FORMAT, Some(&sealed.value_bloom), Some(&sealed.gram_bloom))
    }

    fn block() -> BlockBuilder {
        let mut block = BlockBuilder::new(1);
        block.add(
            1,
            &fields(
                "system:serviceaccount:team-1:deployer",
                "get",
                "team-1",
                "/api/v1/namespaces/team-1/secrets/DB-Credentials",
                "DB-Credentials",
            ),
        );
        block.add(
            2,
            &fields(
                "alice",
                "delete",
                "team-2",
                "/api/v1/namespaces/team-2/secrets/x",
                "x",
            ),
        );
        block
    }

    #[test]
    fn a_block_admits_every_filter_its_events_match() {
        let matching = [
            EventFilter {
                user: Some(UserMatch::Exact("alice".into())),
                verb: Some("delete".into()),
                namespace: Some("team-2".into()),
                ..Default::default()
            },
            EventFilter {
                user: Some(UserMatch::Prefix("system:serviceaccount:team-1:dep".into())),
                ..Default::default()
            },
            EventFilter {
                text: Some("db-cred".into()),
                user_agent_contains: Some("KUBECTL".into()),
                ..Default::default()
            },
            EventFilter {
                group: Some("system:authenticated".into()),
                response_code: Some(200),
                decision: Some("allow".into()),
                source_ip: Some("10.0.0.1".into()),
                cluster: Some("prod".into()),
                name: Some("x".into()),
                ..Default::default()
            },
        ];
        for filter in matching {
            assert!(admitted(&mut block(), &filter), "{filter:?}");
        }
    }

    #[test]
    fn a_block_refuses_values_and_pairs_it_never_saw() {
        let refused = [
            EventFilter {
                user: Some(UserMatch::Exact("bob".into())),
                ..Default::default()
            },
            // Each value is present, but never together.
            EventFilter {
                verb: Some("delete".into()),
                namespace: Some("team-1".into()),
                ..Default::default()
            },
            EventFilter {
                text: Some("tmp-admin".into()),
                ..Default::default()
            },
            EventFilter {
                user: Some(UserMatch::Prefix("system:node:".into())),
                ..Default::default()
            },
        ];
        for filter in refused {
            assert!(!admitted(&mut block(), &filter), "{filter:?}");
        }
    }

    #[test]
    fn short_text_requires_nothing() {
        let filter = EventFilter {
            text: Some("db".into()),
            ..Default::default()
        };
        assert!(Required::of(&filter).is_empty());
    }

    /// A small xorshift generator: random but repeatable cases without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A word of `len` letters and digits from a small alphabet, so that blocks share
        /// many trigrams without sharing the word.
        fn word(&mut self, len: usize) -> String {
            (0..len)
                .map(|_| char::from(b"abcdef0123"[self.below(10) as usize]))
                .collect()
        }
    }

    /// The mask of a group from its stored slices (`rows`, by ascending slice number), read
    /// as a search reads them: only the slices it probes.
    fn group_mask(rows: &[(i64, Vec<u8>)], required: &Required, format: i64, slots: usize) -> u64 {
        let probes = required.group_probes(format);
        let mut mask = all_slots(slots);
        for slice in probes.slice_numbers() {
            if let Ok(i) = rows.binary_search_by_key(&slice, |(s, _)| *s) {
                probes.narrow(slice, &rows[i].1, &mut mask);
            }
        }
        mask
    }

    /// A block's stored value and gram filters (`None`: missing).
    type StoredFilters = (Option<Vec<u8>>, Option<Vec<u8>>);

    /// The mask of the blocks whose own filters admit `required`.
    fn block_mask(blocks: &[StoredFilters], required: &Required, format: i64) -> u64 {
        blocks
            .iter()
            .enumerate()
            .filter(|(_, (value, gram))| required.admits(format, value.as_deref(), gram.as_deref()))
            .fold(0, |mask, (slot, _)| mask | 1 << slot)
    }

    #[test]
    fn group_slices_admit_exactly_the_blocks_their_own_filters_admit() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let (mut admitted, mut refused) = (0u64, 0u64);
        for round in 0..6 {
            // 64 blocks of random events; one slot without filters and one with a damaged
            // filter, which admit everything either way.
            let slots = 64 - round % 3;
            let mut blocks: Vec<StoredFilters> = Vec::new();
            let mut seen: Vec<EventFields> = Vec::new();
            for slot in 0..slots {
                let mut block = BlockBuilder::new(1);
                for i in 0..(1 + rng.below(40)) {
                    let user = format!("user-{}", rng.below(50));
                    let verb = ["get", "list", "delete", "patch"][rng.below(4) as usize];
                    let namespace = format!("ns-{}", rng.below(12));
                    let len = 5 + rng.below(6) as usize;
                    let name = rng.word(len);
                    let uri = format!("/api/v1/namespaces/{namespace}/pods/{name}");
                    // Some names are not in their URI, as for requests on collections.
                    let name = if i % 5 == 0 { rng.word(8) } else { name };
                    let event = fields(&user, verb, &namespace, &uri, &name);
                    block.add(i as i64 + 1, &event);
                    seen.push(event);
                }
                let sealed = block.seal();
                blocks.push(match slot {
                    7 => (None, None),
                    9 => (Some(vec![0xff; 3]), Some(sealed.gram_bloom)),
                    _ => (Some(sealed.value_bloom), Some(sealed.gram_bloom)),
                });
            }
            let mut slices = GroupSlices::new();
            for (value, gram) in &blocks {
                slices.push(value.as_deref(), gram.as_deref());
            }
            let rows: Vec<(i64, Vec<u8>)> = slices.rows().collect();
            for case in 0..100 {
                let known = &seen[rng.below(seen.len() as u64) as usize];
                let mut filter = EventFilter::default();
                match case % 5 {
                    0 => filter.user = Some(UserMatch::Exact(format!("user-{}", rng.below(60)))),
                    1 => {
                        filter.verb = Some(known.verb.clone());
                        filter.namespace = Some(format!("ns-{}", rng.below(14)));
                    }
                    2 => {
                        // A piece of a stored name, or a random word.
                        let name = known.name.clone().unwrap_or_default();
                        let start = rng.below(3) as usize;
                        let end = (start + 3 + rng.below(5) as usize).min(name.len());
                        filter.text = Some(name.get(start..end).unwrap_or("").to_uppercase());
                    }
                    3 => {
                        let len = 4 + rng.below(4) as usize;
                        filter.text = Some(rng.word(len));
                    }
                    _ => {
                        filter.name = known.name.clone();
                        filter.text = Some(rng.word(3));
                    }
                }
                let required = Required::of(&filter);
                for format in 1..=FORMAT {
                    let per_block = block_mask(&blocks, &required, format);
                    let grouped = group_mask(&rows, &required, format, slots);
                    assert_eq!(grouped, per_block, "round {round}, {filter:?}, format {format}");
                    assert_eq!(grouped >> 7 & 1, 1, "a block without filters is admitted");
                    admitted += u64::from(grouped.count_ones());
                    refused += u64::from((!grouped & all_slots(slots)).count_ones());
                }
            }
            // Random tokens, nearly all refused by every block.
            for _ in 0..50 {
                let required = Required {
                    values: (0..rng.below(3)).map(|_| rng.next()).collect(),
                    grams: vec![rng.next()],
                    long_grams: (0..rng.below(2)).map(|_| rng.next()).collect(),
                };
                for format in 1..=FORMAT {
                    let per_block = block_mask(&blocks, &required, format);
                    assert_eq!(group_mask(&rows, &required, format, slots), per_block);
                }
            }
        }
        // The cases are not one-sided: blocks were both admitted and refused, many times.
        assert!(
            admitted > 10_000 && refused > 10_000,
            "{admitted} admitted, {refused} refused"
        );
    }

    #[test]
    fn codes_are_written_as_to_string_writes_them() {
        let mut buffer = [0u8; 11];
        for n in [0, 7, 200, 403, -1, -20, i32::MAX, i32::MIN] {
            assert_eq!(super::decimal(n, &mut buffer), n.to_string().as_bytes());
        }
    }

    #[test]
    fn texts_across_path_segments_are_admitted_and_absent_ones_refused() {
        let mut block = BlockBuilder::new(1);
        for (i, name) in ["abc", "xyz"].into_iter().enumerate() {
            let uri = format!("/api/v1/namespaces/default/secrets/{name}");
            block.add(i as i64 + 1, &fields("alice", "get", "default", &uri, "other"));
        }
        let sealed = block.seal();
        let admits = |text: &str| {
            Required::of(&EventFilter {
                text: Some(text.into()),
                ..Default::default()
            })
            .admits(FORMAT, Some(&sealed.value_bloom), Some(&sealed.gram_bloom))
        };
        for text in [
            "ts/xyz",
            "s/xy",
            "/xyz",
            "SECRETS/XYZ",
            "namespaces/default/secrets/x",
        ] {
            assert!(admits(text), "{text}");
        }
        for text in ["ts/xyq", "s/xya"] {
            assert!(!admits(text), "{text}");
        }
    }

    #[test]
    fn four_grams_refuse_blocks_that_hold_only_the_trigrams_of_a_text() {
        // "3a4f1" is absent, but each of its trigrams is present in some name.
        let mut block = BlockBuilder::new(1);
        for (i, name) in ["x3a4x", "ya4fy", "z4f1z"].into_iter().enumerate() {
            let uri = format!("/api/v1/namespaces/default/secrets/{name}");
            block.add(i as i64 + 1, &fields("alice", "get", "default", &uri, name));
        }
        let sealed = block.seal();
        let required = Required::of(&EventFilter {
            text: Some("3a4f1".into()),
            ..Default::default()
        });
        let admits = |format| required.admits(format, Some(&sealed.value_bloom), Some(&sealed.gram_bloom));
        assert!(admits(1), "trigrams alone admit the block");
        assert!(!admits(2), "its 4-grams refuse it");
        assert!(admits(FORMAT + 1), "an unknown format admits");
    }
}
