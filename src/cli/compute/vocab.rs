//! `compute --loss cross-entropy --vocab-shards K` and `--vocab-parallel mpi`: logits
//! `[N, C]` with class indices, the class axis cut into near-equal shards
//! ([`VocabShard::even`]). `--vocab-shards` runs the K shards in this process, merged on
//! the host; `--vocab-parallel mpi` runs this process's shard as one rank of `mpirun`,
//! merged with MPI's all-reduce, and rank 0 alone writes the outputs (the gradient
//! gathered from every rank).

use std::path::Path;

use wgpu_loss::{Backend, CrossEntropy, Reduction, ShardBatch, Upstream, VocabShard};

use super::build::cross_entropy;
use super::inputs::{self, class_input, class_targets};
use super::outputs::{summary, write, Computed};
use super::runner::Runner;
use crate::cli::args::{ComputeArgs, VocabParallelArg};
use crate::cli::data::{InputData, TargetData};

/// What every rank and every shard shares: the loss, the logits, the targets.
struct Call {
    loss: CrossEntropy,
    input: inputs::InputArray,
    targets: TargetData,
    rows: usize,
    classes: usize,
}

impl Call {
    /// Reads and checks the files (options already checked).
    fn read(args: &ComputeArgs) -> Result<Self, String> {
        let input = inputs::input(args)?;
        let &[rows, classes] = &input.shape[..] else {
            return Err(format!(
                "--vocab-shards / --vocab-parallel take logits [N, C]; --input {} has shape {:?}",
                args.input.display(),
                input.shape
            ));
        };
        let axis = class_input(&input.shape, &args.input)?;
        let target = args.target.as_deref().unwrap_or(Path::new(""));
        let targets = class_targets(target, &axis)?;
        if matches!(targets, TargetData::F32(_)) {
            return Err(format!(
                "--vocab-shards / --vocab-parallel take class-index targets (int64 or int32 [{rows}]); --target {} holds float32",
                target.display()
            ));
        }
        let reduction = args.reduction.map_or(Reduction::Mean, Reduction::from);
        let loss = cross_entropy(args, CrossEntropy::default().reduction(reduction), &axis)?;
        Ok(Self {
            loss,
            input,
            targets,
            rows,
            classes,
        })
    }

    /// Upstream 1 (all ones for reduction none), when `--grad-out` asks for a gradient.
    fn upstream<'a>(&self, args: &ComputeArgs, ones: &'a [f32]) -> Option<Upstream<&'a [f32]>> {
        args.grad_out.as_ref()?;
        Some(match self.loss.reduction {
            Reduction::None => Upstream::Values(ones),
            _ => Upstream::Scalar(1.0),
        })
    }

    /// The columns of `shard`, `[N, shard.len()]`.
    fn columns(&self, shard: VocabShard) -> InputData {
        fn cut<T: Copy>(values: &[T], classes: usize, shard: VocabShard) -> Vec<T> {
            values
                .chunks_exact(classes.max(1))
                .flat_map(|row| row[shard.start()..shard.end()].iter().copied())
                .collect()
        }
        match &self.input.data {
            InputData::F32(v) => InputData::F32(cut(v, self.classes, shard)),
            InputData::F16(v) => InputData::F16(cut(v, self.classes, shard)),
        }
    }
}

/// Makes the backend, given this process's local rank among the processes of its machine
/// (MPI), after MPI is up.
type MakeRunner<'a> = &'a dyn Fn(Option<usize>) -> Result<Runner, String>;

/// Runs the sharded `compute`; `runner` makes the backend.
pub fn run(args: &ComputeArgs, runner: MakeRunner<'_>) -> Result<(), String> {
    match args.vocab_parallel {
        Some(VocabParallelArg::Mpi) => over_mpi(args, runner),
        None => in_process(args, runner(None)?.backend(), args.vocab_shards.unwrap_or(1)),
    }
}

/// K shards in this process, each on `backend`.
fn in_process(args: &ComputeArgs, backend: Backend<'_>, count: usize) -> Result<(), String> {
    let call = Call::read(args)?;
    if count > call.classes {
        return Err(format!(
            "--vocab-shards {count} is more shards than the {} classes of --input {}",
            call.classes,
            args.input.display()
        ));
    }
    let shards: Vec<VocabShard> = (0..count)
        .map(|k| VocabShard::even(call.classes, count, k))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let parts: Vec<InputData> = shards.iter().map(|&s| call.columns(s)).collect();
    let batches: Vec<ShardBatch<'_>> = shards
        .iter()
        .zip(&parts)
        .map(|(&shard, part)| ShardBatch {
            backend,
            shard,
            logits: part.as_input(),
        })
        .collect();
    let ones = vec![1.0_f32; call.rows];
    let result = call
        .loss
        .vocab_parallel(&batches, call.targets.as_targets(), call.upstream(args, &ones))
        .map_err(|e| e.to_string())?;
    let computed = Computed {
        loss: result.loss,
        grad: args.grad_out.as_ref().map(|_| result.grad),
    };
    write(args, &call.input.shape, &computed)?;
    println!("{}", summary(&computed.loss));
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn over_mpi(_: &ComputeArgs, _: MakeRunner<'_>) -> Result<(), String> {
    Err("--vocab-parallel mpi needs a wgpu-loss built with MPI: cargo build --release --features mpi (Debian: apt-get install openmpi-bin libopenmpi-dev libclang-dev)".into())
}

/// This process's shard as one rank of the MPI job.
#[cfg(feature = "mpi")]
fn over_mpi(args: &ComputeArgs, runner: MakeRunner<'_>) -> Result<(), String> {
    use wgpu_loss::mpi::rsmpi::traits::Communicator;
    use wgpu_loss::mpi::{abort_on_panic, all_ok, gather_shards, MpiCollectives};

    let universe = wgpu_loss::mpi::rsmpi::initialize().ok_or("MPI was already initialised in this process")?;
    abort_on_panic();
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size() as usize);
    // Ranks on one machine take its GPUs round robin (lavapipe: the one adapter).
    let local_rank = world.split_shared(rank).rank() as usize;
    // Every rank stops at the same step when any fails (none waits in a collective).
    let agree = |step: Result<(), String>| -> Result<(), String> {
        let ok = step.is_ok();
        match (step, all_ok(&world, ok)) {
            (Err(e), _) => Err(format!("rank {rank} of {size}: {e}")),
            (Ok(()), false) => Err(format!("rank {rank} of {size}: another rank failed")),
            (Ok(()), true) => Ok(()),
        }
    };
    let mut clock = Clock::start();
    let read = Call::read(args).and_then(|call| {
        if size > call.classes {
            return Err(format!(
                "{size} ranks are more than the {} classes of the vocabulary",
                call.classes
            ));
        }
        Ok(call)
    });
    let runner = read
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|_| runner(Some(local_rank)));
    agree(runner.as_ref().map(|_| ()).map_err(Clone::clone))?;
    let (call, runner) = (read?, runner?);
    let shard = VocabShard::even(call.classes, size, rank as usize).map_err(|e| e.to_string())?;
    let part = call.columns(shard);
    let batch = wgpu_loss::Batch::new(part.as_input(), [call.rows, shard.len()], call.targets.as_targets());
    clock.lap("read");
    fail_point("partials");
    let records = call.loss.shard_partials(runner.backend(), shard, &batch);
    agree(records.as_ref().map(|_| ()).map_err(|e| e.to_string()))?;
    let merge = call.loss.vocab_merge(call.classes).map_err(|e| e.to_string())?;
    clock.lap("partials");
    let merged = merge
        .merge(&mut MpiCollectives::new(&world), &records.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let ones = vec![1.0_f32; call.rows];
    clock.lap("merge");
    let finished = call
        .loss
        .shard_finish(runner.backend(), shard, &batch, &merged, call.upstream(args, &ones));
    agree(finished.as_ref().map(|_| ()).map_err(|e| e.to_string()))?;
    let finished = finished.map_err(|e| e.to_string())?;
    clock.lap("finish");
    let grad = match args.grad_out {
        Some(_) => gather_shards(&world, 0, shard, call.rows, &finished.grad).map_err(|e| e.to_string())?,
        None => None,
    };
    clock.lap("gather");
    if rank != 0 {
        return Ok(());
    }
    clock.report(size);
    let computed = Computed {
        loss: finished.loss,
        grad,
    };
    write(args, &call.input.shape, &computed)?;
    println!("{}", summary(&computed.loss));
    Ok(())
}

/// In debug builds only (the tests'), panics where `WGPU_LOSS_TEST_PANIC` names `step`:
/// the MPI tests make one rank panic mid-job and check that the job ends (every rank
/// stopped by [`wgpu_loss::mpi::abort_on_panic`]) instead of waiting in a collective.
#[cfg(feature = "mpi")]
fn fail_point(step: &str) {
    if cfg!(debug_assertions) && std::env::var("WGPU_LOSS_TEST_PANIC").is_ok_and(|at| at == step) {
        panic!("WGPU_LOSS_TEST_PANIC={step}: a test's panic in this rank's {step} step");
    }
}

/// The seconds of each step of an MPI run, printed by rank 0 to stderr when
/// `WGPU_LOSS_MPI_TIMINGS` is set (BENCHMARKS.md's rank timings; stdout keeps its one line).
#[cfg(feature = "mpi")]
struct Clock {
    last: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

#[cfg(feature = "mpi")]
impl Clock {
    fn start() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((step, (now - self.last).as_secs_f64()));
        self.last = now;
    }

    fn report(&self, ranks: usize) {
        if std::env::var_os("WGPU_LOSS_MPI_TIMINGS").is_some() {
            let laps: Vec<String> = self
                .laps
                .iter()
                .map(|(s, t)| format!("{s} {:.1} ms", t * 1e3))
                .collect();
            eprintln!("timings (rank 0 of {ranks}): {}", laps.join(", "));
        }
    }
}
