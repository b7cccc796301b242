"""HTML pages: one per run (its DAG with stage states, and its logs) and a list of recent runs.

Pure rendering: records in, text out. Every value from outside is escaped.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from html import escape

from gitops.store import LogRecord, RunRecord, StageRecord

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}
.dag{display:flex;gap:1.5em;align-items:flex-start;margin:1em 0}
.step{display:flex;flex-direction:column;gap:.5em}.step h3{margin:0;font-size:.8em;color:#666}
.stage{border:2px solid #999;border-radius:6px;padding:.4em .8em;min-width:8em}
.succeeded{border-color:#2a2;background:#efe}.failed,.rolled_back{border-color:#c22;background:#fee}
.running{border-color:#26c;background:#eef}.cancelled,.skipped,.superseded{border-color:#999;background:#eee}
.queued,.pending{border-color:#cc2;background:#ffe}
.arrow{align-self:center;color:#999}pre{background:#111;color:#ddd;padding:1em;overflow:auto}
.state{font-weight:bold}
"""


def _time(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _page(title: str, body: str, refresh: bool) -> str:
    meta = '<meta http-equiv="refresh" content="3">' if refresh else ""
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def run_page(run: RunRecord, stages: Sequence[StageRecord], logs: Sequence[LogRecord]) -> str:
    by_name = {s.stage: s for s in stages}
    steps_html = []
    for index, step in enumerate(run.steps):
        boxes = []
        for name in step:
            stage = by_name.get(name)
            state = stage.state if stage else "pending"
            detail = ""
            if stage is not None:
                if stage.attempts > 1:
                    detail += f"<br><small>{stage.attempts} attempts</small>"
                if stage.started_at and stage.finished_at:
                    detail += f"<br><small>{stage.finished_at - stage.started_at:.1f}s</small>"
                if stage.reason:
                    detail += f"<br><small>{escape(stage.reason)}</small>"
            boxes.append(
                f'<div class="stage {escape(state)}"><b>{escape(name)}</b><br>'
                f"<span>{escape(state)}</span>{detail}</div>"
            )
        arrow = '<div class="arrow">&rarr;</div>' if index else ""
        steps_html.append(
            f'{arrow}<div class="step"><h3>step {index + 1}</h3>{"".join(boxes)}</div>'
        )
    dag = f'<div class="dag">{"".join(steps_html)}</div>' if steps_html else "<p>No DAG (yet).</p>"
    problems = ""
    if run.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in run.problems)
        problems = f"<h2>bodywork.yaml problems</h2><ul>{items}</ul>"
    rows = [
        ("Repository", run.repository_name),
        ("Ref", run.ref),
        ("Commit", run.commit),
        ("Environment", run.environment),
        ("Namespace", run.namespace or "-"),
        ("Action", run.action),
        ("Trigger", run.trigger + (f" (delivery {run.delivery_id})" if run.delivery_id else "")),
        ("Pipeline", run.pipeline or "-"),
        ("Queued", _time(run.created_at)),
        ("Started", _time(run.started_at)),
        ("Finished", _time(run.finished_at)),
        ("Reason", run.reason or "-"),
    ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    text = "\n".join(f"[{line.stage or 'service'}] {line.line}" for line in logs)
    body = (
        f'<h1>Run {escape(run.id)} <span class="state {escape(run.state.value)}">'
        f"{escape(run.state.value)}</span></h1><table>{table}</table>{problems}"
        f"<h2>DAG</h2>{dag}<h2>Logs</h2><pre>{escape(text) or '(no output yet)'}</pre>"
        '<p><a href="/">all runs</a></p>'
    )
    return _page(f"bodywork run {run.id}", body, refresh=not run.state.is_final)


def runs_page(runs: Sequence[RunRecord]) -> str:
    rows = "".join(
        f'<tr><td><a href="/runs/{escape(r.id)}">{escape(r.id)}</a></td>'
        f"<td>{escape(r.repository_name)}</td><td>{escape(r.ref)}</td><td>{escape(r.commit[:10])}</td>"
        f'<td>{escape(r.environment)}</td><td class="{escape(r.state.value)}">{escape(r.state.value)}</td>'
        f"<td>{_time(r.created_at)}</td></tr>"
        for r in runs
    )
    body = (
        "<h1>Bodywork runs</h1><table><tr><th>Run</th><th>Repository</th><th>Ref</th><th>Commit</th>"
        f"<th>Environment</th><th>State</th><th>Queued</th></tr>{rows}</table>"
    )
    return _page("bodywork runs", body, refresh=False)
