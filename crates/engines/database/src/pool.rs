//! A small connection pool for the plugins (PostgreSQL, MySQL, Redis): at most `max_open`
//! connections in use, at most `max_idle` kept, none older than `max_lifetime`, broken ones
//! discarded. A returned connection goes back in place, on the returning task: mysql_async's
//! own pool sends each one to a recycler task instead, a wake-up per use.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::plugin::{DbError, DbResult, PoolSettings};

/// Opens connections for a pool.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    type Conn: Send + 'static;

    async fn connect(&self) -> DbResult<Self::Conn>;

    /// Whether a connection can no longer be used (the server closed it…).
    fn is_broken(conn: &Self::Conn) -> bool;
}

struct Idle<T> {
    conn: T,
    opened: Instant,
}

struct Inner<C: Connector> {
    connector: C,
    settings: PoolSettings,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle<C::Conn>>>,
    closed: AtomicBool,
}

pub struct Pool<C: Connector> {
    inner: Arc<Inner<C>>,
}

impl<C: Connector> Pool<C> {
    pub fn new(connector: C, settings: PoolSettings) -> Self {
        Pool {
            inner: Arc::new(Inner {
                connector,
                settings,
                permits: Arc::new(Semaphore::new(settings.max_open)),
                idle: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// A connection, waiting while `max_open` are in use.
    pub async fn get(&self) -> DbResult<Pooled<C>> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DbError::NotInitialized)?;
        loop {
            let candidate = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match candidate {
                Some(idle) if !self.inner.expired(idle.opened) && !C::is_broken(&idle.conn) => {
                    return Ok(Pooled {
                        inner: self.inner.clone(),
                        conn: Some(idle.conn),
                        opened: idle.opened,
                        broken: false,
                        _permit: permit,
                    });
                }
                Some(_) => continue,
                None => break,
            }
        }
        let conn = self.inner.connector.connect().await?;
        Ok(Pooled {
            inner: self.inner.clone(),
            conn: Some(conn),
            opened: Instant::now(),
            broken: false,
            _permit: permit,
        })
    }

    /// Drops idle connections and refuses new ones; connections in use close when returned.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.permits.close();
        self.inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

impl<C: Connector> Inner<C> {
    fn expired(&self, opened: Instant) -> bool {
        self.settings
            .max_lifetime
            .is_some_and(|lifetime| opened.elapsed() >= lifetime)
    }
}

/// A connection borrowed from the pool; it goes back when dropped unless marked broken.
pub struct Pooled<C: Connector> {
    inner: Arc<Inner<C>>,
    conn: Option<C::Conn>,
    opened: Instant,
    broken: bool,
    _permit: OwnedSemaphorePermit,
}

impl<C: Connector> Pooled<C> {
    /// Keeps the connection out of the pool (its state is unknown after an error).
    pub fn discard(&mut self) {
        self.broken = true;
    }
}

impl<C: Connector> Deref for Pooled<C> {
    type Target = C::Conn;

    fn deref(&self) -> &C::Conn {
        // Only `drop` takes the connection out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<C: Connector> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C::Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<C: Connector> Drop for Pooled<C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.broken
            || self.inner.closed.load(Ordering::SeqCst)
            || self.inner.expired(self.opened)
            || C::is_broken(&conn)
        {
            return;
        }
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < self.inner.settings.max_idle {
            idle.push(Idle {
                conn,
                opened: self.opened,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::AtomicUsize, time::Duration};

    use super::*;

    struct Counter(AtomicUsize);

    #[async_trait]
    impl Connector for Counter {
        type Conn = usize;

        async fn connect(&self) -> DbResult<usize> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst))
        }

        fn is_broken(conn: &usize) -> bool {
            *conn == 999
        }
    }

    fn pool(max_open: usize, max_idle: usize, lifetime: Option<Duration>) -> Pool<Counter> {
        Pool::new(
            Counter(AtomicUsize::new(0)),
            PoolSettings {
                max_open,
                max_idle,
                max_lifetime: lifetime,
            },
        )
    }

    #[tokio::test]
    async fn reuses_idle_connections_and_caps_open_ones() {
        let pool = pool(2, 2, None);
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        assert_eq!((*a, *b), (0, 1));
        let third = tokio::time::timeout(Duration::from_millis(50), pool.get()).await;
        assert!(third.is_err(), "a third connection waits for a free slot");
        drop(a);
        assert_eq!(*pool.get().await.unwrap(), 0, "the idle one is reused");
    }

    #[tokio::test]
    async fn discarded_expired_and_closed_connections_are_not_reused() {
        let pool = pool(1, 1, None);
        let mut first = pool.get().await.unwrap();
        first.discard();
        drop(first);
        assert_eq!(*pool.get().await.unwrap(), 1);

        let short = self::pool(1, 1, Some(Duration::from_millis(10)));
        drop(short.get().await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*short.get().await.unwrap(), 1, "past its lifetime");

        short.close();
        assert!(short.get().await.is_err());
    }
}
