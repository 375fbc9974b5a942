//! [`Shared`]: short-lived state every instance of a deployment must agree on: single-use
//! stream tickets (issued by one instance, redeemed by another), the rate-limit buckets (a
//! user spreading requests over instances gets no more than on one), task leases, the **hot
//! task cache** (seed 004: each running task's latest snapshot, which every instance reads,
//! with the durable store written behind) and the registry of open streams (the caps hold
//! across instances).
//!
//! Two implementations, chosen once at start-up: [`Local`] for a server alone, [`RedisShared`]
//! for several instances (`--redis-url`). Nothing that uses them asks which it got.

pub mod local;
pub mod redis;

use std::time::Duration;

use farm_chat_protocol::{TaskId, UserId};

pub use self::{local::Local, redis::RedisShared};
use crate::{
    auth::TicketOwner,
    bus::{BusResult, async_trait},
    store::TaskRecord,
};

/// An open stream not renewed for this long belongs to an instance that died.
pub const STREAM_STALE: Duration = Duration::from_secs(90);

/// See the [module](self).
#[async_trait]
pub trait Shared: Send + Sync + std::fmt::Debug + 'static {
    /// Whether other instances share this state. Then a task stored as running may be
    /// another's (only its lease tells), so start-up must not interrupt it.
    fn spans_instances(&self) -> bool;

    /// Keeps a new single-use ticket of `owner` for `ttl`, and returns it.
    async fn issue_ticket(&self, owner: &TicketOwner, ttl: Duration) -> BusResult<String>;

    /// Takes a ticket's owner: the first call anywhere gets it, later ones (and an unknown or
    /// expired ticket) `None`.
    async fn redeem_ticket(&self, ticket: &str) -> BusResult<Option<TicketOwner>>;

    /// Takes a token from the deployment-wide bucket `bucket` of `key` (`burst` at once,
    /// refilled at `per_second`), or says after how many whole seconds one is available.
    async fn take_token(
        &self,
        bucket: &str,
        key: &str,
        burst: u32,
        per_second: f64,
    ) -> BusResult<Result<(), u64>>;

    /// Holds the lease of task `task` for `ttl` more (its runner renews it while it runs).
    async fn hold_lease(&self, task: &str, ttl: Duration) -> BusResult<()>;

    /// Whether some instance holds the lease of task `task`.
    async fn has_lease(&self, task: &str) -> BusResult<bool>;

    /// Keeps a task's latest snapshot hot for `ttl`; an older version never replaces a newer.
    /// Returns whether every instance now reads it here (then the durable write may lag).
    async fn put_task(&self, task: &TaskRecord, ttl: Duration) -> BusResult<bool>;

    /// The hot snapshots of these tasks (`None` for one not hot).
    async fn tasks(&self, ids: &[TaskId]) -> BusResult<Vec<Option<TaskRecord>>>;

    /// Registers an open stream of `user` (`member`: `<opened ms>|<instance>|<id>|<session>`)
    /// and returns every stream of theirs open on any instance, oldest first. Entries an
    /// instance stopped renewing (it died) are dropped on the way. `None`: there is no
    /// registry beyond this instance's own stream counts (nothing to register, renew or
    /// remove).
    async fn open_stream(&self, user: &UserId, member: &str) -> BusResult<Option<Vec<String>>>;

    /// Renews these open streams of this instance (every [`STREAM_STALE`] / 3).
    async fn renew_streams(&self, streams: &[(UserId, String)]) -> BusResult<()>;

    /// Forgets a closed stream.
    async fn close_stream(&self, user: &UserId, member: &str) -> BusResult<()>;
}
