//! Running across MPI ranks: `mpirun -np 4 kettle run FILE` splits the
//! state over the 4 processes (`kettle_core::distributed`), and rank 0
//! prints what a single process would. MPI is a cargo feature (`mpi`), so
//! the default build needs no MPI library; a build without it that finds
//! itself started by a launcher with several ranks says so and stops,
//! rather than running the same circuit once per rank.

use kettle_core::distributed::Communicator;

use crate::failure::Failure;

/// Environment variables an MPI launcher sets in every rank with the
/// number of ranks: Open MPI's, then PMI's (MPICH, Slurm's `srun`).
const SIZE_VARIABLES: [&str; 2] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"];

/// The ranks this process runs among, when an MPI launcher started it
/// with more than one.
pub(crate) struct Ranks {
    #[cfg(feature = "mpi")]
    world: mpi_world::World,
}

impl std::fmt::Debug for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranks")
            .field("size", &self.comm().size())
            .finish()
    }
}

/// How long a rank other than 0 waits, on an input error, for rank 0 to
/// report the same error and end the run.
const INPUT_FAILURE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Ranks {
    /// The ranks of the launcher that started this process, if it started
    /// more than one; MPI is initialised here, once.
    ///
    /// # Errors
    /// A launcher with several ranks and a build without MPI.
    pub(crate) fn join() -> Result<Option<Ranks>, Failure> {
        let launched = SIZE_VARIABLES
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
            .unwrap_or(1);
        if launched <= 1 {
            return Ok(None);
        }
        #[cfg(feature = "mpi")]
        {
            let world = mpi_world::World::initialize()?;
            Ok(Some(Ranks { world }))
        }
        #[cfg(not(feature = "mpi"))]
        Err(Failure::input(format!(
            "kettle: started as one of {launched} MPI ranks, but this kettle was built \
             without MPI; build it with `cargo build --release --features mpi`"
        )))
    }

    /// The communicator of all ranks.
    pub(crate) fn comm(&self) -> &dyn Communicator {
        #[cfg(feature = "mpi")]
        return &self.world;
        #[cfg(not(feature = "mpi"))]
        unreachable!("no ranks without MPI")
    }

    /// Whether this rank prints the results.
    pub(crate) fn prints(&self) -> bool {
        self.comm().rank() == 0
    }

    /// Ends every rank after `failure` on this one: the others may be
    /// waiting for this rank in an exchange, and would wait forever. Rank 0
    /// says why at once; on an error in the input, which every rank meets
    /// alike, the others first give rank 0 a moment to end the run, so the
    /// reason is printed once.
    pub(crate) fn fail(&self, failure: &Failure) -> ! {
        use std::io::Write;
        let rank = self.comm().rank();
        if rank == 0 {
            let _ = writeln!(std::io::stderr(), "{failure}");
        } else {
            if failure.exit_code() == crate::failure::EXIT_INPUT {
                // Every rank reads the same input, so rank 0 most likely
                // fails alike: let it say why and abort all first, rather
                // than kill it before it writes. If it does not (its input
                // read differently), this rank says why after all.
                std::thread::sleep(INPUT_FAILURE_GRACE);
            }
            let _ = writeln!(std::io::stderr(), "rank {rank}: {failure}");
        }
        #[cfg(feature = "mpi")]
        self.world.abort(failure.exit_code());
        #[cfg(not(feature = "mpi"))]
        unreachable!("no ranks without MPI")
    }
}

#[cfg(feature = "mpi")]
mod mpi_world {
    //! [`Communicator`] over MPI (rsmpi), on the world communicator.

    use kettle_core::distributed::Communicator;
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::point_to_point::send_receive_into;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator as _, CommunicatorCollectives, Destination, Root, Source};

    use crate::failure::Failure;

    /// MPI, initialised, and its world; finalised when dropped.
    pub(super) struct World {
        world: SimpleCommunicator,
        // Dropped last: finalises MPI.
        _universe: Universe,
    }

    impl World {
        /// Ends every rank with `code` (MPI_Abort).
        pub(super) fn abort(&self, code: u8) -> ! {
            self.world.abort(i32::from(code))
        }

        pub(super) fn initialize() -> Result<World, Failure> {
            let universe = mpi::initialize()
                .ok_or_else(|| Failure::internal("kettle: MPI was already initialised"))?;
            Ok(World {
                world: universe.world(),
                _universe: universe,
            })
        }
    }

    /// Messages larger than this are sent in pieces (MPI counts are `int`s).
    const PIECE: usize = 1 << 30;

    impl Communicator for World {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }

        fn size(&self) -> usize {
            self.world.size() as usize
        }

        fn exchange(&self, partner: usize, send: &[u8], recv: &mut [u8]) {
            let peer = self.world.process_at_rank(partner as i32);
            // The two directions may differ in length (a zero message
            // crosses as nothing), so the pieces follow the longer one; the
            // partner cuts its side the same way.
            let (mut send, mut recv) = (send, recv);
            for _ in 0..send.len().max(recv.len()).div_ceil(PIECE) {
                let (s, s_rest) = send.split_at(send.len().min(PIECE));
                let r_len = recv.len().min(PIECE);
                let (r, r_rest) = std::mem::take(&mut recv).split_at_mut(r_len);
                send_receive_into(s, &peer, r, &peer);
                (send, recv) = (s_rest, r_rest);
            }
        }

        fn sum(&self, values: &mut [f64]) {
            let send = values.to_vec();
            self.world
                .all_reduce_into(&send[..], values, SystemOperation::sum());
        }

        fn gather(&self, data: &[u8]) -> Option<Vec<Vec<u8>>> {
            let root = self.world.process_at_rank(0);
            if self.rank() != 0 {
                root.send(&(data.len() as u64));
                for piece in data.chunks(PIECE) {
                    root.send(piece);
                }
                return None;
            }
            let mut all = vec![data.to_vec()];
            for r in 1..self.size() {
                let from = self.world.process_at_rank(r as i32);
                let (len, _) = from.receive::<u64>();
                let mut part = vec![0u8; len as usize];
                for piece in part.chunks_mut(PIECE) {
                    from.receive_into(piece);
                }
                all.push(part);
            }
            Some(all)
        }

        fn broadcast(&self, data: &mut Vec<u8>) {
            let root = self.world.process_at_rank(0);
            let mut len = data.len() as u64;
            root.broadcast_into(&mut len);
            data.resize(len as usize, 0);
            for piece in data.chunks_mut(PIECE) {
                root.broadcast_into(piece);
            }
        }
    }
}
