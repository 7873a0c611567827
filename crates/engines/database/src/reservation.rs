//! Reserved usernames: pending intents written ahead, with an earlier credential's lease, so
//! the next credential's user can be created while its own lease is still being written.
//!
//! A credential's lease must be durable before the client sees the password, and its user
//! must never exist without a durable record that some reconciliation pass will find. The
//! plain path orders the two (`IntentGate`: the lease commits, then the user may exist), which
//! puts a storage sync in front of every `CREATE USER` that commits on its own (MySQL, Redis).
//! A reservation is that record, committed earlier: each issued lease also commits a
//! `Pending` intent for a fresh username of the same role, and the next request for the role
//! takes it, creates the user at once and writes its lease at the same time. A crash between
//! the two leaves the user under a pending intent, which reconciliation drops.
//!
//! A reservation is used only while it is fresh (the username's `unix_time` is then at most
//! [`FRESH`] old) and only by a request that would have rendered the same name: same
//! connection, username template and display name. Others are discarded: the request that
//! finds them deletes their records in its own lease transaction. A reservation taken by a
//! request is *in flight* until that request ends; reconciliation leaves in-flight intents
//! alone and settles any other pending intent of this boot once it is older than
//! `PENDING_STUCK`, far past [`FRESH`].

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// How long a reservation stays usable.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// Reservations kept per role: enough for every concurrent requester to find one.
const PER_ROLE: usize = 64;

/// What a username was rendered from; a request uses a reservation only if this matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub db_name: String,
    pub template: String,
    pub display_name: String,
}

/// A username whose pending intent is committed.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub intent_id: String,
    pub username: String,
    pub origin: Origin,
    /// When its record was made (not when it committed), so that a reservation in use is
    /// always far younger than the age at which reconciliation settles pending records.
    pub made: Instant,
}

/// What [`Reservations::take`] found for a request.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// A usable reservation, now in flight.
    pub reservation: Option<Reservation>,
    /// Intent ids of reservations that can no longer be used; their records are the
    /// request's to delete.
    pub discarded: Vec<String>,
}

#[derive(Debug, Default)]
struct Pool {
    ready: HashMap<String, VecDeque<Reservation>>,
    in_flight: HashSet<String>,
    /// Pushed out or forgotten; the next request deletes their records.
    dropped: Vec<String>,
}

/// The mount's reservations, by role name.
#[derive(Debug, Default)]
pub(crate) struct Reservations(Mutex<Pool>);

impl Reservations {
    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the role's newest reservation if it fits `origin` and is fresh. Every stale
    /// reservation of the role, and a fresh one rendered for another origin, is discarded.
    pub(crate) fn take(&self, role: &str, origin: &Origin, now: Instant) -> Taken {
        let mut pool = self.pool();
        let mut taken = Taken {
            reservation: None,
            discarded: std::mem::take(&mut pool.dropped),
        };
        let Some(queue) = pool.ready.get_mut(role) else {
            return taken;
        };
        // Queued in the order their leases committed, which need not be the order their
        // records were made in: every entry is checked.
        let (fresh, stale): (VecDeque<Reservation>, VecDeque<Reservation>) = queue
            .drain(..)
            .partition(|r| now.saturating_duration_since(r.made) < FRESH);
        *queue = fresh;
        taken
            .discarded
            .extend(stale.into_iter().map(|r| r.intent_id));
        match queue.pop_back() {
            Some(reservation) if reservation.origin == *origin => {
                taken.reservation = Some(reservation);
            }
            Some(other) => {
                taken.discarded.push(other.intent_id);
                // Another origin's reservations are no use to this request, nor are
                // this request's to them; the pool follows the latest requester.
                taken.discarded.extend(queue.drain(..).map(|r| r.intent_id));
            }
            None => {}
        }
        if queue.is_empty() {
            pool.ready.remove(role);
        }
        if let Some(reservation) = &taken.reservation {
            pool.in_flight.insert(reservation.intent_id.clone());
        }
        taken
    }

    /// Offers a reservation whose record just committed. A role holds at most [`PER_ROLE`];
    /// the oldest makes room.
    pub(crate) fn offer(&self, role: &str, reservation: Reservation) {
        let mut pool = self.pool();
        let queue = pool.ready.entry(role.to_owned()).or_default();
        queue.push_back(reservation);
        let pushed_out = (queue.len() > PER_ROLE)
            .then(|| queue.pop_front())
            .flatten();
        pool.dropped.extend(pushed_out.map(|r| r.intent_id));
    }

    /// The request that took the reservation is over, however it ended.
    pub(crate) fn finish(&self, intent_id: &str) {
        self.pool().in_flight.remove(intent_id);
    }

    /// Whether a request is using this intent's username right now.
    pub(crate) fn in_flight(&self, intent_id: &str) -> bool {
        self.pool().in_flight.contains(intent_id)
    }

    /// Forgets a deleted role's reservations; returns their intent ids, for the caller to
    /// delete the records.
    pub(crate) fn forget(&self, role: &str) -> Vec<String> {
        let mut pool = self.pool();
        let forgotten = pool.ready.remove(role).unwrap_or_default();
        forgotten.into_iter().map(|r| r.intent_id).collect()
    }
}

/// Ends a taken reservation's flight when the request ends, even if it is cancelled.
pub(crate) struct InFlight<'a> {
    pub reservations: &'a Reservations,
    pub intent_id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.reservations.finish(&self.intent_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(display_name: &str) -> Origin {
        Origin {
            db_name: "db".into(),
            template: "{{random 8}}".into(),
            display_name: display_name.into(),
        }
    }

    fn reservation(id: &str, origin: Origin, made: Instant) -> Reservation {
        Reservation {
            intent_id: id.into(),
            username: format!("user-{id}"),
            origin,
            made,
        }
    }

    #[test]
    fn a_fresh_matching_reservation_is_taken_and_in_flight_until_finished() {
        let pool = Reservations::default();
        let now = Instant::now();
        pool.offer("r", reservation("a", origin("app"), now));
        let taken = pool.take("r", &origin("app"), now + Duration::from_millis(10));
        let got = taken.reservation.expect("taken");
        assert_eq!(got.username, "user-a");
        assert!(taken.discarded.is_empty());
        assert!(pool.in_flight("a"));
        pool.finish("a");
        assert!(!pool.in_flight("a"));
        // Taken means gone: nobody else gets the same name.
        let again = pool.take("r", &origin("app"), now);
        assert!(again.reservation.is_none() && again.discarded.is_empty());
    }

    #[test]
    fn stale_reservations_are_discarded_not_used() {
        let pool = Reservations::default();
        let now = Instant::now();
        pool.offer("r", reservation("old", origin("app"), now));
        pool.offer("r", reservation("older-too", origin("app"), now));
        let taken = pool.take("r", &origin("app"), now + FRESH);
        assert!(taken.reservation.is_none());
        assert_eq!(taken.discarded, ["old", "older-too"]);
        assert!(!pool.in_flight("old"));
    }

    #[test]
    fn a_stale_reservation_behind_a_fresh_one_is_not_used() {
        let pool = Reservations::default();
        let now = Instant::now();
        // The stale one committed last (its lease was slow), so it sits at the back.
        pool.offer("r", reservation("fresh", origin("app"), now + FRESH));
        pool.offer("r", reservation("stale", origin("app"), now));
        let taken = pool.take("r", &origin("app"), now + FRESH);
        assert_eq!(taken.reservation.unwrap().intent_id, "fresh");
        assert_eq!(taken.discarded, ["stale"]);
    }

    #[test]
    fn another_origin_discards_the_role_s_reservations() {
        let pool = Reservations::default();
        let now = Instant::now();
        pool.offer("r", reservation("a", origin("app"), now));
        pool.offer("r", reservation("b", origin("app"), now));
        let taken = pool.take("r", &origin("other"), now);
        assert!(taken.reservation.is_none());
        let mut discarded = taken.discarded;
        discarded.sort();
        assert_eq!(discarded, ["a", "b"]);
        // Roles do not share reservations.
        pool.offer("r", reservation("c", origin("app"), now));
        assert!(pool.take("s", &origin("app"), now).reservation.is_none());
        assert_eq!(pool.forget("r"), ["c"]);
        assert!(pool.take("r", &origin("app"), now).reservation.is_none());
    }

    #[test]
    fn a_full_role_pushes_out_its_oldest() {
        let pool = Reservations::default();
        let now = Instant::now();
        for i in 0..PER_ROLE {
            pool.offer("r", reservation(&i.to_string(), origin("app"), now));
        }
        pool.offer("r", reservation("new", origin("app"), now));
        let taken = pool.take("r", &origin("app"), now);
        assert_eq!(taken.reservation.unwrap().intent_id, "new");
        assert_eq!(taken.discarded, ["0"]);
    }
}
