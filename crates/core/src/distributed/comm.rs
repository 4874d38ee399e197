//! The communicator a distributed state talks through: the few collective
//! operations it needs, so that the core does not depend on MPI. The
//! `kettle` binary implements it over MPI (`--features mpi`); [`ThreadGroup`]
//! implements it with threads of one process, for tests and for trying a
//! distributed run without MPI.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};

/// A fixed group of ranks, each calling the same operations in the same
/// order (as MPI's collectives require).
pub trait Communicator {
    /// This rank's number, `0..size()`.
    fn rank(&self) -> usize;

    /// Ranks in the group.
    fn size(&self) -> usize;

    /// Sends `send` to rank `partner` and fills `recv` with what `partner`
    /// sends in its matching call, which is `recv.len()` bytes long (the
    /// two directions may differ in length, either may be empty).
    fn exchange(&self, partner: usize, send: &[u8], recv: &mut [u8]);

    /// Replaces `values` on every rank with their element-wise sum over all
    /// ranks (the same result on every rank).
    fn sum(&self, values: &mut [f64]);

    /// Rank 0 gets every rank's `data`, in rank order; the others `None`.
    fn gather(&self, data: &[u8]) -> Option<Vec<Vec<u8>>>;

    /// Every rank gets rank 0's `data` (its own on rank 0).
    fn broadcast(&self, data: &mut Vec<u8>);
}

/// Messages posted and not yet taken, by `(from, to)`, oldest first.
type Mailboxes = HashMap<(usize, usize), VecDeque<Vec<u8>>>;

/// Ranks as threads of one process, passing messages through memory.
#[derive(Debug)]
pub struct ThreadGroup {
    size: usize,
    mail: Mutex<Mailboxes>,
    posted: Condvar,
}

/// One rank of a [`ThreadGroup`].
#[derive(Debug)]
pub struct ThreadRank<'g> {
    group: &'g ThreadGroup,
    rank: usize,
}

impl ThreadGroup {
    /// Runs `f` on `size` ranks, one thread each, and returns their results
    /// in rank order.
    pub fn run<T: Send>(size: usize, f: impl Fn(&ThreadRank) -> T + Sync) -> Vec<T> {
        assert!(size > 0, "a group has at least one rank");
        let group = ThreadGroup {
            size,
            mail: Mutex::new(HashMap::new()),
            posted: Condvar::new(),
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let (group, f) = (&group, &f);
                    s.spawn(move || f(&ThreadRank { group, rank }))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    fn post(&self, from: usize, to: usize, data: Vec<u8>) {
        let mut mail = self.mail.lock().unwrap_or_else(|e| e.into_inner());
        mail.entry((from, to)).or_default().push_back(data);
        self.posted.notify_all();
    }

    fn take(&self, from: usize, to: usize) -> Vec<u8> {
        let mut mail = self.mail.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(data) = mail.get_mut(&(from, to)).and_then(VecDeque::pop_front) {
                return data;
            }
            mail = self.posted.wait(mail).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Communicator for ThreadRank<'_> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.group.size
    }

    fn exchange(&self, partner: usize, send: &[u8], recv: &mut [u8]) {
        self.group.post(self.rank, partner, send.to_vec());
        let got = self.group.take(partner, self.rank);
        recv.copy_from_slice(&got);
    }

    fn sum(&self, values: &mut [f64]) {
        let bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        if let Some(all) = self.gather(&bytes(values)) {
            values.fill(0.0);
            for part in all {
                for (v, b) in values.iter_mut().zip(part.chunks_exact(8)) {
                    *v += f64::from_le_bytes(b.try_into().expect("8 bytes"));
                }
            }
        }
        let mut total = bytes(values);
        self.broadcast(&mut total);
        for (v, b) in values.iter_mut().zip(total.chunks_exact(8)) {
            *v = f64::from_le_bytes(b.try_into().expect("8 bytes"));
        }
    }

    fn gather(&self, data: &[u8]) -> Option<Vec<Vec<u8>>> {
        if self.rank != 0 {
            self.group.post(self.rank, 0, data.to_vec());
            return None;
        }
        let mut all = vec![data.to_vec()];
        all.extend((1..self.group.size).map(|r| self.group.take(r, 0)));
        Some(all)
    }

    fn broadcast(&self, data: &mut Vec<u8>) {
        if self.rank == 0 {
            for r in 1..self.group.size {
                self.group.post(0, r, data.clone());
            }
        } else {
            *data = self.group.take(0, self.rank);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_group_exchanges_sums_and_gathers() {
        let out = ThreadGroup::run(4, |c| {
            let partner = c.rank() ^ 1;
            let mut got = [0u8; 2];
            c.exchange(partner, &[c.rank() as u8; 2], &mut got);
            let mut v = [c.rank() as f64, 1.0];
            c.sum(&mut v);
            let gathered = c.gather(&[c.rank() as u8]);
            (got, v, gathered)
        });
        for (r, (got, v, gathered)) in out.iter().enumerate() {
            assert_eq!(got, &[(r ^ 1) as u8; 2]);
            assert_eq!(v, &[6.0, 4.0]);
            assert_eq!(gathered.is_some(), r == 0);
        }
        assert_eq!(
            out[0].2.as_deref(),
            Some(&[vec![0u8], vec![1], vec![2], vec![3]][..])
        );
    }
}
