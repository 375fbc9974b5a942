//! [`Local`]: the [`Shared`] state of a server that runs alone. Tickets and leases live in
//! this process; there is no bucket, hot task copy or stream registry beyond the instance's
//! own (its rate limiters, task map and stream counts are the whole truth).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use farm_chat_protocol::{TaskId, UserId};

use super::Shared;
use crate::{
    auth::TicketOwner,
    bus::{BusResult, async_trait},
    ids::random_id,
    store::TaskRecord,
};

/// See the [module](self).
#[derive(Debug, Default)]
pub struct Local {
    tickets: Mutex<HashMap<String, (TicketOwner, Instant)>>,
    leases: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl Shared for Local {
    fn spans_instances(&self) -> bool {
        false
    }

    async fn issue_ticket(&self, owner: &TicketOwner, ttl: Duration) -> BusResult<String> {
        let ticket = random_id();
        let now = Instant::now();
        if let Ok(mut open) = self.tickets.lock() {
            open.retain(|_, (_, expires)| *expires > now);
            open.insert(ticket.clone(), (owner.clone(), now + ttl));
        }
        Ok(ticket)
    }

    async fn redeem_ticket(&self, ticket: &str) -> BusResult<Option<TicketOwner>> {
        let taken = self.tickets.lock().ok().and_then(|mut t| t.remove(ticket));
        Ok(taken.and_then(|(owner, expires)| (expires > Instant::now()).then_some(owner)))
    }

    async fn take_token(
        &self,
        _bucket: &str,
        _key: &str,
        _burst: u32,
        _per_second: f64,
    ) -> BusResult<Result<(), u64>> {
        // Alone, the instance's own bucket (already taken) is the whole limit.
        Ok(Ok(()))
    }

    async fn hold_lease(&self, task: &str, ttl: Duration) -> BusResult<()> {
        let now = Instant::now();
        if let Ok(mut leases) = self.leases.lock() {
            leases.retain(|_, until| *until > now);
            leases.insert(task.to_owned(), now + ttl);
        }
        Ok(())
    }

    async fn has_lease(&self, task: &str) -> BusResult<bool> {
        let now = Instant::now();
        Ok(self
            .leases
            .lock()
            .is_ok_and(|leases| leases.get(task).is_some_and(|until| *until > now)))
    }

    async fn put_task(&self, _task: &TaskRecord, _ttl: Duration) -> BusResult<bool> {
        // No other instance reads it: the caller's own map is the hot copy, and the durable
        // write must not lag behind it.
        Ok(false)
    }

    async fn tasks(&self, ids: &[TaskId]) -> BusResult<Vec<Option<TaskRecord>>> {
        Ok(vec![None; ids.len()])
    }

    async fn open_stream(&self, _user: &UserId, _member: &str) -> BusResult<Option<Vec<String>>> {
        // The instance's stream counts hold every stream there is.
        Ok(None)
    }

    async fn renew_streams(&self, _streams: &[(UserId, String)]) -> BusResult<()> {
        Ok(())
    }

    async fn close_stream(&self, _user: &UserId, _member: &str) -> BusResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ticket_works_once() {
        let local = Local::default();
        let owner = TicketOwner::Session("s1".into());
        let ticket = local
            .issue_ticket(&owner, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(matches!(
            local.redeem_ticket(&ticket).await.unwrap(),
            Some(TicketOwner::Session(s)) if s == "s1"
        ));
        assert!(local.redeem_ticket(&ticket).await.unwrap().is_none());
        assert!(local.redeem_ticket("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_lease_lasts_its_time() {
        let local = Local::default();
        assert!(!local.has_lease("t").await.unwrap());
        local.hold_lease("t", Duration::from_secs(9)).await.unwrap();
        assert!(local.has_lease("t").await.unwrap());
        local.hold_lease("t", Duration::ZERO).await.unwrap();
        assert!(!local.has_lease("t").await.unwrap());
    }
}
