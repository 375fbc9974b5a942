//! `GET /metrics` in the Prometheus text format.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use farm_chat_protocol::task::TaskState;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// SSE streams open now.
    pub open_streams: Gauge,
    /// SSE events written to streams.
    pub events_sent: Counter,
    /// Messages stored by `POST /api/chat/send` (retries not counted).
    pub messages_sent: Counter,
    /// Tasks started.
    pub tasks_started: Counter,
    /// Tasks finished, by final state: succeeded, failed, cancelled.
    pub tasks_finished: [Counter; 3],
}

impl Metrics {
    /// Counts a task that reached `state`.
    pub fn task_finished(&self, state: TaskState) {
        match state {
            TaskState::Running => self.tasks_started.inc(),
            TaskState::Succeeded => self.tasks_finished[0].inc(),
            TaskState::Failed => self.tasks_finished[1].inc(),
            TaskState::Cancelled => self.tasks_finished[2].inc(),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        format!(
            "# HELP farm_chat_open_streams SSE streams open now.\n\
             # TYPE farm_chat_open_streams gauge\n\
             farm_chat_open_streams {}\n\
             # HELP farm_chat_events_sent_total SSE events written to streams.\n\
             # TYPE farm_chat_events_sent_total counter\n\
             farm_chat_events_sent_total {}\n\
             # HELP farm_chat_messages_sent_total Messages stored (idempotent retries not counted).\n\
             # TYPE farm_chat_messages_sent_total counter\n\
             farm_chat_messages_sent_total {}\n\
             # HELP farm_chat_tasks_total Assistant tasks started (state=\"running\") and ended, by state.\n\
             # TYPE farm_chat_tasks_total counter\n\
             farm_chat_tasks_total{{state=\"running\"}} {}\n\
             farm_chat_tasks_total{{state=\"succeeded\"}} {}\n\
             farm_chat_tasks_total{{state=\"failed\"}} {}\n\
             farm_chat_tasks_total{{state=\"cancelled\"}} {}\n",
            self.open_streams.get(),
            self.events_sent.get(),
            self.messages_sent.get(),
            self.tasks_started.get(),
            self.tasks_finished[0].get(),
            self.tasks_finished[1].get(),
            self.tasks_finished[2].get(),
        )
    }
}
