"""The pair job's real path at 10,000 / 100,000 / 1,000,000 pairs on this machine: sources, probe and clip pairs,
decode / segment / sample actors, calibration, proposal and routing, pair files, review files and report.

So that the run measures the pipeline rather than network FLOPs it uses the BENCHMARK-ONLY backends
``bench_ground_truth`` (configs/bench_scale.yaml, reid_ray/models/bench_ground_truth.py): candidates and
embeddings come from the synthetic generator's ground truth, decode hands on placeholders. All video ids point at
one small real synthetic file (probed for size, fps and length; review PNGs are drawn from its frames); each id is
its own ground-truth scene (each id at its own hard link of the file: the job refuses a uri listed twice).

Each size runs in a fresh subprocess (its own Ray), sized in videos from the pairs per video of the size before
(or ``PAIRS_PER_VIDEO``, measured on this profile). Printed per size and written to ``<out>/bench_scale.json``:
pairs, wall seconds, pairs/s, driver peak RSS, peak of the summed RSS and of the summed PSS (shared pages counted
once: what the processes take together) of every Ray process the run started (its raylet, GCS and workers; /proc
sampled every 0.5 s, PSS every 5 s; the sampler's own CPU is reported apart from the driver's), object-store spill,
review PNGs drawn, per-stage clocks and CPU seconds of the driver and every Ray process, and the machine's load average (the machine is shared: wall
seconds depend on what else runs, CPU seconds much less). A size that runs past ``--max-seconds``
is stopped and reported with the clip pairs it finished.

    python bench/bench_scale.py --out /tmp/bench_scale [--sizes 10000 100000 1000000] [--max-seconds 900]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "bench_scale.yaml"
PAIRS_PER_VIDEO = 160  # measured on configs/bench_scale.yaml (20 clip pairs per video, ~8 pairs each)
SOURCE = {"width": 640, "height": 200, "fps": 10.0, "n_frames": 300, "n_people": 4}  # the one real file
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


# ------------------------------------------------------------------------------------------- memory


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(d))
    return out


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _rss(pid: int) -> tuple[int, int]:
    """(resident, resident minus shared) bytes."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            fields = f.read().split()
        return int(fields[1]) * PAGE, (int(fields[1]) - int(fields[2])) * PAGE
    except (OSError, IndexError, ValueError):
        return 0, 0


def _name(pid: int) -> str:
    """What a process is: a Ray worker's title (``ray::MapWorker(...)``, ``ray::IDLE``) or its program."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    first = argv[0].decode(errors="replace")
    if first.startswith("ray::"):
        return first.split(" ")[0][:60]
    prog = " ".join(a.decode(errors="replace") for a in argv[:3])
    for known in ("raylet", "gcs_server", "dashboard", "log_monitor", "runtime_env", "monitor.py", "default_worker"):
        if known in prog:
            return known
    return Path(first).name[:40]


def _pss(pid: int) -> int:
    """Proportional set size: each shared page (object store, libraries) counted once across the processes that
    map it, so the sum over processes is what they take together."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


class MemorySampler:
    """Peak RSS of this process, and peak of the summed RSS of all its descendants: a local ``ray.init`` starts
    the GCS and raylet as children, the raylet the workers. Resident-minus-shared is kept too (the object store
    is shared memory every process that maps it counts in its RSS)."""

    def __init__(self, every_s: float = 0.5, pss_every: int = 10) -> None:
        self.every_s, self.pss_every = every_s, pss_every  # PSS (smaps_rollup) costs far more than RSS to read
        self.ticks = 0
        self.cpu_s = 0.0  # this sampler's own CPU seconds (a thread of the driver), reported apart from the driver's
        self.driver_peak = self.driver_unshared_peak = self.ray_peak = self.ray_unshared_peak = self.ray_pss_peak = 0
        self.ray_processes_peak = 0
        self.names: dict[int, str] = {}
        self.ray_cpu_s: dict[int, float] = {}  # pid -> CPU seconds at its last sample (the machine is shared:
        # CPU seconds per pair do not depend on what else runs, wall seconds do)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        me = os.getpid()
        driver = _rss(me)  # resident counts the object store pages the driver has read (shared): unshared too
        self.driver_peak = max(self.driver_peak, driver[0])
        self.driver_unshared_peak = max(self.driver_unshared_peak, driver[1])
        kids = _children()
        todo, seen = list(kids.get(me, [])), []
        while todo:
            pid = todo.pop()
            seen.append(pid)
            todo += kids.get(pid, [])
        sizes = [_rss(p) for p in seen]
        self.ray_peak = max(self.ray_peak, sum(s[0] for s in sizes))
        self.ray_unshared_peak = max(self.ray_unshared_peak, sum(s[1] for s in sizes))
        if self.ticks % self.pss_every == 0:
            self.ray_pss_peak = max(self.ray_pss_peak, sum(_pss(p) for p in seen))
        self.ticks += 1
        self.ray_processes_peak = max(self.ray_processes_peak, len(seen))
        for p in seen:
            self.ray_cpu_s[p] = max(self.ray_cpu_s.get(p, 0.0), _cpu_s(p))
            name = _name(p)
            if name not in ("?", "ray::IDLE") or p not in self.names:  # a worker's title names the task it last ran
                self.names[p] = name

    def cpu_by_name(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p, s in self.ray_cpu_s.items():
            out[self.names.get(p, "?")] = round(out.get(self.names.get(p, "?"), 0.0) + s, 1)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            t0 = time.thread_time()
            self.sample()
            self.cpu_s += time.thread_time() - t0


def spill_stats() -> dict:
    """Object-store spill of the running local Ray, from its memory summary."""
    import ray
    from ray._private.internal_api import memory_summary

    try:  # this run's own Ray: other local clusters may be running on a shared machine
        text = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    except Exception as err:  # a measurement that failed is reported, not fatal
        return {"error": repr(err)}
    spilled = re.search(r"Spilled ([\d.]+) MiB, (\d+) objects", text)
    restored = re.search(r"Restored ([\d.]+) MiB, (\d+) objects", text)
    return {"spilled_mib": float(spilled.group(1)) if spilled else 0.0, "spilled_objects": int(spilled.group(2)) if spilled else 0,
            "restored_mib": float(restored.group(1)) if restored else 0.0, "summary": text.strip()[-600:]}


# ------------------------------------------------------------------------------------------- one size


class TimeUp(Exception):
    pass


def source_file(folder: Path) -> Path:
    """The one small real synthetic video every bench id points at (generated once)."""
    from reid_ray.video.synthetic import SyntheticSpec, generate

    path = folder / "bench_source.mp4"
    if not path.exists():
        generate(SyntheticSpec(video_id="bench_source", **SOURCE), folder)
    return path


def write_manifest(path: Path, n_videos: int, source: Path) -> None:
    """N video ids, each at its own hard link of the one file (the job refuses a uri listed twice)."""
    links = path.parent / "videos"
    links.mkdir(exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "uri", "license"])
        for i in range(n_videos):
            vid = f"bench_{i:07d}"
            link = links / f"{vid}.mp4"
            if not link.exists():
                os.link(source, link)
            w.writerow([vid, str(link), "synthetic"])


def run_one(n_videos: int, out: Path, source: Path, max_seconds: float, overrides: list[str]) -> dict:
    """One size in this process: the job as ``jobs/generate_pairs.py`` runs it, measured."""
    import ray

    from reid_ray.config import load_config
    from reid_ray.pairs_job import run_pairs_job

    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    write_manifest(manifest, n_videos, source)
    cfg = load_config(CONFIG, overrides)
    result: dict = {"videos": n_videos, "load_avg_start": os.getloadavg()}

    def time_up(*_):
        raise TimeUp()

    signal.signal(signal.SIGALRM, time_up)
    signal.alarm(int(max_seconds))
    t0 = time.perf_counter()
    with MemorySampler() as mem:
        try:
            report = run_pairs_job(cfg, str(manifest), out / "job")
            result["finished"] = True
        except TimeUp:
            report, result["finished"] = None, False
        finally:
            signal.alarm(0)
        wall = time.perf_counter() - t0
        mem.sample()
        result["spill"] = spill_stats() if ray.is_initialized() else {}
    ray.shutdown()
    job = out / "job"
    result.update(
        wall_s=round(wall, 1),
        driver_peak_mib=round(mem.driver_peak / MIB),
        driver_unshared_peak_mib=round(mem.driver_unshared_peak / MIB),
        driver_maxrss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        ray_peak_mib=round(mem.ray_peak / MIB),
        ray_unshared_peak_mib=round(mem.ray_unshared_peak / MIB),
        ray_pss_peak_mib=round(mem.ray_pss_peak / MIB),
        ray_processes_peak=mem.ray_processes_peak,
        driver_cpu_s=round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - mem.cpu_s, 1),  # the job's driver alone
        sampler_cpu_s=round(mem.cpu_s, 1),
        ray_cpu_s=round(sum(mem.ray_cpu_s.values()), 1),
        ray_cpu_s_by_process=mem.cpu_by_name(),
        load_avg_end=os.getloadavg(),
        clip_pairs_finished=sum(1 for _ in (job / "calibration").rglob("*.parquet")),
        review_pngs=sum(1 for _ in (job / "review").glob("*.png")),
    )
    if report:
        result.update(
            pairs=report["dataset_card"]["pairs"],
            pairs_per_s=round(report["dataset_card"]["pairs"] / wall, 1),
            by_label=report["dataset_card"]["by_label"],
            to_human_review=report["routing"]["to_human_review"],
            review_tasks=report["review_tasks"],
            errors=report["errors"]["total"],
            stages=report["stages"],
            model_stages_wall_s=report["this_run"]["model_stages"]["wall_s"],
            job_seconds=report["seconds"],
        )
    return result


# ------------------------------------------------------------------------------------------- driver


def row(size: int, r: dict) -> str:
    spill = r.get("spill", {}).get("spilled_mib", float("nan"))
    pairs = r.get("pairs", f"{r.get('clip_pairs_finished', 0)} clip pairs (stopped)")
    rate = r.get("pairs_per_s", float("nan"))
    return (f"{size:>9} {str(pairs):>22} {r['wall_s']:>8.1f} {rate:>8.1f} {r['driver_peak_mib']:>8} "
            f"{r.get('driver_unshared_peak_mib', float('nan')):>8} {r['ray_peak_mib']:>8} {r.get('ray_pss_peak_mib', float('nan')):>8} "
            f"{r['ray_unshared_peak_mib']:>9} {spill:>8.1f} {r['review_pngs']:>6} "
            f"{r.get('driver_cpu_s', float('nan')) + r.get('ray_cpu_s', float('nan')):>7.0f} "
            f"{'/'.join(f'{x:.1f}' for x in r['load_avg_start'])}")


HEADER = (f"{'target':>9} {'pairs':>22} {'wall s':>8} {'pairs/s':>8} {'drv MiB':>8} {'drv uns.':>8} {'ray MiB':>8} "
          f"{'ray PSS':>8} {'ray uns.':>9} {'spill MiB':>8} {'PNGs':>6} {'CPU s':>7} load(1/5/15)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the runs, the table and bench_scale.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="target pairs")
    ap.add_argument("--max-seconds", type=float, default=900, help="stop a size after this long (target: 300 at 1M)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # internal: run N videos here
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = source_file(out / "input")
    if a.one is not None:
        result = run_one(a.one, out, source, a.max_seconds, a.set)
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    results, per_video = {}, float(PAIRS_PER_VIDEO)
    print(HEADER, flush=True)
    for size in a.sizes:
        n_videos = max(1, round(size / per_video))
        run_dir = out / f"pairs_{size}"
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        cmd = [sys.executable, __file__, "--out", str(run_dir), "--one", str(n_videos), "--max-seconds", str(a.max_seconds)]
        cmd += [x for s in a.set for x in ("--set", s)]
        (run_dir / "input").symlink_to(out / "input")
        with open(run_dir / "log.txt", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0 or not (run_dir / "result.json").exists():
            print(f"{size:>9} failed (exit {rc}); see {run_dir / 'log.txt'}", flush=True)
            results[size] = {"failed": rc}
            continue
        r = json.loads((run_dir / "result.json").read_text())
        results[size] = r
        print(row(size, r), flush=True)
        if r.get("pairs"):
            per_video = r["pairs"] / n_videos
    (out / "bench_scale.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2) + "\n")
    print(f"written {out / 'bench_scale.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
