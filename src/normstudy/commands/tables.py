"""Commands from cells to tables and statistics: ``aggregate``, ``check-cells``,
``compare`` and ``power``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normstudy.commands.common import Subcommands


def command_aggregate(args: argparse.Namespace) -> int:
    from normstudy.io import read_json
    from normstudy.orphans import outdated_cells, outdated_warning
    from normstudy.tables import MixedVersionsError, UnreadableCellError, aggregate

    plan = read_json(args.plan)
    try:
        counts = aggregate(plan, args.cells_dir, args.out_dir)
    except (UnreadableCellError, MixedVersionsError) as error:
        print(f"normstudy: error: {error}", file=sys.stderr)
        return 1
    outdated = outdated_cells(args.cells_dir, skip=plan["cells"])
    if outdated:
        print(outdated_warning(outdated, str(Path(args.cells_dir).parent)), file=sys.stderr)
    print(f"{counts['cells']} rows ({counts['unique_cells']} cells) -> {args.out_dir}")
    return 0


def command_check_cells(args: argparse.Namespace) -> int:
    from normstudy.io import read_json, write_text_atomic
    from normstudy.tables import check_cells, damaged_cells_report

    plan = read_json(args.plan)
    damaged = check_cells(plan, args.cells_dir)
    if damaged:
        print(f"normstudy: error: {damaged_cells_report(damaged, args.cells_dir)}", file=sys.stderr)
        return 1
    cells = "".join(f"{cell}\n" for cell in plan["cells"])
    write_text_atomic(args.output, f"# {len(plan['cells'])} cells checked: intact\n{cells}")
    print(f"{len(plan['cells'])} cells checked: intact -> {args.output}")
    return 0


def command_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from normstudy.comparison_specs import parse_comparisons
    from normstudy.comparisons import comparisons_arrow, comparisons_table
    from normstudy.io import read_json, write_parquet_atomic

    plan = read_json(args.plan)
    cells = pd.read_parquet(args.cells)
    studies = {
        name: (entry["axes"], parse_comparisons(entry["comparisons"], entry["axes"]))
        for name, entry in plan["studies"].items()
    }
    table = comparisons_table(cells, studies)
    write_parquet_atomic(args.output, comparisons_arrow(table))
    print(f"{len(table)} comparisons -> {args.output}")
    write_trends_and_tuning(args, plan, cells, studies, table)
    if args.power_md or args.power_csv:
        from normstudy.io import write_text_atomic
        from normstudy.power_report import power_csv, power_markdown, power_rows

        rows = power_rows(table)
        if args.power_md:
            write_text_atomic(args.power_md, power_markdown(rows, plan.get("scale")))
            print(f"power report -> {args.power_md}")
        if args.power_csv:
            write_text_atomic(args.power_csv, power_csv(rows))
            print(f"power table -> {args.power_csv}")
    return 0


def write_trends_and_tuning(args, plan: dict, cells, studies: dict, table) -> None:
    """The trend tests, the tuning table and the Markdown summary, where asked for."""
    from normstudy.comparison_summary import summary_markdown
    from normstudy.comparisons import tuning_table
    from normstudy.io import write_parquet_atomic, write_text_atomic
    from normstudy.trends import parse_trends, trends_arrow, trends_table
    from normstudy.tuning import tuning_arrow

    trend_specs = {
        name: (entry["axes"], parse_trends(entry["comparisons"], entry["axes"]))
        for name, entry in plan["studies"].items()
    }
    trends = trends_table(cells, trend_specs)
    tuning = tuning_table(cells, studies)
    if args.trends:
        write_parquet_atomic(args.trends, trends_arrow(trends))
        print(f"{len(trends)} trend tests -> {args.trends}")
    if args.tuning:
        write_parquet_atomic(args.tuning, tuning_arrow(tuning))
        print(f"{len(tuning)} tuning rows -> {args.tuning}")
    if args.summary_md:
        write_text_atomic(args.summary_md, summary_markdown(table, trends, tuning))
        print(f"summary -> {args.summary_md}")


def command_power(args: argparse.Namespace) -> int:
    import pandas as pd
    import yaml

    from normstudy.power_report import power_markdown, power_rows, seed_suggestions

    rows = power_rows(pd.read_parquet(args.comparisons))
    if not args.suggest:
        print(power_markdown(rows))
        return 0
    config = yaml.safe_load(Path(args.config).read_text())
    scale = args.scale or config.get("scale", "demo")
    print(f"# seeds for {args.comparisons} at {scale} scale; edit {args.config}:")
    for line in seed_suggestions(rows, config["studies"], scale, max_seeds=args.max_seeds):
        print(line)
    return 0


def add_aggregate_command(commands: Subcommands) -> None:
    agg = commands.add_parser("aggregate", help="cells -> results/tables/*.parquet")
    agg.add_argument("plan", help="plan JSON written by the workflow")
    agg.add_argument("cells_dir", help="directory of cell directories")
    agg.add_argument("out_dir", help="directory of the tables")
    agg.set_defaults(func=command_aggregate)


def add_check_cells_command(commands: Subcommands) -> None:
    check = commands.add_parser(
        "check-cells", help="report every damaged cell output at once (before the tables)"
    )
    check.add_argument("plan", help="plan JSON written by the workflow")
    check.add_argument("cells_dir", help="directory of cell directories")
    check.add_argument("output", help="marker file written when every cell is intact")
    check.set_defaults(func=command_check_cells)


def add_compare_command(commands: Subcommands) -> None:
    compare = commands.add_parser("compare", help="cells.parquet -> comparisons.parquet")
    compare.add_argument("plan", help="plan JSON written by the workflow")
    compare.add_argument("cells", help="cells.parquet")
    compare.add_argument("output", help="comparisons.parquet to write")
    compare.add_argument("--power-md", help="power report (Markdown) to write")
    compare.add_argument("--power-csv", help="power table (CSV) to write")
    compare.add_argument("--trends", help="trend tests (trends.parquet) to write")
    compare.add_argument("--tuning", help="tuning table (tuning.parquet) to write")
    compare.add_argument("--summary-md", help="Markdown summary of the comparisons to write")
    compare.set_defaults(func=command_compare)


def add_power_command(commands: Subcommands) -> None:
    power = commands.add_parser(
        "power",
        help="seeds needed for 80%% power per comparison; --suggest: the config change",
    )
    power.add_argument("comparisons", help="comparisons.parquet")
    power.add_argument(
        "--suggest", action="store_true", help="print the seed lists to set in config.yaml"
    )
    power.add_argument("--config", default="config.yaml", help="workflow config to suggest for")
    power.add_argument("--scale", choices=["demo", "paper"], help="default: the config's")
    power.add_argument(
        "--max-seeds", type=int, default=30, help="suggest no more seeds than this per study"
    )
    power.set_defaults(func=command_power)
