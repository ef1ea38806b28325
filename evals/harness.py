"""The eval harness: run a Q&A file through the assistant and a naive LangChain baseline, score
both with the same metrics and judge, write results.jsonl, summary.json and report.html.

    python -m evals --qa evals/qa.jsonl --out eval-output [--limit N] [--split dev]
                    [--thresholds evals/thresholds.toml]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag import Assistant, Settings
from rag.loaders import load_text

from .baseline import NaiveChain
from .claims import split_answer
from .judge import Judge
from .metrics import balanced_accuracy, correct, percentile, ratio, retrieval_rank
from .qa import QAItem, load_qa, stratified
from .report import write_report
from .runs import Hit, Retrieval, Run, run_project

HERE = Path(__file__).parent


def score_item(item: QAItem, run: Run, judge: Judge, sources: dict[str, str],
               grounded: bool = True) -> dict:
    """Correctness, abstention, citation validity, ALCE citation recall/precision, RAGAS-style
    faithfulness and, when ``grounded``, support by all retrieved passages, for one answer."""
    out: dict[str, Any] = {"abstained": run.abstained}
    if item.answerable:
        out["correct"] = (not run.abstained) and correct(run.answer, item.must_include)
    else:
        out["correct"] = run.abstained
    out["citation_valid"] = [sources.get(c["source"], "")[c["start"]:c["end"]] == c["quote"]
                             for c in run.citations]
    if run.abstained:
        return out
    claims = [c for c in split_answer(run.answer) if not c.text.startswith("Note:")]
    sentence_ok, precise = [], []
    for claim in claims:
        cited = [run.cite_text[n] for n in claim.cited if n in run.cite_text]
        ok = bool(cited) and judge(claim.text, "\n".join(cited)).supported
        sentence_ok.append(ok)
        for i, passage in enumerate(cited):
            alone = judge(claim.text, passage).supported
            rest = cited[:i] + cited[i + 1:]
            needed = not (rest and judge(claim.text, "\n".join(rest)).supported)
            precise.append(ok and (alone or needed))
    out["sentences_supported"] = sentence_ok
    out["citations_precise"] = precise
    context = "\n".join(dict.fromkeys(run.cite_text.values()))
    parts = [p.strip() for c in claims for p in re.split(r";\s+", c.text) if p.strip()]
    out["claims_faithful"] = [bool(context) and judge(p, context).supported for p in parts]
    if grounded:
        retrieved = "\n".join(run.passages.values())
        out["claims_grounded"] = [judge(p, retrieved).supported for p in parts]
    return out


def aggregate(items: list[QAItem], retrievals: list[Retrieval], scores: list[dict],
              runs: list[Run]) -> dict:
    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    def flat(key: str, subset: list[int]) -> list[bool]:
        return [v for i in subset for v in scores[i].get(key, [])]

    def block(idx: list[int]) -> dict:
        ans = [i for i in idx if items[i].answerable]
        una = [i for i in idx if not items[i].answerable]
        abst = [i for i in idx if scores[i]["abstained"]]
        ranks = [retrievals[i].gold_rank for i in ans]
        secs = [runs[i].seconds for i in idx]
        firsts = [runs[i].first_token for i in idx if runs[i].first_token is not None]
        return {
            "n": len(idx),
            "correctness": mean([scores[i]["correct"] for i in idx]),
            "answerable_correctness": mean([scores[i]["correct"] for i in ans]),
            "abstention_precision": ratio(sum(not items[i].answerable for i in abst),
                                          len(abst)),
            "abstention_recall": ratio(sum(scores[i]["abstained"] for i in una), len(una)),
            "false_abstention_rate": ratio(sum(scores[i]["abstained"] for i in ans), len(ans)),
            "citation_validity": mean(flat("citation_valid", idx)),
            "citation_recall": mean(flat("sentences_supported", idx)),
            "citation_precision": mean(flat("citations_precise", idx)),
            "faithfulness": mean(flat("claims_faithful", idx)),
            "grounded_in_retrieved": mean(flat("claims_grounded", idx)),
            "recall@1": mean([r is not None and r <= 1 for r in ranks]),
            "recall@4": mean([r is not None and r <= 4 for r in ranks]),
            "recall@10": mean([r is not None for r in ranks]),
            "mrr@10": mean([1 / r if r else 0.0 for r in ranks]),
            "seconds_p50": percentile(secs, 50),
            "seconds_p95": percentile(secs, 95),
            "first_token_p50": percentile(firsts, 50),
        }

    everything = list(range(len(items)))
    cats = {c: [i for i in everything if items[i].category == c]
            for c in dict.fromkeys(it.category for it in items)}
    splits = {sp: [i for i in everything if items[i].split == sp]
              for sp in dict.fromkeys(it.split for it in items)}
    return {"overall": block(everything), "by_category": {c: block(ix) for c, ix in cats.items()},
            "by_split": {sp: block(ix) for sp, ix in splits.items()}}


def judge_accuracy(judge: Judge, path: Path = HERE / "judge_labels.jsonl") -> dict:
    labels = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    preds = [judge(x["claim"], x["passage"]).supported for x in labels]
    wrong = [x["id"] for x, p in zip(labels, preds, strict=True) if p != x["supported"]]
    return {"name": judge.name, "n": len(labels),
            "balanced_accuracy": balanced_accuracy([x["supported"] for x in labels], preds),
            "wrong": wrong}


def evaluate(settings: Settings, qa: Path, out: Path, limit: int | None = None,
             baseline: bool = True, progress: bool = True, split: str | None = None,
             grounded: bool = True) -> dict:
    """Answer and score the items of ``qa`` (one ``split`` or all); ``grounded=False`` skips
    the judge's reading of every claim against all retrieved passages (a reported metric, not a
    gated one: about a third of the judge's calls)."""
    t_start = time.perf_counter()
    assistant = Assistant(settings)
    assistant.ingest(progress=progress)
    chunks = list(assistant.searcher.lexical().chunks())
    sources = {c.source: load_text(settings.corpus_dir / c.source) for c in chunks}
    all_items = load_qa(qa, "\n".join(sources.values()))
    if split:
        all_items = [it for it in all_items if it.split == split]
    items = stratified(all_items, limit)
    spans = {c.id: (c.source, c.start, c.end) for c in chunks}
    assistant.warm_up()
    judge = Judge(assistant.embeddings, assistant.llm)
    systems: dict[str, Any] = {"project": lambda q: run_project(assistant, q)}
    if baseline:
        naive = NaiveChain(assistant)
        systems["baseline"] = naive.run

    retrievals = []
    for it in items:
        hits = tuple(Hit(p.chunk_id, round(p.score, 5), p.dense_score, p.lexical_score)
                     for p in assistant.searcher.search(it.question, k=10))
        rank = (retrieval_rank([h.chunk_id for h in hits], spans, it.support, sources)
                if it.support else None)
        retrievals.append(Retrieval(hits, rank))

    out.mkdir(parents=True, exist_ok=True)
    # answer everything first, judge afterwards: judge prompts would evict the answer prompt's
    # cached prefix from the model and distort the latencies
    t_answer = time.perf_counter()
    results = {name: [system(it.question) for it in tqdm(
        items, desc=f"answering ({name})", unit="q", disable=not progress)]
        for name, system in systems.items()}
    t_judge = time.perf_counter()
    scored = {name: [score_item(it, run, judge, sources, grounded) for it, run in tqdm(
        list(zip(items, runs, strict=True)), desc=f"judging ({name})", unit="q",
        disable=not progress)] for name, runs in results.items()}
    judge_labels = judge_accuracy(judge)
    t_done = time.perf_counter()

    with (out / "results.jsonl").open("w") as fh:
        for i, (it, found) in enumerate(zip(items, retrievals, strict=True)):
            for name in systems:
                run, sc = results[name][i], scored[name][i]
                row = {"id": it.id, "system": name, "question": it.question,
                       "category": it.category, "answer": run.answer,
                       "abstained": run.abstained, "citations": run.citations,
                       "retrieved": found.rows() if name == "project" else run.retrieved,
                       "seconds": round(run.seconds, 3), "correct": sc["correct"],
                       "gold_rank": found.gold_rank, "scores": sc}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = {
        "qa": str(qa), "split": split or "all", "items": len(items),
        "items_in_file": len(all_items),
        "subset": len(items) < len(all_items),
        "settings": {"model_size": settings.model_size, "backend": settings.backend,
                     "k": settings.k, "chunk_tokens": settings.chunk_tokens},
        "judge": judge_labels,
        "systems": {name: aggregate(items, retrievals, scored[name], results[name])
                    for name in systems},
    }
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    summary["stage_seconds"] = {"setup": round(t_answer - t_start, 1),
                                "answering": round(t_judge - t_answer, 1),
                                "judging": round(t_done - t_judge, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(out / "report.html", summary, items, retrievals, results, scored)
    return summary


def check_thresholds(summary: dict, path: Path) -> list[str]:
    """Failures as readable lines; empty when every minimum is met."""
    limits = tomllib.loads(path.read_text())
    got = dict(summary["systems"]["project"]["overall"])
    got["judge_balanced_accuracy"] = summary["judge"]["balanced_accuracy"]
    failures = []
    for key, bound in limits.get("min", {}).items():
        value = got.get(key)
        if value is None or value < bound:
            failures.append(f"{key} = {value} is below the minimum {bound}")
    for key, bound in limits.get("max", {}).items():
        value = got.get(key)
        if value is None or value > bound:
            failures.append(f"{key} = {value} is above the maximum {bound}")
    return failures


def print_table(summary: dict) -> None:
    cols = ["correctness", "abstention_recall", "abstention_precision", "false_abstention_rate",
            "citation_validity", "citation_recall", "citation_precision", "faithfulness",
            "grounded_in_retrieved", "recall@4", "mrr@10", "seconds_p50", "seconds_p95"]
    columns = []  # (heading, block): each system overall, or per split when there are two
    for name, result in summary["systems"].items():
        splits = result.get("by_split", {})
        if len(splits) > 1:
            columns += [(f"{name}:{sp}", block) for sp, block in sorted(splits.items())]
        else:
            columns.append((name, result["overall"]))
    print(f"\n{'metric':<24}" + "".join(f"{h:>15}" for h, _ in columns))
    for col in cols + ["first_token_p50"]:
        vals = [block.get(col) for _, block in columns]
        print(f"{col:<24}" + "".join(f"{'-' if v is None else v:>15}" for v in vals))
    j = summary["judge"]
    print(f"\njudge {j['name']}: balanced accuracy {j['balanced_accuracy']} on {j['n']} labels")
    sub = " (stratified subset)" if summary["subset"] else ""
    stages = ", ".join(f"{k} {v} s" for k, v in summary.get("stage_seconds", {}).items())
    print(f"{summary['items']} of {summary['items_in_file']} items{sub} in "
          f"{summary['seconds']} s ({stages})")


def main(settings: Settings, args: argparse.Namespace) -> int:
    summary = evaluate(settings, args.qa, args.out, args.limit, not args.no_baseline,
                       split=args.split)
    print_table(summary)
    print(f"wrote {args.out}/results.jsonl, summary.json, report.html")
    if args.thresholds:
        failures = check_thresholds(summary, args.thresholds)
        for f in failures:
            print(f"THRESHOLD FAILED: {f}", file=sys.stderr)
        return 1 if failures else 0
    return 0
