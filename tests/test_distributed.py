"""Ray fan-out: a real local Ray cluster on loopback trains two tiny experts in parallel, and the
results equal the sequential run with the same seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers_objectives import (
    failing_job,
    objective,
    pid_job,
    save_tiny_base,
    tiny_study_overrides,
    toy_evaluator,
    write_prompts,
)
from safetensors.torch import load_file

from moalign.core.config import ConfigError
from moalign.emorl.scst import SCSTConfig
from moalign.sampling import Sampling
from moalign.scale.ray_jobs import (
    chunk_points,
    evaluate_points_parallel,
    fan_out,
    start_local_cluster,
    train_experts_parallel,
)

ray = pytest.importorskip("ray")

TIMING_KEYS = {"time", "seconds", "step_seconds", "samples_per_s", "seconds_per_step"}


@pytest.fixture(scope="module")
def cluster():
    """A real local Ray cluster: 2 CPUs, every service bound to 127.0.0.1, no dashboard."""
    ctx = start_local_cluster(num_cpus=2)
    assert ctx.address_info["node_ip_address"] == "127.0.0.1"
    yield ctx
    ray.shutdown()


def _configs(tmp: Path, tag: str) -> list[SCSTConfig]:
    base = save_tiny_base(tmp / "base")
    data = write_prompts(tmp / "prompts.jsonl")
    return [SCSTConfig(policy=str(base), objectives=[objective(name)], data=str(data),
                       val_data=None, val_batch=2, batch_size=2, n_samples=2, max_new_tokens=8,
                       max_steps=3, val_every=2, save_every=0, seed=seed, device="cpu",
                       out_dir=str(tmp / tag / name), progress=False)
            for name, seed in (("length", 11), ("vowel", 12))]


def _metrics(out_dir: str) -> list[dict]:
    rows = [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text()
            .splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def _adapter(out_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(out_dir) / "adapter" / "adapter_model.safetensors"))


def test_parallel_experts_equal_sequential(tmp_path: Path, cluster) -> None:
    seq_cfgs, par_cfgs = _configs(tmp_path, "seq"), _configs(tmp_path, "par")
    seq = train_experts_parallel(seq_cfgs, workers=1)  # here, one after the other, no Ray
    par = train_experts_parallel(par_cfgs, workers=2)  # two Ray tasks on the loopback cluster
    assert [s["objectives"] for s in par] == [["length"], ["vowel"]]
    for s_cfg, p_cfg, s, p in zip(seq_cfgs, par_cfgs, seq, par, strict=True):
        a, b = _adapter(s_cfg.out_dir), _adapter(p_cfg.out_dir)
        assert a.keys() == b.keys() and len(a) > 0
        for k in a:
            assert torch.equal(a[k], b[k]), k
        assert _metrics(s_cfg.out_dir) == _metrics(p_cfg.out_dir)
        drop = TIMING_KEYS | {"adapter_dir"}
        assert {k: v for k, v in s.items() if k not in drop} == \
            {k: v for k, v in p.items() if k not in drop}
    # the two experts really trained differently (own objective, own seed)
    la, lb = _adapter(par_cfgs[0].out_dir), _adapter(par_cfgs[1].out_dir)
    assert any(not torch.equal(la[k], lb[k]) for k in la)


def test_fan_out_order_errors_and_chunks(cluster) -> None:
    assert fan_out(failing_job, [{"x": 0}, {"x": 2}, {"x": 3}], workers=2) == [0, 2, 3]
    with pytest.raises(ValueError, match=r"job-b failed: ValueError: bad input 1") as info:
        fan_out(failing_job, [{"x": 0}, {"x": 1}], workers=2, names=["job-a", "job-b"])
    assert info.value.job == "job-b"
    points = [(i / 10, 1 - i / 10) for i in range(7)]
    results = evaluate_points_parallel(toy_evaluator, {"offset": 1.0}, points, workers=2)
    assert [r.point for r in results] == points
    assert [r.score for r in results] == pytest.approx([2.0] * 7)
    import os

    pids = [r.extra["pid"] for r in results]  # one pid per chunk: points 0-3 and 4-6
    assert os.getpid() not in pids  # evaluated by Ray worker processes, not here
    assert len(set(pids[:4])) == 1 and len(set(pids[4:])) == 1


def test_study_fan_out_joins_a_cluster_by_address(cluster) -> None:
    """`moalign run ... ray_address=auto`: even one worker runs its jobs as Ray tasks."""
    import os

    from moalign.runs.stages import fan_out as study_fan_out

    jobs = [{"x": 3}, {"x": 4}]
    local = study_fan_out(pid_job, jobs, 1, ["a", "b"])
    assert local == [(3, os.getpid()), (4, os.getpid())]
    remote = study_fan_out(pid_job, jobs, 1, ["a", "b"], ray_address="auto")
    assert [x for x, _ in remote] == [3, 4]
    assert all(pid != os.getpid() for _, pid in remote)


def test_study_experts_and_baselines_on_ray_equal_sequential(tmp_path: Path, cluster) -> None:
    """`moalign run ... workers=2`: the experts and SCST baselines of a study trained as Ray
    tasks end with exactly the adapters of the sequential study (run with the torch threads each
    Ray job gets, since float sums depend on the thread count)."""
    import os

    from moalign.core.config import load_config
    from moalign.emorl import study as pipeline
    from moalign.emorl.study import StudyConfig
    from moalign.scale.ray_jobs import torch_threads

    base, prompts = save_tiny_base(tmp_path / "base"), write_prompts(tmp_path / "p.jsonl")
    adapters = {}
    for workers in (1, 2):
        out = tmp_path / f"workers_{workers}"
        cfg = load_config(StudyConfig, None, {**tiny_study_overrides(base, prompts, out),
                                              "workers": workers, "baselines": ["uniform"]})
        with torch_threads((os.cpu_count() or 1) // 2):  # a Ray job's share of the cores
            pipeline.train_experts(cfg, out)
            pipeline.train_baselines(cfg, out)
        found = sorted(out.glob("seed_0/*/*/adapter/adapter_model.safetensors"))
        adapters[workers] = {str(p.relative_to(out)): load_file(str(p)) for p in found}
    assert len(adapters[1]) == 3 and adapters[1].keys() == adapters[2].keys()
    for name, tensors in adapters[1].items():
        assert all(torch.equal(t, adapters[2][name][k]) for k, t in tensors.items()), name


def test_ensemble_points_in_parallel_equal_sequential(tmp_path: Path, cluster) -> None:
    """Weight points of a search, in chunks over 2 Ray workers, score like one local call."""
    from helpers_objectives import PROMPTS, make_tiny_ensemble

    from moalign.scale.ray_jobs import ensemble_evaluator

    run_dir = make_tiny_ensemble(tmp_path / "ens")
    factory_kwargs = {"run_dir": str(run_dir), "prompts": PROMPTS[:3],
                      "objectives": [objective("length"), objective("vowel")],
                      "device": "cpu", "sampling": Sampling.greedy(6)}
    points = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.25, 0.75)]
    local = ensemble_evaluator(**factory_kwargs)(points)
    remote = evaluate_points_parallel(ensemble_evaluator, factory_kwargs, points, workers=2)
    assert [r.point for r in remote] == points
    assert [r.objectives for r in remote] == [r.objectives for r in local]
    assert [r.score for r in remote] == [r.score for r in local]


def test_sequential_fallback_and_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="job 1 failed"):
        fan_out(failing_job, [{"x": 0}, {"x": 1}])
    assert chunk_points(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert chunk_points([1], 4) == [[1]]
    cfgs = _configs(tmp_path, "dup")
    cfgs[1].out_dir = cfgs[0].out_dir
    with pytest.raises(ConfigError, match="share out_dir"):
        train_experts_parallel(cfgs, workers=1)
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        fan_out(failing_job, [{"x": 0}], workers=0)


# ----------------------------------------------------------------------------- Accelerate (DDP)

DRIVER = '''
import json, sys
import torch
from moalign.scale import accelerate_ddp as acc
from moalign.emorl import scst

# 1. exact gradient averaging on a toy module: rank r sees input r+1, two micro-batch backwards
lin = torch.nn.Linear(3, 1, bias=False)
averager = acc.GradientAverager(list(lin.parameters()))
x = torch.full((1, 3), float(acc.process_index() + 1))
lin(x).sum().backward()
first = lin.weight.grad.clone()
lin(x).sum().backward()
averager.remove()

# 2. the SCST trainer as it is: train_scst itself must call distribute_run, which shards every
# step's prompts over the ranks (recorded here per step)
cfg = acc.process_config(scst.SCSTConfig(**json.loads(open(sys.argv[1]).read())))
seen, real_step = [], scst.scst_step
scst.scst_step = lambda run, prompts: (seen.append(list(prompts)), real_step(run, prompts))[1]
summary = scst.train_scst(cfg)
# one file per rank: the ranks' stdout streams interleave, so results are not printed
with open(f"{sys.argv[2]}/result_rank{acc.process_index()}.json", "w") as f:
    json.dump({"rank": acc.process_index(), "out": cfg.out_dir, "first": first.tolist(),
               "second": lin.weight.grad.tolist(), "data_consumed": summary["data_consumed"],
               "prompts": seen}, f)
'''


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """`accelerate launch` with 2 CPU processes (gloo): gradients are averaged exactly, every rank
    ends with the same adapter, and only the main process writes the run directory."""
    import os
    import subprocess
    import sys

    cfg = _configs(tmp_path, "ddp")[1]  # the vowel objective (length saturates on 8 tokens)
    cfg_dict = {k: getattr(cfg, k) for k in ("policy", "objectives", "data", "val_data",
                                             "val_batch", "n_samples", "max_new_tokens",
                                             "val_every", "save_every", "seed", "device")}
    cfg_dict.update(batch_size=4, max_steps=2, out_dir=str(tmp_path / "ddp" / "run"),
                    progress=False)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg_dict))
    (tmp_path / "driver.py").write_text(DRIVER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "tests"), str(root / "src")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(root / "configs/accelerate/ddp.yaml"), "--num_processes", "2",
           "--main_process_port", str(_free_port()), str(tmp_path / "driver.py"),
           str(tmp_path / "cfg.json"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"result_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:  # mean of (1, 2) after one backward, plus 1.5 again after the second
        assert r["first"] == [[1.5, 1.5, 1.5]] and r["second"] == [[3.0, 3.0, 3.0]]
        assert r["data_consumed"] == 8  # global: 2 steps x batch_size 4 (2 prompts per rank)
        assert [len(p) for p in r["prompts"]] == [2, 2]  # each rank trains on its shard
    for a, b in zip(results[0]["prompts"], results[1]["prompts"], strict=True):
        assert not set(a) & set(b)  # the two halves of one global batch of 4
    main, other = Path(results[0]["out"]), Path(results[1]["out"])
    assert main == tmp_path / "ddp" / "run" and other == main / ".ranks" / "rank1"
    a, b = _adapter(str(main)), _adapter(str(other))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the ranks stayed in sync
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # and trained
    assert len(_metrics(str(main))) == 3  # step 0 validation + 2 steps, written once


def test_accelerate_helpers_are_noops_in_one_process(tmp_path: Path) -> None:
    from moalign.scale import accelerate_ddp as acc

    cfg = _configs(tmp_path, "single")[0]
    assert acc.process_config(cfg) is cfg and acc.is_main_process() and not acc.is_distributed()

    class FakeRun:
        step = 0

    run = FakeRun()
    assert acc.distribute_run(run) is run and not hasattr(run, "distributed")
    r = torch.arange(6.0).view(3, 2)
    assert acc.gather_rewards(r) is r and acc.gather_mean(2.5) == 2.5

    class Inner:
        def __init__(self) -> None:
            self.pos = 0

        def take(self, k: int) -> list[int]:
            self.pos += k
            return list(range(self.pos - k, self.pos))

        def state_dict(self) -> dict:
            return {"pos": self.pos}

    shards = [acc.ShardedCursor(Inner(), rank, 2) for rank in (0, 1)]
    assert [s.take(4) for s in shards] == [[0, 1], [2, 3]]
    assert shards[1].state_dict() == {"pos": 4} and shards[1].pos == 4
    with pytest.raises(ConfigError, match="divisible"):
        shards[0].take(3)
