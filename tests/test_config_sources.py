"""Every paper-scale value of config.yaml names its source (normstudy.config_sources)."""

from __future__ import annotations

from pathlib import Path

from normstudy.config_sources import uncited_keys

REPO = Path(__file__).resolve().parents[1]


def test_every_paper_scale_key_of_the_shipped_config_cites_its_source():
    missing = uncited_keys((REPO / "config.yaml").read_text())
    assert missing == [], "keys without a source comment:\n" + "\n".join(missing)


EXAMPLE = """\
defaults:
  # Frankle et al. (2020) §3: their schedule
  lr: 0.1
  momentum: 0.9

  seed: 0
studies:
  a:
    grid:
      depth: [14, 20]     # figure 2
      # a comment that cites nothing
      width: [1, 2]
      freeze: [all,
               norm]      # our choice: wrapped
    exclude:
      - {depth: 14}
    set:
      epochs: 3           # TODO
    demo:
      set:
        epochs: 1
"""


def test_uncited_keys_are_found_and_cited_ones_pass():
    assert uncited_keys(EXAMPLE) == [
        "line 6: defaults.seed",
        "line 12: studies.a.grid.width",
        "line 13: studies.a.grid.freeze",
        "line 15: studies.a.exclude",
        "line 18: studies.a.set.epochs",
    ]


def test_a_comment_above_the_parent_block_does_not_cite_its_keys():
    text = "studies:\n  a:\n    # §3\n    set:\n      lr: 1\n"
    assert uncited_keys(text) == ["line 5: studies.a.set.lr"]


def test_the_readme_maps_every_study_to_its_paper():
    import yaml

    studies = yaml.safe_load((REPO / "config.yaml").read_text())["studies"]
    readme = (REPO / "README.md").read_text()
    table = readme.split("## The studies", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in table.splitlines()
        if line.startswith("| `")
    }
    assert set(studies) <= rows, f"studies missing from README 'The studies': {set(studies) - rows}"
