"""worker: a sweep as one Ray Job — SweepSpec expansion, Ray Tune trials of rskd_core, MLflow tracking."""
