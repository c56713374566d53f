"""The SPoT transferability study (Vu et al. 2022, §3.1, §3.3): run the grid, tabulate, plot.

`grid` runs every source x target x seed cell as an independent, resumable job (one JSON file per
cell); `tables` turns the cell results into the paper's tables (relative error reduction, positive
transfers, retrieval summary) and `stats` computes the statistics (Pearson r, p and the r that
significance needs); `figures` draws the paper's figures (transfer heatmap, task-similarity
clustermap, similarity vs transfer scatter plots) from those numbers; `transfer` runs the study.

The CrossFit PEFT study (seed 002): `crossfit` runs its upstream and downstream cells (on the same
resumable, claimable grid), `crossfit_report` selects by dev and writes ARG tables and the figure.
"""
