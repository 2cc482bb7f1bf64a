"""dashboards: the MLflow layout of a sweep, and comparisons of variants against baselines (statistics, tables,
plots, HTML pages)."""
