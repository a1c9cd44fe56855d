//! [`AppState`]: what every handler shares (the store, the active detection set, the
//! outputs, limits, credential caches and intake rates).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kaudit_store::{ApiToken, Intake, IntakeId, KeyHash, Store};
use tokio::sync::Semaphore;

use crate::body::BodyLimits;
use crate::config::RuleMatching;
use crate::detect::Detector;
use crate::outputs::Outputs;

/// How long a looked-up intake key or API token is trusted without asking the store again.
/// Revocations through the API take effect at once (the caches are cleared); a revocation
/// made offline on the data directory takes effect within this delay.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(10);

/// Shared state of the server; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    detector: RwLock<Arc<Detector>>,
    outputs: Outputs,
    limits: BodyLimits,
    rule_matching: RuleMatching,
    intake_cache: Mutex<HashMap<KeyHash, (Intake, Instant)>>,
    token_cache: Mutex<HashMap<KeyHash, (ApiToken, Instant)>>,
    rates: Mutex<HashMap<IntakeId, MinuteCounts>>,
    cpu_slots: Arc<Semaphore>,
    batch_slots: Semaphore,
    config_lock: tokio::sync::Mutex<()>,
}

/// What [`AppState::new`] needs.
pub struct StateParts {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The detection set to start with.
    pub detector: Detector,
    /// Alert outputs.
    pub outputs: Outputs,
    /// Intake body limits.
    pub limits: BodyLimits,
    /// Rule matching mode, for rebuilding the detection set.
    pub rule_matching: RuleMatching,
}

impl AppState {
    /// Assembles the state.
    pub fn new(parts: StateParts) -> AppState {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            inner: Arc::new(Inner {
                store: parts.store,
                detector: RwLock::new(Arc::new(parts.detector)),
                outputs: parts.outputs,
                limits: parts.limits,
                rule_matching: parts.rule_matching,
                intake_cache: Mutex::new(HashMap::new()),
                token_cache: Mutex::new(HashMap::new()),
                rates: Mutex::new(HashMap::new()),
                // Parsing and detection are CPU-bound: more of them at once than twice the
                // cores only adds memory, so later batches wait here (the apiserver's 30 s
                // timeout leaves ample room). A batch gives its CPU slot back once parsed, so
                // that the cores parse the next batches while the store commits it; the batch
                // slots bound how many parsed batches wait for the store.
                cpu_slots: Arc::new(Semaphore::new(cpus * 2)),
                batch_slots: Semaphore::new(cpus * 4),
                config_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner.store)
    }

    /// The active detection set.
    pub fn detector(&self) -> Arc<Detector> {
        let guard = self
            .inner
            .detector
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    /// Replaces the active detection set; batches already being evaluated finish with the old.
    pub fn swap_detector(&self, detector: Detector) {
        let mut guard = self
            .inner
            .detector
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Arc::new(detector);
    }

    /// Serialises changes of rules and policies (load, check, store, swap).
    pub async fn lock_config(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.config_lock.lock().await
    }

    /// The rule matching mode.
    pub fn rule_matching(&self) -> RuleMatching {
        self.inner.rule_matching
    }

    /// The alert outputs.
    pub fn outputs(&self) -> &Outputs {
        &self.inner.outputs
    }

    /// The body limits.
    pub fn limits(&self) -> BodyLimits {
        self.inner.limits
    }

    /// A slot for one batch from parsing to its commit, waited for when all are taken.
    pub async fn batch_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.inner.batch_slots.acquire().await.ok()
    }

    /// A slot for CPU-bound work, waited for when all are taken; dropped when that work is done.
    pub async fn cpu_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.inner.cpu_slots).acquire_owned().await.ok()
    }

    /// A cached intake for a key hash, if fresh.
    pub fn cached_intake(&self, hash: &KeyHash) -> Option<Intake> {
        let cache = self.inner.intake_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL)
            .map(|(i, _)| i.clone())
    }

    /// Remembers a looked-up intake.
    pub fn cache_intake(&self, hash: KeyHash, intake: Intake) {
        let mut cache = self.inner.intake_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(hash, (intake, Instant::now()));
    }

    /// A cached API token for a hash, if fresh.
    pub fn cached_token(&self, hash: &KeyHash) -> Option<ApiToken> {
        let cache = self.inner.token_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CREDENTIAL_CACHE_TTL)
            .map(|(t, _)| t.clone())
    }

    /// Remembers a looked-up token.
    pub fn cache_token(&self, hash: KeyHash, token: ApiToken) {
        let mut cache = self.inner.token_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(hash, (token, Instant::now()));
    }

    /// Forgets every cached credential (after a revocation).
    pub fn clear_credential_caches(&self) {
        self.inner
            .intake_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.inner
            .token_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Counts events stored through an intake, for its rate.
    pub fn record_events(&self, intake: IntakeId, n: u64) {
        let minute = now_minute();
        let mut rates = self.inner.rates.lock().unwrap_or_else(|p| p.into_inner());
        rates.entry(intake).or_default().add(minute, n);
    }

    /// Events stored through an intake in the last hour, as seen by this process.
    pub fn events_last_hour(&self, intake: IntakeId) -> u64 {
        let rates = self.inner.rates.lock().unwrap_or_else(|p| p.into_inner());
        rates.get(&intake).map_or(0, |c| c.last_hour(now_minute()))
    }
}

fn now_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

/// Per-minute counts over the last hour, in a ring of 60 slots.
struct MinuteCounts {
    slots: [(u64, u64); 60],
}

impl Default for MinuteCounts {
    fn default() -> MinuteCounts {
        MinuteCounts { slots: [(0, 0); 60] }
    }
}

impl MinuteCounts {
    fn add(&mut self, minute: u64, n: u64) {
        let slot = &mut self.slots[(minute % 60) as usize];
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 += n;
    }

    fn last_hour(&self, now_minute: u64) -> u64 {
        self.slots
            .iter()
            .filter(|(m, _)| now_minute.saturating_sub(*m) < 60)
            .map(|(_, n)| n)
            .sum()
    }
}
