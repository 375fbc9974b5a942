//! `GET /metrics` in the Prometheus text format.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

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

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request latency per (method, route): routes are the router's patterns, so the number of
/// series is bounded by the API, not by what clients send.
#[derive(Debug, Default)]
pub struct Latencies {
    by_route: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Latencies {
    /// Records one request.
    pub fn observe(&self, method: &str, route: &str, seconds: f64) {
        let mut map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        let h = map
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        for (bucket, bound) in h.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    fn render(&self, out: &mut String) {
        const NAME: &str = "farm_chat_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {NAME} Time to answer API requests (for the stream: until it starts)."
        );
        let _ = writeln!(out, "# TYPE {NAME} histogram");
        let map = self.by_route.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route), h) in map.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (count, bound) in h.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(out, "{NAME}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{NAME}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{NAME}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{NAME}_count{{{labels}}} {}", h.count);
        }
    }
}

/// Middleware (a route layer, so the matched route is known): times each API request.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .latencies
        .observe(&method, &route, started.elapsed().as_secs_f64());
    response
}

/// Upper bounds (seconds) of the time-to-first-token histogram's buckets.
pub const FIRST_TOKEN_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];

/// The assistant's model: requests by engine and outcome, time to the first token, tokens in
/// and out (the provider's own count), tool calls by name. Labels come from fixed sets (the
/// engines, the outcomes, the tools the server offers), never from what a model writes.
#[derive(Debug, Default)]
pub struct ModelMetrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    first_token: Mutex<BTreeMap<&'static str, FirstTokens>>,
    tokens: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    tool_calls: Mutex<BTreeMap<&'static str, u64>>,
}

/// One engine's time-to-first-token histogram: bucket counts, count, sum.
type FirstTokens = ([u64; FIRST_TOKEN_BUCKETS.len()], u64, f64);

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ModelMetrics {
    /// An answer ended with `outcome` (`ok`, `rate_limited`, `unavailable`, `timeout`,
    /// `bad_output`).
    pub fn request(&self, engine: &'static str, outcome: &'static str) {
        *locked(&self.requests).entry((engine, outcome)).or_default() += 1;
    }

    /// An answer's first text arrived `after` the request started.
    pub fn first_token(&self, engine: &'static str, after: std::time::Duration) {
        let seconds = after.as_secs_f64();
        let mut map = locked(&self.first_token);
        let h = map.entry(engine).or_default();
        for (bucket, bound) in h.0.iter_mut().zip(FIRST_TOKEN_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        h.1 += 1;
        h.2 += seconds;
    }

    /// Tokens the provider counted for one request.
    pub fn tokens(&self, engine: &'static str, input: u64, output: u64) {
        let mut map = locked(&self.tokens);
        *map.entry((engine, "input")).or_default() += input;
        *map.entry((engine, "output")).or_default() += output;
    }

    /// The model called tool `name` (an unknown name counts as `unknown`).
    pub fn tool_call(&self, name: &str) {
        let name = [
            "search_cows_in_heat",
            "cow_health",
            "shipment_report",
            "contact_support",
        ]
        .into_iter()
        .find(|t| *t == name)
        .unwrap_or("unknown");
        *locked(&self.tool_calls).entry(name).or_default() += 1;
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP farm_chat_model_requests_total Model answers by engine and outcome."
        );
        let _ = writeln!(out, "# TYPE farm_chat_model_requests_total counter");
        for ((engine, outcome), n) in locked(&self.requests).iter() {
            let _ = writeln!(
                out,
                "farm_chat_model_requests_total{{engine=\"{engine}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        const TTFT: &str = "farm_chat_model_first_token_seconds";
        let _ = writeln!(
            out,
            "# HELP {TTFT} Time from a question to the model's first text."
        );
        let _ = writeln!(out, "# TYPE {TTFT} histogram");
        for (engine, (buckets, count, sum)) in locked(&self.first_token).iter() {
            for (n, bound) in buckets.iter().zip(FIRST_TOKEN_BUCKETS) {
                let _ = writeln!(
                    out,
                    "{TTFT}_bucket{{engine=\"{engine}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "{TTFT}_bucket{{engine=\"{engine}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{TTFT}_sum{{engine=\"{engine}\"}} {sum}");
            let _ = writeln!(out, "{TTFT}_count{{engine=\"{engine}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP farm_chat_model_tokens_total Tokens the provider counted, by direction."
        );
        let _ = writeln!(out, "# TYPE farm_chat_model_tokens_total counter");
        for ((engine, direction), n) in locked(&self.tokens).iter() {
            let _ = writeln!(
                out,
                "farm_chat_model_tokens_total{{engine=\"{engine}\",direction=\"{direction}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP farm_chat_model_tool_calls_total Tool calls the model made, by tool."
        );
        let _ = writeln!(out, "# TYPE farm_chat_model_tool_calls_total counter");
        for (tool, n) in locked(&self.tool_calls).iter() {
            let _ = writeln!(
                out,
                "farm_chat_model_tool_calls_total{{tool=\"{tool}\"}} {n}"
            );
        }
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// SSE streams open now.
    pub open_streams: Gauge,
    /// SSE streams accepted since start (reconnects and tab handovers show here).
    pub streams_opened: Counter,
    /// SSE events written to streams.
    pub events_sent: Counter,
    /// Times a stream's live feed ran ahead of it and it caught up from the backlog.
    pub streams_caught_up: Counter,
    /// Messages stored by `POST /api/chat/send` (retries not counted).
    pub messages_sent: Counter,
    /// Tasks started.
    pub tasks_started: Counter,
    /// Tasks finished, by final state: succeeded, failed, cancelled.
    pub tasks_finished: [Counter; 3],
    /// API request latency.
    pub latencies: Latencies,
    /// The assistant's model.
    pub model: ModelMetrics,
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
        let mut out = format!(
            "# HELP farm_chat_open_streams SSE streams open now.\n\
             # TYPE farm_chat_open_streams gauge\n\
             farm_chat_open_streams {}\n\
             # HELP farm_chat_streams_opened_total SSE streams accepted since start.\n\
             # TYPE farm_chat_streams_opened_total counter\n\
             farm_chat_streams_opened_total {}\n\
             # HELP farm_chat_events_sent_total SSE events written to streams.\n\
             # TYPE farm_chat_events_sent_total counter\n\
             farm_chat_events_sent_total {}\n\
             # HELP farm_chat_streams_caught_up_total Times a stream fell behind its live feed and caught up from the backlog.\n\
             # TYPE farm_chat_streams_caught_up_total counter\n\
             farm_chat_streams_caught_up_total {}\n\
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
            self.streams_opened.get(),
            self.events_sent.get(),
            self.streams_caught_up.get(),
            self.messages_sent.get(),
            self.tasks_started.get(),
            self.tasks_finished[0].get(),
            self.tasks_finished[1].get(),
            self.tasks_finished[2].get(),
        );
        self.latencies.render(&mut out);
        self.model.render(&mut out);
        out
    }
}
