"""The report stage: the tables and the HTML report's pages, read only from what the pipeline wrote.

    tables    the registry TABLES (one entry per table: the experiment whose runs it reads,
              the extra inputs it needs, its report category, its builder) and `report`,
              what `rlev report TABLE` runs. The Snakemake rule `table`, the command's
              choices and the sweep's final outputs are all read from it.
    runs      reading run directories: what a run was (its config.yaml), its metrics, and
              seed means with t-intervals (shared with rlev.analysis).
    builders  the paper's tables (1-6, 8) and the paired bootstrap.
    render    a table's three files: CSV (every number), Markdown and HTML (pandas).
    landing   the HTML report's first page.

Figures stay with their analyses (rlev.analysis): each draws what its module computes.
This package imports nothing heavy itself, so `rlev --help` and the Snakefile can read
the registry without loading pandas.
"""
