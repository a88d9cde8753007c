"""docs/results.md is generated from the committed CSVs, never typed."""
import pandas as pd
import pytest

from locdiff import results_page


def test_committed_page_matches_its_csvs():
    """Fails when a CSV changed without regenerating the page, or the page was edited by hand."""
    assert results_page.main(["--check"]) == 0, "run: python -m locdiff.results_page --profile cpu"


def test_readme_headline_table_is_the_generated_one():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert results_page.headline("cpu") in readme, "README's table differs: paste results_page.headline('cpu')"


def _rows(method, split, values):
    return [{"profile": "t", "method": method, "split": split, "metric": m, "value": v, "ci_low": v - 1,
             "ci_high": v + 1, "n_images": 10} for m, v in values.items()]


def test_page_prints_the_csv_values_with_their_intervals(tmp_path):
    metrics = {"acc@1km": 0.0, "acc@25km": 12.34, "acc@200km": 50.0, "acc@750km": 70.0, "acc@2500km": 90.0,
               "median_km": 1234.5, "mean_km": 2000.0, "geoscore": 3000.0}
    rows = _rows("Classification", "test_iid", metrics) + _rows("LocDiff", "test_iid", {**metrics, "acc@25km": 40.0})
    pd.DataFrame(rows).to_csv(tmp_path / "methods.csv", index=False)
    page = results_page.build("t", folder=tmp_path)
    assert "| Classification | 0.0 | 12.3 | 50.0 | 70.0 | 90.0 | 1,234 | 2,000 | 3,000 |" in page   # hand-formatted
    assert "12.3 [11.3, 13.3]" in page and "| LocDiff | 0.0 | 40.0 |" in page
    assert "Across training seeds" not in page          # no replicates.csv: that section is left out


def test_missing_results_are_refused_with_the_command_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="make figures PROFILE=t"):
        results_page.build("t", folder=tmp_path)
