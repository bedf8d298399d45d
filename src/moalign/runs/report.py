"""`moalign report RUN_DIR`: a self-contained HTML report and a Markdown report from run artifacts.

The report reads files only (never a model): everything it shows was written by the pipeline
stages (`moalign.emorl.study`). Sections, in order, each present only when its artifacts exist
(otherwise a short note says which artifact is missing):

1. overview (`study.json`, stage markers)         7. weight search figures and the Pareto front
2. claims C1–C6 with verdicts (`runs.claims`)     8. MOLMA reward models, win rates, scatter
3. rewards per method (EMORL Table 2 shape), with 9. reward-hacking audit (`evaluation.audit`)
   bootstrap CIs and paired comparisons          10. human evaluation (`human_eval/scores.json`)
4. efficiency (EMORL Table 1 shape)              11. sample generations side by side
5. training curves (reward vs data consumed)     12. the resolved config
6. steps to 90 % of the final reward (`runs.evidence_report`)

Content is built once as blocks (text, table, figure, code; `moalign.runs.render`) and rendered
twice: HTML with inline CSS and figures embedded as base64 data URIs, and Markdown with figures
copied next to it and linked relatively (`report/figures/*.png`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from moalign.core.config import load_yaml
from moalign.core.errors import DataError
from moalign.core.io import atomic_write_text, read_jsonl, read_utf8
from moalign.evaluation.metrics import hypervolume, pareto_front
from moalign.runs.claims import Claim, claims_markdown, claims_section, compute_claims
from moalign.runs.evidence_report import (
    audit_section,
    convergence_rows,
    convergence_section,
    load_scores,
    paired_section,
    statistics_section,
)
from moalign.runs.layout import RunDir, SearchDir, SeedDir, UnitDir
from moalign.runs.plots import plot_curves, plot_pareto
from moalign.runs.render import (
    Code,
    Figure,
    Section,
    Table,
    Text,
    render_html,
    render_markdown,
)

TABLE = RunDir(Path()).table.as_posix()  # "eval/table.json", for messages
SCALABLE = {"soup", "logits", "emorl"}  # distributed methods: add an objective without retraining


# ----------------------------------------------------------------------------- artifacts


def _json(path: Path) -> Any:
    """A JSON artifact of the run (None when absent); a damaged one is a DataError naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                        "restore it, or delete it and run the study again to rebuild it"
                        ) from None


def _ms(value: Any, digits: int = 4) -> str:
    """`[mean, std]` or `{"mean", "std"}` as `mean ± std`; None as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        value = [value.get("mean"), value.get("std")]
    mean, std = value
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cost(value: Any, digits: int) -> str:
    return _ms(value, digits) if value is not None else "—"


# ----------------------------------------------------------------------------- sections


def overview_section(run_dir: Path, study: dict[str, Any] | None) -> Section:
    sec = Section("overview", "Overview")
    if study is None:
        sec.note = ("study.json is missing: this folder was not written by `moalign run` (a "
                    "single training run shows its curves and config below).")
        return sec
    rows = [["kind", str(study.get("kind", "?"))], ["policy", str(study.get("policy", "?"))],
            ["objectives", ", ".join(study.get("objectives", []))]]
    labels = {"seeds": "evaluation seeds", "training_seeds": "training seeds",
              "runs": "generation runs per seed", "test_prompts": "test prompts",
              "systems": "systems", "last_invocation_seconds": "last `moalign run` took (s)"}
    for key, label in labels.items():
        if study.get(key) is not None:
            value = study[key]
            if key == "test_prompts" and value == 0:
                value = "all of the test split"  # the config's 0
            rows.append([label, ", ".join(map(str, value)) if isinstance(value, list) else
                         str(value)])
    markers = sorted(RunDir(run_dir).stage_markers(), key=lambda p: p.stat().st_mtime_ns)
    timings = [(p.stem, float((_json(p) or {}).get("seconds", 0))) for p in markers]
    rows.append(["completed stages", ", ".join(f"{name} ({t:.0f} s)" for name, t in timings)
                 or "none"])
    if timings:
        rows.append(["all stages took (s)", f"{sum(t for _, t in timings):.0f}"])
    sec.blocks.append(Table(["", ""], rows))
    return sec


def rewards_section(table: dict[str, Any] | None, kind: str = "emorl") -> Section:
    shape = " (EMORL Table 2 shape)" if kind != "molma" else ""
    sec = Section("rewards", f"Rewards per method{shape}")
    if table is None:
        sec.note = f"{TABLE} is missing: the evaluation stage has not run yet."
        return sec
    names = table["objectives"]
    methods = table["methods"]
    columns = [[m["rewards"].get(o) for m in methods] for o in names]
    columns.append([m.get("mean_reward") for m in methods])
    rows = [[m["label"], *(_ms(col[i]) for col in columns)] for i, m in enumerate(methods)]
    caption = (f"Test split, {table.get('n_prompts', '?')} prompts; mean ± std over "
               f"{len(table.get('seeds', []))} seed(s) × {table.get('runs', '?')} generation "
               f"run(s){_trained_with(table)}. Higher is better; the best mean of each column is "
               "in bold.")
    sec.blocks.append(Table(["method", *names, "mean"], rows, caption, _best_cells(columns)))
    return sec


def _trained_with(table: dict[str, Any]) -> str:
    trained = table.get("training_seeds")
    if not trained or trained == table.get("seeds"):
        return ""
    return f" (models trained with seed(s) {', '.join(map(str, trained))})"


def _best_cells(columns: list[list[Any]]) -> set[tuple[int, int]]:
    """(row, column) of each column's highest mean (column 0 holds the row labels)."""
    cells = set()
    for j, col in enumerate(columns, start=1):
        means = [(v[0] if isinstance(v, list) else -float("inf")) for v in col]
        if means and max(means) > -float("inf"):
            cells |= {(i, j) for i, m in enumerate(means) if m == max(means)}
    return cells


def efficiency_section(table: dict[str, Any] | None) -> Section:
    sec = Section("efficiency", "Diversity, edit rate and training cost (EMORL Table 1 shape)")
    if table is None:
        sec.note = f"{TABLE} is missing: the evaluation stage has not run yet."
        return sec
    methods = table["methods"]
    headers = ["metric", *(m["label"] for m in methods)]
    rows = _lexical_rows(table)
    paper = any(m.get("data_paper") for m in methods)  # tables before v0.2 lack it
    rows += [["Data consumption (prompts, ↓)", *(_cost(m.get("data"), 0) for m in methods)],
             *([["Data, EMORL paper's count (prompts, ↓)",
                 *(_cost(m.get("data_paper"), 0) for m in methods)]] if paper else []),
            ["Time consumption (s, ↓)", *(_cost(m.get("seconds"), 1) for m in methods)],
            ["Scalability", *(_plus(m) for m in methods)],
            ["Explainability", *(_plus(m) for m in methods)]]
    caption = ("EMORL / soup / logits cost = max over the experts (trained in parallel) + the "
               "weight search; single experts show their own training cost; mean ± std over "
               "training seeds. Data consumption counts the search as decoded (distinct weight "
               "points × prompts); the EMORL paper counts every grid point of every iteration × "
               "prompts (135 × 32 in its Table 1).")
    sec.blocks.append(Table(headers, rows, caption))
    return sec


LEXICAL_LABELS = {
    "moalign": ("Diversity-2 (↑)", "Edit rate (↑)", "diversity2", "edit_rate"),
    "authors": ("Diversity-2, EMORL authors' definition (↑)",
                "Edit rate, EMORL authors' definition (↑)", "diversity2_authors",
                "edit_rate_authors"),
}


def _lexical_rows(table: dict[str, Any]) -> list[list[Any]]:
    """Diversity-2 / edit rate rows for the definitions the study chose (evaluation.metrics)."""
    methods, rows = table["methods"], []
    for definition in table.get("lexical_metrics", ["moalign"]):
        d2_label, er_label, d2, er = LEXICAL_LABELS[definition]
        rows.append([d2_label, *(_ms(m.get(d2)) for m in methods)])
        rows.append([er_label, *(_ms(m.get(er)) for m in methods)])
    return rows


def _plus(method: dict[str, Any]) -> str:
    key = str(method.get("key", ""))
    if key == "base":
        return ""
    return "+" if key in SCALABLE else "−" if key in ("uniform", "dynaopt") else ""


def _curve(rows: list[dict[str, Any]], memory: int | None, x: str) -> list[tuple[float, float]]:
    """(x, reward) points of one run: validation means (SCST) or, without validations, the
    mean rollout reward per iteration (MOLMA: prompts = (iteration + 1) × memory)."""
    val = [r for r in rows if r.get("val/mean") is not None]
    if not val:
        seen: dict[Any, dict[str, Any]] = {}
        for r in rows:
            if any(k.startswith("reward/") for k in r):
                seen.setdefault(r.get("iteration", r.get("step")), r)
        val = list(seen.values())
    out = []
    for r in val:
        keys = [k for k in r if k.startswith("reward/")]
        y = r.get("val/mean", sum(r[k] for k in keys) / len(keys) if keys else None)
        if x == "data_consumed":
            xv = r.get("data_consumed")
            if xv is None and memory and r.get("iteration") is not None:
                xv = (int(r["iteration"]) + 1) * memory
        else:
            xv = r.get("seconds", r.get("time"))
        if xv is not None and y is not None:
            out.append((float(xv), float(y)))
    return out


def _mean_curve(curves: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Average several seeds' curves point by point (over the shortest one)."""
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [(sum(c[i][0] for c in curves) / len(curves), sum(c[i][1] for c in curves) /
             len(curves)) for i in range(n)]


def training_runs(run_dir: Path) -> dict[str, list[Path]]:
    """Method label -> metrics.jsonl of each seed (experts and trained baselines)."""
    runs: dict[str, list[Path]] = {}
    for sd in RunDir(run_dir).seed_dirs() or [SeedDir(run_dir)]:  # early runs: no seed_<s>/
        for base, prefix in ((sd.experts_dir, "expert: "), (sd.baselines_dir, ""),
                             (sd.train_dir, "")):
            if base.is_dir():
                units = [UnitDir(p) for p in sorted(base.iterdir())]
                for u in (u for u in units if u.metrics.is_file()):
                    runs.setdefault(prefix + u.root.name, []).append(u.metrics)
    single = UnitDir(run_dir)  # one trained run (`train-joint`, `train-expert` out_dir)
    if not runs and single.metrics.is_file():
        runs[single.root.name] = [single.metrics]
    return runs


def _memory(metrics: Path) -> int | None:
    cfg = UnitDir(metrics.parent).config
    data = load_yaml(cfg) if cfg.is_file() else None
    return data.get("memory") if isinstance(data, dict) else None


def curves_section(run_dir: Path, fig_dir: Path, kind: str = "emorl") -> Section:
    shape = ", EMORL Figure 2" if kind != "molma" else ""
    sec = Section("curves", f"Training curves (reward vs data consumed{shape})")
    runs = training_runs(run_dir)
    if not runs:
        sec.note = "no metrics.jsonl from a training stage yet."
        return sec
    loaded = {m: [(read_jsonl(p), _memory(p)) for p in paths] for m, paths in runs.items()}
    for x, xlabel, name in (("data_consumed", "prompts consumed", "curves_data.png"),
                            ("seconds", "wall-clock seconds", "curves_time.png")):
        series = {m: _mean_curve([_curve(rows, mem, x) for rows, mem in runs_])
                  for m, runs_ in loaded.items()}
        if any(series.values()):
            path = plot_curves(series, xlabel, "reward (mean over objectives)", fig_dir / name,
                               title=f"reward vs {xlabel}")
            sec.blocks.append(Figure(path, f"Reward vs {xlabel}, mean over seeds: greedy "
                                           "validation reward (SCST runs) or mean rollout reward "
                                           "per iteration (MOLMA runs).", half=True))
    if not sec.blocks:
        sec.note = "the training logs hold no reward records yet."
    return sec


def _search_dirs(run_dir: Path) -> list[SearchDir]:
    run = RunDir(run_dir)
    dirs = [sd.search for sd in run.seed_dirs()] + [run.search]
    return [d for d in dirs if d.root.is_dir()]


def search_section(run_dir: Path, fig_dir: Path) -> Section:
    sec = Section("search", "Hierarchical grid search (EMORL Figure 4)")
    dirs = _search_dirs(run_dir)
    if not dirs:
        sec.note = "no search folder yet: the search stage has not run."
        return sec
    d = dirs[0]
    best = _json(d.legacy_best) or _json(d.summary)
    if best:
        sec.blocks.append(Text(_search_summary(best, d, len(dirs))))
    pngs = d.iteration_pngs()  # the overview repeats these panels
    owner = d.root.parent.name
    for png in pngs:
        sec.blocks.append(Figure(_copy(png, fig_dir, f"{owner}_{png.name}"),
                                 f"{owner}: {png.stem.replace('_', ' ')}",
                                 half="overview" not in png.name))
    if not best and not pngs:
        sec.note = f"{d.root} holds no search results or figures yet."
    return sec


def _search_summary(best: dict[str, Any], d: SearchDir, n_seeds: int) -> str:
    weights = best.get("best_weights") or best.get("weights") or best.get("best_point")
    if isinstance(weights, dict):
        weights = ", ".join(f"{k} = {v:.4g}" for k, v in weights.items())
    parts = [f"Best weights ({d.root.parent.name}): {weights}"]
    for key, label in (("best_score", "score"), ("n_points_visited", "grid points visited"),
                       ("n_evaluations", "decoded (the rest cached or equal after normalising)"),
                       ("seconds", "seconds")):
        if best.get(key) is not None:
            value = best[key]
            parts.append(f"{label}: {value:.4g}" if isinstance(value, float) else
                         f"{label}: {value}")
    iters = len((_json(d.history) or {}).get("history") or [])
    if best.get("method") == "hierarchical" and iters and best.get("experts"):
        full = (2 ** iters + 1) ** len(best["experts"])
        parts.append(f"a full grid at the final step 1/{2 ** iters} has {full} points")
    if n_seeds > 1:
        parts.append(f"figures of the first of {n_seeds} seeds")
    return "; ".join(parts) + "."


def _copy(src: Path, fig_dir: Path, name: str) -> Path:
    fig_dir.mkdir(parents=True, exist_ok=True)
    dst = fig_dir / name
    shutil.copyfile(src, dst)
    return dst


def _search_points(d: SearchDir) -> tuple[list[str], list[list[float]], list[list[float]]]:
    """(objective names, per-objective rewards, weights) of every evaluated point; the weights
    are in the order of the search's experts (summary.json `experts`)."""
    recs = read_jsonl(d.results)
    recs = [r for r in recs if r.get("objectives")]
    if not recs:
        return [], [], []
    names = list(recs[0]["objectives"])
    return (names, [[float(r["objectives"][n]) for n in names] for r in recs],
            [list(r.get("normalised", r.get("point", []))) for r in recs])


def pareto_section(run_dir: Path, fig_dir: Path) -> Section:
    sec = Section("pareto", "Pareto front of the evaluated weight points")
    dirs = _search_dirs(run_dir)
    names, values, points = _search_points(dirs[0]) if dirs else ([], [], [])
    if len(names) < 2 or not values:
        sec.note = "needs search/results.jsonl with per-objective rewards for >= 2 objectives."
        return sec
    front = pareto_front(values)
    path = plot_pareto(values, names, front, fig_dir / "pareto.png")
    hv = hypervolume(values, [0.0] * len(names))
    sec.blocks.append(Figure(path, f"{len(values)} evaluated points, {len(front)} on the front; "
                                   f"hypervolume w.r.t. the origin = {hv:.4f}."))
    groups: dict[tuple[float, ...], list[int]] = {}  # equal rewards: one row, all weight points
    for i in front:
        groups.setdefault(tuple(values[i]), []).append(i)
    rows = [["; ".join(", ".join(f"{w:.3g}" for w in points[i]) for i in idx),
             *(f"{v:.4f}" for v in vals)] for vals, idx in list(groups.items())[:12]]
    experts = (_json(dirs[0].summary) or {}).get("experts")
    head = f"weights ({', '.join(experts)})" if experts else "weights"
    sec.blocks.append(Table([head, *names], rows, "Pareto-optimal weight points (points with "
                                                  "equal rewards share a row)."))
    return sec


def molma_section(run_dir: Path, fig_dir: Path) -> Section:
    sec = Section("molma", "MOLMA: reward models, win rates and reward distributions")
    run = RunDir(run_dir)
    rms = {p.parent.name: _json(p) for p in run.reward_model_metric_files()}
    wins = _json(run.win_rates)
    if not rms and wins is None:
        sec.note = "no MOLMA artifacts (reward_models/*/metrics.json, compare/win_rates.json)."
        return sec
    if rms:
        rows = [[n, f"{m.get('val_accuracy', float('nan')):.4f}", str(m.get("n_val", "?"))]
                for n, m in rms.items() if m]
        sec.blocks.append(Table(["reward model", "held-out pairwise accuracy", "pairs"], rows))
    if wins:
        sec.blocks.append(_win_table(wins))
    scatter = run.reward_scatter
    if scatter.is_file():
        sec.blocks.append(Figure(_copy(scatter, fig_dir, "reward_scatter.png"),
                                 "Per-prompt rewards of each model (MOLMA Figure 3)."))
    return sec


def _win_table(wins: dict[str, Any]) -> Table:
    names = wins["objectives"]
    rows = []
    for opp in wins["opponents"]:
        cells = []
        for o in names:
            w = wins["rates"][opp][o]
            cells.append(f"{w['win_rate']:.1%} ({w['win']}/{w['tie']}/{w['loss']})")
        rows.append([f"{wins['model']} vs {opp}", *cells])
    return Table(["comparison", *names], rows, "Win rate of MOLMA's response against the other "
                 "system's response to the same prompt (wins/ties/losses; a tie counts half), "
                 f"over {wins.get('n_prompts', '?')} responses (test prompts × seeds × runs; "
                 "MOLMA Figure 2).")


def human_section(run_dir: Path) -> Section:
    sec = Section("human", "Human evaluation")
    data = _json(RunDir(run_dir).human_scores)
    if data is None:
        sec.note = ("no human ratings imported (export a sheet with `moalign human-eval export`, "
                    "import with `moalign human-eval import --out RUN/human_eval/scores.json`).")
        return sec
    scores = data["scores"]
    names = sorted({o for s in scores.values() for o in s})
    rows = [[sys_, *(f"{s.get(o, float('nan')):.4f}" for o in names)]
            for sys_, s in scores.items()]
    sec.blocks.append(Table(["system", *names], rows,
                            f"Ratings 0/1/2 scaled to 0..1; {data.get('n_raters')} rater(s)."))
    agree = data.get("agreement") or {}
    if agree:
        rows = [[o, *(("—" if a.get(k) is None else f"{a[k]:.3f}")
                      for k in ("percent_agreement", "cohen_kappa", "fleiss_kappa"))]
                for o, a in agree.items()]
        sec.blocks.append(Table(["objective", "% agreement", "Cohen's κ", "Fleiss' κ"], rows))
    return sec


def samples_section(run_dir: Path, table: dict[str, Any] | None, n: int = 3) -> Section:
    sec = Section("samples", "Sample generations side by side")
    files = RunDir(run_dir).generation_files()
    if not files:
        sec.note = "no eval/generations/*.jsonl yet."
        return sec
    labels = {m["key"]: m["label"] for m in (table or {}).get("methods", [])}
    order = list(labels) + sorted(f.stem for f in files if f.stem not in labels)
    by_method = {f.stem: read_jsonl(f) for f in files}
    first = next(iter(by_method.values()))
    prompts = list(dict.fromkeys(r["prompt"] for r in first))[:n]
    for i, prompt in enumerate(prompts):
        rows = []
        for key in (k for k in order if k in by_method):
            rec = next((r for r in by_method[key] if r["prompt"] == prompt), None)
            if rec is not None:
                got = rec.get("rewards") or {}
                names = [o for o in (table or {}).get("objectives", []) if o in got] or list(got)
                rewards = ", ".join(f"{o} {got[o]:.2f}" for o in names)
                rows.append([labels.get(key, key), rec["response"], rewards])
        sec.blocks.append(Text(f"Prompt {i + 1} (first evaluation seed and run): {prompt}"))
        sec.blocks.append(Table(["method", "response", "rewards"], rows))
    return sec


def config_section(run_dir: Path) -> Section:
    sec = Section("config", "Resolved config")
    path = RunDir(run_dir).config_yaml
    if not path.is_file():
        sec.note = "config.yaml is missing."
        return sec
    sec.blocks.append(Code(read_utf8(path)))
    return sec


def build_sections(run_dir: Path, fig_dir: Path, runs: dict[str, list[Path]],
                   claims: list[Claim] | None) -> list[Section]:
    """The report's sections; `runs` = `training_runs(run_dir)`, `claims` = `compute_claims`
    of a study (None: a single training run, no claims table)."""
    run = RunDir(run_dir)
    study, table = _json(run.study_json), _json(run.table)
    kind = str((study or {}).get("kind", "emorl"))
    scores = load_scores(run_dir, table)
    convergence = convergence_section(convergence_rows(runs))
    sections = [overview_section(run_dir, study)]
    if claims is not None:
        sections.append(claims_section(claims))
    sections += [rewards_section(table, kind), statistics_section(scores),
                 paired_section(scores)]
    if kind == "molma":
        sections += [curves_section(run_dir, fig_dir, kind), convergence,
                     molma_section(run_dir, fig_dir)]
    else:
        sections += [efficiency_section(table), curves_section(run_dir, fig_dir), convergence,
                     search_section(run_dir, fig_dir), pareto_section(run_dir, fig_dir),
                     molma_section(run_dir, fig_dir)]
    sections += [audit_section(scores), human_section(run_dir),
                 samples_section(run_dir, table), config_section(run_dir)]
    return sections


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write `RUN_DIR/report/report.html` (self-contained) and `report.md` (and, for a study,
    the claims table alone as `report/claims.md`); return the first two."""
    run = RunDir(Path(run_dir))
    run_dir = run.root
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    out_dir, fig_dir = run.report_dir, run.figures_dir
    fig_dir.mkdir(parents=True, exist_ok=True)
    study = _json(run.study_json) or {}
    name = study.get("name") or run_dir.name
    title = f"moalign {study.get('kind', '').upper() or 'run'} study: {name}"
    runs = training_runs(run_dir)
    claims = compute_claims(run_dir, runs) if run.study_json.is_file() else None
    sections = build_sections(run_dir, fig_dir, runs, claims)
    html_path = atomic_write_text(run.report_html, render_html(title, sections))
    md_path = atomic_write_text(run.report_md, render_markdown(title, sections, out_dir))
    if claims is not None:
        atomic_write_text(run.claims_md, claims_markdown(claims))
    return html_path, md_path
