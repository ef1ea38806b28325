"""A self-contained HTML report: tables, inline SVG plots, every failure side by side."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from .qa import QAItem
from .runs import Retrieval, Run

COLORS = {"project": "#2563eb", "baseline": "#9ca3af"}
METRICS = ["correctness", "answerable_correctness", "abstention_recall", "abstention_precision",
           "false_abstention_rate", "citation_validity", "citation_recall",
           "citation_precision", "faithfulness", "grounded_in_retrieved", "recall@1", "recall@4",
           "recall@10", "mrr@10",
           "seconds_p50", "seconds_p95", "first_token_p50"]


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def bar_chart(title: str, groups: list[str], series: dict[str, list[float | None]],
              vmax: float = 1.0, width: int = 760, height: int = 220) -> str:
    """Grouped bars, one group per label, one bar per series."""
    pad, top = 40, 24
    gw = (width - pad) / max(1, len(groups))
    bw = gw * 0.8 / max(1, len(series))
    parts = [f'<svg width="{width}" height="{height + 60}" role="img" aria-label="{_e(title)}">',
             f'<text x="{pad}" y="14" font-weight="bold">{_e(title)}</text>']
    for frac in (0, 0.5, 1):
        y = top + height * (1 - frac)
        parts.append(f'<line x1="{pad}" x2="{width}" y1="{y}" y2="{y}" stroke="#e5e7eb"/>'
                     f'<text x="2" y="{y + 4}" font-size="10">{vmax * frac:g}</text>')
    for gi, g in enumerate(groups):
        for si, (name, vals) in enumerate(series.items()):
            v = vals[gi] or 0.0
            h = height * min(v, vmax) / vmax
            x = pad + gi * gw + gw * 0.1 + si * bw
            parts.append(f'<rect x="{x:.1f}" y="{top + height - h:.1f}" width="{bw:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS.get(name, "#10b981")}">'
                         f'<title>{_e(name)} {_e(g)}: {v:.3g}</title></rect>')
        parts.append(f'<text x="{pad + gi * gw + gw / 2:.1f}" y="{top + height + 14}" '
                     f'font-size="10" text-anchor="middle">{_e(g)}</text>')
    for si, name in enumerate(series):
        parts.append(f'<rect x="{pad + si * 110}" y="{top + height + 30}" width="10" height="10" '
                     f'fill="{COLORS.get(name, "#10b981")}"/><text x="{pad + si * 110 + 14}" '
                     f'y="{top + height + 39}" font-size="11">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: dict[str, list[float]], bins: list[float], title: str) -> str:
    labels = [f"{a:g}-{b:g}" for a, b in zip(bins, bins[1:], strict=False)] + [f">{bins[-1]:g}"]
    series = {}
    for name, vals in values.items():
        counts = [sum(a <= v < b for v in vals) for a, b in zip(bins, bins[1:], strict=False)]
        counts.append(sum(v >= bins[-1] for v in vals))
        series[name] = [float(c) for c in counts]
    vmax = max([max(s) for s in series.values() if s] + [1.0])
    return bar_chart(title, labels, series, vmax=vmax)


def write_report(path: Path, summary: dict, items: list[QAItem], retrievals: list[Retrieval],
                 results: dict[str, list[Run]], scored: dict[str, list[dict]]) -> None:
    systems = list(summary["systems"])
    rows = "".join(
        f"<tr><td>{_e(m)}</td>" + "".join(
            f"<td>{_e(summary['systems'][s]['overall'].get(m))}</td>" for s in systems) + "</tr>"
        for m in METRICS)
    cats = list(summary["systems"]["project"]["by_category"])
    plots = [
        bar_chart("Correctness by category", cats, {
            s: [summary["systems"][s]["by_category"][c]["correctness"] for c in cats]
            for s in systems}),
        bar_chart("Faithfulness by category (answered items)", cats, {
            s: [summary["systems"][s]["by_category"][c]["faithfulness"] for c in cats]
            for s in systems}),
        histogram({s: [r.seconds for r in results[s]] for s in systems},
                  [0, 2, 4, 6, 8, 12, 20], "Answer latency (s), count of questions"),
        histogram({"project": [float(r.gold_rank or 99)
                               for it, r in zip(items, retrievals, strict=True) if it.answerable]},
                  [1, 2, 3, 4, 5, 11], "Retrieval rank of the gold passage (>11 = not in top 10)"),
    ]
    failures = []
    for i, it in enumerate(items):
        sc = scored["project"][i]
        unsupported = not all(sc.get("sentences_supported", [True]))
        if sc["correct"] and not unsupported:
            continue
        run = results["project"][i]
        cites = "".join(f"<li>[{_e(c['n'])}] {_e(c['source'])} {_e(c['start'])}-{_e(c['end'])}: "
                        f"“{_e(c['quote'])}”</li>" for c in run.citations)
        base = (f"<td>{_e(results['baseline'][i].answer)}</td>" if "baseline" in results
                else "")
        why = ("wrong or missing answer" if not sc["correct"] else "") + (
            " unsupported sentence" if unsupported else "")
        failures.append(
            f"<tr><td>{_e(it.id)}<br><small>{_e(it.category)}</small></td>"
            f"<td>{_e(it.question)}</td><td>{_e(run.answer)}<ul>{cites}</ul></td>"
            f"<td>{_e(it.answer)}<ul>{''.join(f'<li>“{_e(s)}”</li>' for s in it.support)}"
            f"</ul><small>must include: {_e(', '.join(it.must_include))}</small></td>"
            f"{base}<td>{_e(why.strip())}<br>gold rank {_e(retrievals[i].gold_rank)}</td></tr>")
    judge = summary["judge"]
    subset = ("<p class=warn>This run used a stratified subset of "
              f"{summary['items']} of {summary['items_in_file']} items.</p>"
              if summary["subset"] else "")
    base_head = "<th>baseline answer</th>" if "baseline" in results else ""
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>RAG eval report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ddd;padding:4px 8px;
vertical-align:top;font-size:13px}}th{{background:#f3f4f6}}.warn{{color:#b45309}}
ul{{margin:4px 0;padding-left:18px}}</style></head><body>
<h1>Eval report</h1>
<p>{_e(summary['items'])} items from {_e(summary['qa'])}; model {_e(summary['settings'])};
total {_e(summary['seconds'])} s.</p>{subset}
<p>Judge: {_e(judge['name'])}, balanced accuracy <b>{_e(judge['balanced_accuracy'])}</b> on
{_e(judge['n'])} hand-labelled claims (wrong: {_e(', '.join(judge['wrong']) or 'none')}).</p>
<h2>Summary</h2><table><tr><th>metric</th>{''.join(f'<th>{_e(s)}</th>' for s in systems)}</tr>
{rows}</table>
<h2>Plots</h2>{''.join(f'<div>{p}</div>' for p in plots)}
<h2>Failures of the project ({len(failures)})</h2>
<table><tr><th>id</th><th>question</th><th>answer and citations</th><th>gold</th>{base_head}
<th>why</th></tr>{''.join(failures)}</table></body></html>"""
    path.write_text(doc)
