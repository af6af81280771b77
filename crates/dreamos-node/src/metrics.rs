//! Prometheus metrics: tasks by state and priority (read from the store at scrape time),
//! throughput counters, and dispatch and run latency histograms.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
    pub priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub tasks: Family<StateLabels, Gauge>,
    pub submitted: Counter,
    pub finished: Family<OutcomeLabels, Counter>,
    /// From the moment a task became claimable to the moment an agent claimed it.
    pub dispatch_latency: Histogram,
    /// From claim to report.
    pub run_latency: Histogram,
    /// Local agents restarted after a crash.
    pub agent_restarts: Counter,
    /// Local agents currently in a crash loop (five crashes within a minute).
    pub agents_crash_looping: Gauge,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0, 300.0,
    ]
    .into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dreamos");
        let tasks = Family::<StateLabels, Gauge>::default();
        let submitted = Counter::default();
        let finished = Family::<OutcomeLabels, Counter>::default();
        let dispatch_latency = Histogram::new(latency_buckets());
        let run_latency = Histogram::new(latency_buckets());
        registry.register("tasks", "Tasks in the live table by state and priority", tasks.clone());
        registry.register("tasks_submitted", "Tasks accepted", submitted.clone());
        registry.register("tasks_finished", "Attempts reported, by outcome", finished.clone());
        registry.register(
            "dispatch_latency_seconds",
            "Time from a task becoming claimable to its claim",
            dispatch_latency.clone(),
        );
        registry.register("run_latency_seconds", "Time from claim to report", run_latency.clone());
        let agent_restarts = Counter::default();
        let agents_crash_looping = Gauge::default();
        registry.register(
            "local_agent_restarts",
            "Local agents restarted after a crash",
            agent_restarts.clone(),
        );
        registry.register(
            "local_agents_crash_looping",
            "Local agents that crashed five times within a minute",
            agents_crash_looping.clone(),
        );
        Self {
            registry,
            tasks,
            submitted,
            finished,
            dispatch_latency,
            run_latency,
            agent_restarts,
            agents_crash_looping,
        }
    }
}

impl Metrics {
    pub fn record_finished(&self, outcome: &str) {
        self.finished.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
