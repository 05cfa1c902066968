"""A table's three files: <out>.csv (every number), <out>.md and <out>.html (what a reader sees).

A builder hands over the table (raw numbers, for the CSV), the table as shown (formatted
cells, one string each) with its title and notes, and this writes all three from them:
the Markdown as a pipe table, the HTML with pandas (`DataFrame.to_html`), so no page is
produced by parsing another. Both end with the run directories behind the table (its CSV's
`runs` column), so the report says which runs made it.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

STYLE = (
    "body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
    "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}"
)


def pipe_table(shown: pd.DataFrame) -> str:
    """The shown table as Markdown (a header, a rule, a line per row), without a final newline.

    >>> print(pipe_table(pd.DataFrame({"est": ["RLOO"], "acc": ["1.0 (n=1)"]})))
    | est | acc |
    |---|---|
    | RLOO | 1.0 (n=1) |
    """
    lines = ["| " + " | ".join(map(str, shown.columns)) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)


def run_dirs(table: pd.DataFrame) -> list[str]:
    """The run directories (or run pairs) in a table's `runs` column (joined by ';'), in order, once each."""
    if "runs" not in table.columns:
        return []
    return list(dict.fromkeys(r for cell in table["runs"].dropna() for r in str(cell).split(";")))


def _inline(text: str) -> str:
    """A note as HTML: escaped, `code` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text.strip()))


def html_page(title: str, shown: pd.DataFrame, notes: list[str], runs: list[str]) -> str:
    """A standalone page: the title, the shown table (pandas), the notes and the run directories."""
    body = [f"<h1>{html.escape(title)}</h1>", shown.to_html(index=False, border=0)]
    body += [f"<p>{_inline(note)}</p>" for note in notes if note.strip()]
    if runs:
        body.append(
            "<p>Run directories:</p>\n<ul>\n"
            + "\n".join(f"<li><code>{html.escape(r)}</code></li>" for r in runs)
            + "\n</ul>"
        )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_table(
    out: Path, table: pd.DataFrame, title: str, shown: pd.DataFrame, notes: list[str], runs_in_md: bool = True
) -> None:
    """out.csv (table), out.md and out.html (title, shown, notes; each note a paragraph ending in a newline).

    `runs_in_md`: end the Markdown with the run directories too (the HTML always lists them);
    a table whose notes point at its CSV's `runs` column says False.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    runs = run_dirs(table)
    text = "\n".join([f"# {title}", "", pipe_table(shown) + "\n", *notes])
    if runs_in_md and "runs" in table.columns:
        text += "\n\nRun directories: " + ", ".join(f"`{r}`" for r in runs) + "\n"
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".html").write_text(html_page(title, shown, notes, runs))
