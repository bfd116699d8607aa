//! Spreading connections over the actor threads: one thread accepts, and
//! hands each new connection to the threads in turn.
//!
//! Why not let every thread accept from the same socket: the kernel wakes
//! every thread waiting on it and whichever calls `accept` first wins, so
//! where connections land depends on which thread happened to be idle, and
//! whether the app's stream shares a thread with the manager (which every
//! call passes through) is luck. Taking turns puts the same connections on
//! the same threads every time, in an order a test can check.
//!
//! The accepting thread is the manager's, and it takes the first turn: an
//! app dials its sidecar as it starts, before anyone calls it, so its stream
//! usually lands beside the manager, and calls from that thread's
//! connections then never cross threads. (Throughput at `--threads 2`
//! measured the same either way; docs/performance.md.)

use std::net::TcpStream as StdTcpStream;

use log::debug;
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
    /// 0 is the accepting thread itself, `i` is `others[i - 1]`.
    turn: usize,
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
    (Spread { others, turn: 0 }, intakes)
}

impl Spread {
    /// Every connection stays on the accepting thread.
    pub fn none() -> Self {
        Spread {
            others: Vec::new(),
            turn: 0,
        }
    }

    /// Hands `tcp` to the thread whose turn it is. Returns it when that is
    /// this thread, or when the other cannot take it now (then it is served
    /// here rather than refused).
    pub fn place(&mut self, tcp: TcpStream) -> Option<TcpStream> {
        let turn = self.turn;
        self.turn = (turn + 1) % (self.others.len() + 1);
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
                debug!("dropping a new connection: cannot hand it over: {e}");
                return None;
            }
        };
        match other.try_send(tcp) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(tcp) | mpsc::error::TrySendError::Closed(tcp)) => {
                TcpStream::from_std(tcp)
                    .inspect_err(|e| debug!("dropping a new connection: {e}"))
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
                Err(e) => debug!("dropping a handed-over connection: {e}"),
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

    /// Connections go to the threads in turn, the accepting thread first.
    #[tokio::test]
    async fn connections_take_turns_starting_with_the_accepting_thread() {
        let (_clients, servers) = accepted(7).await;
        let ports: Vec<u16> = servers.iter().map(port).collect();
        let (mut spread, mut intakes) = spread(3);
        let mut here = Vec::new();
        for tcp in servers {
            here.extend(spread.place(tcp).map(|t| port(&t)));
        }
        assert_eq!(here, [ports[0], ports[3], ports[6]]);
        drop(spread);
        for (i, intake) in intakes.iter_mut().enumerate() {
            let mut taken = Vec::new();
            while let Some(tcp) = intake.next().await {
                taken.push(port(&tcp));
            }
            assert_eq!(taken, [ports[1 + i], ports[4 + i]], "thread {}", i + 1);
        }
    }

    /// A thread that is not taking its connections does not lose any: once
    /// its backlog is full, or once it is gone, they stay where accepted.
    #[tokio::test]
    async fn a_thread_that_cannot_take_a_connection_leaves_it_here() {
        let (_clients, servers) = accepted(2 * HANDOVER_BACKLOG + 2).await;
        let (mut spread, mut intakes) = spread(2);
        let kept = servers
            .into_iter()
            .filter_map(|tcp| spread.place(tcp))
            .count();
        assert_eq!(kept, HANDOVER_BACKLOG + 2, "half, plus the overflow");

        let (_clients, servers) = accepted(2).await;
        drop(intakes.pop());
        let kept = servers
            .into_iter()
            .filter_map(|tcp| spread.place(tcp))
            .count();
        assert_eq!(kept, 2, "the other thread is gone");
    }
}
