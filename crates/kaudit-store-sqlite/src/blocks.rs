//! Block summaries: the value and free-text index of the `events` table.
//!
//! Events get increasing ids in insertion order. Every [`BLOCK_ROWS`] consecutive ids form a
//! block, summarised by one row of `blocks` (its id range and time range) and one of
//! `block_blooms`: two Bloom filters over what its events contain.
//!
//! * The value filter holds a token per searchable exact value (`user=alice`, `verb=get`, the
//!   user-name prefixes ending at each `:`, each group, ...) and per pair of the common
//!   low-cardinality values (`namespace=x` with `verb=delete`), so that a conjunction of common
//!   values that rarely meet is still answered by few blocks.
//! * The gram filter holds the byte trigrams of the ASCII-lowercased requestURI, object name
//!   (free text) and user agent (its own salt).
//!
//! A search turns its filter into the tokens every matching event's block must contain
//! ([`Required`]) and reads only the blocks whose filters admit them all; the rows of an
//! admitted block are then checked exactly by SQL. A Bloom filter never denies a token it
//! holds, so no match is ever missed; a false positive only costs a block read.
//!
//! Why not per-value indexes: each one is a B-tree insert per event in a key order that
//! differs from insertion order, and an FTS5 trigram index is dozens of postings per event.
//! Filling a block costs a few hundred bit sets per event in memory and one row per thousand
//! events on disk, which keeps the single writer thread fast.
//!
//! The hashes and the filter layout are part of the file format ([`FORMAT`]): they are our
//! own, fixed functions, never a hasher whose output may change between builds.

use kaudit_store::{EventFields, EventFilter, UserMatch};

/// Events per block. Tests use small blocks so that the contract suite's few hundred events
/// span many blocks, the open one and the rows above the mark.
#[cfg(not(test))]
pub(crate) const BLOCK_ROWS: u32 = 1024;
#[cfg(test)]
pub(crate) const BLOCK_ROWS: u32 = 37;
/// Layout version of the filters, stored per block.
pub(crate) const FORMAT: i64 = 1;

/// Value filter: 2^16 bits (8 KiB), 4 probes per token.
const VALUE_BITS_LOG2: u32 = 16;
const VALUE_PROBES: u32 = 4;
/// Gram filter: 2^16 bits (8 KiB), 2 probes per trigram (a text query ANDs several).
const GRAM_BITS_LOG2: u32 = 16;
const GRAM_PROBES: u32 = 2;

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

/// The token of one byte trigram of one kind.
fn gram_token(salt: u64, gram: [u8; 3]) -> u64 {
    mix((salt << 24) | (u64::from(gram[0]) << 16) | (u64::from(gram[1]) << 8) | u64::from(gram[2]))
}

/// Calls `each` with the token of every ASCII-lowercased byte trigram of `text`.
fn for_each_gram(salt: u64, text: &str, mut each: impl FnMut(u64)) {
    let bytes = text.as_bytes();
    if bytes.len() < 3 {
        return;
    }
    let lower = |b: u8| b.to_ascii_lowercase();
    let (mut a, mut b) = (lower(bytes[0]), lower(bytes[1]));
    for &byte in &bytes[2..] {
        let c = lower(byte);
        each(gram_token(salt, [a, b, c]));
        a = b;
        b = c;
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
    bits_log2: u32,
    probes: u32,
}

impl Bits {
    fn new(bits_log2: u32, probes: u32) -> Bits {
        Bits {
            bytes: vec![0; 1 << (bits_log2 - 3)],
            bits_log2,
            probes,
        }
    }

    fn insert(&mut self, token: u64) {
        for bit in probes(token, self.bits_log2, self.probes) {
            self.bytes[bit >> 3] |= 1 << (bit & 7);
        }
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
        let code_text = code.map(|c| c.to_string());
        PairValues {
            tokens: [
                verb.map(|v| value_token(salt::VERB, v.as_bytes())),
                resource.map(|v| value_token(salt::RESOURCE, v.as_bytes())),
                namespace.map(|v| value_token(salt::NAMESPACE, v.as_bytes())),
                code_text.map(|v| value_token(salt::CODE, v.as_bytes())),
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
    /// Tokens of the user agents whose trigrams are already in `grams` (few distinct per block).
    agents: Vec<u64>,
}

/// A full block, ready to be written.
pub(crate) struct SealedBlock {
    pub(crate) first_id: i64,
    pub(crate) last_id: i64,
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    pub(crate) value_bloom: Vec<u8>,
    pub(crate) gram_bloom: Vec<u8>,
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
            values: Bits::new(VALUE_BITS_LOG2, VALUE_PROBES),
            grams: Bits::new(GRAM_BITS_LOG2, GRAM_PROBES),
            agents: Vec::new(),
        }
    }

    /// True when the block holds [`BLOCK_ROWS`] events.
    pub(crate) fn is_full(&self) -> bool {
        self.rows >= BLOCK_ROWS
    }

    /// Adds the tokens of event `id` (ids only grow; gaps are allowed).
    pub(crate) fn add(&mut self, id: i64, f: &EventFields) {
        self.last_id = self.last_id.max(id);
        self.rows += 1;
        self.min_time = self.min_time.min(f.time_ns);
        self.max_time = self.max_time.max(f.time_ns);
        let values = &mut self.values;
        values.insert(value_token(salt::CLUSTER, f.cluster.as_bytes()));
        values.insert(value_token(salt::USER, f.username.as_bytes()));
        for (at, _) in f.username.match_indices(':') {
            values.insert(value_token(salt::USER_PREFIX, &f.username.as_bytes()[..=at]));
        }
        for group in &f.groups {
            values.insert(value_token(salt::GROUP, group.as_bytes()));
        }
        let optional = [
            (salt::SUBRESOURCE, f.subresource.as_deref()),
            (salt::NAME, f.name.as_deref()),
            (salt::SOURCE_IP, f.source_ip.as_deref()),
        ];
        for (kind, value) in optional {
            if let Some(value) = value {
                values.insert(value_token(kind, value.as_bytes()));
            }
        }
        PairValues::new(
            Some(&f.verb),
            f.resource.as_deref(),
            f.namespace.as_deref(),
            f.response_code,
            f.decision.as_deref(),
        )
        .each(|t| values.insert(t));
        let grams = &mut self.grams;
        for_each_gram(salt::TEXT_GRAM, &f.request_uri, |t| grams.insert(t));
        if let Some(name) = &f.name {
            for_each_gram(salt::TEXT_GRAM, name, |t| grams.insert(t));
        }
        if let Some(agent) = &f.user_agent {
            let token = value_token(salt::AGENT_GRAM, agent.as_bytes());
            if !self.agents.contains(&token) {
                self.agents.push(token);
                for_each_gram(salt::AGENT_GRAM, agent, |t| grams.insert(t));
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
        }
    }
}

/// The tokens that a block must hold to contain an event matching a filter.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Required {
    values: Vec<u64>,
    grams: Vec<u64>,
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
        let grams = &mut required.grams;
        if let Some(text) = &filter.text {
            for_each_gram(salt::TEXT_GRAM, text, |t| grams.push(t));
        }
        if let Some(agent) = &filter.user_agent_contains {
            for_each_gram(salt::AGENT_GRAM, agent, |t| grams.push(t));
        }
        required.values.sort_unstable();
        required.values.dedup();
        required.grams.sort_unstable();
        required.grams.dedup();
        required
    }

    /// True when no token is required (every block may match).
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.grams.is_empty()
    }

    /// Whether the value filter is needed.
    pub(crate) fn needs_values(&self) -> bool {
        !self.values.is_empty()
    }

    /// Whether the gram filter is needed.
    pub(crate) fn needs_grams(&self) -> bool {
        !self.grams.is_empty()
    }

    /// True when a block with these stored filters may hold a matching event. A missing
    /// filter (`None`) admits.
    pub(crate) fn admits(&self, value_bloom: Option<&[u8]>, gram_bloom: Option<&[u8]>) -> bool {
        let values_ok = value_bloom.is_none_or(|bloom| {
            self.values
                .iter()
                .all(|&t| may_hold(bloom, VALUE_BITS_LOG2, VALUE_PROBES, t))
        });
        values_ok
            && gram_bloom.is_none_or(|bloom| {
                self.grams
                    .iter()
                    .all(|&t| may_hold(bloom, GRAM_BITS_LOG2, GRAM_PROBES, t))
            })
    }
}

#[cfg(test)]
mod tests {
    use kaudit_model::{Level, Stage};
    use kaudit_store::{EventFields, EventFilter, UserMatch};

    use super::{BlockBuilder, Required};

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
        Required::of(filter).admits(Some(&sealed.value_bloom), Some(&sealed.gram_bloom))
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
}
