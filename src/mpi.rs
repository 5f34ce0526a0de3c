//! The vocab-parallel merge over MPI (cargo feature `mpi`, through rsmpi over the system's
//! MPI): [`MpiCollectives`] gives [`crate::VocabMerge::merge`] its collectives as
//! `MPI_Allreduce` on a communicator, and [`gather_shards`] assembles the shards'
//! gradient slices on one rank.
//!
//! ```no_run
//! use wgpu_loss::mpi::{MpiCollectives, gather_shards};
//! use wgpu_loss::{Backend, Batch, CrossEntropy, Upstream, VocabShard};
//! use wgpu_loss::mpi::rsmpi::traits::Communicator;
//!
//! let universe = wgpu_loss::mpi::rsmpi::initialize().expect("MPI");
//! let world = universe.world();
//! let (rank, size) = (world.rank() as usize, world.size() as usize);
//! let (rows, vocab) = (4, 10);
//! let shard = VocabShard::even(vocab, size, rank).unwrap();
//! let logits = vec![0.5_f32; rows * shard.len()]; // this rank's columns
//! let targets = vec![1_i64, 7, 3, 9];
//! let loss = CrossEntropy::default().label_smoothing(0.1);
//! let batch = Batch::new(logits.as_slice(), [rows, shard.len()], targets.as_slice());
//! let records = loss.shard_partials(Backend::Cpu, shard, &batch).unwrap();
//! let merged = loss.vocab_merge(vocab).unwrap().merge(&mut MpiCollectives::new(&world), &records).unwrap();
//! let out = loss.shard_finish(Backend::Cpu, shard, &batch, &merged, Some(Upstream::Scalar(1.0))).unwrap();
//! let whole_grad = gather_shards(&world, 0, shard, rows, &out.grad).unwrap(); // Some([rows, vocab]) on rank 0
//! ```

pub use ::mpi as rsmpi;

use ::mpi::collective::SystemOperation;
use ::mpi::datatype::PartitionMut;
use ::mpi::traits::{Communicator, CommunicatorCollectives, Root};
use ::mpi::Count;

use crate::api::merge::Collectives;
use crate::api::shard::VocabShard;
use crate::error::{LossError, Result};

/// Elements one collective call moves at most (MPI counts are `int`).
const MAX_COUNT: usize = 1 << 28;

/// [`Collectives`] over an MPI communicator: every rank of it calls the same merges in the
/// same order. MPI's reduction of a given communicator size and count runs the same
/// algorithm every time (it is chosen by those, not by timing), so results repeat.
pub struct MpiCollectives<'c, C: Communicator> {
    comm: &'c C,
}

impl<'c, C: Communicator> MpiCollectives<'c, C> {
    /// The collectives of `comm`.
    pub fn new(comm: &'c C) -> Self {
        Self { comm }
    }
}

fn all_reduce<C: Communicator, T: ::mpi::datatype::Equivalence + Copy + Default>(
    comm: &C,
    values: &mut [T],
    op: SystemOperation,
) {
    for chunk in values.chunks_mut(MAX_COUNT) {
        let send = chunk.to_vec();
        comm.all_reduce_into(&send[..], chunk, op);
    }
}

impl<C: Communicator> Collectives for MpiCollectives<'_, C> {
    fn all_max_u32(&mut self, values: &mut [u32]) -> Result<()> {
        all_reduce(self.comm, values, SystemOperation::max());
        Ok(())
    }

    fn all_sum_f32(&mut self, values: &mut [f32]) -> Result<()> {
        all_reduce(self.comm, values, SystemOperation::sum());
        Ok(())
    }
}

/// Makes a panic anywhere in this process (a bug, a device lost, an error wgpu raises
/// outside an error scope) end the whole MPI job with `MPI_Abort` after the panic message
/// is printed: unwinding would run `MPI_Finalize`, which waits for ranks that are
/// themselves waiting in a collective for this one — a hang. Call it once, after
/// [`rsmpi::initialize`]. It holds for the rest of the process, panics a caller means to
/// catch (`catch_unwind`) included, while MPI is initialised and not finalised; before and
/// after that a panic unwinds as usual.
pub fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if ::mpi::environment::is_initialized() && !::mpi::environment::is_finalized() {
            ::mpi::topology::SimpleCommunicator::world().abort(PANIC_EXIT)
        }
    }));
}

/// The exit code [`abort_on_panic`] gives the job (Rust's own for a panic).
const PANIC_EXIT: i32 = 101;

/// Whether every rank of `comm` is `ok`: one MAX all-reduce, so that a rank that failed
/// (a bad file, a device error) stops every rank at the same step instead of leaving the
/// others waiting in a collective.
pub fn all_ok<C: Communicator>(comm: &C, ok: bool) -> bool {
    let mut failed = [u32::from(!ok)];
    all_reduce(comm, &mut failed, SystemOperation::max());
    failed[0] == 0
}

/// Gathers every rank's slice `[rows, shard.len()]` of a `[rows, V]` array (each rank's
/// even shard of V, [`VocabShard::even`], in rank order) on rank `root`: `Some` the
/// whole array there, `None` elsewhere. Rows travel in chunks whose counts fit MPI's. The
/// ranks check their slices together first: when any rank's is wrong, every rank returns
/// an error (none is left waiting in the gather).
pub fn gather_shards<C: Communicator>(
    comm: &C,
    root: i32,
    shard: VocabShard,
    rows: usize,
    slice: &[f32],
) -> Result<Option<Vec<f32>>> {
    check_together(comm, root, shard, (rows, slice))?;
    let size = comm.size() as usize;
    let classes = shard.classes();
    let widths: Vec<usize> = (0..size)
        .map(|r| VocabShard::even(classes, size, r).map_or(0, |s| s.len()))
        .collect();
    let per_chunk = (MAX_COUNT / classes.max(1)).max(1);
    let process = comm.process_at_rank(root);
    let mut whole = (comm.rank() == root).then(|| Vec::with_capacity(rows * classes));
    for begin in (0..rows).step_by(per_chunk) {
        let len = per_chunk.min(rows - begin);
        let cols = shard.len();
        let send = &slice[begin * cols..(begin + len) * cols];
        match &mut whole {
            Some(whole) => {
                let counts: Vec<Count> = widths.iter().map(|w| (w * len) as Count).collect();
                let displs: Vec<Count> = counts
                    .iter()
                    .scan(0, |at, &c| {
                        let here = *at;
                        *at += c;
                        Some(here)
                    })
                    .collect();
                let mut gathered = vec![0.0_f32; len * classes];
                process.gather_varcount_into_root(send, &mut PartitionMut::new(&mut gathered[..], counts, &displs[..]));
                // Rank-major [rank][row][col] into row-major [row][V].
                let mut offsets: Vec<usize> = displs.iter().map(|&d| d as usize).collect();
                for _ in 0..len {
                    for (r, &w) in widths.iter().enumerate() {
                        whole.extend_from_slice(&gathered[offsets[r]..offsets[r] + w]);
                        offsets[r] += w;
                    }
                }
            }
            None => process.gather_varcount_into(send),
        }
    }
    Ok(whole)
}

/// The checks of [`gather_shards`], made by every rank together (the same collectives on
/// every rank, whatever its own result): this rank's shard and slice, and that every rank
/// gathers the same rows of the same V. Fails on every rank when one rank's check fails.
fn check_together<C: Communicator>(
    comm: &C,
    root: i32,
    shard: VocabShard,
    (rows, slice): (usize, &[f32]),
) -> Result<()> {
    let checked = check_rank_shard(comm, shard).and_then(|()| {
        if Some(slice.len()) == rows.checked_mul(shard.len()) {
            return Ok(());
        }
        Err(LossError::LengthMismatch {
            what: "shard gradient",
            shape: format!("[{rows}, {}]", shard.len()),
            expected: rows.saturating_mul(shard.len()),
            actual: slice.len(),
        })
    });
    // Every rank must gather the same rows of the same V: MAX of (x, !x) is (max, !min).
    let (rows64, classes) = (rows as u64, shard.classes() as u64);
    let own = [rows64, classes, !rows64, !classes];
    let mut sizes = own;
    all_reduce(comm, &mut sizes, SystemOperation::max());
    let agreed = sizes == own;
    let checked = checked.and_then(|()| {
        if agreed {
            return Ok(());
        }
        Err(LossError::BadShard {
            detail: format!(
                "the ranks gather different shapes: rows {}..={}, V {}..={} (this rank: [{rows}, {}])",
                !sizes[2],
                sizes[0],
                !sizes[3],
                sizes[1],
                shard.classes()
            ),
        })
    });
    let everyone = all_ok(comm, checked.is_ok());
    checked?;
    if !everyone {
        return Err(LossError::BadShard {
            detail: format!("another rank's slice to gather on rank {root} is wrong"),
        });
    }
    Ok(())
}

/// Fails unless `shard` is this rank's even shard of its V over `comm` (what
/// [`gather_shards`] assumes).
fn check_rank_shard<C: Communicator>(comm: &C, shard: VocabShard) -> Result<()> {
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    let want = VocabShard::even(shard.classes(), size, rank)?;
    if want != shard {
        return Err(LossError::BadShard {
            detail: format!(
                "rank {rank} of {size} holds classes [{}, {}), not its even shard [{}, {})",
                shard.start(),
                shard.end(),
                want.start(),
                want.end()
            ),
        });
    }
    Ok(())
}
