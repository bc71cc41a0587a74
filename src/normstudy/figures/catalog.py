"""Every figure's name, module, title and caption; imports nothing heavy.

The workflow reads this module while Snakemake parses the Snakefile (one job per figure,
whose input is the figure's module, so editing one figure re-runs only that figure), and
``workflow/report/figure.rst`` is generated from it (:func:`report_caption`), so the
captions in the report and in the code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from normstudy.catalog import Catalog, Entry
from normstudy.figures.metrics import MIN_SEEDS_FOR_INTERVAL

SEEDS_TEXT = (
    f"With fewer than {MIN_SEEDS_FOR_INTERVAL} seeds a point shows no interval: each seed's "
    "value is a dot and a thin bar spans their range, since a t-interval over so few seeds "
    f"mostly shows the t quantile (12.7 at 2 seeds). From {MIN_SEEDS_FOR_INTERVAL} seeds: "
)
CI_TEXT = (
    "Points are means over seeds. "
    + SEEDS_TEXT
    + "bands (error bars when a panel has more than five lines) are two-sided 95% "
    "Student-t confidence intervals of the mean, mean ± t(0.975, n−1)·s/√n, clipped to the "
    "values the quantity can take (accuracy 0–100%, correlation −1 to 1). Value axes are "
    "fitted to the data, not to the intervals."
)
LOG_CI_TEXT = (
    "Lines are geometric means over seeds. "
    + SEEDS_TEXT
    + "bands (error bars when a panel has more than five lines) are 95% Student-t "
    "intervals computed on the log scale. Value axes are fitted to the data."
)
DIVERGED_TEXT = (
    "Diverged cells are never dropped: they count as chance accuracy (1/classes) in the "
    "means, as in the statistical comparisons (normstudy.comparisons, policy 'chance'), are drawn "
    "as red × at chance, and are counted in the legend."
)
LOG_AXIS = "log axis when its values span more than a factor of 4"


CELLS = ("cells",)
CURVES = ("cells", "curves")
PROBES = ("cells", "curves", "probes")
TABLE_NAMES = ("cells", "curves", "probes", "comparisons", "ols")


@dataclass(frozen=True)
class FigureInfo(Entry):
    """What the report says about one figure: its ``title`` (the label) and ``caption``;
    its module, ``figures/<name>.py`` (relative to the package), draws it from the
    ``tables`` (names of Parquet files in the tables directory, without ``.parquet``; the
    cells table always)."""

    caption: str = ""
    tables: tuple[str, ...] = CELLS

    @property
    def title(self) -> str:
        return self.label

    @property
    def module(self) -> str:
        return f"figures/{self.name}.py"


def figure(name: str, title: str, caption: str, tables: tuple[str, ...] = CELLS) -> FigureInfo:
    return FigureInfo(name, title, caption=caption, tables=tables)


ENTRIES = [
    figure(
        "acc_vs_depth",
        "Test accuracy vs depth by trained parameters",
        f"Final test accuracy against depth ({LOG_AXIS}), one line per freeze policy (which "
        "parameter roles train: everything; only the normalizers' γ and β, 'BN-only'; only "
        "the output layer, i.e. random features; γ, β and the output layer), one panel per "
        "study and combination of its other grid axes. " + CI_TEXT + " " + DIVERGED_TEXT + " "
        "The dotted line is chance. After Frankle, Schwab & Morcos (2020), §4 and figure 2: "
        "BN-only accuracy grows with depth.",
    ),
    figure(
        "norm_table",
        "Test accuracy by normalizer",
        "Final test accuracy (%) of every normalizer (rows) in every study and combination "
        "of its other grid axes (columns: dataset/model and those axes' values), as the mean "
        f"over seeds and, with at least {MIN_SEEDS_FOR_INTERVAL} seeds, ± half-width of the "
        "95% Student-t interval, with fewer the seeds' range [lowest–highest] and n (the "
        "CSV has both and names the one shown in its 'interval' column); the best mean of "
        "each column is bold and framed (ties all marked). Colour encodes the mean; beyond "
        "12 columns there is one heatmap per study. Diverged cells count "
        "as chance accuracy and their number is given in the cell. The same numbers are in "
        "norm_table.csv (one row per normalizer and column, with a 'best' flag) and "
        'norm_table.md. After "Is Batch Norm unique?" (2020), table 3.',
    ),
    figure(
        "curves",
        "Training curves",
        "Per study (one file each), accuracy, cross-entropy loss (log axis) and "
        "generalization gap (training minus test accuracy, percentage points) against "
        "epochs, one line per combination of the study's grid axes (rows split by the first "
        "axis when there are more than eight). Training values are running means over each "
        "epoch's batches in training mode (dashed), test values are measured in evaluation "
        "mode at the end of the epoch (solid). " + CI_TEXT + " Losses are geometric means "
        "with the interval on the log scale; the loss axis ends at ten times the largest "
        "loss of the cells that did not diverge. A diverged cell's curve ends where it "
        "diverged; the red × marks its last test accuracy and the legend counts them.",
        CURVES,
    ),
    figure(
        "gamma_beta",
        "Distributions of γ and β",
        "Per study (one file each), histograms of every normalizer's γ (left) and β "
        "(right) at the end of training, one line per freeze policy (pooled over seeds; "
        "fraction of all features per bin, from the norm_params probe; values beyond the "
        "histogram range are counted in the legend), with the distribution at "
        "initialisation in grey; a spike that stands more than twice above the other "
        "histograms (β = 0 at initialisation and while β is frozen) is cut at the axis top "
        "and its share written in the panel. The legend gives the share of γ with absolute value "
        "below 0.05 (features switched off). Diverged cells are left out of the "
        "histograms and counted in the panel title. After Torri (2022), figures 4–5, "
        "and Frankle et al. (2020), §5: under BN-only training, γ and β pile up at 0.",
        PROBES,
    ),
    figure(
        "grad_roles",
        "Gradient magnitude by parameter role",
        "Per study (one file each), the mean absolute gradient of the training loss over "
        "the scalars of each parameter role (γ, β, weights, biases, output layer; all in "
        "black) against training time (epochs; log axis), from the grad_norms probe on one "
        "probe minibatch in training mode, one panel per combination of the study's grid "
        "axes. " + LOG_CI_TEXT + " Diverged cells are counted in the panel titles; their "
        "non-finite records are left out. After G42 (2021), figure 2: the normalizers' "
        "parameters receive larger gradients than the rest.",
        PROBES,
    ),
    figure(
        "ics",
        "Internal covariate shift through training",
        "Per study (one file each), internal covariate shift as Santurkar et al. (2018, "
        "§2.2) define it: for each normalised layer, the change ‖g − g′‖ and the cosine "
        "cos(g, g′) between its gradient g and its gradient g′ after the earlier layers "
        "took the optimizer's step on the same minibatch, averaged over the layers after "
        "the first (whose ICS is 0 by definition), against training time (epochs), one "
        "line per normalizer, from the ics probe. " + LOG_CI_TEXT + " The cosine is an "
        "arithmetic mean. Diverged cells are counted in the titles; their non-finite "
        "records are left out. After Santurkar et al. (2018), figure 5: BN does not reduce "
        "this shift, noisy BN increases it, and both still train.",
        PROBES,
    ),
    figure(
        "smoothness",
        "Loss-landscape smoothness through training",
        "Per study (one file each), the landscape along the gradient g at the current "
        "parameters, for steps η = lr × (0.5, 1, 2, 4): the range of the loss over those "
        "steps (variation of the loss), the largest change of the gradient ‖∇L(θ − ηg) − g‖ "
        "(gradient predictiveness) and the largest such change per unit step (effective "
        "β-smoothness), against training time (epochs), one line per normalizer, from the "
        "smoothness probe. " + LOG_CI_TEXT + " Diverged cells are counted in the titles; "
        "their non-finite records are left out. After Santurkar et al. (2018), §3.1 and "
        "figure 4: with BN all three are smaller.",
        PROBES,
    ),
    figure(
        "norms_training",
        "Activation, gradient and weight norms through training",
        "Per study (one file each), the norm of each normalised layer's output per example, "
        "of the loss gradient with respect to it, and of its weight, averaged over the "
        "layers, against training time (epochs), one line per normalizer, from the norms "
        "probe. " + LOG_CI_TEXT + " Diverged cells are counted in the titles; their "
        "non-finite records are left out, so a line that stops is a network that "
        "diverged. After Morwani (2020), §3 and its figures: without BN, at a large "
        "learning rate, the three grow together until training diverges.",
        PROBES,
    ),
    figure(
        "hessian",
        "Hessian spectrum by normalizer",
        "Per study (one file each), the top Hessian eigenvalue λ1 and the outlier ratio "
        "λ1/λk (k = the number of eigenvalues recorded, 10 by default) against training "
        "time, and the spectral density of the Hessian at initialisation, at the first "
        "record after it when that is not the last (the step-50 spectrum of the paper's "
        "figure 4, scheduled with at_steps) and at the last record, estimated by "
        "stochastic Lanczos quadrature (Ghorbani et al. 2019; Ritz "
        "values of all start vectors and seeds pooled and smoothed by Gaussians of width "
        "σ = 1% of each spectrum's own range, as Ghorbani et al. smooth after scaling the "
        "spectrum to [-1, 1]; a symmetric-log λ axis when one spectrum reaches 20 times "
        "further than another), one line per normalizer. " + LOG_CI_TEXT + " Diverged "
        "cells are counted in the panel titles; their failed records are left out. After "
        '"Is Batch Norm unique?" (2020), §6, figures 4 and 6.',
        PROBES,
    ),
    figure(
        "propagation",
        "Information propagation and gradient confusion",
        "Per study (one file each), top row: the Pearson correlation between the "
        "representations of a probe minibatch and a noisy copy of it after each normalised "
        "layer, against layer depth at initialisation and at the end of training, and at "
        "the last layer over training (propagation probe); bottom row: the mean correlation "
        "between the gradients of disjoint minibatches per layer at initialisation and for "
        "the whole model over training, and the gradient norm per layer at initialisation "
        "(grad_confusion probe; geometric means on a log axis). Training time is the "
        "optimizer step on a logarithmic axis (0 = initialisation), so that records "
        "scheduled in the first steps (at_steps; the paper's first ~1,000 steps, figure 3) "
        "are visible beside the later ones. One line per normalizer. "
        + CI_TEXT
        + " Diverged cells "
        'are counted in the row titles; their failed records are left out. After "Is '
        'Batch Norm unique?" (2020), §4–5, figures 1–3.',
        PROBES,
    ),
    figure(
        "batch_size",
        "Test accuracy vs batch size",
        f"Final test accuracy against the training batch size ({LOG_AXIS}), one line per "
        "normalizer (one panel per study and combination of its other grid axes): Batch "
        "Norm with aggregated (running) statistics at test time against "
        "Batch-Train, which uses the test batch's statistics, and the normalizers that need "
        "no batch. " + CI_TEXT + " " + DIVERGED_TEXT + ' After "Is Batch Norm unique?" '
        "(2020), §7 and figure 5.",
    ),
    figure(
        "lr_stability",
        "Accuracy vs learning rate: the largest stable learning rate",
        f"Final training and test accuracy against the learning rate ({LOG_AXIS}), one "
        "line per normalizer; the legend gives each normalizer's largest learning rate at which "
        "no seed diverged. " + CI_TEXT + " " + DIVERGED_TEXT + " After Morwani (2020), §3: "
        "with Batch Norm, full-batch gradient descent trains at learning rates where the "
        "plain network diverges.",
    ),
    figure(
        "noise_robustness",
        "Robustness to noise features",
        "Best validation accuracy against the number of training examples per class "
        f"({LOG_AXIS}) on the noise-feature task (few useful, many Gaussian noise inputs), for "
        "Batch Norm with shuffled batches (BN_reg in the paper), Batch Norm with a fixed "
        "batch order (BN_without_reg) and no normalization. "
        + CI_TEXT
        + " "
        + DIVERGED_TEXT
        + " After Morwani (2020), §5: Batch Norm generalizes better with little data.",
    ),
    figure(
        "ols",
        "OLS with and without the Batch Norm reparameterisation",
        "Ordinary least squares by gradient descent on w (solid) and on the Batch Norm "
        "reparameterisation γ·w/√(wᵀHw) (dashed): the residual loss against steps (log "
        "axis) for each condition number κ of H (colour, the same in every panel), and the "
        "trajectories of the effective weights (start ○, end ●; line style: the method), one "
        "row per dimension d (2 or 3), one file per learning rate when there are several. "
        "The view of a trajectory shows every start "
        "and every run whose loss did not grow; a run that leaves it is cut at its edge "
        "and marked ×; runs that diverged (non-finite or beyond 1e6) are counted in the "
        "legend and marked × at their last finite residual. After Morwani (2020), §2: with Batch "
        "Norm the convergence rate hardly depends on κ for d = 2.",
        ("cells", "ols"),
    ),
    figure(
        "cd_diagram",
        "Critical-difference diagram of the normalizers",
        "For every study with a normalizer axis, the average rank of each normalizer "
        "(1 = best final test accuracy) over blocks, a block being one combination of the "
        "study's other grid axes with seeds averaged; normalizers joined by a thick bar do "
        "not differ significantly by the Nemenyi test (critical difference CD at α = 0.05, "
        "drawn above the axis). The title gives the Friedman and Iman–Davenport tests. Where "
        "the test is undefined (one block, or only two normalizers) no diagram is drawn: "
        "the panel says why and lists the untested average ranks. "
        "Diverged cells count as chance accuracy and are counted after each name. After "
        "Demšar (2006), §3.2.2 and figures 1–2 (normstudy.ranking.friedman_ranks).",
    ),
]
CATALOG: Catalog[FigureInfo] = Catalog("figure", ENTRIES)

FIGURE_NAMES: tuple[str, ...] = tuple(CATALOG.names())


def figure_info(name: str) -> FigureInfo:
    """The catalog entry of ``name``; unknown names list the valid ones."""
    return CATALOG[name]


def figure_module(name: str) -> str:
    """The file that draws ``name``, relative to the ``normstudy`` package directory."""
    return figure_info(name).module


def figure_tables(name: str) -> tuple[str, ...]:
    """The table files ``name`` reads (e.g. ``("cells.parquet", "curves.parquet")``): the
    workflow's inputs for it, so that a figure re-runs only when its own data change."""
    return tuple(f"{table}.parquet" for table in figure_info(name).tables)


def report_caption() -> str:
    """The RST caption template of every figure for ``snakemake --report``.

    Snakemake renders it with Jinja; ``snakemake.wildcards.figure`` picks the caption.
    """
    lines = ["{% set figure = snakemake.wildcards.figure %}"]
    for index, (name, info) in enumerate(CATALOG.items()):
        keyword = "if" if index == 0 else "elif"
        lines += [
            f'{{% {keyword} figure == "{name}" %}}',
            f"**{info.title}.** {info.caption}",
        ]
    lines += [
        "{% else %}",
        "Figure ``{{ figure }}`` of the normalization study.",
        "{% endif %}",
        "",
    ]
    return "\n".join(lines)
