"""Print the result tables (methods, seeds, verdicts, hybrid, distributions, ablations) from data/results/cpu/*.csv; run from the repository root: .venv/bin/python tools/result_tables.py"""
import pandas as pd
from locdiff import report, seeds, evaluate
R = evaluate.results_dir("cpu")
df = pd.read_csv(R / "methods.csv")
for split in ("test_iid", "test_unseen"):
    print(f"\n### {split}\n"); print(report.markdown_table(df, split))
rep = pd.read_csv(R / "replicates.csv")
print("\ntrain seeds:", sorted(rep.train_seed.unique()))
for split in ("test_iid", "test_unseen"):
    s = seeds.summary(rep, split)
    print(f"\n### seeds summary {split}\n")
    print(s.round(1).to_string())
    v = seeds.verdicts(rep, split)
    print(f"\n### verdicts {split}\n"); print(v.round(1).to_string())
    print(f"\n### hybrid {split}\n"); print(seeds.hybrid_check(rep, split).round(1).to_string())
for metric in ("acc@750km", "acc@2500km"):
    print(f"\n### generalization {metric}\n")
    print(report.generalization_summary(df, metric, replicates=rep))
dist = pd.read_csv(R / "distributions.csv")
print("\n### distributions\n"); print(dist.round(3).to_string())
ab = pd.read_csv(R / "ablations.csv")
print("\n### ablations\n"); print(ab[ab.metric.isin(["acc@25km","acc@200km","acc@750km","acc@2500km","median_km"])].round(1).to_string())
tun = pd.read_csv(R / "tuning.csv"); print("\n### tuning chosen\n"); print(tun[tun.chosen.astype(bool)].to_string())
