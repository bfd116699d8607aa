//! Spreading connections over the actor threads: one thread accepts, and
//! hands new connections to the others.
//!
//! Why not let every thread accept from the same socket: the kernel wakes
//! every thread waiting on it and whichever calls `accept` first wins, so
//! where connections land depends on which thread happened to be idle, and
//! whether the app's stream shares a thread with the manager (which every
//! call passes through) is luck. Deciding here puts the same connections on
//! the same threads every time, in an order a test can check.
//!
//! The accepting thread is the manager's, and it takes the first connection:
//! an app dials its sidecar as it starts, before anyone calls it, so its
//! stream usually lands beside the manager, and calls from that thread's
//! connections then never cross threads. After that it takes few (see
//! `Spread::turn`). Against threads racing for `accept`, this took two
//! threads from 0.82 to 0.935 of a 2-worker unary server's calls/s
//! (docs/performance.md).

use std::net::TcpStream as StdTcpStream;

use log::{debug, warn};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Connections handed over but not yet taken up by their thread. A thread
/// takes each at once (it only spawns a task for it), so this is only
/// reached when that thread is stuck; the connection is then served where
/// it was accepted.
const HANDOVER_BACKLOG: usize = 128;

/// The accepting thread's side: whose turn the next connection is.
pub struct Spread {
    /// One per other thread, in thread order.
    others: Vec<mpsc::Sender<StdTcpStream>>,
    /// Connections placed so far.
    placed: usize,
    /// Which of `others` takes the next connection that is not ours.
    next_other: usize,
}

/// Another thread's side: the connections handed to it.
pub struct Intake {
    handed: mpsc::Receiver<StdTcpStream>,
}

/// A [`Spread`] over `threads` threads, with an [`Intake`] for each but the
/// accepting one.
pub fn spread(threads: usize) -> (Spread, Vec<Intake>) {
    let (others, intakes) = (1..threads)
        .map(|_| {
            let (tx, rx) = mpsc::channel(HANDOVER_BACKLOG);
            (tx, Intake { handed: rx })
        })
        .unzip();
    (
        Spread {
            others,
            placed: 0,
            next_other: 0,
        },
        intakes,
    )
}

impl Spread {
    /// Every connection stays on the accepting thread.
    pub fn none() -> Self {
        spread(1).0
    }

    /// The thread the next connection goes to: 0 (this one) once every
    /// `2 × threads` connections, starting with the first, and the others in
    /// turn the rest of the time. This thread takes fewer because it has more
    /// to do per connection: it routes every call of every thread (the
    /// manager is here), and it usually hosts the app's stream, which carries
    /// every call too. With 2 threads, 1 in 4 carried 14 % more calls than
    /// 1 in 2 in the quiet regime (0.935 of the unary baseline against
    /// 0.82) and ~20 % more in the contended one (docs/performance.md).
    fn turn(&mut self) -> usize {
        let threads = self.others.len() + 1;
        let ours = self.placed.is_multiple_of(2 * threads);
        self.placed += 1;
        if ours || self.others.is_empty() {
            return 0;
        }
        let other = self.next_other;
        self.next_other = (other + 1) % self.others.len();
        1 + other
    }

    /// Hands `tcp` to the thread whose turn it is. Returns it when that is
    /// this thread, or when the other cannot take it now (then it is served
    /// here rather than refused).
    pub fn place(&mut self, tcp: TcpStream) -> Option<TcpStream> {
        let turn = self.turn();
        if log::log_enabled!(log::Level::Debug)
            && let Ok(peer) = tcp.peer_addr()
        {
            debug!("connection from {peer}: to thread {turn}");
        }
        let Some(other) = turn.checked_sub(1).map(|i| &self.others[i]) else {
            return Some(tcp);
        };
        // A std stream crosses threads: tokio's is bound to this thread's
        // reactor, and the other thread registers it with its own.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                warn!("dropping a new connection: cannot hand it over: {e}");
                return None;
            }
        };
        match other.try_send(tcp) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(tcp) | mpsc::error::TrySendError::Closed(tcp)) => {
                TcpStream::from_std(tcp)
                    .inspect_err(|e| warn!("dropping a new connection: {e}"))
                    .ok()
            }
        }
    }
}

impl Intake {
    /// The next connection handed over; `None` once the accepting thread
    /// has stopped.
    pub async fn next(&mut self) -> Option<TcpStream> {
        loop {
            let tcp = self.handed.recv().await?;
            match TcpStream::from_std(tcp) {
                Ok(tcp) => return Some(tcp),
                Err(e) => warn!("dropping a handed-over connection: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// `n` connections accepted on one listener, in the order they came.
    async fn accepted(n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut clients, mut servers) = (Vec::new(), Vec::new());
        for _ in 0..n {
            clients.push(TcpStream::connect(addr).await.unwrap());
            servers.push(listener.accept().await.unwrap().0);
        }
        (clients, servers)
    }

    fn port(tcp: &TcpStream) -> u16 {
        tcp.peer_addr().unwrap().port()
    }

    /// The accepting thread takes the first connection and then one in
    /// `2 × threads`; the others take the rest in turn.
    #[tokio::test]
    async fn the_accepting_thread_takes_the_first_and_then_fewer() {
        let (_clients, servers) = accepted(8).await;
        let ports: Vec<u16> = servers.iter().map(port).collect();
        let (mut spread, mut intakes) = spread(3);
        let mut here = Vec::new();
        for tcp in servers {
            here.extend(spread.place(tcp).map(|t| port(&t)));
        }
        assert_eq!(here, [ports[0], ports[6]]);
        drop(spread);
        let expected = [
            vec![ports[1], ports[3], ports[5]],
            vec![ports[2], ports[4], ports[7]],
        ];
        for (intake, expected) in intakes.iter_mut().zip(expected) {
            let mut taken = Vec::new();
            while let Some(tcp) = intake.next().await {
                taken.push(port(&tcp));
            }
            assert_eq!(taken, expected);
        }
    }

    /// A thread that is not taking its connections does not lose any: once
    /// its backlog is full, or once it is gone, they stay where accepted.
    #[tokio::test]
    async fn a_thread_that_cannot_take_a_connection_leaves_it_here() {
        // Enough that the other thread's share (3 in 4) overfills its backlog.
        const CONNECTIONS: usize = HANDOVER_BACKLOG * 4 / 3 + 8;
        let (_clients, servers) = accepted(CONNECTIONS).await;
        let (mut spread, mut intakes) = spread(2);
        let kept = servers
            .into_iter()
            .filter_map(|tcp| spread.place(tcp))
            .count();
        assert_eq!(
            kept,
            CONNECTIONS - HANDOVER_BACKLOG,
            "all the other could not take"
        );

        let (_clients, servers) = accepted(2).await;
        drop(intakes.pop());
        let kept = servers
            .into_iter()
            .filter_map(|tcp| spread.place(tcp))
            .count();
        assert_eq!(kept, 2, "the other thread is gone");
    }
}
