"""dashboards: comparisons of variants against baselines — statistics, tables, plots (issue [dashboards])."""
