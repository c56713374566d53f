"""The study's figures as PNG files: transfer heatmap, similarity clustermap, similarity vs gain.

SPoT (Vu et al. 2022): Figure 3 (relative error reduction of every source -> target pair), Figures
4/7 (task embeddings clustered by similarity), Figures 5/8 (task-embedding similarity against
relative error reduction, one panel per target, with Pearson's r from spot_jax.study.stats).
Figures only draw: every number they show is computed before (tables, stats, retrieval).

Figures are drawn on `matplotlib.figure.Figure` objects, never through pyplot: they render with Agg
on a headless machine without switching the process-wide backend (a notebook importing this module
keeps its own), hold no global figure state, and need no closing. Files are written atomically
(temp file beside them, then a rename) through etils.epath, so `gs://` paths work.
"""

from __future__ import annotations

import io
import math
from typing import Mapping, Optional, Sequence

from etils import epath
import matplotlib
from matplotlib import colors as mcolors
from matplotlib import figure as mfigure
from matplotlib import patches as mpatches
import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial import distance

from spot_jax.errors import SpotError
from spot_jax.io import atomic_write
from spot_jax.study import stats

DPI = 150


class FigureError(SpotError):
  """Inputs whose shapes or names do not fit the figure."""


def save(fig: mfigure.Figure, path: str | epath.PathLike, dpi: int) -> epath.Path:
  """Renders `fig` as PNG with Agg and writes it to `path` whole or not at all."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
  fig.clear()  # drop the artists now; the figure is garbage once this returns
  return atomic_write(path, buf.getvalue())


def transfer_heatmap(sources: Sequence[str], targets: Sequence[str], matrix: np.ndarray,
                     path: str | epath.PathLike, *,
                     title: str = "Relative error reduction (%) over prompt tuning",
                     fmt: str = ".0f", dpi: int = DPI) -> epath.Path:
  """Rows are sources, columns targets, each cell annotated; returns the PNG's path.

  The diverging colormap is centred on 0 (blue: positive transfer, red: negative); NaN cells (no
  results, or a perfect baseline) are grey and unannotated.
  """
  matrix = np.asarray(matrix, np.float64)
  if matrix.shape != (len(sources), len(targets)) or matrix.size == 0:
    raise FigureError(f"matrix has shape {matrix.shape}, expected a non-empty "
                      f"[{len(sources)} sources, {len(targets)} targets]")
  finite = np.isfinite(matrix)
  vmax = float(np.abs(matrix[finite]).max()) if finite.any() else 0.0
  vmax = vmax or 1.0
  cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#d9d9d9")
  n_src, n_tgt = matrix.shape
  fig = mfigure.Figure(figsize=(2.5 + 0.55 * n_tgt, 1.5 + 0.4 * n_src))
  ax = fig.add_subplot()
  image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap,
                    norm=mcolors.Normalize(-vmax, vmax), aspect="auto")
  for i, j in zip(*np.nonzero(finite)):
    value = matrix[i, j]
    ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=7,
            color="white" if abs(value) > 0.6 * vmax else "black")
  ax.set_xticks(range(n_tgt), labels=list(targets), rotation=45, ha="right",
                rotation_mode="anchor")
  ax.set_yticks(range(n_src), labels=list(sources))
  ax.set_xlabel("target task")
  ax.set_ylabel("source task")
  ax.set_title(title)
  fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
  return save(fig, path, dpi)


def _family_colors(families: Mapping[str, str]) -> dict[str, str]:
  names = sorted(set(families.values()))
  palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
  return {name: mcolors.to_hex(palette(k % palette.N)) for k, name in enumerate(names)}


def similarity_clustermap(names: Sequence[str], sim_matrix: np.ndarray,
                          path: str | epath.PathLike,
                          families: Optional[Mapping[str, str]] = None, *,
                          title: str = "Task embedding similarity", dpi: int = DPI) -> list[int]:
  """Heatmap of task similarities ordered by average-linkage clustering, with its dendrogram.

  The distance is 1 - similarity after symmetrising and zeroing the diagonal (negative values from
  rounding are clipped to 0). `families` maps a task name to its family (e.g. "QA", "NLI") to
  colour its tick labels. Returns the leaf order: indices into `names`, top row first.
  """
  sim = np.asarray(sim_matrix, np.float64)
  n = len(names)
  if n == 0 or sim.shape != (n, n):
    raise FigureError(f"similarity matrix has shape {sim.shape}, expected [{n}, {n}] for {n} "
                      f"names (at least one)")
  if len(set(names)) != n:
    raise FigureError(f"task names must be unique, got {list(names)}")
  if not np.all(np.isfinite(sim)):
    raise FigureError("similarity matrix has NaN or inf entries: they cannot be clustered")
  sym = (sim + sim.T) / 2.0
  dist = np.clip(1.0 - sym, 0.0, None)
  np.fill_diagonal(dist, 0.0)

  side = max(3.0, 0.3 * n)
  fig = mfigure.Figure(figsize=(side + 3.5, side + 1.5))
  # Colorbar top-left above the dendrogram, so it never meets the row labels right of the map.
  grid = fig.add_gridspec(2, 2, width_ratios=[1.2, side], height_ratios=[0.15, side],
                          wspace=0.02, hspace=0.04)
  ax_bar, ax_tree, ax_map = (fig.add_subplot(grid[i, j]) for i, j in ((0, 0), (1, 0), (1, 1)))
  if n > 1:
    tree = hierarchy.linkage(distance.squareform(dist, checks=False), method="average")
    order = [int(i) for i in hierarchy.dendrogram(
        tree, ax=ax_tree, orientation="left", no_labels=True,
        link_color_func=lambda _: "black")["leaves"]]
    ax_tree.set_ylim(10 * n, 0)  # leaf k sits at 5 + 10 k: top-down, as the heatmap's rows
  else:
    order = [0]
  ax_tree.set_axis_off()

  image = ax_map.imshow(sym[np.ix_(order, order)], cmap="viridis", aspect="auto")
  ordered = [names[i] for i in order]
  ax_map.set_xticks(range(n), labels=ordered, rotation=90)
  ax_map.set_yticks(range(n), labels=ordered)
  ax_map.yaxis.tick_right()
  if families:
    palette = _family_colors(families)
    for label in ax_map.get_xticklabels() + ax_map.get_yticklabels():
      family = families.get(label.get_text())
      label.set_color(palette[family] if family is not None else "black")
    handles = [mpatches.Patch(color=color, label=family) for family, color in palette.items()]
    # Below the dendrogram: the corner left of the column labels is empty.
    ax_tree.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.02),
                   borderaxespad=0.0, title="family", fontsize=8, frameon=False)
  bar = fig.colorbar(image, cax=ax_bar, orientation="horizontal")
  bar.ax.xaxis.set_ticks_position("top")
  bar.ax.tick_params(labelsize=7)
  fig.suptitle(title)
  save(fig, path, dpi)
  return order


def similarity_vs_transfer(per_target: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                           correlations: Mapping[str, Mapping[str, float]],
                           path: str | epath.PathLike, *, ncols: Optional[int] = None,
                           dpi: int = DPI) -> epath.Path:
  """One scatter panel per target: similarity of each source to it vs that source's gain, with a
  least-squares line and the target's Pearson r, p (study.stats) in the title.

  per_target[target] = (similarities, relative error reductions), one entry per source; pairs
  with a NaN in either are not drawn. correlations[target] has "r" and "p" (NaN: no line).
  """
  if not per_target:
    raise FigureError("per_target is empty: give each target's (similarities, gains)")
  data = {}
  for target, (sims, gains) in per_target.items():
    if target not in correlations:
      raise FigureError(f"no correlation given for target {target}")
    try:
      data[target] = stats.finite_pairs(sims, gains)
    except ValueError as e:
      raise FigureError(f"target {target}: similarities and gains differ in length ({e})") from e

  n = len(data)
  ncols = ncols or math.ceil(math.sqrt(n))
  nrows = math.ceil(n / ncols)
  fig = mfigure.Figure(figsize=(3.2 * ncols, 2.8 * nrows), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
  for ax, (target, (x, y)) in zip(axes, data.items()):
    r, p = correlations[target]["r"], correlations[target]["p"]
    ax.scatter(x, y, s=14, alpha=0.8)
    ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
    if not math.isnan(r):
      slope, intercept = np.polyfit(x, y, 1)
      xs = np.array([x.min(), x.max()])
      ax.plot(xs, slope * xs + intercept, color="black", linewidth=1.0)
      ax.set_title(f"{target}\nr = {r:.2f}, p = {p:.2g}, n = {len(x)}", fontsize=9)
    else:
      ax.set_title(f"{target}\nr = n/a ({len(x)} points)", fontsize=9)
  for ax in axes[n:]:
    ax.set_visible(False)
  fig.supxlabel("task embedding similarity")
  fig.supylabel("relative error reduction (%)")
  return save(fig, path, dpi)
