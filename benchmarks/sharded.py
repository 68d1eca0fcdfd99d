"""Many classes over several processes: proxies sharded (see_cuda.sharded) against proxies replicated.

    python benchmarks/sharded.py                       # C = 1e5 and 1e6, 1 and 2 gloo processes, this CPU
    python benchmarks/sharded.py --classes 200000 --world 1 2 4 --loss pa
    python benchmarks/sharded.py --quick               # seconds: a smoke run

A step is what a training step does to the loss: the forward and backward of
the SEE (or PA) loss of one global batch of --batch rows split over the
processes, and an Adam step of the proxies (the embeddings are leaves: no
network). Two ways to hold the proxies over W processes:
  sharded:    each process holds C/W proxies and their Adam state; the rows,
              their labels and axes, the loss and dL/drows are communicated
              (a few times N x D per step, whatever C);
  replicated: each process holds all C proxies and their Adam state, computes
              the whole loss on the gathered rows and all-reduces the C x D
              gradient of the proxies (what training does without sharding;
              it moves as much as all-gathering the proxies every step).
One process (W = 1) is the same computation either way, without communication.
Each configuration runs in fresh processes (gloo). Reported per configuration:
the time per step (the slowest process's, median over the timed steps),
each process's peak resident memory (VmHWM) and its resident memory before the
problem was built, and the payload bytes of every collective of a step
(see_cuda.sharded.collectives). The first step's loss of every configuration is
compared with the one-process loss. Writes JSON to --output-dir
(benchmarks/results by default).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS_DIR)
try:
    import see_cuda  # noqa: F401  (an installed copy wins)
except ImportError:  # a source checkout run without installing
    sys.path.insert(1, os.path.dirname(BENCHMARKS_DIR))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from see_cuda import ProxyAnchorSettings, dispatch  # noqa: E402
from see_cuda.sharded import ClassShard, ShardedSEEProxyAnchorLoss, record_communication, sharded_see_loss  # noqa: E402
from see_cuda.sharded.collectives import all_gather_rows, all_reduce  # noqa: E402
from see_cuda.sharded.proxies import initial_proxies  # noqa: E402

import report  # noqa: E402

DEFAULT_RESULTS = os.path.join(BENCHMARKS_DIR, "results")
SAMPLES_PER_CLASS = 4  # a class-balanced batch, as training draws them
LEARNING_RATE = 1e-2
INIT_SEED, FRAMES_SEED = 0, 1
LOSS_RTOL = 1e-4  # float32 losses summed in another order and chunking: a few ulp of the terms' sum


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--world", type=int, nargs="+", default=[1, 2], help="numbers of processes")
    parser.add_argument("--batch", type=int, default=180, help="rows of the global batch (split over processes)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--loss", choices=("see", "pa"), default="see")
    parser.add_argument("--n-expansion", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--chunk-mib", type=float, default=64, help="budget of a chunk's similarity matrix")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--output-dir", default=DEFAULT_RESULTS)
    parser.add_argument("--quick", action="store_true", help="C = 3000, 1 timed step: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.classes, args.steps, args.warmup = [3000], 1, 1
    for world in args.world:
        if args.batch % world:
            parser.error(f"--batch {args.batch} must be divisible by every --world ({world})")
    return args


def rss_bytes(field: str) -> int:
    """A line of /proc/self/status in bytes: VmRSS (now) or VmHWM (the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def global_batch(step: int, setting: dict):
    """The step's rows and labels: B/4 random classes, 4 rows each."""
    generator = torch.Generator().manual_seed(10_000 + step)
    B, C = setting["batch"], setting["classes"]
    classes = torch.randperm(C, generator=generator)[:B // SAMPLES_PER_CLASS]
    labels = classes.repeat_interleave(SAMPLES_PER_CLASS)
    labels = torch.cat([labels, classes[:B - labels.numel()]])
    return torch.randn(B, setting["dim"], generator=generator), labels


def loss_options(setting: dict) -> dict:
    if setting["loss"] == "pa":
        return dict(mode="none")
    return dict(n_expansion=setting["n_expansion"], ratio=setting["ratio"])


class ShardedStep:
    """Each process holds its classes' proxies and their Adam state."""

    def __init__(self, setting: dict, rank: int, world: int):
        # rho_min = rho_max: the fraction expanded is the same at every epoch.
        schedule = dict(mode="none") if setting["loss"] == "pa" else dict(
            n_expansion=setting["n_expansion"], rho_min=setting["ratio"], rho_max=setting["ratio"])
        self.loss_fn = ShardedSEEProxyAnchorLoss(
            setting["classes"], setting["dim"], chunk_bytes=setting["chunk_bytes"], init_seed=INIT_SEED,
            generator=torch.Generator().manual_seed(FRAMES_SEED), **schedule)
        self.optimizer = torch.optim.Adam(self.loss_fn.parameters(), lr=LEARNING_RATE)

    def __call__(self, rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(rows, labels)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class ReplicatedStep:
    """Each process holds every proxy and its Adam state; the proxies' gradient is all-reduced."""

    def __init__(self, setting: dict, rank: int, world: int):
        C = setting["classes"]
        self.setting, self.rank, self.world = setting, rank, world
        self.proxies = torch.nn.Parameter(initial_proxies(ClassShard(0, C, C), setting["dim"], INIT_SEED))
        self.optimizer = torch.optim.Adam([self.proxies], lr=LEARNING_RATE)
        # Every process computes the whole loss by itself: a group of one process each.
        groups = [dist.new_group([r]) for r in range(world)]
        self.alone = groups[rank]
        self.generator = torch.Generator().manual_seed(FRAMES_SEED)  # the same frames everywhere

    def __call__(self, rows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        gathered = all_gather_rows(rows).split(rows.shape[0])
        all_rows = torch.cat(gathered[:self.rank] + (rows,) + gathered[self.rank + 1:])  # this process's rows live
        loss = sharded_see_loss(all_rows, all_gather_rows(labels), self.proxies, self.setting["classes"],
                                group=self.alone, generator=self.generator,
                                chunk_bytes=self.setting["chunk_bytes"], **loss_options(self.setting))
        loss.backward()
        all_reduce(self.proxies.grad).div_(self.world)
        self.optimizer.step()
        return loss.detach()


METHODS = {"sharded": ShardedStep, "replicated": ReplicatedStep}


def worker(rank: int, world: int, init_file: str, method: str, setting: dict, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(setting["threads_per_process"])
        rss_at_start = rss_bytes("VmRSS")
        step = METHODS[method](setting, rank, world)
        local = slice(rank * setting["batch"] // world, (rank + 1) * setting["batch"] // world)
        times, losses, communication = [], [], []
        for index in range(setting["warmup"] + setting["steps"]):
            rows, labels = global_batch(index, setting)
            rows = rows[local].clone().requires_grad_()
            dist.barrier()
            with record_communication() as log:
                begin = time.perf_counter()
                loss = step(rows, labels[local])
                elapsed = time.perf_counter() - begin
            losses.append(loss.item())
            if index >= setting["warmup"]:
                times.append(elapsed)
                communication.append(log.calls)
        results[rank] = {"times_s": times, "first_loss": losses[0], "communication": communication,
                         "rss_at_start_bytes": rss_at_start, "peak_rss_bytes": rss_bytes("VmHWM")}
    finally:
        dist.destroy_process_group()


def run(method: str, world: int, setting: dict) -> dict:
    with tempfile.TemporaryDirectory() as folder, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(world, os.path.join(folder, "rendezvous"), method, setting, results), nprocs=world,
                 join=True)
        per_rank = [results[rank] for rank in range(world)]
    step_times = [max(ranks) for ranks in zip(*(r["times_s"] for r in per_rank))]  # the slowest process's
    calls = per_rank[0]["communication"]
    bytes_per_step = [sum(nbytes for _, nbytes in step) for step in calls]
    by_collective: dict = {}
    for name, nbytes in calls[0]:
        by_collective[name] = by_collective.get(name, 0) + nbytes
    return {
        "method": method if world > 1 else "one process",
        "world": world,
        "median_step_s": statistics.median(step_times),
        "step_times_s": step_times,
        "first_loss": per_rank[0]["first_loss"],
        "first_loss_per_process": [r["first_loss"] for r in per_rank],
        "bytes_per_step": bytes_per_step[0],
        "bytes_per_step_every_step": bytes_per_step,
        "bytes_by_collective": by_collective,
        "peak_rss_bytes": [r["peak_rss_bytes"] for r in per_rank],
        "rss_at_start_bytes": [r["rss_at_start_bytes"] for r in per_rank],
        "proxy_state_bytes_per_process": 16 * setting["dim"] * (
            setting["classes"] if method == "replicated" else -(-setting["classes"] // world)),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    rows_scored = args.batch + (0 if args.loss == "pa" else round(args.batch * args.ratio) * args.n_expansion)
    settings = {
        "batch": args.batch, "dim": args.dim, "loss": args.loss, "n_expansion": args.n_expansion,
        "ratio": args.ratio, "chunk_bytes": int(args.chunk_mib * 2**20), "steps": args.steps,
        "warmup": args.warmup, "rows_scored": rows_scored, "quick": args.quick, "device": "cpu", "backend": "gloo",
        "share": dispatch.plan("auto", torch.device("cpu"), ProxyAnchorSettings()).share.__name__,
        "optimizer": f"Adam(lr={LEARNING_RATE}) on the proxies", "memory": "VmHWM (peak resident set) per process",
        "bytes": "payload of every collective a process makes in one step (see_cuda.sharded.collectives)",
    }
    output = {"date": datetime.date.today().isoformat(), "machine": report.machine_info("cpu"),
              "settings": settings, "results": [], "checks_passed": True}
    print(f"B = {args.batch} rows per step ({rows_scored} scored with the synthetic ones), D = {args.dim}, "
          f"loss {args.loss}, share by {settings['share']}, chunks of {args.chunk_mib:g} MiB")
    print(f"{'C':>9} {'W':>2} {'method':>11} {'s/step':>8} {'MiB sent/step':>14} {'peak MiB/process':>17}")
    for classes in args.classes:
        one_process_loss = None
        for world in args.world:
            for method in ("sharded", "replicated") if world > 1 else ("sharded",):
                setting = dict(settings, classes=classes, threads_per_process=max(1, threads // world))
                result = dict(run(method, world, setting), classes=classes)
                if one_process_loss is None and world == 1:
                    one_process_loss = result["first_loss"]
                reference_loss = one_process_loss if one_process_loss is not None else result["first_loss"]
                result["loss_matches_one_process"] = all(
                    abs(loss - reference_loss) <= LOSS_RTOL * abs(reference_loss)
                    for loss in result["first_loss_per_process"])
                output["checks_passed"] &= result["loss_matches_one_process"]
                output["results"].append(result)
                peak = "/".join(f"{b / 2**20:.0f}" for b in result["peak_rss_bytes"])
                print(f"{classes:>9} {world:>2} {result['method']:>11} {result['median_step_s']:>8.2f} "
                      f"{result['bytes_per_step'] / 2**20:>14.3f} {peak:>17}"
                      + ("" if result["loss_matches_one_process"] else "  LOSS DIFFERS"), flush=True)
    os.makedirs(args.output_dir, exist_ok=True)
    classes = "-".join(str(c) for c in args.classes)
    name = f"sharded_cpu_{args.loss}_C{classes}_{output['date']}{'_quick' if args.quick else ''}.json"
    path = os.path.join(args.output_dir, name)
    with open(path, "w") as out:
        json.dump(output, out, indent=1)
    print(f"wrote {path}")
    return 0 if output["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
